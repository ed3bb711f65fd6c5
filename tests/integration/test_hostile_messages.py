"""Correctly signed messages that are wrong: each is refused with the right code, nothing of
it is taken, and the switch goes on serving everyone else. One test per kind of fault seen
when switchlab was tried as an attacker and as a careless bank (issue #12's observations)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from banks.payment_table import Payment
from banks.payout import PayoutStatus
from banks.treasury import Treasury, TreasuryConfig
from protocol import codec, reasons
from protocol.codec import new_id
from protocol.http import wrap
from protocol.messages import StatusRequest, StatusRequestItem, TxStatus
from tests.harness import (
    BANK_A,
    BANK_B,
    SWITCH_BIC,
    TREASURY,
    Answer,
    SwitchLab,
    credit_transfers,
    journal_state,
    only_status,
    pay,
    return_of,
    transfer,
    until,
)


async def still_serving(lab: SwitchLab, e2e: str) -> None:
    """Another participant's ordinary transfer settles: one message stopped no one."""
    assert only_status(await pay(lab, transfer(e2e, creditor=BANK_B))) == (
        TxStatus.SETTLED, None)
    status, health = await lab.admin("GET", "/v1/health")
    assert status == 200, health


async def reserved_vnd(lab: SwitchLab, bic: str = TREASURY) -> int:
    _, participants = await lab.admin("GET", "/v1/admin/participants")
    return next(p["reserved_vnd"] for p in participants if p["bic"] == bic)


def body_of(*transactions: object, msg_id: str | None = None) -> bytes:
    return codec.encode(wrap(TREASURY, SWITCH_BIC, credit_transfers(
        list(transactions), msg_id=msg_id)))  # type: ignore[arg-type]


@pytest.mark.parametrize("amount_text", [
    "10000000000000000000", "-1E+19", "1E+19", "1E+1000000", "0.5E+3", "9" * 5_000])
async def test_amounts_out_of_range_are_am12_and_the_journal_goes_on(
        lab: SwitchLab, amount_text: str) -> None:
    """Observations 1 and 3: 10^19 stopped the journal; 1E+1000000 blocked the loop."""
    body = re.sub(rb"<CtrlSum>[^<]*</CtrlSum>", b"", body_of(transfer("E2E-BIG"))).replace(
        b">1500000</IntrBkSttlmAmt>", f">{amount_text}</IntrBkSttlmAmt>".encode())
    reply = await lab.peer(TREASURY).post(body)
    assert only_status(reply) == (TxStatus.REJECTED, reasons.INVALID_AMOUNT)
    assert await reserved_vnd(lab) == 0
    await still_serving(lab, "E2E-AFTER-BIG")


async def test_rejected_18_digit_amounts_do_not_overflow_the_stats_or_the_cycle(
        lab: SwitchLab) -> None:
    """Twelve AM02 rejections of 999,999,999,999,999,999 VND each are journaled; their sum is
    past 2^63, and SQLite's sum() made GET /v1/admin/stats answer 500 for good. Every sum over
    amounts is exact now, on either journal."""
    huge = 999_999_999_999_999_999
    for n in range(12):
        body = re.sub(rb"<CtrlSum>[^<]*</CtrlSum>", b"", body_of(transfer(f"E2E-HUGE-{n}"))
                      ).replace(b">1500000</IntrBkSttlmAmt>", f">{huge}</IntrBkSttlmAmt>".encode())
        reply = await lab.peer(TREASURY).post(body)
        assert only_status(reply) == (TxStatus.REJECTED, reasons.NOT_ALLOWED_AMOUNT)
    await pay(lab, transfer("E2E-HUGE-OK"))
    status, stats = await lab.admin("GET", "/v1/admin/stats")
    assert status == 200, stats
    assert stats["by_state"]["REJECTED"] == {"count": 12, "amount_vnd": 12 * huge,
                                             "count_AM02": 12}
    assert stats["by_state"]["SETTLED"] == {"count": 1, "amount_vnd": 1_500_000}
    status, summary = await lab.admin("POST", "/v1/admin/settlement/close")
    assert status == 200 and summary["transfers_vnd"] == 1_500_000
    status, text = await lab.admin("GET", f"/v1/admin/settlement/cycles/{summary['cycle_id']}",
                                   params={"format": "text"})
    assert status == 200 and "1,500,000 VND" in text


async def test_a_huge_control_sum_or_count_is_a_clean_refusal(lab: SwitchLab) -> None:
    """Observations 3 and 4: CtrlSum 1E+1000000 and NbOfTxs of 5,000 digits."""
    body = body_of(transfer("E2E-CS"))
    huge_sum = re.sub(rb"<CtrlSum>[^<]*</CtrlSum>", b"<CtrlSum>1E+1000000</CtrlSum>", body)
    reply = await lab.peer(TREASURY).post(huge_sum)
    assert reply.message.document.group_reason_code == reasons.INVALID_CONTROL_SUM
    huge_count = body.replace(b"<NbOfTxs>1</NbOfTxs>", b"<NbOfTxs>" + b"1" * 5_000 +
                              b"</NbOfTxs>")
    reply = await lab.peer(TREASURY).post(huge_count)
    assert reply.status == 400 and reply.text.startswith("FF01") and "NbOfTxs" in reply.text
    assert (await lab.admin("GET", "/v1/admin/transfers/E2E-CS"))[0] == 404
    await still_serving(lab, "E2E-AFTER-COUNT")


async def test_return_ids_are_unique_per_sender_not_scheme_wide(lab: SwitchLab) -> None:
    """Observation 2: two items with one RtrId, a RtrId used again, two banks with one RtrId
    stopped the journal with positions reversed in memory only."""
    await pay(lab, transfer("E2E-RA1"), transfer("E2E-RA2"), transfer("E2E-RB1", creditor=BANK_B))
    await until(lambda: len(lab.switch.state.book.in_flight) == 0)
    twice = return_of("E2E-RA1", 1_500_000, return_id="RTR-1")
    twice.items.append(replace(twice.items[0], original_end_to_end_id="E2E-RA2"))
    reply = await lab.peer(BANK_A).send(twice)
    assert [(i.status, i.reason_code) for i in reply.message.document.transactions] == [
        (TxStatus.SETTLED, None), (TxStatus.REJECTED, reasons.DUPLICATE_INSTRUCTION_ID)]
    again = await lab.peer(BANK_A).send(return_of("E2E-RA2", 1_500_000, return_id="RTR-1"))
    assert only_status(again) == (TxStatus.REJECTED, reasons.DUPLICATE_INSTRUCTION_ID)
    resent = await lab.peer(BANK_A).send(return_of("E2E-RA1", 1_500_000, return_id="RTR-1"))
    assert only_status(resent) == (TxStatus.SETTLED, None)  # the same return, its answer again
    other_bank = await lab.peer(BANK_B).send(return_of("E2E-RB1", 1_500_000, creditor=BANK_B,
                                                       return_id="RTR-1"))
    assert only_status(other_bank) == (TxStatus.SETTLED, None)
    assert await journal_state(lab, "E2E-RA1") == ("RETURNED", "MD07")
    assert await journal_state(lab, "E2E-RA2") == ("SETTLED", None)
    _, participants = await lab.admin("GET", "/v1/admin/participants")
    assert {p["bic"]: p["net_vnd"] for p in participants} == {
        TREASURY: -1_500_000, BANK_A: 1_500_000, BANK_B: 0}
    await lab.restart_switch()  # memory rebuilt from the journal agrees
    _, participants = await lab.admin("GET", "/v1/admin/participants")
    assert {p["bic"]: p["net_vnd"] for p in participants} == {
        TREASURY: -1_500_000, BANK_A: 1_500_000, BANK_B: 0}


async def test_a_return_in_another_currency_is_am03(lab: SwitchLab) -> None:
    """Observation 11: a pacs.004 with Ccy="USD" settled as VND."""
    await pay(lab, transfer("E2E-USD"))
    body = codec.encode(wrap(BANK_A, SWITCH_BIC, return_of("E2E-USD", 1_500_000))).replace(
        b'Ccy="VND"', b'Ccy="USD"')
    reply = await lab.peer(BANK_A).post(body)
    assert only_status(reply) == (TxStatus.REJECTED, reasons.NOT_ALLOWED_CURRENCY)
    assert await journal_state(lab, "E2E-USD") == ("SETTLED", None)


async def test_an_unreadable_answer_from_a_creditor_rejects_and_releases(
        lab: SwitchLab) -> None:
    """Observation 5: HTTP 200 with malformed XML left the transfer PENDING, money reserved."""
    lab.participants[BANK_A].raw_answer = b"<Envelope><not-closed>"
    reply = await pay(lab, transfer("E2E-GARBLED"))
    assert only_status(reply) == (TxStatus.REJECTED, reasons.OFFLINE_CREDITOR_AGENT)
    assert await reserved_vnd(lab) == 0
    await until(lambda: "E2E-GARBLED" in lab.participants[BANK_A].confirmations)
    assert [c.status for c in lab.participants[BANK_A].confirmations["E2E-GARBLED"]] == [
        TxStatus.REJECTED]


async def test_a_msg_id_is_unique_per_sender(lab: SwitchLab) -> None:
    """Observation 8: the same MsgId with other content was answered with the old outcome or
    settled as new; only a byte-for-byte resend gets the known outcome."""
    body = body_of(transfer("E2E-M1"), msg_id="MSG-ONCE")
    assert only_status(await lab.peer(TREASURY).post(body)) == (TxStatus.SETTLED, None)
    changed_amount = body_of(transfer("E2E-M1", amount_vnd=9_000_000), msg_id="MSG-ONCE")
    new_id_same_msg = body_of(transfer("E2E-M2"), msg_id="MSG-ONCE")
    for other in (changed_amount, new_id_same_msg):
        assert only_status(await lab.peer(TREASURY).post(other)) == (
            TxStatus.REJECTED, reasons.DUPLICATE_MESSAGE_ID)
    bulk = body_of(transfer("E2E-M3"), transfer("E2E-M4"), msg_id="MSG-ONCE")
    reply = await lab.peer(TREASURY).post(bulk)
    assert (reply.status, reply.message.document.group_reason_code) == (
        200, reasons.DUPLICATE_MESSAGE_ID)
    assert only_status(await lab.peer(TREASURY).post(body)) == (TxStatus.SETTLED, None)
    for e2e in ("E2E-M2", "E2E-M3", "E2E-M4"):
        assert (await lab.admin("GET", f"/v1/admin/transfers/{e2e}"))[0] == 404
    _, stats = await lab.admin("GET", "/v1/admin/stats")
    assert stats["by_state"]["SETTLED"] == {"count": 1, "amount_vnd": 1_500_000}
    # Another participant may use the same MsgId: ids are unique per sender.
    bank_body = codec.encode(wrap(BANK_A, SWITCH_BIC, credit_transfers(
        [transfer("E2E-M5", debtor=BANK_A, creditor=BANK_B)], sender=BANK_A,
        msg_id="MSG-ONCE")))
    assert only_status(await lab.peer(BANK_A).post(bank_body)) == (TxStatus.SETTLED, None)


async def test_one_end_to_end_id_twice_in_a_file_refuses_the_file(lab: SwitchLab) -> None:
    """Observation 9: the second line was never journaled, forwarded or rejected."""
    reply = await pay(lab, transfer("E2E-TWICE"), transfer("E2E-TWICE", amount_vnd=900_000),
                      transfer("E2E-ONCE"))
    assert reply.message.document.group_status is TxStatus.REJECTED
    assert reply.message.document.group_reason_code == reasons.DUPLICATE_END_TO_END_ID
    for e2e in ("E2E-TWICE", "E2E-ONCE"):
        assert (await lab.admin("GET", f"/v1/admin/transfers/{e2e}"))[0] == 404
    assert lab.participants[BANK_A].received == []


@pytest.mark.parametrize("element", [b"EndToEndId", b"TxId", b"MsgId"])
async def test_ids_over_35_characters_are_ff01(lab: SwitchLab, element: bytes) -> None:
    """Observation 10: 40-character ids were forwarded, schema-invalid, to both sides."""
    body = body_of(transfer("E2E-LONG"), msg_id="MSG-LONG")
    long = re.sub(b"<" + element + b">[^<]*</", b"<" + element + b">" + b"X" * 40 + b"</", body,
                  count=1)
    reply = await lab.peer(TREASURY).post(long)
    assert reply.status == 400 and reply.text.startswith("FF01")
    assert element.decode() in reply.text and "35" in reply.text
    assert lab.participants[BANK_A].received == []


async def test_the_instant_cap_is_a_scheme_setting(tmp_path: Path) -> None:
    """Observation 12: instant transfers above 500,000,000 VND (Vietnam's cap) settled."""
    lab = await SwitchLab(tmp_path / "switch.sqlite").start()
    try:
        assert only_status(await pay(lab, transfer("E2E-CAP", amount_vnd=500_000_000))) == (
            TxStatus.SETTLED, None)
        for e2e, amount in (("E2E-CAP+1", 500_000_001), ("E2E-2BN", 2_000_000_000)):
            assert only_status(await pay(lab, transfer(e2e, amount_vnd=amount))) == (
                TxStatus.REJECTED, reasons.NOT_ALLOWED_AMOUNT)
        bulk = await pay(lab, transfer("E2E-BULK-BIG", amount_vnd=2_000_000_000),
                         transfer("E2E-BULK-SMALL"))
        assert bulk.status == 202  # the treasury's bulk payouts have no cap by default
        await until(lambda: not lab.switch.state.book.in_flight)
        assert await journal_state(lab, "E2E-BULK-BIG") == ("SETTLED", None)
    finally:
        await lab.stop()
    capped = await SwitchLab(tmp_path / "capped.sqlite", max_instant_amount_vnd=1_000,
                             max_bulk_amount_vnd=2_000).start()
    try:
        assert only_status(await pay(capped, transfer("E2E-C1", amount_vnd=1_001)))[1] == (
            reasons.NOT_ALLOWED_AMOUNT)
        await pay(capped, transfer("E2E-C2", amount_vnd=2_001), transfer("E2E-C3",
                                                                         amount_vnd=2_000))
        await until(lambda: not capped.switch.state.book.in_flight)
        assert await journal_state(capped, "E2E-C2") == ("REJECTED", reasons.NOT_ALLOWED_AMOUNT)
        assert await journal_state(capped, "E2E-C3") == ("SETTLED", None)
    finally:
        await capped.stop()


@pytest.mark.parametrize("reason", [reasons.DUPLICATE, reasons.PAYMENT_NOT_RECEIVED])
async def test_a_creditors_rejection_is_final_whatever_its_code(lab: SwitchLab,
                                                                reason: str) -> None:
    """Observation 14: a creditor's RJCT DUPL or AG09 was read by the treasury as the switch
    refusing a resend, and the transfer stayed unresolved for ever."""
    lab.participants[BANK_A].decide = lambda tx: Answer("RJCT", reason)
    treasury = Treasury(TreasuryConfig(
        bic=TREASURY, **lab.keys.handed[TREASURY], switch_url=lab.url, switch_bic=SWITCH_BIC,
        mode="instant", final_timeout_s=5, quiet_period_s=0.2))
    payment = Payment(citizen_id="001190012345", full_name="Nguyễn Thị Hồng Nhung",
                      amount_vnd=1_500_000, creditor_bic=BANK_A, account_id="0011004455667",
                      programme="tro_cap_xa_hoi", end_to_end_id="E2E-CRED")
    result = await treasury.run([payment])
    (outcome,) = result.outcomes
    assert (outcome.status, outcome.reason_code) == (PayoutStatus.REJECTED, reason)
    assert result.resends == 0
    inquiry = await lab.peer(TREASURY).send(StatusRequest(
        msg_id=new_id("Q"), created_at=datetime.now(UTC), items=[StatusRequestItem("E2E-CRED")]))
    (asked,) = inquiry.message.document.transactions
    assert (asked.reason_code, asked.reason_originator_bic) == (reason, BANK_A)


async def test_concurrent_resends_of_one_message_take_it_once(lab: SwitchLab) -> None:
    """The same bytes sent four times at once: one transfer, four consistent answers."""
    body = body_of(transfer("E2E-RACE"), msg_id="MSG-RACE")
    replies = await asyncio.gather(*(lab.peer(TREASURY).post(body) for _ in range(4)))
    assert {only_status(r)[0] for r in replies} <= {TxStatus.SETTLED, TxStatus.PENDING}
    await until(lambda: not lab.switch.state.book.in_flight)
    _, stats = await lab.admin("GET", "/v1/admin/stats")
    assert stats["by_state"]["SETTLED"]["count"] == 1
    forwarded = [m for m in lab.participants[BANK_A].received
                 if type(m.document).__name__ == "CreditTransferMessage"]
    assert sum(len(m.document.transactions) for m in forwarded) == 1


async def test_a_storage_failure_stops_taking_and_a_restart_recovers(
        lab: SwitchLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a real storage failure stops the journal: then every message gets 503 with the
    reason, nothing is half-applied, and a restarted switch resolves what was in flight."""
    store = lab.switch.state.store
    creditor = lab.participants[BANK_A]
    creditor.answer_async, creditor.delay_s = True, 0.3
    in_flight = asyncio.ensure_future(pay(lab, transfer("E2E-DISK-1")))
    await until(lambda: "E2E-DISK-1" in lab.switch.state.book.in_flight)

    async def disk_gone(batch: list) -> list:
        raise OSError("disk I/O error")

    monkeypatch.setattr(store, "_commit", disk_gone)
    refused = await pay(lab, transfer("E2E-DISK-2", creditor=BANK_B))
    assert refused.status == 503 and "disk I/O error" in refused.text
    later = await pay(lab, transfer("E2E-DISK-3", creditor=BANK_B))
    assert later.status == 503 and "storage failure" in later.text
    assert (await in_flight).status == 503
    assert (await lab.admin("GET", "/v1/admin/transfers/E2E-DISK-2"))[0] == 404
    monkeypatch.undo()
    creditor.answer_async = False
    await lab.restart_switch()
    resolved = {("REJECTED", reasons.TIMEOUT_INSTRUCTED_AGENT)}
    if store.heals:  # PostgreSQL: it may have healed by itself first and taken the answer
        resolved.add(("SETTLED", None))
    assert await journal_state(lab, "E2E-DISK-1") in resolved
    await still_serving(lab, "E2E-AFTER-DISK")
    assert await reserved_vnd(lab) == 0


async def test_an_end_to_end_id_of_spaces_is_ff01_and_nothing_is_taken(lab: SwitchLab) -> None:
    """An EndToEndId of three spaces was settled as "   ", an id no one can ask about."""
    body = body_of(transfer("E2E-BLANK")).replace(b">E2E-BLANK<", b">   <")
    reply = await lab.peer(TREASURY).post(body)
    assert reply.status == 400 and reply.text.startswith("FF01")
    assert "EndToEndId is blank" in reply.text
    assert (await lab.admin("GET", "/v1/admin/transfers?limit=10"))[1]["transfers"] == []
    await still_serving(lab, "E2E-AFTER-BLANK")


# ---- issue 22, observation 8: amount codes as ISO 20022 and the scheme assign them ---------

TWENTY_DIGITS = "12345678901234567890"


async def test_issue22_obs8_a_20_digit_amount_with_its_control_sum_is_am12_not_am10(
        lab: SwitchLab) -> None:
    """The control sum agrees with the amounts as written: no group AM10. The amount, longer
    than ActiveCurrencyAndAmount's 18 digits, is the transaction's AM12, instant or in bulk;
    the refused amount is marked in the journal (no whole number of dong), not shown as 0."""
    reply = await pay(lab, transfer("E2E-20D", amount_text=TWENTY_DIGITS))
    assert only_status(reply) == (TxStatus.REJECTED, reasons.INVALID_AMOUNT)
    filed = await pay(lab, transfer("E2E-20D-BULK", amount_text=TWENTY_DIGITS),
                      transfer("E2E-20D-OK"))
    assert filed.status == 202, filed.text
    assert filed.message.document.group_status is TxStatus.ACCEPTED_TECHNICAL
    await until(lambda: len(lab.switch.state.book.in_flight) == 0)
    assert await journal_state(lab, "E2E-20D-BULK") == ("REJECTED", reasons.INVALID_AMOUNT)
    assert await journal_state(lab, "E2E-20D-OK") == ("SETTLED", None)
    _, journaled = await lab.admin("GET", "/v1/admin/transfers/E2E-20D")
    assert journaled["amount_vnd"] is None  # type: ignore[index]


async def test_issue22_obs8_an_18_digit_amount_above_the_cap_in_bulk_is_am02_as_given(
        lab: SwitchLab) -> None:
    """A well-formed amount above the scheme's cap is AM02 (not allowed), not AM12 (not an
    amount); it is journaled at the amount given."""
    huge = 999_999_999_999_999_999
    filed = await pay(lab, transfer("E2E-CAP", amount_vnd=huge), transfer("E2E-CAP-OK"))
    assert filed.status == 202, filed.text
    await until(lambda: len(lab.switch.state.book.in_flight) == 0)
    assert await journal_state(lab, "E2E-CAP") == ("REJECTED", reasons.NOT_ALLOWED_AMOUNT)
    _, journaled = await lab.admin("GET", "/v1/admin/transfers/E2E-CAP")
    assert journaled["amount_vnd"] == huge  # type: ignore[index]


async def test_issue22_obs8_deep_nesting_is_ff01_without_libxmls_advice(lab: SwitchLab
                                                                        ) -> None:
    body = body_of(transfer("E2E-DEEP")).replace(
        b"<RmtInf>", b"<RmtInf>" + b"<X>" * 300 + b"</X>" * 300)
    reply = await lab.peer(TREASURY).post(body)
    assert reply.status == 400 and reply.text.startswith("FF01")
    assert "nested more than 256 deep" in reply.text and "XML_PARSE_HUGE" not in reply.text
