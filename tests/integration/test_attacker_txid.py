"""Attacker report item 1 (HIGH): a debtor claimed the switch's forward TxId of another
debtor's transfer. The switch forwarded the second of two debtors' transfers under one
end-to-end id with TxId "SWT" + sha256(id, debtor BIC), which anyone can compute; a bank sent
its own 1,000 VND first under the treasury's next id with exactly that TxId, so the treasury's
5,000,000 VND reached the creditor under the same (EndToEndId, TxId) pair: the switch settled
5,000,000, the creditor credited 1,000, and the creditor's pacs.004/pacs.028 naming the only
TxId it was given got RJCT CH21 forever. Now a debtor's TxId in the switch's reserved
namespace (protocol/ids.py FORWARD_TX_PREFIX) is refused, RJCT CH16, before anything is held
or forwarded, so no two transfers reach a creditor under one (EndToEndId, TxId). Real switch
and participants on 127.0.0.1."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from banks.behaviour import Behaviour
from banks.ledger import BookingState
from banks.population import Beneficiary, Population
from banks.registry import TREASURY_BIC
from lab.world import World, WorldSettings
from protocol import reasons
from protocol.codec import encode
from protocol.http import SWITCH_MESSAGES_PATH, Peer, wrap
from protocol.keys import SwitchKeys
from protocol.messages import CreditTransferMessage, PaymentStatusReport, TxStatus
from switch.transfer import scoped_key, unkeyed_forward_tx_id
from tests.harness import (
    BANK_A,
    BANK_B,
    SWITCH_BIC,
    TREASURY,
    SwitchLab,
    credit_transfers,
    journal_state,
    only_status,
    pay,
    return_of,
    transfer,
    until,
)
from tests.integration.test_id_scoping import ask


@pytest.fixture
async def lab(journal: dict[str, str], tmp_path: Path) -> AsyncIterator[SwitchLab]:
    lab = await SwitchLab(tmp_path / "switch.sqlite", **journal).start()
    yield lab
    await lab.stop()


def forwards_of(lab: SwitchLab, creditor_bic: str, e2e: str) -> list[tuple[str, int]]:
    """(TxId, amount) of each transaction `creditor_bic` was forwarded under `e2e`."""
    return [(tx.tx_id, tx.amount_vnd) for m in lab.participants[creditor_bic].received
            if isinstance(m.document, CreditTransferMessage)
            for tx in m.document.transactions if tx.end_to_end_id == e2e]


async def test_attacker1_a_debtor_claiming_anothers_forward_txid_is_refused_ch16(
        lab: SwitchLab) -> None:
    """The attack of t_collide2.py: the bank's claim is refused and never forwarded; the
    treasury's transfer then settles and is the only one its creditor sees under its pair;
    the creditor's pacs.028 and pacs.004 naming that TxId find it."""
    claimed = unkeyed_forward_tx_id(scoped_key("E2E-TRSY-NEXT", TREASURY))  # was computable
    attack = transfer("E2E-TRSY-NEXT", amount_vnd=1_000, debtor=BANK_B, tx_id=claimed)
    assert only_status(await pay(lab, attack, sender=BANK_B)) == (
        TxStatus.REJECTED, reasons.RESERVED_TX_ID)
    assert only_status(await pay(lab, transfer("E2E-TRSY-NEXT", amount_vnd=5_000_000))) == (
        TxStatus.SETTLED, None)
    forward = lab.switch.state.store.forward_ids.tx_id(scoped_key("E2E-TRSY-NEXT", TREASURY))
    assert forward != claimed
    assert forwards_of(lab, BANK_A, "E2E-TRSY-NEXT") == [(forward, 5_000_000)]
    _, bank_b = await lab.admin("GET", "/v1/admin/participants")
    assert {p["bic"]: p["net_vnd"] for p in bank_b}[BANK_B] == 0  # type: ignore[union-attr]
    assert await ask(lab, BANK_A, "E2E-TRSY-NEXT", forward) == (
        TxStatus.SETTLED, None, forward)
    returned = return_of("E2E-TRSY-NEXT", 5_000_000)
    returned.items[0].original_tx_id = forward
    assert only_status(await lab.peer(BANK_A).send(returned)) == (TxStatus.SETTLED, None)
    await until(lambda: bool(lab.participants[TREASURY].returns()))
    assert lab.participants[BANK_B].returns() == []


async def forget_forward_secret(lab: SwitchLab, journal: dict[str, str]) -> None:
    """Make the journal one of the versions before ForwardIds: no secret in it."""
    if "journal_url" in journal:
        connection = await asyncpg.connect(journal["journal_url"])
        await connection.execute("DROP TABLE forward_secret")
        await connection.close()
    else:
        with sqlite3.connect(lab.journal_path) as connection:
            connection.execute("DROP TABLE forward_secret")
        connection.close()


async def test_leftovers1_forward_txids_are_keyed_under_the_journals_secret(
        lab: SwitchLab, journal: dict[str, str]) -> None:
    """Forward TxIds were "SWT" + sha256(key): anyone could compute another debtor's. Now they
    are an HMAC under a secret the journal makes once: not the unkeyed hash, the same after a
    restart (the creditor still names its transfer by it), and, on a journal from before the
    secret, the transfers it holds keep the TxIds they were forwarded under while new ones
    get keyed TxIds."""
    key = scoped_key("E2E-K1", TREASURY)
    await pay(lab, transfer("E2E-K1", debtor=BANK_B, tx_id="ICB-K1"), sender=BANK_B)
    await pay(lab, transfer("E2E-K1"))
    forward_ids = lab.switch.state.store.forward_ids
    [(_, _), (forward, _)] = forwards_of(lab, BANK_A, "E2E-K1")  # BANK_B's, the treasury's
    assert forward == forward_ids.tx_id(key) != unkeyed_forward_tx_id(key)
    await lab.restart_switch()
    assert lab.switch.state.store.forward_ids == forward_ids
    assert await ask(lab, BANK_A, "E2E-K1", forward) == (TxStatus.SETTLED, None, forward)

    await lab.switch_runner.cleanup()  # the journal as the previous version left it
    await forget_forward_secret(lab, journal)
    await lab.start_switch()
    upgraded = lab.switch.state.store.forward_ids
    assert upgraded.secret != forward_ids.secret and upgraded.legacy_until_s is not None
    unkeyed = unkeyed_forward_tx_id(key)  # what the previous version forwarded it under
    assert await ask(lab, BANK_A, "E2E-K1", unkeyed) == (TxStatus.SETTLED, None, unkeyed)
    await pay(lab, transfer("E2E-K2", debtor=BANK_B, tx_id="ICB-K2"), sender=BANK_B)
    await pay(lab, transfer("E2E-K2"))
    new_key = scoped_key("E2E-K2", TREASURY)
    assert forwards_of(lab, BANK_A, "E2E-K2")[1] == (upgraded.tx_id(new_key), 1_500_000)
    assert (await ask(lab, BANK_A, "E2E-K2", unkeyed_forward_tx_id(new_key)))[:2] == (
        TxStatus.REJECTED, reasons.PAYMENT_NOT_RECEIVED)


@pytest.mark.parametrize("tx_id", ["SWT", "SWT0", "SWTXYZ-OF-MY-OWN"])
async def test_attacker1_the_whole_reserved_namespace_is_refused(lab: SwitchLab, tx_id: str
                                                                 ) -> None:
    """Any TxId in the switch's namespace, predictable or not, from any debtor: CH16."""
    for sender in (BANK_B, TREASURY):
        e2e = f"E2E-NS-{sender}"
        reply = await pay(lab, transfer(e2e, debtor=sender, tx_id=tx_id), sender=sender)
        assert only_status(reply) == (TxStatus.REJECTED, reasons.RESERVED_TX_ID)
        assert forwards_of(lab, BANK_A, e2e) == []


async def test_attacker1_the_mock_bank_credits_each_debtors_amount(tmp_path: Path) -> None:
    """The observation with the lab's own bank as creditor: it credited 1,000 for a transfer
    the switch settled at 5,000,000. Now the attacker's claim is refused, its legitimate
    transfer under another id and the treasury's under the same one are two pairs, each
    credited with its own amount."""
    holder = Beneficiary(citizen_id="001190012345", full_name="Nguyễn Thị Hồng Nhung",
                         programme="luong_huu", amount_vnd=1_000_000, participant_bic=BANK_A,
                         account_id="0011004455667", ledger_name="Nguyễn Thị Hồng Nhung",
                         end_to_end_id="E2E-UNUSED")
    world = World(WorldSettings(tmp_path, {BANK_A: Behaviour(), BANK_B: Behaviour()}))
    await world.start(Population(seed=0, beneficiaries=[holder]))
    try:
        assert world.session is not None
        peers = {bic: Peer(world.session, f"{world.switch_url}{SWITCH_MESSAGES_PATH}", bic,
                           SwitchKeys(**world.keys.handed[bic]).credentials(), SWITCH_BIC)
                 for bic in (TREASURY_BIC, BANK_B)}
        claimed = unkeyed_forward_tx_id(scoped_key("E2E-X", TREASURY_BIC))
        sent = [(BANK_B, "E2E-X", 1_000, claimed, (TxStatus.REJECTED, reasons.RESERVED_TX_ID)),
                (BANK_B, "E2E-Y", 1_000, "ICB-OWN-1", (TxStatus.SETTLED, None)),
                (TREASURY_BIC, "E2E-X", 5_000_000, "TXE2E-X", (TxStatus.SETTLED, None)),
                (TREASURY_BIC, "E2E-Y", 5_000_000, "TXE2E-Y", (TxStatus.SETTLED, None))]
        for bic, e2e, amount_vnd, tx_id, expected in sent:
            reply = await peers[bic].send(credit_transfers([transfer(
                e2e, amount_vnd=amount_vnd, debtor=bic, tx_id=tx_id)], sender=bic))
            assert only_status(reply) == expected
        ledger = world.banks[BANK_A].ledger
        await until(lambda: sum(b.state is BookingState.CREDITED
                                for b in ledger.bookings.values()) == 3)
        credited = sorted((key.partition("\x1f")[0], b.amount_vnd)
                          for key, b in ledger.bookings.items())
        assert credited == [("E2E-X", 5_000_000), ("E2E-Y", 1_000), ("E2E-Y", 5_000_000)]
    finally:
        await world.stop()


@pytest.mark.parametrize("count", [1, 3], ids=["walked", "slow-path"])
@pytest.mark.parametrize(("edit", "reason"), [
    ((b'Ccy="VND">1000<', b'Ccy="VND">+1000<'), reasons.INVALID_AMOUNT),
    ((b'Ccy="VND"', b'Ccy=" VND"'), reasons.NOT_ALLOWED_CURRENCY),
], ids=["signed-amount-and-sum", "currency-with-a-blank"])
async def test_attacker6_signed_amounts_and_blank_currencies_are_judged_per_transaction(
        lab: SwitchLab, count: int, edit: tuple[bytes, bytes], reason: str) -> None:
    """Attacker report item 6: amounts "+1000" with CtrlSum "+N" (an xs:decimal each, and
    the sum agrees) got a whole-message AM10 where docs/participants.md promises AM12 for
    each transaction; Ccy=" VND" (schema: [A-Z]{3}) settled. Both readers of the codec (one
    item walked, several through the slow path) keep them as sent."""
    message = credit_transfers([transfer(f"E2E-A6-{count}-{reason}-{n}", amount_vnd=1_000)
                                for n in range(count)])
    body = encode(wrap(TREASURY, SWITCH_BIC, message)).replace(*edit)
    body = re.sub(rb"<CtrlSum>[^<]*</CtrlSum>", f"<CtrlSum>+{count * 1000}</CtrlSum>".encode(),
                  body)
    reply = await lab.peer(TREASURY).post(body)
    assert reply.message is not None, reply.text
    report = reply.message.document
    assert isinstance(report, PaymentStatusReport) and report.group_reason_code is None
    assert reply.status == (200 if count == 1 else 202)  # several: a bulk file, ACTC first
    assert [await journal_state(lab, tx.end_to_end_id) for tx in message.transactions] == [
        ("REJECTED", reason)] * count
