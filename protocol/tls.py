"""Mutual TLS, an option per participant on top of the message signatures.

A scheme that wants the channel authenticated too (as production schemes do) gives the switch a
certificate and the authority that issued the participants' ones (`tls:` in its
configuration) and marks a participant `mtls: true`: that participant's requests are then
taken only over TLS with a client certificate from that authority whose subject common name is
its BIC, checked with the signature before any of the body is read (protocol/http.py
`authenticate`). Others may still connect with TLS alone. The switch presents its own
certificate as a client when it posts to an `https://` inbound URL, and checks the
participant's server certificate against the authority.

The lab makes its authority and every party's certificate at start (`make_lab_pki`), with the
`cryptography` package: ECDSA P-256, valid for a day, for 127.0.0.1 and localhost.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import BaseModel, ConfigDict, FilePath

LAB_VALIDITY = datetime.timedelta(days=1)


class TlsFiles(BaseModel):
    """One party's TLS files, PEM: its certificate, its private key (unencrypted, readable by
    the service alone) and the authority that issued the certificates of its peers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    certificate: FilePath
    private_key: FilePath
    authority: FilePath


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A server's context: its certificate; a client certificate is asked for and, when
    given, must come from the authority (a participant marked mtls must give one)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(files.authority))
    context.load_cert_chain(files.certificate, files.private_key)
    context.verify_mode = ssl.CERT_OPTIONAL
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def client_context(files: TlsFiles) -> ssl.SSLContext:
    """A client's context: the server's certificate checked against the authority, and this
    party's certificate presented."""
    context = ssl.create_default_context(cafile=str(files.authority))
    context.load_cert_chain(files.certificate, files.private_key)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def peer_name(peer_certificate: dict[str, object] | None) -> str | None:
    """The subject common name of a verified peer certificate (ssl's getpeercert()), or None
    when the peer gave none."""
    if not peer_certificate:
        return None
    for rdn in peer_certificate.get("subject", ()):  # type: ignore[attr-defined]
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "switchlab")])


def _write(path: Path, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
    path.with_suffix(".key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    path.with_suffix(".key").chmod(0o600)
    path.with_suffix(".pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def make_lab_pki(folder: Path, names: list[str]) -> dict[str, TlsFiles]:
    """An authority and one certificate per name (a BIC; the subject's common name), for
    127.0.0.1 and localhost, client and server use, written under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    authority_key = ec.generate_private_key(ec.SECP256R1())
    authority = (x509.CertificateBuilder()
                 .subject_name(_name("switchlab lab authority"))
                 .issuer_name(_name("switchlab lab authority"))
                 .public_key(authority_key.public_key())
                 .serial_number(x509.random_serial_number())
                 .not_valid_before(now - datetime.timedelta(minutes=5))
                 .not_valid_after(now + LAB_VALIDITY)
                 .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                 .add_extension(x509.KeyUsage(
                     digital_signature=True, key_cert_sign=True, crl_sign=True,
                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                     key_agreement=False, encipher_only=False, decipher_only=False),
                     critical=True)
                 .sign(authority_key, hashes.SHA256()))
    _write(folder / "authority", authority_key, authority)
    files = {}
    for name in names:
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = (x509.CertificateBuilder()
                       .subject_name(_name(name))
                       .issuer_name(authority.subject)
                       .public_key(key.public_key())
                       .serial_number(x509.random_serial_number())
                       .not_valid_before(now - datetime.timedelta(minutes=5))
                       .not_valid_after(now + LAB_VALIDITY)
                       .add_extension(x509.SubjectAlternativeName([
                           x509.DNSName("localhost"),
                           x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]), critical=False)
                       .add_extension(x509.ExtendedKeyUsage([
                           ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
                       .sign(authority_key, hashes.SHA256()))
        _write(folder / name, key, certificate)
        files[name] = TlsFiles(certificate=folder / f"{name}.pem",
                               private_key=folder / f"{name}.key",
                               authority=folder / "authority.pem")
    return files
