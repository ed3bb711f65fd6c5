"""Keys as configuration text, and the keys a participant holds towards the switch.

Formats (docs/participants.md, "Keys and provisioning"):
- an HMAC secret: text, used as its UTF-8 bytes (`openssl rand -hex 32` makes a good one);
- an Ed25519 private key: PEM, PKCS#8 unencrypted (`openssl genpkey -algorithm ed25519`), or
  the base64 of its 32 raw bytes;
- an Ed25519 public key: PEM, SubjectPublicKeyInfo (`openssl pkey -pubout`), or the base64 of
  its 32 raw bytes.

A key never appears in a repr, a log line or a configuration error (the models that hold keys
hide their input in errors).
"""

from __future__ import annotations

import base64
import binascii
import ssl
from collections.abc import Callable
from functools import partial
from typing import Annotated, Literal, TypeVar

import pydantic
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from protocol.signing import Credentials, Ed25519SigningKey, Ed25519VerifyKey
from protocol.tls import TlsFiles, client_context

K = TypeVar("K")
Signing = Literal["hmac", "ed25519"]
MAX_SECRET_BYTES = 1_024
MAX_KEY_CHARS = 1_024
RAW_KEY_BYTES = 32
PEM_BEGIN = "-----BEGIN "


def _raw(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is neither PEM nor base64") from None
    if len(raw) != RAW_KEY_BYTES:
        raise ValueError(f"{what} in base64 must be {RAW_KEY_BYTES} bytes, not {len(raw)}")
    return raw


def _read(text: str, what: str, pem_format: str, load_pem: Callable[[bytes], object],
          key_type: type[K], from_raw: Callable[[bytes], K]) -> K:
    text = text.strip()
    if not text.startswith(PEM_BEGIN):
        return from_raw(_raw(text, what))
    try:
        key = load_pem(text.encode())
    except (ValueError, TypeError):
        raise ValueError(f"{what} is not {pem_format}") from None
    if not isinstance(key, key_type):
        raise ValueError(f"{what} is not an Ed25519 key")
    return key


def read_private_key(text: str) -> Ed25519SigningKey:
    """An Ed25519 private key from PEM (PKCS#8) or base64 text; ValueError saying why not,
    never quoting the text."""
    return Ed25519SigningKey(_read(
        text, "the private key", "an unencrypted PKCS#8 PEM key",
        partial(serialization.load_pem_private_key, password=None),
        ed25519.Ed25519PrivateKey, ed25519.Ed25519PrivateKey.from_private_bytes))


def read_public_key(text: str) -> Ed25519VerifyKey:
    """An Ed25519 public key from PEM (SubjectPublicKeyInfo) or base64 text; ValueError."""
    return Ed25519VerifyKey(_read(
        text, "the public key", "a PEM public key", serialization.load_pem_public_key,
        ed25519.Ed25519PublicKey, ed25519.Ed25519PublicKey.from_public_bytes))


def private_key_text(key: Ed25519SigningKey) -> str:
    """PEM (PKCS#8, unencrypted): what a configuration file holds."""
    return key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()


def public_key_text(key: Ed25519VerifyKey) -> str:
    """PEM (SubjectPublicKeyInfo): what a participant sends the scheme operator."""
    return key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _private(text: str) -> str:
    read_private_key(text)
    return text


def _public(text: str) -> str:
    read_public_key(text)
    return text


# A field holding a key is declared `Field(repr=False)` where it is used: pydantic ignores
# field settings inside `X | None`.
Secret = Annotated[bytes, Field(min_length=1, max_length=MAX_SECRET_BYTES)]
PrivateKeyText = Annotated[str, Field(max_length=MAX_KEY_CHARS), AfterValidator(_private)]
PublicKeyText = Annotated[str, Field(max_length=MAX_KEY_CHARS), AfterValidator(_public)]


class SwitchKeys(BaseModel):
    """The keys a participant holds towards the switch, in the scheme's signing mode.

    hmac: `secret`, which only this participant and the switch hold; it signs both ways.
    ed25519: this participant's `private_key`, and the switch's `switch_public_key`.
    Validating raises pydantic.ValidationError naming the missing or misplaced field.
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    signing: Signing = "hmac"
    secret: Secret | None = Field(None, repr=False)
    private_key: PrivateKeyText | None = Field(None, repr=False)
    switch_public_key: PublicKeyText | None = None
    # Mutual TLS (protocol/tls.py): this participant's certificate and key, and the authority
    # that issued the switch's; None: plain HTTP, or TLS checked against the system's roots.
    tls: TlsFiles | None = None

    def client_ssl(self) -> ssl.SSLContext | bool:
        """What this participant's connections to the switch use: its TLS client context, or
        aiohttp's default checks."""
        return True if self.tls is None else client_context(self.tls)

    @pydantic.model_validator(mode="after")
    def _keys_of_the_mode(self) -> SwitchKeys:
        needed = {"hmac": ("secret",), "ed25519": ("private_key", "switch_public_key")}
        for mode, fields in needed.items():
            for name in fields:
                present = getattr(self, name) is not None
                if mode == self.signing and not present:
                    raise ValueError(f"{self.signing} signing needs {name}")
                if mode != self.signing and present:
                    raise ValueError(f"{name} belongs to {mode} signing, not {self.signing}")
        return self

    def credentials(self) -> Credentials:
        """What signs this participant's messages and checks the switch's."""
        if self.signing == "hmac":
            assert self.secret is not None
            return Credentials.shared(self.secret)
        assert self.private_key is not None and self.switch_public_key is not None
        return Credentials(read_private_key(self.private_key),
                           read_public_key(self.switch_public_key))
