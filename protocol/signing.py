"""Signatures on every request and every answer between the switch and a participant:
RFC 9421 HTTP Message Signatures over an RFC 9530 `Content-Digest`, in one fixed profile.

Two registered algorithms, one per scheme (the switch's `signing` setting; docs/participants.md
says why): `hmac-sha256`, each participant's secret shared with the switch alone (the switch
signs what it sends that participant with the same secret, so nobody holds anything that signs
as the switch towards another participant); `ed25519`, each party its own key pair
(non-repudiation). The verifier's key decides the algorithm; an `alg` that names another is
refused.

A request's signature (label `sig1`, tag `switchlab-request`) covers, in this order:

    "@method", "@path", "@query", "content-digest", "content-type"
    ;created=<unix s>;keyid="<signer BIC>";alg="<algorithm>";nonce="<request id>";tag=...

so it is checked from the head alone, before a byte of the body is read or any budget is
charged to the signer; the body is then read within the signer's limit and checked against the
`Content-Digest` (sha-256) the signature covered. An answer's signature (tag
`switchlab-answer`) covers `"@status"`, `"content-digest"`, `"content-type"` and the request's
own signature (`"signature";key="sig1";req`, RFC 9421 section 2.4), so it is the answer to
that request and no other. Requests and answers carry different tags and components, so one
cannot be reflected as the other.

`created` may be at most FUTURE_SKEW_S ahead of the verifier's clock and MAX_AGE_S behind it;
the `nonce` is the request's id, which a receiver remembers for that window (protocol/replay.py)
so that a captured request is refused when replayed.

Why our own code and not the `http-message-signatures` package (3.0.0, Apache-2.0), which
implements RFC 9421 whole: measured on this machine it costs 2-3 ms to sign and as much to
verify one request (a generic Structured Field parser and serializer in pure Python), against
~20 µs here; an instant transfer is signed or checked five times on the switch. This module
implements only the profile above, precisely, and refuses everything else with a sentence;
tests/unit/test_signing.py checks it against the package in both directions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from multidict import CIMultiDict, CIMultiDictProxy

SIGNATURE_INPUT_HEADER = "Signature-Input"
SIGNATURE_HEADER = "Signature"
CONTENT_DIGEST_HEADER = "Content-Digest"
LABEL = "sig1"
REQUEST_TAG = "switchlab-request"
ANSWER_TAG = "switchlab-answer"
REQUEST_COMPONENTS = ('"@method"', '"@path"', '"@query"', '"content-digest"', '"content-type"')
ANSWER_COMPONENTS = ('"@status"', '"content-digest"', '"content-type"',
                     f'"signature";key="{LABEL}";req')
# A request signed up to FUTURE_SKEW_S ahead of the verifier's clock is taken (NTP keeps
# servers within milliseconds; 5 s covers a badly kept one), and up to MAX_AGE_S after it was
# signed (a client signs just before it sends; the head then arrives within the head deadline).
FUTURE_SKEW_S = 5
MAX_AGE_S = 300
MAX_FIELD_CHARS = 1_024  # Signature-Input with a 64-character nonce is ~230 characters
NONCE_PATTERN = re.compile(r"[A-Za-z0-9_\-]{16,64}")
_STRING = r'"([\x20\x21\x23-\x5b\x5d-\x7e]*)"'  # a Structured Field String without escapes
_PARAM = re.compile(r";([a-z][a-z0-9_\-]*)=(?:" + _STRING + r"|(-?[0-9]{1,15}))")
_INPUT = re.compile(r"([a-z*][a-z0-9_\-.*]{0,63})=\(((?:[^()]*))\)((?:;[^;]+)*)")
_BYTES = re.compile(r"([a-z*][a-z0-9_\-.*]{0,63})=:([A-Za-z0-9+/=]{1,200}):")
_DIGEST_MEMBER = re.compile(r"([a-z0-9\-]+)=:([A-Za-z0-9+/=]{1,200}):")


def _as_signed(components: tuple[str, ...]) -> re.Pattern[str]:
    """Signature-Input exactly as `sign`/`sign_answer` write it: every header of this profile
    is read by one match; any other spelling (parameters reordered, say) takes `_parse`'s
    general reading, which accepts the same texts and more."""
    return re.compile(re.escape(f"{LABEL}=({' '.join(components)})")
                      + f"(;created=(-?[0-9]{{1,15}});keyid={_STRING};alg={_STRING}"
                      + f"(?:;nonce={_STRING})?;tag={_STRING})")
HMAC_SHA256 = "hmac-sha256"
_Headers = CIMultiDict[str] | CIMultiDictProxy[str]
ED25519 = "ed25519"


class SignatureError(Exception):
    """The message is not signed, or not by whom it claims; the text says which."""


class SigningKey(Protocol):
    """What signs as one party: `sign(base)` gives the raw signature bytes."""

    algorithm: str

    def sign(self, base: bytes) -> bytes: ...


class VerifyKey(Protocol):
    """What checks one party's signatures."""

    algorithm: str

    def verify(self, base: bytes, signature: bytes) -> bool: ...


class HmacKey:
    """A secret shared by one participant and the switch: it signs and it checks."""

    __slots__ = ("_secret",)
    algorithm = HMAC_SHA256

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("an HMAC secret cannot be empty")
        self._secret = secret

    def sign(self, base: bytes) -> bytes:
        return hmac.new(self._secret, base, hashlib.sha256).digest()

    def verify(self, base: bytes, signature: bytes) -> bool:
        return hmac.compare_digest(self.sign(base), signature)

    def __repr__(self) -> str:
        return "HmacKey(<secret>)"


class Ed25519SigningKey:
    """One party's private key (RFC 8032 Ed25519)."""

    __slots__ = ("_key",)
    algorithm = ED25519

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> Ed25519SigningKey:
        return cls(ed25519.Ed25519PrivateKey.generate())

    @property
    def private_key(self) -> ed25519.Ed25519PrivateKey:
        return self._key

    def sign(self, base: bytes) -> bytes:
        return self._key.sign(base)

    def verify_key(self) -> Ed25519VerifyKey:
        return Ed25519VerifyKey(self._key.public_key())

    def __repr__(self) -> str:
        return "Ed25519SigningKey(<private>)"


class Ed25519VerifyKey:
    """One party's public key."""

    __slots__ = ("_key",)
    algorithm = ED25519

    def __init__(self, key: ed25519.Ed25519PublicKey) -> None:
        self._key = key

    @property
    def public_key(self) -> ed25519.Ed25519PublicKey:
        return self._key

    def verify(self, base: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(signature, base)
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
        """hmac-sha256: the participant's one secret, on both sides of the channel."""
        key = HmacKey(secret)
        return cls(key, key)

    def __repr__(self) -> str:
        return f"Credentials(own={self.own!r}, peer={type(self.peer).__name__})"


@dataclass(frozen=True, slots=True)
class Claim:
    """A request whose signature checked from its head: who signed it, when (unix s), its id
    (the nonce), its Signature member as sent (an answer covers it) and the SHA-256 its body
    must have."""

    signer: str
    created_s: int
    nonce: str
    signature: str
    body_sha256: bytes


def content_digest(body: bytes) -> str:
    """The RFC 9530 Content-Digest field of `body`: `sha-256=:<base64>:`."""
    return f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:"


def new_nonce() -> str:
    """A request id nobody can guess or has used: 128 random bits, url-safe base64."""
    return secrets.token_urlsafe(16)


def _params(created_s: int, signer: str, algorithm: str, tag: str, nonce: str | None) -> str:
    nonce_param = "" if nonce is None else f';nonce="{nonce}"'
    return f';created={created_s};keyid="{signer}";alg="{algorithm}"{nonce_param};tag="{tag}"'


def _base(lines: tuple[tuple[str, str], ...], components: tuple[str, ...], params: str) -> bytes:
    """The RFC 9421 section 2.5 signature base: one line per covered component, then the
    signature parameters as they stand in Signature-Input."""
    body = "".join(f"{name}: {value}\n" for name, value in lines)
    return f'{body}"@signature-params": ({" ".join(components)}){params}'.encode()


def _split_target(path_qs: str) -> tuple[str, str]:
    path, _, query = path_qs.partition("?")
    return path or "/", f"?{query}"


def request_base(method: str, path_qs: str, digest: str, content_type: str,
                 params: str) -> bytes:
    """The signature base of a request (RFC 9421 section 2.5) in this profile."""
    path, query = _split_target(path_qs)
    return _base(((REQUEST_COMPONENTS[0], method), (REQUEST_COMPONENTS[1], path),
                  (REQUEST_COMPONENTS[2], query), (REQUEST_COMPONENTS[3], digest),
                  (REQUEST_COMPONENTS[4], content_type)), REQUEST_COMPONENTS, params)


def answer_base(status: int, digest: str, content_type: str, request_signature: str,
                params: str) -> bytes:
    """The signature base of an answer: its status, digest, type and the request's
    signature."""
    return _base(((ANSWER_COMPONENTS[0], str(status)), (ANSWER_COMPONENTS[1], digest),
                  (ANSWER_COMPONENTS[2], content_type), (ANSWER_COMPONENTS[3], request_signature)),
                 ANSWER_COMPONENTS, params)


def _fields(components: tuple[str, ...], params: str, base: bytes, key: SigningKey
            ) -> dict[str, str]:
    signature = base64.b64encode(key.sign(base)).decode()
    return {SIGNATURE_INPUT_HEADER: f"{LABEL}=({' '.join(components)}){params}",
            SIGNATURE_HEADER: f"{LABEL}=:{signature}:"}


def sign(signer_bic: str, key: SigningKey, path_qs: str, body: bytes, *, method: str = "POST",
         content_type: str = "application/xml", created_s: int | None = None,
         nonce: str | None = None) -> dict[str, str]:
    """The headers of a request sending `body` to `path_qs` (the path with its query) as
    `signer_bic`: Content-Type, Content-Digest, Signature-Input, Signature. A fresh nonce (the
    request's id) unless one is given."""
    digest = content_digest(body)
    params = _params(int(time.time()) if created_s is None else created_s, signer_bic,
                     key.algorithm, REQUEST_TAG, new_nonce() if nonce is None else nonce)
    base = request_base(method, path_qs, digest, content_type, params)
    return {"Content-Type": content_type, CONTENT_DIGEST_HEADER: digest} | _fields(
        REQUEST_COMPONENTS, params, base, key)


def _case_blind(headers: Mapping[str, str]) -> _Headers:
    """Headers as HTTP reads them: names in any case (a plain dict is copied)."""
    if isinstance(headers, CIMultiDict | CIMultiDictProxy):
        return headers
    return CIMultiDict(headers)


def _one(headers: _Headers, name: str) -> str:
    """A header's one value: missing, repeated or long is refused (a repeated field would be
    combined by one reader and not by another)."""
    values = headers.getall(name, [])
    if not values:
        raise SignatureError(f"missing {name} header (every request is signed: RFC 9421)")
    if len(values) > 1 or len(values[0]) > MAX_FIELD_CHARS:
        raise SignatureError(f"{name} must be one header of at most {MAX_FIELD_CHARS} characters")
    return values[0].strip()


@dataclass(slots=True)
class _Input:
    """A parsed signature: its parameters as sent (they enter the base verbatim) and read,
    the signature's bytes and its Signature member as an answer covers it."""

    params_text: str
    params: dict[str, str | int]
    signature: bytes
    signature_member: str


# One match reads the whole Signature-Input when it is as this profile writes it (~2 µs
# against ~8 for the general reading, which runs for every request and answer).
_AS_SIGNED = {components: _as_signed(components)
              for components in (REQUEST_COMPONENTS, ANSWER_COMPONENTS)}


def _read_params(field: str, components: tuple[str, ...]) -> tuple[str, dict[str, str | int]]:
    """The parameters of Signature-Input's one signature, as text and read: created/keyid/
    alg/tag (and nonce) once each, in any order, over our components in our order."""
    found = _INPUT.fullmatch(field)
    if found is None:
        raise SignatureError(f"{SIGNATURE_INPUT_HEADER} is not one signature's inner list with "
                             "parameters (RFC 9421 section 4.1)")
    label, listed, params_text = found.groups()
    if label != LABEL:
        raise SignatureError(f"the signature must be labelled {LABEL}")
    if tuple(listed.split(" ")) != components:
        raise SignatureError(f"the signature must cover ({' '.join(components)}), in that order")
    params: dict[str, str | int] = {}
    position = 0
    for param in _PARAM.finditer(params_text):
        if param.start() != position or param.group(1) in params:
            break
        params[param.group(1)] = (param.group(2) if param.group(3) is None
                                  else int(param.group(3)))
        position = param.end()
    if position != len(params_text):
        raise SignatureError(f"{SIGNATURE_INPUT_HEADER} has a parameter that is malformed, "
                             "repeated or not a plain string or integer")
    return params_text, params


def _parse(headers: _Headers, components: tuple[str, ...], tag: str) -> _Input:
    """Signature-Input and Signature of this profile: one signature, our components in our
    order, created/keyid/alg/tag (and nonce) once each, in any order."""
    field = _one(headers, SIGNATURE_INPUT_HEADER)
    as_signed = _AS_SIGNED[components].fullmatch(field)
    if as_signed is None:
        params_text, params = _read_params(field, components)
    else:
        params_text, created, keyid, alg, nonce, signed_tag = as_signed.groups()
        params = {"created": int(created), "keyid": keyid, "alg": alg, "tag": signed_tag}
        if nonce is not None:
            params["nonce"] = nonce
    signature = _BYTES.fullmatch(_one(headers, SIGNATURE_HEADER))
    if signature is None or signature.group(1) != LABEL:
        raise SignatureError(f"{SIGNATURE_HEADER} is not one byte sequence labelled {LABEL}")
    try:
        raw = base64.b64decode(signature.group(2), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{SIGNATURE_HEADER} is not base64") from None
    if params.get("tag") != tag:
        raise SignatureError(f"the signature's tag must be {tag!r}")
    return _Input(params_text, params, raw, f":{signature.group(2)}:")


def _check_params(parsed: _Input, key: VerifyKey, now_s: float | None, *,
                  max_age_s: float | None) -> int:
    params = parsed.params
    unknown = set(params) - {"created", "keyid", "alg", "nonce", "tag"}
    if unknown:
        raise SignatureError(f"unknown signature parameter {sorted(unknown)[0][:20]!r}")
    if params.get("alg", key.algorithm) != key.algorithm:
        raise SignatureError(f"alg must be {key.algorithm!r}, the signer's registered algorithm")
    created = params.get("created")
    if not isinstance(created, int):
        raise SignatureError("the signature has no created parameter (unix seconds)")
    now = time.time() if now_s is None else now_s
    if created > now + FUTURE_SKEW_S:
        raise SignatureError(f"created is {created - now:.0f} s in the future; at most "
                             f"{FUTURE_SKEW_S} s")
    if max_age_s is not None and now - created > max_age_s:
        raise SignatureError(f"the signature is {now - created:.0f} s old; at most "
                             f"{max_age_s:.0f} s")
    return created


def _digest_sha256(headers: _Headers) -> tuple[str, bytes]:
    """The Content-Digest field as sent and the SHA-256 it names (RFC 9530; other algorithms
    beside it are ignored, sha-256 must be there)."""
    field = _one(headers, CONTENT_DIGEST_HEADER)
    for member in field.split(","):
        found = _DIGEST_MEMBER.fullmatch(member.strip())
        if found is None:
            break
        if found.group(1) == "sha-256":
            try:
                value = base64.b64decode(found.group(2), validate=True)
            except (binascii.Error, ValueError):
                break
            if len(value) == hashlib.sha256().digest_size:
                return field, value
            break
    raise SignatureError(f"{CONTENT_DIGEST_HEADER} must name the body's sha-256 (RFC 9530)")


_CLAIMED_KEYID = re.compile(r';\s*keyid="([^"]{0,64})"')


def claimed_keyid(headers: Mapping[str, str]) -> str | None:
    """The keyid a request's Signature-Input names, as sent and unchecked (for logs and
    metrics about a request that did not authenticate); None when it names none."""
    found = _CLAIMED_KEYID.search(headers.get(SIGNATURE_INPUT_HEADER, "")[:MAX_FIELD_CHARS])
    return None if found is None else found.group(1)


def claim(method: str, path_qs: str, headers: Mapping[str, str], keys: Mapping[str, VerifyKey],
          now_s: float | None = None) -> Claim:
    """Check a request's signature from its head alone: the signer (`keyid`) is one of
    `keys`, `created` is within the window, the signature covers this method, path, query,
    Content-Digest and Content-Type. Raises SignatureError saying what is wrong. The body must
    then be checked against `Claim.body_sha256` (check_body)."""
    headers = _case_blind(headers)
    parsed = _parse(headers, REQUEST_COMPONENTS, REQUEST_TAG)
    signer = parsed.params.get("keyid")
    if not isinstance(signer, str) or signer not in keys:
        raise SignatureError(f"unknown participant {str(signer)[:40]!r} (keyid)")
    key = keys[signer]
    created = _check_params(parsed, key, now_s, max_age_s=MAX_AGE_S)
    nonce = parsed.params.get("nonce")
    if not isinstance(nonce, str) or NONCE_PATTERN.fullmatch(nonce) is None:
        raise SignatureError("the signature needs a nonce, the request's id: 16 to 64 "
                             "characters of A-Z a-z 0-9 _ -")
    digest, body_sha256 = _digest_sha256(headers)
    content_type = headers.get("Content-Type", "").strip()
    base = request_base(method, path_qs, digest, content_type, parsed.params_text)
    if not key.verify(base, parsed.signature):
        raise SignatureError(f"the signature does not match for participant {signer}")
    return Claim(signer, created, nonce, parsed.signature_member, body_sha256)


def check_body(claimed: Claim, body: bytes) -> None:
    """Raise SignatureError unless `body` is what the signed Content-Digest names."""
    if not hmac.compare_digest(hashlib.sha256(body).digest(), claimed.body_sha256):
        raise SignatureError(f"the body does not match the signed {CONTENT_DIGEST_HEADER}")


def verify(method: str, path_qs: str, headers: Mapping[str, str], body: bytes,
           keys: Mapping[str, VerifyKey], now_s: float | None = None) -> str:
    """Return the BIC that signed the request and its body, or raise SignatureError."""
    claimed = claim(method, path_qs, headers, keys, now_s)
    check_body(claimed, body)
    return claimed.signer


def request_signature(headers: Mapping[str, str]) -> str:
    """The `sig1` member of a request's Signature header as an answer covers it."""
    found = _BYTES.fullmatch(headers.get(SIGNATURE_HEADER, "").strip())
    return f":{found.group(2)}:" if found else ""


def spoiled(signature_field: str) -> str:
    """A Signature field with one bit of its signature flipped (for tests of refusals)."""
    label, _, value = signature_field.partition("=:")
    raw = bytearray(base64.b64decode(value.rstrip(":")))
    raw[0] ^= 1
    return f"{label}=:{base64.b64encode(bytes(raw)).decode()}:"


def sign_answer(signer_bic: str, key: SigningKey, status: int, request_signature_member: str,
                body: bytes, content_type: str, created_s: int | None = None
                ) -> dict[str, str]:
    """The headers that sign an HTTP answer to the request whose Signature member is
    `request_signature_member` (Claim.signature)."""
    digest = content_digest(body)
    params = _params(int(time.time()) if created_s is None else created_s, signer_bic,
                     key.algorithm, ANSWER_TAG, None)
    base = answer_base(status, digest, content_type, request_signature_member, params)
    return {CONTENT_DIGEST_HEADER: digest} | _fields(ANSWER_COMPONENTS, params, base, key)


def verify_answer(headers: Mapping[str, str], signer_bic: str, key: VerifyKey, status: int,
                  request_headers: Mapping[str, str], body: bytes) -> None:
    """Raise SignatureError unless `signer_bic` signed this answer, with this body, to the
    request sent with `request_headers`.

    The answer's `created` is covered and may not be in the future, but has no age limit:
    covering the request's own signature already makes it fresh."""
    headers, request_headers = _case_blind(headers), _case_blind(request_headers)
    if SIGNATURE_HEADER not in headers:
        raise SignatureError(f"the answer (HTTP {status}) is not signed")
    parsed = _parse(headers, ANSWER_COMPONENTS, ANSWER_TAG)
    if parsed.params.get("keyid") != signer_bic:
        raise SignatureError(f"the answer is signed by {str(parsed.params.get('keyid'))[:40]!r}"
                             f", not {signer_bic}")
    _check_params(parsed, key, None, max_age_s=None)
    digest, body_sha256 = _digest_sha256(headers)
    base = answer_base(status, digest, headers.get("Content-Type", "").strip(),
                       request_signature(request_headers), parsed.params_text)
    if not key.verify(base, parsed.signature):
        raise SignatureError(f"the answer's signature does not match for {signer_bic}")
    if not hmac.compare_digest(hashlib.sha256(body).digest(), body_sha256):
        raise SignatureError(f"the answer's body does not match its {CONTENT_DIGEST_HEADER}")
