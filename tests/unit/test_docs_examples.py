"""The worked examples in docs/examples are what the codec and the signing code produce: the
messages decode and the signatures check."""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

from protocol import signing
from protocol.codec import decode
from protocol.hooks import Balance, ReturnOrder, TransferOrder
from protocol.iso_schemas import schema
from protocol.names import mask_name
from tests.factories import HOLDER_OF_SECOND, SWITCH, TREASURY

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


@pytest.mark.parametrize("name", sorted(generate.FILES.values()))
def test_example_validates_against_the_official_schemas(name: str) -> None:
    """Issue #23: the worked examples validate (head.001 and the document), against the
    schemas the package ships."""
    header, document = etree.fromstring((EXAMPLES / name).read_bytes())
    for element in (header, document):
        definition = etree.QName(element).namespace.rsplit(":", 1)[-1]
        checker = schema(definition)
        assert checker is not None and checker.validate(etree.ElementTree(element)), (
            name, definition, checker and checker.error_log.last_error)


def test_example_04_returns_the_transfer_of_example_01() -> None:
    """Issue #23: example 04 returned 1,170,001 VND of a transfer of 1,170,000."""
    transfer = decode((EXAMPLES / "01-pacs008-instant-credit-transfer.xml").read_bytes())
    returned = decode((EXAMPLES / "04-pacs004-return.xml").read_bytes())
    (tx,), (item,) = transfer.document.transactions, returned.document.items
    assert (item.original_end_to_end_id, item.original_tx_id, item.returned_amount_vnd) == (
        tx.end_to_end_id, tx.tx_id, tx.amount_vnd)
    assert item.original_msg_id == transfer.document.msg_id


def test_the_masked_names_of_the_examples_come_from_the_holders_names() -> None:
    """Issue #23: example 09's mask A*** could not come from "Ánh"."""
    report = decode((EXAMPLES / "09-acmt024-verification-report.xml").read_bytes())
    assert [r.masked_name for r in report.document.results if r.masked_name] == [
        mask_name(HOLDER_OF_SECOND)] == ["L* B** A**"]
    assert mask_name("Đặng Thị Ánh") == "D*** T** A**"


def test_the_hook_examples_in_the_docs_are_what_the_suite_reads() -> None:
    """Issue #23: the hooks' JSON types were only in code; docs/conformance.md's worked
    examples are read by the suite's own models."""
    text = (EXAMPLES.parent / "conformance.md").read_text(encoding="utf-8")
    blocks = [json.loads(block) for block in re.findall(r"```json\n(\{.*?\})\n```", text,
                                                        flags=re.S) if "end_to_end_id" in
              block or "balance_vnd" in block]
    balance, order, transfer = blocks
    assert Balance.model_validate_json(json.dumps(balance)).held == ["CNF1A2B3C4D000002"]
    assert ReturnOrder.model_validate_json(json.dumps(order)).amount_vnd == 615_000
    assert TransferOrder.model_validate_json(json.dumps(transfer)).creditor_agent_bic == (
        "CNTRVNV1")
    with pytest.raises(ValueError, match="balance_vnd"):
        Balance.model_validate_json(json.dumps(balance | {"balance_vnd": "1230000"}))
