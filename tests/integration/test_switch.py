"""The switch against scripted participants: every transition and every refusal, over HTTP."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from banks.bank import short_answer
from protocol import codec, reasons, signing
from protocol.codec import new_id
from protocol.http import wrap
from protocol.messages import (
    CreditTransferMessage,
    MessageType,
    PaymentStatusReport,
    StatusRequest,
    StatusRequestItem,
    TxStatus,
)
from protocol.runtime import bind, serve
from protocol.settings import SettingsError
from protocol.signing import Credentials
from switch.__main__ import main as switch_main
from switch.config import parse_config
from switch.states import TransferState
from tests.harness import (
    BANK_A,
    BANK_B,
    DEADLINE_S,
    SWITCH_BIC,
    TREASURY,
    Answer,
    ScriptedParticipant,
    SwitchLab,
    credit_transfers,
    journal_state,
    only_status,
    pay,
    return_of,
    transfer,
    until,
)


async def test_instant_transfer_settles_and_creditor_is_confirmed(lab: SwitchLab) -> None:
    reply = await pay(lab, transfer("E2E-OK-1"))
    assert only_status(reply) == (TxStatus.SETTLED, None)
    assert reply.message.header.from_bic == SWITCH_BIC
    creditor = lab.participants[BANK_A]
    await until(lambda: "E2E-OK-1" in creditor.confirmations)
    assert [c.status for c in creditor.confirmations["E2E-OK-1"]] == [TxStatus.SETTLED]
    assert await journal_state(lab, "E2E-OK-1") == ("SETTLED", None)
    _, body = await lab.admin("GET", "/v1/admin/transfers/E2E-OK-1")
    assert [(h["from"], h["to"]) for h in body["history"]] == [
        (None, "PENDING"), ("PENDING", "SETTLED")
    ]


@pytest.mark.parametrize("reason", ["AC01", "AC04", "AC06", "BE01", "MD07"])
async def test_creditor_rejection_is_relayed_with_its_reason(lab: SwitchLab, reason: str) -> None:
    lab.participants[BANK_A].decide = lambda tx: Answer("RJCT", reason)
    reply = await pay(lab, transfer(f"E2E-{reason}"))
    assert only_status(reply) == (TxStatus.REJECTED, reason)
    assert await journal_state(lab, f"E2E-{reason}") == ("REJECTED", reason)
    _, participants = await lab.admin("GET", "/v1/admin/participants")
    treasury = next(p for p in participants if p["bic"] == TREASURY)
    assert treasury["net_vnd"] == 0 and treasury["reserved_vnd"] == 0


async def test_unknown_creditor_bic_is_rejected_rc01_without_forwarding(lab: SwitchLab) -> None:
    reply = await pay(lab, transfer("E2E-RC01", creditor="NOBKVNVX"))
    assert only_status(reply) == (TxStatus.REJECTED, reasons.WRONG_BIC)
    assert lab.participants[BANK_A].received == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"amount_vnd": 0, "amount_text": "0"}, reasons.INVALID_AMOUNT),
        ({"amount_vnd": 1, "amount_text": "1.5"}, reasons.INVALID_AMOUNT),
        ({"amount_vnd": -5, "amount_text": "-5"}, reasons.INVALID_AMOUNT),
        ({"amount_vnd": 12, "amount_text": "١٢"}, reasons.INVALID_AMOUNT),
        ({"currency": "USD"}, reasons.NOT_ALLOWED_CURRENCY),
    ],
)
async def test_bad_amounts_are_rejected_per_transaction(
    lab: SwitchLab, changes: dict, reason: str
) -> None:
    reply = await pay(lab, transfer("E2E-AMT", **changes))
    assert only_status(reply) == (TxStatus.REJECTED, reason)


async def test_group_counts_must_match_content(lab: SwitchLab) -> None:
    message = credit_transfers([transfer("E2E-G1"), transfer("E2E-G2")])
    body = codec.encode(wrap(TREASURY, SWITCH_BIC, message))
    tamperings = [(b"<NbOfTxs>2<", b"<NbOfTxs>3<"), (b"<CtrlSum>3000000<", b"<CtrlSum>3000001<")]
    for wrong, forged in tamperings:
        tampered = body.replace(wrong, forged)
        assert tampered != body
        reply = await lab.peer(TREASURY).post(tampered)
        assert reply.status == 200
        report = reply.message.document
        assert report.group_status is TxStatus.REJECTED
        assert report.group_reason_code == (
            reasons.INVALID_NUMBER_OF_TRANSACTIONS if b"NbOfTxs" in wrong
            else reasons.INVALID_CONTROL_SUM
        )
    status, _ = await lab.admin("GET", "/v1/admin/transfers/E2E-G1")
    assert status == 404


async def test_bad_or_missing_signature_is_401(lab: SwitchLab) -> None:
    wrong = Credentials.shared(b"wrong")
    reply = await lab.peer(TREASURY, wrong).send(credit_transfers([transfer("E2E-S1")]))
    assert reply.status == 401 and "signature" in reply.text
    assert lab.session is not None
    async with lab.session.post(f"{lab.url}/v1/messages", data=b"<x/>") as response:
        assert response.status == 401
        assert "missing" in await response.text()


async def test_no_participant_sends_as_another(lab: SwitchLab) -> None:
    # Signed by BANK_B but the header and the message say the treasury sends.
    body = codec.encode(wrap(TREASURY, SWITCH_BIC, credit_transfers([transfer("E2E-X1")])))
    bank_b = lab.peer(BANK_B)
    headers = signing.sign(BANK_B, lab.participants[BANK_B].credentials.own, "/v1/messages",
                           body)
    assert lab.session is not None
    async with lab.session.post(bank_b.url, data=body, headers=headers) as response:
        assert response.status == 403
    # Header honest, but the debtor agent inside is someone else.
    forged = credit_transfers([transfer("E2E-X2", debtor=TREASURY)], sender=BANK_B)
    reply = await bank_b.send(forged)
    assert reply.status == 403 and "no participant may send as another" in reply.text
    for e2e in ("E2E-X1", "E2E-X2"):
        status, _ = await lab.admin("GET", f"/v1/admin/transfers/{e2e}")
        assert status == 404


@pytest.mark.parametrize(
    "body",
    [
        b"this is not xml",
        b"<?xml version='1.0'?><Envelope xmlns='urn:switchlab:envelope:1'><AppHdr/>",
        b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 "
        b"'&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>]><lolz>&lol2;</lolz>",
        b"<?xml version='1.0'?><!DOCTYPE r [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><r>&x;</r>",
    ],
    ids=["not-xml", "truncated", "xml-bomb", "external-entity"],
)
async def test_malformed_input_gets_400_ff01(lab: SwitchLab, body: bytes) -> None:
    reply = await lab.peer(TREASURY).post(body)
    assert reply.status == 400
    assert reply.text.startswith("FF01")
    assert "root:" not in reply.text


async def test_reused_end_to_end_id_is_dupl_and_resend_repeats_outcome(lab: SwitchLab) -> None:
    body = codec.encode(wrap(TREASURY, SWITCH_BIC, credit_transfers([transfer("E2E-D1")],
                                                                    msg_id="MSG-D1")))
    first = await lab.peer(TREASURY).post(body)
    assert only_status(first) == (TxStatus.SETTLED, None)
    again_same_bytes = await lab.peer(TREASURY).post(body)
    assert only_status(again_same_bytes) == (TxStatus.SETTLED, None)
    other_message = await pay(lab, transfer("E2E-D1"), msg_id="MSG-D2")
    assert only_status(other_message) == (TxStatus.REJECTED, reasons.DUPLICATE)
    assert other_message.message.document.transactions[0].reason_originator_bic == SWITCH_BIC
    forwarded = [m for m in lab.participants[BANK_A].received
                 if type(m.document).__name__ == "CreditTransferMessage"]
    assert len(forwarded) == 1
    _, stats = await lab.admin("GET", "/v1/admin/stats")
    assert stats["by_state"]["SETTLED"] == {"count": 1, "amount_vnd": 1_500_000}


async def test_creditor_timeout_rejects_ab05_and_tells_creditor(lab: SwitchLab) -> None:
    creditor = lab.participants[BANK_A]
    creditor.delay_s = DEADLINE_S * 1.5
    reply = await pay(lab, transfer("E2E-T1"))
    assert only_status(reply) == (TxStatus.REJECTED, reasons.TIMEOUT_CREDITOR_AGENT)
    await until(lambda: "E2E-T1" in creditor.confirmations)
    assert [c.status for c in creditor.confirmations["E2E-T1"]] == [TxStatus.REJECTED]


async def test_late_async_accp_is_refused_and_never_settles(lab: SwitchLab) -> None:
    creditor = lab.participants[BANK_A]
    creditor.answer_async, creditor.delay_s = True, DEADLINE_S * 1.3
    reply = await pay(lab, transfer("E2E-L1"))
    assert only_status(reply) == (TxStatus.REJECTED, reasons.TIMEOUT_CREDITOR_AGENT)
    late = creditor.answer(credit_transfers([transfer("E2E-L1")]))
    refused = await lab.peer(BANK_A).send(late)
    assert refused.status == 409 and "late" in refused.text
    assert await journal_state(lab, "E2E-L1") == ("REJECTED", reasons.TIMEOUT_CREDITOR_AGENT)


async def test_async_answer_in_time_settles(lab: SwitchLab) -> None:
    creditor = lab.participants[BANK_A]
    creditor.answer_async, creditor.delay_s = True, 0.05
    reply = await pay(lab, transfer("E2E-A1"))
    assert only_status(reply) == (TxStatus.SETTLED, None)


async def test_answer_from_wrong_participant_is_refused(lab: SwitchLab) -> None:
    creditor = lab.participants[BANK_A]
    creditor.answer_async, creditor.delay_s = True, DEADLINE_S * 0.6
    task = asyncio.ensure_future(pay(lab, transfer("E2E-W1")))
    await until(lambda: "E2E-W1" in lab.switch.forwarding.awaiting)
    impostor = await lab.peer(BANK_B).send(creditor.answer(credit_transfers([transfer("E2E-W1")])))
    assert impostor.status == 409
    assert only_status(await task) == (TxStatus.SETTLED, None)


async def test_status_inquiry_answers_from_the_journal(lab: SwitchLab) -> None:
    await pay(lab, transfer("E2E-Q1"))
    request = StatusRequest(msg_id=new_id("Q"), created_at=datetime.now(UTC), items=[
        StatusRequestItem("E2E-Q1"), StatusRequestItem("E2E-NEVER"),
    ])
    reply = await lab.peer(TREASURY).send(request)
    assert reply.status == 200
    statuses = {i.original_end_to_end_id: (i.status, i.reason_code)
                for i in reply.message.document.transactions}
    assert statuses == {
        "E2E-Q1": (TxStatus.SETTLED, None),
        "E2E-NEVER": (TxStatus.REJECTED, reasons.PAYMENT_NOT_RECEIVED),
    }
    # Someone not party to the transfer learns nothing about it.
    stranger = await lab.peer(BANK_B).send(request)
    assert {i.reason_code for i in stranger.message.document.transactions} == {"AG09"}




async def test_issue27_samples_in_another_currency_are_refused_am03(lab: SwitchLab) -> None:
    """Invalid samples as a participant would send them (tests/data/currency): a pacs.008 in
    USD and a pacs.004 in EUR are refused AM03, and nothing moves."""
    data = Path(__file__).resolve().parents[1] / "data" / "currency"
    usd = await lab.peer(TREASURY).post((data / "pacs008_usd.xml").read_bytes())
    assert only_status(usd) == (TxStatus.REJECTED, reasons.NOT_ALLOWED_CURRENCY)
    assert only_status(await pay(lab, transfer("E2E-EUR-1"))) == (TxStatus.SETTLED, None)
    eur = await lab.peer(BANK_A).post((data / "pacs004_eur.xml").read_bytes())
    assert only_status(eur) == (TxStatus.REJECTED, reasons.NOT_ALLOWED_CURRENCY)
    assert await journal_state(lab, "E2E-EUR-1") == ("SETTLED", None)


async def test_issue22_an_orgnltxid_naming_another_transfer_names_none(lab: SwitchLab) -> None:
    """The gap the last session left: the creditor's answer, its pacs.004 and a pacs.028 were
    matched by end-to-end id when the OrgnlTxId they named matched nothing. Now an answer
    naming another TxId is refused (the transfer still awaits its creditor's real answer),
    and a return or an inquiry naming another TxId is AG09, as for an id never used."""
    creditor = lab.participants[BANK_A]
    creditor.answer_async, creditor.delay_s = True, DEADLINE_S * 0.6
    task = asyncio.ensure_future(pay(lab, transfer("E2E-T1")))
    await until(lambda: "E2E-T1" in lab.switch.forwarding.awaiting)
    wrong = creditor.answer(credit_transfers([transfer("E2E-T1", tx_id="TX-OTHER")]))
    refused = await lab.peer(BANK_A).send(wrong)
    assert refused.status == 409
    assert only_status(await task) == (TxStatus.SETTLED, None)  # its own answer, in time
    misnamed = return_of("E2E-T1", 1_500_000)
    misnamed.items[0].original_tx_id = "T"
    assert only_status(await lab.peer(BANK_A).send(misnamed)) == (
        TxStatus.REJECTED, reasons.PAYMENT_NOT_RECEIVED)
    asked = await lab.peer(BANK_A).send(StatusRequest(
        msg_id=new_id("Q"), created_at=datetime.now(UTC),
        items=[StatusRequestItem("E2E-T1", original_tx_id="T")]))
    assert asked.message is not None
    assert [i.reason_code for i in asked.message.document.transactions] == ["AG09"]
    assert await journal_state(lab, "E2E-T1") == ("SETTLED", None)  # nothing returned


async def test_return_settles_once_and_reaches_the_debtor(lab: SwitchLab) -> None:
    await pay(lab, transfer("E2E-R1", amount_vnd=2_000_000))
    too_much = await lab.peer(BANK_A).send(return_of("E2E-R1", 2_000_001))
    assert only_status(too_much) == (TxStatus.REJECTED, reasons.WRONG_AMOUNT)
    ok = await lab.peer(BANK_A).send(return_of("E2E-R1", 2_000_000))
    assert only_status(ok) == (TxStatus.SETTLED, None)
    twice = await lab.peer(BANK_A).send(return_of("E2E-R1", 2_000_000))
    assert only_status(twice) == (TxStatus.REJECTED, reasons.DUPLICATE)
    unknown = await lab.peer(BANK_A).send(return_of("E2E-NONE", 1))
    assert only_status(unknown) == (TxStatus.REJECTED, reasons.PAYMENT_NOT_RECEIVED)
    treasury = lab.participants[TREASURY]
    await until(lambda: treasury.returns())
    assert treasury.returns()[0].items[0].original_end_to_end_id == "E2E-R1"
    assert await journal_state(lab, "E2E-R1") == ("RETURNED", "MD07")
    _, participants = await lab.admin("GET", "/v1/admin/participants")
    assert {p["bic"]: p["net_vnd"] for p in participants} == {TREASURY: 0, BANK_A: 0, BANK_B: 0}


async def test_return_by_a_participant_that_was_not_the_creditor_is_refused(
    lab: SwitchLab,
) -> None:
    await pay(lab, transfer("E2E-R2"))
    message = return_of("E2E-R2", 1_500_000)
    message.instructing_agent_bic = BANK_B
    reply = await lab.peer(BANK_B).send(message)
    # issue 22: the same answer as for an id never received, so nobody learns of another's
    assert only_status(reply) == (TxStatus.REJECTED, reasons.PAYMENT_NOT_RECEIVED)


async def test_position_limit_rejects_am04_and_rejection_releases(lab: SwitchLab) -> None:
    status, _ = await lab.admin("PUT", f"/v1/admin/participants/{TREASURY}/limit",
                                json={"position_limit_vnd": 3_000_000})
    assert status == 200
    lab.participants[BANK_A].decide = lambda tx: (
        Answer("RJCT", "AC01") if tx.end_to_end_id == "E2E-P1" else Answer()
    )
    assert only_status(await pay(lab, transfer("E2E-P1", 2_000_000)))[1] == "AC01"
    assert only_status(await pay(lab, transfer("E2E-P2", 2_000_000)))[0] is TxStatus.SETTLED
    assert only_status(await pay(lab, transfer("E2E-P3", 1_000_001))) == (
        TxStatus.REJECTED, reasons.INSUFFICIENT_FUNDS)
    assert only_status(await pay(lab, transfer("E2E-P4", 1_000_000)))[0] is TxStatus.SETTLED


async def test_signed_off_creditor_is_refused_at_once(lab: SwitchLab) -> None:
    status, _ = await lab.admin("POST", f"/v1/admin/participants/{BANK_A}/sign-off")
    assert status == 200
    reply = await pay(lab, transfer("E2E-O1"))
    assert only_status(reply) == (TxStatus.REJECTED, reasons.OFFLINE_CREDITOR_AGENT)
    assert lab.participants[BANK_A].received == []
    await lab.admin("POST", f"/v1/admin/participants/{BANK_A}/sign-on")
    assert only_status(await pay(lab, transfer("E2E-O2")))[0] is TxStatus.SETTLED


async def _bank_b_down(lab: SwitchLab) -> int:
    """BANK_B's server goes away (connection refused); its port, to serve it again."""
    port = int(lab.config.participants[BANK_B].inbound_url.split(":")[2].split("/")[0])
    await lab.runners[2].cleanup()
    return port


async def _bank_b_up(lab: SwitchLab, port: int) -> None:
    lab.runners[2] = await serve(lab.participants[BANK_B].app(), bind(port=port))


async def _breaker_open(lab: SwitchLab, bic: str) -> bool:
    _, participants = await lab.admin("GET", "/v1/admin/participants")
    return next(p for p in participants if p["bic"] == bic)["breaker_open"]


async def test_circuit_breaker_opens_on_an_unreachable_creditor_and_recovers(
    tmp_path: Path,
) -> None:
    lab = await SwitchLab(tmp_path / "s.sqlite", breaker_failures=2,
                          breaker_cooldown_s=0.2).start()
    try:
        port = await _bank_b_down(lab)
        for n in range(2):
            reply = await pay(lab, transfer(f"E2E-B{n}", creditor=BANK_B))
            assert only_status(reply) == (TxStatus.REJECTED, reasons.OFFLINE_CREDITOR_AGENT)
        assert await _breaker_open(lab, BANK_B) is True
        refused_at_once = await pay(lab, transfer("E2E-B9", creditor=BANK_B))
        assert only_status(refused_at_once)[1] == reasons.OFFLINE_CREDITOR_AGENT
        assert lab.participants[BANK_B].received == []
        await _bank_b_up(lab, port)
        await asyncio.sleep(0.3)  # the cool-down: the next transfer is the probe
        assert only_status(await pay(lab, transfer("E2E-B10", creditor=BANK_B)))[0] is (
            TxStatus.SETTLED)
        assert await _breaker_open(lab, BANK_B) is False
        assert only_status(await pay(lab, transfer("E2E-B11", creditor=BANK_B)))[0] is (
            TxStatus.SETTLED)
    finally:
        await lab.stop()


async def test_issue_21_a_probe_refused_at_intake_does_not_cut_a_healthy_creditor_off(
    tmp_path: Path,
) -> None:
    """Issue #21: after the cool-down the first transfer to the creditor took the breaker's
    one probe; refused AM04 at intake, it never gave it back, and every later transfer to the
    healthy creditor got AB08 until an operator signed it on again."""
    lab = await SwitchLab(tmp_path / "s.sqlite", breaker_failures=2,
                          breaker_cooldown_s=0.2).start()
    try:
        port = await _bank_b_down(lab)
        for n in range(2):
            await pay(lab, transfer(f"E2E-L{n}", creditor=BANK_B))
        assert await _breaker_open(lab, BANK_B) is True
        await _bank_b_up(lab, port)
        await lab.admin("PUT", f"/v1/admin/participants/{TREASURY}/limit",
                        json={"position_limit_vnd": 3_000_000})
        await asyncio.sleep(0.3)
        too_much = await pay(lab, transfer("E2E-L2", 3_000_001, creditor=BANK_B))
        assert only_status(too_much) == (TxStatus.REJECTED, reasons.INSUFFICIENT_FUNDS)
        again = await pay(lab, transfer("E2E-L2", creditor=BANK_B))  # DUPL: refused too
        assert only_status(again)[1] == reasons.DUPLICATE
        assert only_status(await pay(lab, transfer("E2E-L3", creditor=BANK_B)))[0] is (
            TxStatus.SETTLED)
        assert await _breaker_open(lab, BANK_B) is False
    finally:
        await lab.stop()


async def test_bulk_is_split_per_creditor_and_reported_to_the_debtor(lab: SwitchLab) -> None:
    lab.participants[BANK_B].decide = lambda tx: Answer("RJCT", "AC04")
    transactions = [transfer(f"E2E-BULK-{n}", creditor=(BANK_A, BANK_B)[n % 2], amount_vnd=n + 1)
                    for n in range(10)]
    transactions.append(transfer("E2E-BULK-X", creditor="NOBKVNVX"))
    reply = await pay(lab, *transactions, msg_id="BULK-1")
    assert reply.status == 202
    assert reply.message.document.group_status is TxStatus.ACCEPTED_TECHNICAL
    treasury = lab.participants[TREASURY]
    await until(lambda: len(treasury.statuses()) >= 11)
    outcome = {s.original_end_to_end_id: (s.status, s.reason_code) for s in treasury.statuses()}
    assert len(outcome) == 11
    assert outcome["E2E-BULK-X"] == (TxStatus.REJECTED, reasons.WRONG_BIC)
    for n in range(10):
        expected = (TxStatus.SETTLED, None) if n % 2 == 0 else (TxStatus.REJECTED, "AC04")
        assert outcome[f"E2E-BULK-{n}"] == expected
    assert forwarded_sizes(lab, BANK_A) == [5]


def group_answer(status: TxStatus, reason_code: str | None = None
                 ) -> Callable[..., PaymentStatusReport]:
    """A creditor's answer to a whole forward: OrgnlGrpInfAndSts/GrpSts, no TxInfAndSts."""
    def answer(document: CreditTransferMessage, answers: object = None) -> PaymentStatusReport:
        return PaymentStatusReport(
            msg_id=new_id("CR"), created_at=datetime.now(UTC), original_msg_id=document.msg_id,
            original_msg_type=MessageType.CREDIT_TRANSFER, group_status=status,
            group_reason_code=reason_code)
    return answer


async def test_issue_28_a_creditor_answers_a_whole_forward_with_one_group_status(
        lab: SwitchLab) -> None:
    """ISO 20022: a pacs.002 with GrpSts and no items gives every transaction of the original
    message that status (the mock banks answer a wholly accepted bulk forward so); before,
    the switch read no answer in it and rejected the forward AB05 at the deadline."""
    lab.participants[BANK_A].answer = group_answer(TxStatus.ACCEPTED)  # type: ignore[method-assign]
    lab.participants[BANK_B].answer = group_answer(  # type: ignore[method-assign]
        TxStatus.REJECTED, "AC04")
    transactions = [transfer(f"E2E-GRP-{n}", creditor=(BANK_A, BANK_B)[n % 2], amount_vnd=n + 1)
                    for n in range(6)]
    assert (await pay(lab, *transactions, msg_id="GRP-1")).status == 202
    treasury = lab.participants[TREASURY]
    await until(lambda: len(treasury.statuses()) >= 6)
    outcome = {s.original_end_to_end_id: (s.status, s.reason_code) for s in treasury.statuses()}
    assert outcome == {f"E2E-GRP-{n}": (TxStatus.SETTLED, None) if n % 2 == 0
                       else (TxStatus.REJECTED, "AC04") for n in range(6)}
    assert await journal_state(lab, "E2E-GRP-1") == ("REJECTED", "AC04")


async def test_issue_28_a_part_group_status_names_only_the_refused_transfers(
        lab: SwitchLab) -> None:
    """GrpSts PART with items for the refused transfers only (the mock banks' answer to a file
    with some refusals, as the EPC rulebook's pacs.002): the transfers it does not name are
    accepted; one it names is rejected with its reason, and one whose item the switch refuses
    (PDNG is no answer) is not accepted either: PART never accepts a transfer it names."""
    creditor = lab.participants[BANK_A]
    creditor.decide = lambda tx: Answer("RJCT", "AC01") if tx.end_to_end_id.endswith(
        "1") else Answer()
    plain = ScriptedParticipant.answer

    def part(document: CreditTransferMessage, answers: object = None) -> PaymentStatusReport:
        report = short_answer(plain(creditor, document), document)
        assert report.group_status is TxStatus.PARTIALLY_ACCEPTED
        return replace(report, transactions=[replace(item, status=TxStatus.PENDING)
                                             if item.original_end_to_end_id == "E2E-PART-21"
                                             else item for item in report.transactions])
    creditor.answer = part  # type: ignore[method-assign]
    ids = ["E2E-PART-0", "E2E-PART-1", "E2E-PART-2", "E2E-PART-21"]
    assert (await pay(lab, *(transfer(e2e) for e2e in ids), msg_id="PART-1")).status == 202
    treasury = lab.participants[TREASURY]
    await until(lambda: len(treasury.statuses()) >= 4)
    outcome = {s.original_end_to_end_id: (s.status, s.reason_code) for s in treasury.statuses()}
    assert outcome == {"E2E-PART-0": (TxStatus.SETTLED, None),
                       "E2E-PART-1": (TxStatus.REJECTED, "AC01"),
                       "E2E-PART-2": (TxStatus.SETTLED, None),
                       "E2E-PART-21": (TxStatus.REJECTED, reasons.TIMEOUT_CREDITOR_AGENT)}


async def test_issue_28_a_group_status_for_another_creditors_forward_is_refused(
        lab: SwitchLab) -> None:
    creditor = lab.participants[BANK_A]
    creditor.answer_async, creditor.delay_s = True, DEADLINE_S * 0.6
    task = asyncio.ensure_future(pay(lab, transfer("E2E-GW1"), transfer("E2E-GW2")))
    await until(lambda: any(isinstance(m.document, CreditTransferMessage)
                            for m in creditor.received))
    forward = next(m.document for m in creditor.received
                   if isinstance(m.document, CreditTransferMessage))
    impostor = await lab.peer(BANK_B).send(group_answer(TxStatus.REJECTED, "AC04")(forward))
    assert impostor.status == 409
    await task
    await until(lambda: len(lab.participants[TREASURY].statuses()) >= 2)
    assert {(s.status, s.reason_code) for s in lab.participants[TREASURY].statuses()} == {
        (TxStatus.SETTLED, None)}


def forwarded_sizes(lab: SwitchLab, bic: str) -> list[int]:
    return [len(m.document.transactions) for m in lab.participants[bic].received
            if type(m.document).__name__ == "CreditTransferMessage"]


async def test_instant_transfers_arriving_together_share_one_forward(tmp_path: Path) -> None:
    lab = await SwitchLab(tmp_path / "switch.sqlite", forward_linger_ms=20).start()
    try:
        lab.participants[BANK_A].decide = lambda tx: (
            Answer("RJCT", "AC04") if tx.end_to_end_id == "E2E-TOGETHER-3" else Answer("ACCP"))
        replies = await asyncio.gather(*(pay(lab, transfer(f"E2E-TOGETHER-{n}"))
                                         for n in range(6)))
        assert [only_status(reply) for reply in replies] == [(TxStatus.SETTLED, None)] * 3 + [
            (TxStatus.REJECTED, "AC04")] + [(TxStatus.SETTLED, None)] * 2
        sizes = forwarded_sizes(lab, BANK_A)
        assert sum(sizes) == 6 and len(sizes) < 6, sizes
    finally:
        await lab.stop()


async def test_without_linger_each_instant_transfer_is_forwarded_alone(tmp_path: Path) -> None:
    lab = await SwitchLab(tmp_path / "switch.sqlite", forward_linger_ms=0).start()
    try:
        replies = await asyncio.gather(*(pay(lab, transfer(f"E2E-ALONE-{n}")) for n in range(4)))
        assert [only_status(reply) for reply in replies] == [(TxStatus.SETTLED, None)] * 4
        assert forwarded_sizes(lab, BANK_A) == [1, 1, 1, 1]
    finally:
        await lab.stop()


async def test_settlement_cycle_nets_to_zero_with_camt053_statements(lab: SwitchLab) -> None:
    await pay(lab, transfer("E2E-C1", 1_000_000, creditor=BANK_A))
    await pay(lab, transfer("E2E-C2", 3_000_000, creditor=BANK_B))
    status, summary = await lab.admin("POST", "/v1/admin/settlement/close")
    assert status == 200
    assert summary["net_vnd"] == {TREASURY: -4_000_000, BANK_A: 1_000_000, BANK_B: 3_000_000}
    assert summary["transfers"] == 2
    assert lab.session is not None
    async with lab.session.get(
        f"{lab.url}/v1/admin/settlement/cycles/{summary['cycle_id']}/statements/{BANK_B}",
        headers={"Authorization": "Bearer t0ken"},
    ) as response:
        assert response.status == 200
        statement = codec.decode(await response.read()).document
    assert statement.closing_balance_vnd == 3_000_000
    assert [(e.entry_ref, e.credit) for e in statement.entries] == [("E2E-C2", True)]
    # The next cycle starts from zero.
    await pay(lab, transfer("E2E-C3", 5, creditor=BANK_A))
    _, after = await lab.admin("GET", "/v1/admin/participants")
    assert {p["bic"]: p["net_vnd"] for p in after} == {TREASURY: -5, BANK_A: 5, BANK_B: 0}


async def test_admin_api_needs_the_token(lab: SwitchLab) -> None:
    assert lab.session is not None
    async with lab.session.get(f"{lab.url}/v1/admin/stats") as response:
        assert response.status == 401
        assert "Bearer" in await response.text()


# Bodies of PUT .../limit that are no limit: JSON that Python would have turned into one
# (1e400 is infinity, true is 1, 1.5 would be cut to 1) or a value past what the journal holds.
NO_LIMITS = [b'{"position_limit_vnd": 1e400}', b'{"position_limit_vnd": true}',
             b'{"position_limit_vnd": 1.5}', b'{"position_limit_vnd": "5"}',
             b'{"position_limit_vnd": -1}', b'{"position_limit_vnd": 10000000000000000000}',
             b'{"position_limit_vnd": 5, "other": 1}', b'[5]', b'{"position_limit_vnd"',
             b'\xff']
# Paths and queries with numbers past int64, or text no database should be asked about.
NO_PARAMETERS = [
    "/v1/admin/settlement/cycles/99999999999999999999999",
    "/v1/admin/settlement/cycles/0",
    f"/v1/admin/settlement/cycles/9223372036854775808/statements/{BANK_A}",
    f"/v1/admin/settlement/cycles/1/statements/{BANK_A}?page=99999999999999999999",
    f"/v1/admin/transfers?limit={'9' * 5_000}",
    "/v1/admin/transfers/%00",
    f"/v1/admin/transfers/{'E' * 36}",
    "/v1/admin/directory/changes?after_seq=99999999999999999999",
    "/v1/admin/directory/changes?participant=%00",
    "/v1/admin/directory/changes?citizen_id=%00",
    "/v1/admin/directory/entries/%00",
]


async def test_admin_parameters_past_their_range_are_400_never_500(lab: SwitchLab) -> None:
    """The tester's 1e400 limit, a true limit taken as 1, and cycle ids past 2^63 were 500s
    (OverflowError) or silently wrong; each is 400 with a sentence, and nothing changed."""
    for body in NO_LIMITS:
        status, text = await lab.admin("PUT", f"/v1/admin/participants/{TREASURY}/limit",
                                       data=body)
        assert status == 400 and ("position_limit_vnd" in text or "not JSON" in text), (
            body, text)
    _, participants = await lab.admin("GET", "/v1/admin/participants")
    assert {p["bic"]: p["position_limit_vnd"] for p in participants}[TREASURY] == 10**12
    for path in NO_PARAMETERS:
        status, text = await lab.admin("GET", path)
        assert status == 400 and text.startswith("400: "), (path, status, text)
    assert (await lab.admin("PUT", f"/v1/admin/participants/{TREASURY}/limit",
                            json={"position_limit_vnd": 10**18}))[0] == 200


async def test_restarted_switch_keeps_its_journal(lab: SwitchLab) -> None:
    await pay(lab, transfer("E2E-K1"))
    await lab.restart_switch()
    request = StatusRequest(msg_id=new_id("Q"), created_at=datetime.now(UTC),
                            items=[StatusRequestItem("E2E-K1")])
    reply = await lab.peer(TREASURY).send(request)
    assert [(i.status, i.reason_code) for i in reply.message.document.transactions] == [
        (TxStatus.SETTLED, None)]
    again = await pay(lab, transfer("E2E-K1"), msg_id="OTHER")
    assert only_status(again) == (TxStatus.REJECTED, reasons.DUPLICATE)
    _, participants = await lab.admin("GET", "/v1/admin/participants")
    assert {p["bic"]: p["net_vnd"] for p in participants}[BANK_A] == 1_500_000


async def test_switch_refuses_more_than_its_in_flight_limit(tmp_path: Path) -> None:
    lab = await SwitchLab(tmp_path / "s.sqlite", max_transfers_in_flight=5).start()
    try:
        reply = await pay(lab, *[transfer(f"E2E-LIM-{n}") for n in range(6)])
        assert reply.status == 503 and "the limit is 5" in reply.text
        status, _ = await lab.admin("GET", "/v1/admin/transfers/E2E-LIM-0")
        assert status == 404
        assert only_status(await pay(lab, transfer("E2E-LIM-OK")))[0] is TxStatus.SETTLED
    finally:
        await lab.stop()


@pytest.mark.parametrize(("settings", "named"), [
    ({"forward_linger_ms": 500}, "forward_linger_ms"),
    ({"forward_linger_ms": -1}, "forward_linger_ms"),
    ({"no_such_setting": 1}, "no_such_setting"),
])
def test_bad_switch_settings_are_refused_by_name(settings: dict, named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        parse_config({"switch": settings})


PARTICIPANT = ("participants:\n  - {bic: BFTVVNVX, kind: bank, secret: s,"
               " inbound_url: 'http://127.0.0.1:9/iso20022'}\n")


@pytest.mark.parametrize(("text", "says"), [
    ("", "switch: Field required"),
    ("# nothing configured yet\n", "participants: Field required"),
    ("switch: {admin_token: t}\n", "participants: Field required"),
    ("switch: {admin_token: t}\nparticipants: []\n", "at least one participant"),
    (f"switch: {{port: 0}}\n{PARTICIPANT}", "switch.admin_token: Field required"),
    (f"switch: {{port: 0, admin_token: ''}}\n{PARTICIPANT}", "switch.admin_token: String"),
], ids=["empty", "comment-only", "no-participants", "participants-empty", "no-admin-token",
        "blank-admin-token"])
def test_a_switch_needs_participants_and_its_own_admin_token(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, says: str) -> None:
    """An empty configuration started a switch admitting no one, whose admin API took the
    built-in token "admin-token": now exit 2 naming what is missing; no default secret."""
    path = tmp_path / "switch.yaml"
    path.write_text(text, encoding="utf-8")
    assert switch_main(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("switch: bad configuration: ") and says in err, err


def test_issue_26_a_malformed_switch_config_is_one_line_naming_file_line_and_column(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "switch.yaml"
    path.write_text(f"switch:\n  admin_token: t\n  bic: [SWLBVNVX\n{PARTICIPANT}",
                    encoding="utf-8")
    assert switch_main(["--config", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"switch: bad configuration: {path}:4:13: not valid YAML: expected ',' or ']', but got "
        "':' (while parsing a flow sequence)\n")


@pytest.mark.parametrize(("journal", "says"), [
    ("folder", "is a folder; name a file in it"),
    ("corrupt.sqlite", "cannot open it as a switch journal: file is not a database"),
    ("ledger.sqlite", "cannot open it as a switch journal: no such column"),
])
def test_a_journal_that_cannot_be_opened_is_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], journal: str, says: str) -> None:
    """A journal_path that is a folder, or a file that is no journal, was a sqlite3
    traceback at start (and an unclosed client session)."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "corrupt.sqlite").write_bytes(b"not a database, " * 100)
    ledger = sqlite3.connect(tmp_path / "ledger.sqlite")
    ledger.execute("CREATE TABLE transfers (id INTEGER)")  # another program's table
    ledger.close()
    path = tmp_path / "switch.yaml"
    path.write_text(f"switch: {{port: 0, admin_token: t, journal_path: '{tmp_path / journal}'}}"
                    f"\n{PARTICIPANT}", encoding="utf-8")
    assert switch_main(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("switch: cannot start: journal_path ") and says in err, err
    assert "Traceback" not in err and err.count("\n") == 1


async def test_an_instant_outcome_is_known_however_late_it_is_awaited(lab: SwitchLab) -> None:
    """The answer's future exists before anything is forwarded: awaiting it after the
    transfer is already final (any await in between) still gives the final status."""
    message = credit_transfers([transfer("E2E-LATE-AWAIT")])
    submission = await lab.switch.intake.submit(TREASURY, message, False, b"digest")
    (accepted,) = submission.journaled
    await until(lambda: accepted.state is TransferState.SETTLED)
    assert accepted.outcome is not None and accepted.outcome.done()
    await accepted.outcome
    assert accepted.status().status is TxStatus.SETTLED


async def test_memory_moves_only_once_the_final_state_is_durable(
    lab: SwitchLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the settlement is being written, everyone still sees PENDING: a pacs.028 answers
    PDNG, the money stays reserved, the creditor has no ACSC. Then all at once."""
    store = lab.switch.state.store
    writing, release = asyncio.Event(), asyncio.Event()
    commit = store._commit
    commits = 0

    async def held_final_write(batch: list) -> list:
        nonlocal commits
        commits += 1
        if commits == 2:  # the first is the PENDING row, the second the settlement
            writing.set()
            await asyncio.wait_for(release.wait(), 10)
        return await commit(batch)

    monkeypatch.setattr(store, "_commit", held_final_write)
    payment = asyncio.ensure_future(pay(lab, transfer("E2E-HELD")))
    await until(writing.is_set)
    inquiry = await lab.peer(TREASURY).send(StatusRequest(
        msg_id=new_id("Q"), created_at=datetime.now(UTC), items=[StatusRequestItem("E2E-HELD")]))
    assert [i.status for i in inquiry.message.document.transactions] == [TxStatus.PENDING]
    _, participants = await lab.admin("GET", "/v1/admin/participants")
    by_bic = {p["bic"]: p for p in participants}
    assert by_bic[TREASURY]["reserved_vnd"] == 1_500_000
    assert by_bic[BANK_A]["net_vnd"] == 0
    assert "E2E-HELD" not in lab.participants[BANK_A].confirmations
    assert not payment.done()
    release.set()
    assert only_status(await payment) == (TxStatus.SETTLED, None)
    _, participants = await lab.admin("GET", "/v1/admin/participants")
    by_bic = {p["bic"]: p for p in participants}
    assert (by_bic[TREASURY]["reserved_vnd"], by_bic[BANK_A]["net_vnd"]) == (0, 1_500_000)
