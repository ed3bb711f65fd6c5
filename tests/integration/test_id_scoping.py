"""Issue #22, observations 1 and 2: ids belong to their sender. End-to-end ids were unique
across the whole scheme, so a bank learnt which ids the treasury had used (its own transfer
reusing one got DUPL where a fresh id got RC01) and could spend the ids of a payout first.
Now duplicates and every lookup are scoped to the debtor: two debtors may use one end-to-end
id, and the switch tells their transfers apart everywhere (forwards, answers, confirmations,
inquiries, returns, statements); a non-party gets the same answer whether or not the id
exists for someone else. Real switch, scripted participants on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from banks.behaviour import Behaviour
from banks.ledger import BookingState
from banks.population import Beneficiary, Population
from banks.registry import TREASURY_BIC
from lab.world import World, WorldSettings
from protocol import reasons
from protocol.codec import new_id
from protocol.http import SWITCH_MESSAGES_PATH, Peer
from protocol.keys import SwitchKeys
from protocol.messages import (
    CreditTransferMessage,
    PaymentStatusReport,
    StatusRequest,
    StatusRequestItem,
    TxStatus,
)
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

UNKNOWN_BIC = "NOBKVNVX"


@pytest.fixture
async def lab(journal: dict[str, str], tmp_path: Path) -> AsyncIterator[SwitchLab]:
    lab = await SwitchLab(tmp_path / "switch.sqlite", **journal).start()
    yield lab
    await lab.stop()


async def ask(lab: SwitchLab, bic: str, e2e: str, tx_id: str | None = None
              ) -> tuple[TxStatus, str | None, str]:
    reply = await lab.peer(bic).send(StatusRequest(
        msg_id=new_id("Q"), created_at=datetime.now(UTC),
        items=[StatusRequestItem(e2e, tx_id)]))
    assert reply.status == 200, reply.text
    (item,) = reply.message.document.transactions
    return item.status, item.reason_code, item.original_tx_id


async def test_issue22_obs2_no_oracle_a_used_id_answers_as_a_fresh_one(lab: SwitchLab) -> None:
    """A bank's pacs.028 about the treasury's transfer, and its own transfer reusing the
    treasury's id, get exactly what a fresh id gets."""
    assert only_status(await pay(lab, transfer("E2E-TREASURY-1"))) == (TxStatus.SETTLED, None)
    assert (await ask(lab, BANK_B, "E2E-TREASURY-1"))[:2] == (
        await ask(lab, BANK_B, "E2E-NEVER-USED"))[:2] == (TxStatus.REJECTED,
                                                          reasons.PAYMENT_NOT_RECEIVED)
    reused = await pay(lab, transfer("E2E-TREASURY-1", creditor=UNKNOWN_BIC, debtor=BANK_B),
                       sender=BANK_B)
    fresh = await pay(lab, transfer("E2E-FRESH-1", creditor=UNKNOWN_BIC, debtor=BANK_B),
                      sender=BANK_B)
    assert only_status(reused) == only_status(fresh) == (TxStatus.REJECTED, reasons.WRONG_BIC)
    assert await journal_state(lab, "E2E-TREASURY-1") == ("SETTLED", None)  # untouched
    again = await pay(lab, transfer("E2E-TREASURY-1", creditor=UNKNOWN_BIC, debtor=BANK_B),
                      sender=BANK_B)  # the bank's own id, used twice by it: DUPL
    assert only_status(again) == (TxStatus.REJECTED, reasons.DUPLICATE)


async def test_issue22_two_debtors_one_id_are_told_apart_everywhere(lab: SwitchLab) -> None:
    creditor = lab.participants[BANK_A]
    assert only_status(await pay(lab, transfer("E2E-SHARED", amount_vnd=1_000_000))) == (
        TxStatus.SETTLED, None)
    assert only_status(await pay(lab, transfer("E2E-SHARED", amount_vnd=2_000_000,
                                               debtor=BANK_B, tx_id="TX-OF-BANK-B"),
                                 sender=BANK_B)) == (
        TxStatus.SETTLED, None)
    forwarded = [tx for m in creditor.received if isinstance(m.document, CreditTransferMessage)
                 for tx in m.document.transactions if tx.end_to_end_id == "E2E-SHARED"]
    assert sorted(tx.amount_vnd for tx in forwarded) == [1_000_000, 2_000_000]
    tx_ids = {tx.amount_vnd: tx.tx_id for tx in forwarded}
    assert tx_ids[1_000_000] != tx_ids[2_000_000]  # the second under the switch's TxId
    await until(lambda: len(creditor.confirmations.get("E2E-SHARED", [])) == 2)
    assert {c.original_tx_id for c in creditor.confirmations["E2E-SHARED"]} == set(
        tx_ids.values())
    # Each debtor asks about its own; the creditor names the one it means by its TxId.
    treasury_view = await ask(lab, TREASURY, "E2E-SHARED")
    bank_view = await ask(lab, BANK_B, "E2E-SHARED")
    assert treasury_view[0] == bank_view[0] == TxStatus.SETTLED
    assert (treasury_view[2], bank_view[2]) == ("TXE2E-SHARED", "TX-OF-BANK-B")  # its own
    assert (await ask(lab, BANK_A, "E2E-SHARED", tx_ids[2_000_000]))[2] == tx_ids[2_000_000]
    # The creditor returns the bank's transfer: the bank gets it back, the treasury's stays.
    returned = return_of("E2E-SHARED", 2_000_000)
    returned.items[0].original_tx_id = tx_ids[2_000_000]
    assert only_status(await lab.peer(BANK_A).send(returned)) == (TxStatus.SETTLED, None)
    await until(lambda: bool(lab.participants[BANK_B].returns()))
    assert lab.participants[TREASURY].returns() == []
    assert await journal_state(lab, "E2E-SHARED") == ("SETTLED", None)
    _, banks = await lab.admin("GET", "/v1/admin/transfers/E2E-SHARED",
                               params={"debtor": BANK_B})
    assert (banks["end_to_end_id"], banks["debtor_bic"], banks["state"]) == (  # type: ignore[index]
        "E2E-SHARED", BANK_B, "RETURNED")
    # After a restart, memory rebuilt from the journal tells them apart the same way.
    await lab.restart_switch()
    assert (await ask(lab, BANK_B, "E2E-SHARED"))[2] == "TX-OF-BANK-B"
    again = await pay(lab, transfer("E2E-SHARED", debtor=BANK_B), sender=BANK_B)
    assert only_status(again) == (TxStatus.REJECTED, reasons.DUPLICATE)  # its own, twice
    # The creditor's statement books both transfers under the id as sent.
    status, summary = await lab.admin("POST", "/v1/admin/settlement/close")
    assert status == 200
    assert summary["net_vnd"][BANK_A] == 1_000_000  # type: ignore[index]
    _, participants = await lab.admin("GET", "/v1/admin/participants")
    assert {p["bic"]: p["net_vnd"] for p in participants}[BANK_A] == 0  # type: ignore[union-attr]


async def test_issue22_a_return_from_a_non_party_answers_as_an_unknown_id(lab: SwitchLab
                                                                          ) -> None:
    assert only_status(await pay(lab, transfer("E2E-NOT-YOURS"))) == (TxStatus.SETTLED, None)
    theirs = await lab.peer(BANK_B).send(return_of("E2E-NOT-YOURS", 1_500_000,
                                                   creditor=BANK_B))
    unknown = await lab.peer(BANK_B).send(return_of("E2E-NO-SUCH", 1_500_000,
                                                    creditor=BANK_B))
    assert only_status(theirs) == only_status(unknown) == (TxStatus.REJECTED,
                                                           reasons.PAYMENT_NOT_RECEIVED)


def forwarded_tx_id(lab: SwitchLab, creditor_bic: str, e2e: str, amount_vnd: int) -> str:
    """The TxId of the forward `creditor_bic` received for `e2e` and this amount."""
    (tx_id,) = [tx.tx_id for m in lab.participants[creditor_bic].received
                if isinstance(m.document, CreditTransferMessage)
                for tx in m.document.transactions
                if (tx.end_to_end_id, tx.amount_vnd) == (e2e, amount_vnd)]
    return tx_id


@pytest.mark.parametrize("creditor_first", [True, False], ids=["received-first",
                                                              "sent-first"])
async def test_ids_finding_a_creditor_returns_what_it_received_under_an_id_it_also_sent(
        lab: SwitchLab, creditor_first: bool) -> None:
    """Security finding (a): a bank that received B-E2E-0008 and also sent its own transfer
    under that id could not return the one it received (RJCT AG09): the lookup took its own
    outgoing transfer and refused it as not the bank's to return."""
    received = transfer("B-E2E-0008", amount_vnd=150_000, creditor=BANK_A, debtor=BANK_B)
    sent = transfer("B-E2E-0008", amount_vnd=300_000, creditor=BANK_B, debtor=BANK_A,
                    tx_id="A-OWN-TX-8")
    for tx in ((received, sent) if creditor_first else (sent, received)):
        assert only_status(await pay(lab, tx, sender=tx.debtor_agent_bic)) == (
            TxStatus.SETTLED, None)
    returned = return_of("B-E2E-0008", 150_000)
    returned.items[0].original_tx_id = forwarded_tx_id(lab, BANK_A, "B-E2E-0008", 150_000)
    assert only_status(await lab.peer(BANK_A).send(returned)) == (TxStatus.SETTLED, None)
    await until(lambda: bool(lab.participants[BANK_B].returns()))
    (back,) = [item for r in lab.participants[BANK_B].returns() for item in r.items]
    assert (back.original_tx_id, back.returned_amount_vnd) == ("TXB-E2E-0008", 150_000)
    # Its own outgoing transfer stays settled and is not the creditor's to return.
    own = return_of("B-E2E-0008", 150_000)
    own.items[0].original_tx_id = "A-OWN-TX-8"
    assert only_status(await lab.peer(BANK_A).send(own)) == (
        TxStatus.REJECTED, reasons.PAYMENT_NOT_RECEIVED)
    assert (await ask(lab, BANK_A, "B-E2E-0008", "A-OWN-TX-8"))[:2] == (TxStatus.SETTLED, None)


async def test_ids_finding_a_status_request_answers_about_the_transfer_its_txid_names(
        lab: SwitchLab) -> None:
    """Security finding (b): a bank asking about X-11 with the TxId of the rejected transfer
    it received was told ACSC about its own outgoing X-11; a creditor trusting it could credit
    money that never settled. Without OrgnlTxId it is now told CH21 rather than a guess; a
    non-party still gets AG09."""
    lab.participants[BANK_A].decide = lambda tx: (
        Answer("RJCT", reasons.WRONG_ACCOUNT) if tx.tx_id == "BTX-11" else Answer())
    incoming = transfer("X-11", creditor=BANK_A, debtor=BANK_B, tx_id="BTX-11")
    assert only_status(await pay(lab, incoming, sender=BANK_B)) == (
        TxStatus.REJECTED, reasons.WRONG_ACCOUNT)
    outgoing = transfer("X-11", creditor=BANK_B, debtor=BANK_A, tx_id="ATX-11")
    assert only_status(await pay(lab, outgoing, sender=BANK_A)) == (TxStatus.SETTLED, None)
    assert await ask(lab, BANK_A, "X-11", "BTX-11") == (
        TxStatus.REJECTED, reasons.WRONG_ACCOUNT, "BTX-11")
    assert await ask(lab, BANK_A, "X-11", "ATX-11") == (TxStatus.SETTLED, None, "ATX-11")
    assert (await ask(lab, BANK_A, "X-11"))[:2] == (TxStatus.REJECTED,
                                                    reasons.REQUIRED_ELEMENT_MISSING)
    assert (await ask(lab, BANK_B, "X-11"))[:2] == (TxStatus.REJECTED,
                                                    reasons.REQUIRED_ELEMENT_MISSING)
    assert await ask(lab, BANK_B, "X-11", "BTX-11") == (
        TxStatus.REJECTED, reasons.WRONG_ACCOUNT, "BTX-11")
    assert (await ask(lab, TREASURY, "X-11", "BTX-11"))[:2] == (
        await ask(lab, TREASURY, "X-NEVER-USED", "BTX-11"))[:2] == (
        TxStatus.REJECTED, reasons.PAYMENT_NOT_RECEIVED)


def test_statuses_carry_the_wire_id_only() -> None:
    """A scoped key never reaches the wire: the codec has no field for it."""
    assert "switch_key" not in PaymentStatusReport.__dataclass_fields__


async def test_issue22_a_mock_bank_books_two_debtors_transfers_under_one_id(
        tmp_path: Path) -> None:
    """The lab's bank as creditor keys what it books by end-to-end id and TxId: the second
    debtor's transfer under the same id is a credit of its own, confirmed and credited."""
    holder = Beneficiary(citizen_id="001190012345", full_name="Nguyễn Thị Hồng Nhung",
                         programme="luong_huu", amount_vnd=1_000_000, participant_bic=BANK_A,
                         account_id="0011004455667", ledger_name="Nguyễn Thị Hồng Nhung",
                         end_to_end_id="E2E-UNUSED")
    world = World(WorldSettings(tmp_path, {BANK_A: Behaviour(), BANK_B: Behaviour()}))
    await world.start(Population(seed=0, beneficiaries=[holder]))
    try:
        assert world.session is not None
        for bic, amount_vnd in ((TREASURY_BIC, 1_000_000), (BANK_B, 2_000_000)):
            peer = Peer(world.session, f"{world.switch_url}{SWITCH_MESSAGES_PATH}", bic,
                        SwitchKeys(**world.keys.handed[bic]).credentials(), SWITCH_BIC)
            reply = await peer.send(credit_transfers([transfer(
                "E2E-TWICE", amount_vnd=amount_vnd, debtor=bic)], sender=bic))
            assert only_status(reply) == (TxStatus.SETTLED, None)
        ledger = world.banks[BANK_A].ledger
        await until(lambda: sum(b.state is BookingState.CREDITED
                                for b in ledger.bookings.values()) == 2)
        assert sorted(b.amount_vnd for b in ledger.bookings.values()) == [1_000_000, 2_000_000]
    finally:
        await world.stop()
