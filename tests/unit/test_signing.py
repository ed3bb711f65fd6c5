"""protocol/signing.py against RFC 9421/9530 as the `http-message-signatures` package implements
them (the reference, used here and not on the hot path: it costs milliseconds a message), in
both directions and both algorithms; and the profile's refusals (issue #22, observation 5)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    algorithms,
)

from protocol import signing
from protocol.signing import Credentials, Ed25519SigningKey, HmacKey

BODY = b"<Envelope>an instant pacs.008</Envelope>"
PATH = "/v1/directory/changes?after_seq=0&limit=10"
SECRET = b"a-32-byte-secret-of-the-test...."
BANK = "BFTVVNVX"


@dataclass
class Request:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Response:
    status_code: int
    request: Request
    headers: dict[str, str] = field(default_factory=dict)


class Resolver(HTTPSignatureKeyResolver):
    def __init__(self, private: Any, public: Any) -> None:
        self.private, self.public = private, public

    def resolve_private_key(self, key_id: str) -> Any:
        return self.private

    def resolve_public_key(self, key_id: str) -> Any:
        return self.public


def hmac_pair() -> tuple[Credentials, Resolver, type]:
    return Credentials.shared(SECRET), Resolver(SECRET, SECRET), algorithms.HMAC_SHA256


def ed25519_pair() -> tuple[Credentials, Resolver, type]:
    key = Ed25519SigningKey.generate()
    return (Credentials(key, key.verify_key()),
            Resolver(key.private_key, key.private_key.public_key()), algorithms.ED25519)


MODES: dict[str, Callable[[], tuple[Credentials, Resolver, type]]] = {
    "hmac-sha256": hmac_pair, "ed25519": ed25519_pair}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_our_request_signature_verifies_with_the_reference(mode: str) -> None:
    credentials, resolver, algorithm = MODES[mode]()
    headers = signing.sign(BANK, credentials.own, PATH, BODY, method="GET")
    verifier = HTTPMessageVerifier(signature_algorithm=algorithm, key_resolver=resolver)
    [result] = verifier.verify(Request("GET", f"http://switch{PATH}", headers),
                               expect_tag=signing.REQUEST_TAG, body=BODY,
                               require_components=("@method", "@path", "@query",
                                                   "content-digest", "content-type"))
    assert result.parameters["keyid"] == BANK
    assert result.nonce


@pytest.mark.parametrize("mode", sorted(MODES))
def test_the_references_request_signature_verifies_with_ours(mode: str) -> None:
    credentials, resolver, algorithm = MODES[mode]()
    request = Request("POST", f"http://switch{PATH}", {"Content-Type": "application/xml"})
    HTTPMessageSigner(signature_algorithm=algorithm, key_resolver=resolver).sign(
        request, key_id=BANK, nonce=signing.new_nonce(), label=signing.LABEL,
        tag=signing.REQUEST_TAG, body=BODY,
        covered_component_ids=("@method", "@path", "@query", "content-digest", "content-type"))
    assert signing.verify("POST", PATH, request.headers, BODY, {BANK: credentials.peer}) == BANK
    with pytest.raises(signing.SignatureError, match="body does not match"):
        signing.verify("POST", PATH, request.headers, BODY + b" ", {BANK: credentials.peer})
    with pytest.raises(signing.SignatureError, match="does not match for"):
        signing.verify("POST", "/v1/messages", request.headers, BODY, {BANK: credentials.peer})


@pytest.mark.parametrize("mode", sorted(MODES))
def test_answers_are_bound_to_their_request_both_ways(mode: str) -> None:
    credentials, resolver, algorithm = MODES[mode]()
    request_headers = signing.sign(BANK, credentials.own, "/v1/messages", BODY)
    answer = b"<Envelope>the pacs.002</Envelope>"
    headers = {"Content-Type": "application/xml"} | signing.sign_answer(
        "SWLBVNVX", credentials.own, 200, signing.request_signature(request_headers), answer,
        "application/xml")
    request = Request("POST", "http://switch/v1/messages", request_headers)
    verifier = HTTPMessageVerifier(signature_algorithm=algorithm, key_resolver=resolver)
    verifier.verify(Response(200, request, headers), expect_tag=signing.ANSWER_TAG, body=answer)
    signing.verify_answer(headers, "SWLBVNVX", credentials.peer, 200, request_headers, answer)
    other_request = signing.sign(BANK, credentials.own, "/v1/messages", BODY)
    with pytest.raises(signing.SignatureError):  # the same answer, to another request
        signing.verify_answer(headers, "SWLBVNVX", credentials.peer, 200, other_request, answer)
    with pytest.raises(signing.SignatureError):  # another status
        signing.verify_answer(headers, "SWLBVNVX", credentials.peer, 202, request_headers, answer)
    reference = Response(200, request, {"Content-Type": "application/xml"})
    HTTPMessageSigner(signature_algorithm=algorithm, key_resolver=resolver).sign(
        reference, key_id="SWLBVNVX", label=signing.LABEL, tag=signing.ANSWER_TAG, body=answer,
        covered_component_ids=("@status", "content-digest", "content-type",
                               f'"signature";key="{signing.LABEL}";req'))
    signing.verify_answer(reference.headers, "SWLBVNVX", credentials.peer, 200,
                          request_headers, answer)


def test_a_request_cannot_be_reflected_as_an_answer() -> None:
    key = HmacKey(SECRET)
    request = signing.sign(BANK, key, "/v1/messages", BODY)
    with pytest.raises(signing.SignatureError, match="cover"):
        signing.verify_answer(request, BANK, key, 200, request, BODY)


def test_issue22_obs5_a_request_signed_in_the_future_is_refused() -> None:
    """Observation 5: a request signed 299 s ahead was taken, and again 306 and 590 s later.
    Now `created` may be FUTURE_SKEW_S ahead at most, and MAX_AGE_S behind."""
    key = HmacKey(SECRET)
    now = 1_800_000_000
    ahead = signing.sign(BANK, key, "/v1/messages", BODY, created_s=now + 299)
    with pytest.raises(signing.SignatureError, match="in the future"):
        signing.verify("POST", "/v1/messages", ahead, BODY, {BANK: key}, now_s=now)
    slightly = signing.sign(BANK, key, "/v1/messages", BODY, created_s=now + signing.FUTURE_SKEW_S)
    assert signing.verify("POST", "/v1/messages", slightly, BODY, {BANK: key}, now_s=now) == BANK
    old = signing.sign(BANK, key, "/v1/messages", BODY, created_s=now - signing.MAX_AGE_S - 1)
    with pytest.raises(signing.SignatureError, match="old"):
        signing.verify("POST", "/v1/messages", old, BODY, {BANK: key}, now_s=now)


@pytest.mark.parametrize(("header", "value", "says"), [
    ("Signature-Input", 'sig1=("@method" "@path");created=1;keyid="BFTVVNVX"', "cover"),
    ("Signature-Input", 'sig2=("@method" "@path" "@query" "content-digest" "content-type")'
     ';created=1;keyid="BFTVVNVX";nonce="abcdefabcdefabcdef";tag="switchlab-request"',
     "labelled"),
    ("Signature", "sig1=:bm90IGEgc2lnbmF0dXJl:", "does not match"),
    ("Signature", "sig1=not-bytes", "byte sequence"),
    ("Content-Digest", "sha-512=:AAAA:", "sha-256"),
    ("Signature-Input", "x" * 2_000, "at most"),
])
def test_malformed_signature_fields_are_refused_with_a_sentence(header: str, value: str,
                                                                says: str) -> None:
    key = HmacKey(SECRET)
    headers = signing.sign(BANK, key, "/v1/messages", BODY)
    headers[header] = value
    with pytest.raises(signing.SignatureError, match=says):
        signing.verify("POST", "/v1/messages", headers, BODY, {BANK: key})


def test_the_verifiers_key_decides_the_algorithm() -> None:
    ed = Ed25519SigningKey.generate()
    headers = signing.sign(BANK, ed, "/v1/messages", BODY)
    with pytest.raises(signing.SignatureError, match="alg must be 'hmac-sha256'"):
        signing.verify("POST", "/v1/messages", headers, BODY, {BANK: HmacKey(SECRET)})



_PARAMS = ('created=1796616331', 'keyid="BFTVVNVX"', 'alg="hmac-sha256"',
           'nonce="R-8bKEAWcdph3lrhaqj5wg"', 'tag="switchlab-request"')


@pytest.mark.parametrize("params", [
    _PARAMS, _PARAMS[::-1], (*_PARAMS[:3], _PARAMS[4]), (*_PARAMS, 'extra="x"'),
    ('created=-5', *_PARAMS[1:]), ('created="1796616331"', *_PARAMS[1:]),
    (*_PARAMS[:4], 'tag="switchlab-answer"'), (*_PARAMS[:3], 'nonce="a;b"', _PARAMS[4]),
])
@pytest.mark.parametrize("components", [signing.REQUEST_COMPONENTS, signing.ANSWER_COMPONENTS])
def test_issue28_one_match_reads_signature_input_as_the_general_reading(
        params: tuple[str, ...], components: tuple[str, ...]) -> None:
    """Issue #28: Signature-Input as our signers write it is read by one match; whatever it
    reads, the general reading (any order of parameters) reads the same."""
    field = f"{signing.LABEL}=({' '.join(components)});{';'.join(params)}"
    headers = signing._case_blind({"Signature-Input": field, "Signature": "sig1=:AAAA:"})
    tag = "switchlab-answer" if 'tag="switchlab-answer"' in params else "switchlab-request"
    parsed = signing._parse(headers, components, tag)
    assert (parsed.params_text, parsed.params) == signing._read_params(field, components)
