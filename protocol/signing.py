"""Signatures on every request and every answer between the switch and a participant.

Two modes, one per scheme (the switch's `signing` setting; docs/participants.md says why):

- `hmac`: each participant holds one secret that only it and the switch know. It signs what it
  sends the switch with it, and the switch signs what it sends that participant (requests and
  HTTP answers) with the same secret. No participant holds anything that signs as the switch
  towards another participant, or as another participant. ~2 µs a message.
- `ed25519`: each party signs with its own private key and is checked with its public key, so
  a signature also proves to a third party who signed (non-repudiation). ~100 µs a message.

What is signed is a short canonical text, lines joined by "\\n" (the body enters by its
SHA-256, so a 128 MiB file is hashed once and never copied):

    request: "switchlab/1 request", signer BIC, timestamp, path, hex SHA-256 of the body
    answer:  "switchlab/1 answer", signer BIC, timestamp, HTTP status, the request's
             X-Switchlab-Signature, hex SHA-256 of the body

The signer's BIC and the direction in the text mean a signature cannot be reflected back to
the party that made it, nor an answer's signature replayed as a request's; an answer names the
request it answers. The timestamp bounds a request's replay to MAX_CLOCK_SKEW_S; the ids inside
the message make replays harmless anyway. The verifier's key decides the algorithm, never a
header of the message.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

PARTICIPANT_HEADER = "X-Switchlab-Participant"
TIMESTAMP_HEADER = "X-Switchlab-Timestamp"
SIGNATURE_HEADER = "X-Switchlab-Signature"
MAX_CLOCK_SKEW_S = 300
MAX_TIMESTAMP_DIGITS = 12
MAX_SIGNATURE_CHARS = 256  # an Ed25519 signature is 128 hex digits, an HMAC-SHA256 one 64
VERSION = "switchlab/1"


class SignatureError(Exception):
    """The message is not signed, or not by whom it claims; the text says which."""


class SigningKey(Protocol):
    """What signs as one party: `sign(text)` gives the signature as hex digits."""

    def sign(self, text: bytes) -> str: ...


class VerifyKey(Protocol):
    """What checks one party's signatures."""

    def verify(self, text: bytes, signature: str) -> bool: ...


class HmacKey:
    """A secret shared by one participant and the switch: it signs and it checks."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("an HMAC secret cannot be empty")
        self._secret = secret

    def sign(self, text: bytes) -> str:
        return hmac.new(self._secret, text, hashlib.sha256).hexdigest()

    def verify(self, text: bytes, signature: str) -> bool:
        return signature.isascii() and hmac.compare_digest(self.sign(text), signature)

    def __repr__(self) -> str:
        return "HmacKey(<secret>)"


class Ed25519SigningKey:
    """One party's private key (RFC 8032 Ed25519)."""

    __slots__ = ("_key",)

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> Ed25519SigningKey:
        return cls(ed25519.Ed25519PrivateKey.generate())

    @property
    def private_key(self) -> ed25519.Ed25519PrivateKey:
        return self._key

    def sign(self, text: bytes) -> str:
        return self._key.sign(text).hex()

    def verify_key(self) -> Ed25519VerifyKey:
        return Ed25519VerifyKey(self._key.public_key())

    def __repr__(self) -> str:
        return "Ed25519SigningKey(<private>)"


class Ed25519VerifyKey:
    """One party's public key."""

    __slots__ = ("_key",)

    def __init__(self, key: ed25519.Ed25519PublicKey) -> None:
        self._key = key

    @property
    def public_key(self) -> ed25519.Ed25519PublicKey:
        return self._key

    def verify(self, text: bytes, signature: str) -> bool:
        try:
            raw = bytes.fromhex(signature)
        except ValueError:
            return False
        try:
            self._key.verify(raw, text)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class Credentials:
    """What one party holds towards one peer: the key it signs with (requests and answers it
    sends that peer) and the key that checks the peer's signatures."""

    own: SigningKey
    peer: VerifyKey

    @classmethod
    def shared(cls, secret: bytes) -> Credentials:
        """hmac mode: the participant's one secret, on both sides of the channel."""
        key = HmacKey(secret)
        return cls(key, key)

    def __repr__(self) -> str:
        return f"Credentials(own={self.own!r}, peer={type(self.peer).__name__})"


@dataclass(frozen=True, slots=True)
class Claim:
    """What a request's headers claim, read before its body: who signed, when, and how."""

    signer: str
    timestamp: str
    signature: str


def request_text(signer: str, timestamp: str, path: str, body_sha256: bytes) -> bytes:
    """The canonical text a request's signature covers."""
    return "\n".join((f"{VERSION} request", signer, timestamp, path, body_sha256.hex())).encode()


def answer_text(signer: str, timestamp: str, status: int, request_signature: str,
                body_sha256: bytes) -> bytes:
    """The canonical text an answer's signature covers: it names the request it answers."""
    return "\n".join((f"{VERSION} answer", signer, timestamp, str(status), request_signature,
                      body_sha256.hex())).encode()


def sign(signer_bic: str, key: SigningKey, path: str, body: bytes) -> dict[str, str]:
    """The headers of a request that sends `body` to `path` as `signer_bic` (with its
    Content-Type)."""
    timestamp = str(int(time.time()))
    text = request_text(signer_bic, timestamp, path, hashlib.sha256(body).digest())
    return {PARTICIPANT_HEADER: signer_bic, TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: key.sign(text), "Content-Type": "application/xml"}


def claim(headers: Mapping[str, str], known: Container[str], now_s: float | None = None
          ) -> Claim:
    """Check what the headers alone can tell: the three headers are there, the signer is one
    of `known`, the timestamp is at most MAX_CLOCK_SKEW_S off. Raises SignatureError."""
    bic = headers.get(PARTICIPANT_HEADER)
    timestamp = headers.get(TIMESTAMP_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    if not bic or not timestamp or not signature:
        raise SignatureError(
            f"missing {PARTICIPANT_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    if bic not in known:
        raise SignatureError(f"unknown participant {bic[:40]!r}")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > MAX_TIMESTAMP_DIGITS:
        raise SignatureError(f"{TIMESTAMP_HEADER} is not a unix time in seconds")
    skew_s = abs((time.time() if now_s is None else now_s) - int(timestamp))
    if skew_s > MAX_CLOCK_SKEW_S:
        raise SignatureError(f"timestamp is {skew_s:.0f} s off; at most {MAX_CLOCK_SKEW_S} s")
    if len(signature) > MAX_SIGNATURE_CHARS:
        raise SignatureError(f"{SIGNATURE_HEADER} is over {MAX_SIGNATURE_CHARS} characters")
    return Claim(bic, timestamp, signature)


def check(claimed: Claim, key: VerifyKey, path: str, body_sha256: bytes) -> None:
    """Raise SignatureError unless the claimed signature covers this path and body."""
    if not key.verify(request_text(claimed.signer, claimed.timestamp, path, body_sha256),
                      claimed.signature):
        raise SignatureError(f"signature does not match the body for participant "
                             f"{claimed.signer}")


def verify(headers: Mapping[str, str], path: str, body: bytes, keys: Mapping[str, VerifyKey],
           now_s: float | None = None) -> str:
    """Return the BIC that signed the request, or raise SignatureError saying why not."""
    claimed = claim(headers, keys, now_s)
    check(claimed, keys[claimed.signer], path, hashlib.sha256(body).digest())
    return claimed.signer


def sign_answer(signer_bic: str, key: SigningKey, status: int, request_signature: str,
                body: bytes) -> dict[str, str]:
    """The headers that sign an HTTP answer to the request signed `request_signature`."""
    timestamp = str(int(time.time()))
    text = answer_text(signer_bic, timestamp, status, request_signature,
                       hashlib.sha256(body).digest())
    return {PARTICIPANT_HEADER: signer_bic, TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: key.sign(text)}


def verify_answer(headers: Mapping[str, str], signer_bic: str, key: VerifyKey, status: int,
                  request_signature: str, body: bytes) -> None:
    """Raise SignatureError unless `signer_bic` signed this answer to this request.

    The answer's timestamp is covered but not bounded: naming the request's own signature
    already makes it fresh."""
    signer = headers.get(PARTICIPANT_HEADER)
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    signature = headers.get(SIGNATURE_HEADER)
    if signer is None or signature is None:
        raise SignatureError(f"the answer (HTTP {status}) is not signed")
    if signer != signer_bic:
        raise SignatureError(f"the answer is signed by {signer[:40]!r}, not {signer_bic}")
    text = answer_text(signer, timestamp, status, request_signature,
                       hashlib.sha256(body).digest())
    if len(signature) > MAX_SIGNATURE_CHARS or not key.verify(text, signature):
        raise SignatureError(f"the answer's signature does not match for {signer_bic}")
