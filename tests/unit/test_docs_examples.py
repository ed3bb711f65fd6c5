"""The worked examples in docs/examples are what the codec and the signing code produce: the
messages decode and the signatures check."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pytest

from protocol import signing
from protocol.codec import decode
from tests.factories import SWITCH, TREASURY

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
spec = importlib.util.spec_from_file_location("generate", EXAMPLES / "generate.py")
assert spec is not None and spec.loader is not None
generate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(generate)


@pytest.mark.parametrize("name", sorted(generate.FILES.values()))
def test_example_is_current_and_decodes(name: str) -> None:
    on_disk = (EXAMPLES / name).read_bytes()
    assert on_disk == generate.examples()[name], "run python docs/examples/generate.py"
    kind = name.split("-")[1]  # e.g. "pacs008"
    assert decode(on_disk).header.msg_def_id.startswith(f"{kind[:4]}.{kind[4:]}")


@pytest.mark.parametrize("mode", sorted(generate.SIGNED))
def test_signed_example_is_current_and_its_signatures_check(mode: str) -> None:
    """The worked signatures are what protocol/signing.py makes and checks, for the bodies of
    the example files; with the other party's key they do not check."""
    on_disk = (EXAMPLES / generate.SIGNED[mode]).read_bytes()
    assert on_disk == generate.signed_example(mode), "run python docs/examples/generate.py"
    request, answer, request_body, answer_body = generate.exchange(mode)
    treasury, switch = generate.credentials(mode)
    at_s = float(generate.TIMESTAMP)
    assert signing.verify("POST", generate.PATH, request, request_body,
                          {TREASURY: switch.peer}, at_s) == TREASURY
    signing.verify_answer(answer, SWITCH, treasury.peer, 200, request, answer_body)
    with pytest.raises(signing.SignatureError):
        signing.verify_answer(answer, SWITCH, treasury.peer, 200, request, request_body)


@pytest.mark.parametrize("mode", sorted(generate.SIGNED))
def test_the_worked_signatures_check_with_an_independent_rfc_9421_implementation(
        mode: str) -> None:
    """What the docs tell a bank to build is RFC 9421 as another implementation reads it: the
    http-message-signatures package checks the example request and answer."""
    from http_message_signatures import HTTPMessageVerifier, HTTPSignatureKeyResolver, algorithms

    request, answer, request_body, answer_body = generate.exchange(mode)
    treasury, switch = generate.credentials(mode)

    class Keys(HTTPSignatureKeyResolver):
        def resolve_public_key(self, key_id: str) -> object:
            if mode == "hmac":
                return generate.EXAMPLE_SECRET
            return (switch.peer if key_id == TREASURY else treasury.peer).public_key  # type: ignore[attr-defined]

    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.HMAC_SHA256 if mode == "hmac"
                                   else algorithms.ED25519, key_resolver=Keys())
    sent = Request("POST", f"https://switch.example{generate.PATH}", request)
    [checked] = verifier.verify(sent, max_age=None, expect_tag=signing.REQUEST_TAG,
                                body=request_body)
    assert checked.parameters["keyid"] == TREASURY
    verifier.verify(Response(200, sent, answer), max_age=None, expect_tag=signing.ANSWER_TAG,
                    body=answer_body)


@dataclass
class Request:
    method: str
    url: str
    headers: dict[str, str]


@dataclass
class Response:
    status_code: int
    request: Request
    headers: dict[str, str]
