"""Issue #22, observation 1: a bank computed the end-to-end ids a payout would use (they were
derived from the citizen id, programme, period and arrears), spent them on 1-VND transfers to
an unknown BIC (refused RC01, no money moved), and the payout left a beneficiary unresolved.
A payout's ids are now derived under a secret of the run: the bank squats the ids it can
compute, and the payout still pays everyone."""

from __future__ import annotations

import csv
import secrets
from pathlib import Path

from banks.behaviour import Behaviour
from banks.payment_table import read_payment_table, retry_id
from banks.payout import PayoutStatus
from banks.population import Mix, generate_population
from banks.treasury import TreasurySettings
from lab.world import World, WorldSettings
from protocol import reasons
from protocol.http import SWITCH_MESSAGES_PATH, Peer
from protocol.keys import SwitchKeys
from protocol.messages import TxStatus
from tests.harness import BANK_A, BANK_B, SWITCH_BIC, credit_transfers, transfer

UNKNOWN_BIC = "NOBKVNVX"


def without_ids(source: Path, target: Path) -> Path:
    """The table as the ministry sends it, with no end-to-end id column: the payout derives
    them."""
    with source.open(encoding="utf-8-sig", newline="") as file:
        rows = list(csv.DictReader(file))
    columns = [c for c in rows[0] if c != "end_to_end_id"]
    with target.open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return target


async def test_issue22_obs1_a_bank_squatting_the_ids_it_can_compute_stops_no_payout(
        tmp_path: Path) -> None:
    population = generate_population(40, 11, Mix(
        participants={BANK_A: 0.5, BANK_B: 0.5}, no_account=0, closed=0, blocked=0,
        name_mismatch=0, deceased=0, dies_after_payment=0))
    population.write_payment_table(tmp_path / "full.csv")
    table = without_ids(tmp_path / "full.csv", tmp_path / "table.csv")
    computable = [p.end_to_end_id for p in read_payment_table(table)]  # by anyone
    run_key = secrets.token_bytes(32)  # switchlab payout keeps one in the run's state
    payments = read_payment_table(table, run_key)
    assert not set(computable) & {p.end_to_end_id for p in payments}
    world = World(WorldSettings(tmp_path / "lab", {BANK_A: Behaviour(), BANK_B: Behaviour()},
                                treasury=TreasurySettings(mode="bulk", bulk_size=20)))
    await world.start(population)
    try:
        assert world.session is not None
        squatter = Peer(world.session, f"{world.switch_url}{SWITCH_MESSAGES_PATH}", BANK_A,
                        SwitchKeys(**world.keys.handed[BANK_A]).credentials(), SWITCH_BIC)
        squatted = computable + [retry_id(e2e, attempt) for e2e in computable
                                 for attempt in (1, 2)]
        reply = await squatter.send(credit_transfers([
            transfer(e2e, amount_vnd=1, creditor=UNKNOWN_BIC, debtor=BANK_A)
            for e2e in squatted], sender=BANK_A))
        assert reply.status == 202, reply.text
        answer = await squatter.send(credit_transfers([transfer(
            computable[0], amount_vnd=1, creditor=UNKNOWN_BIC, debtor=BANK_A)], sender=BANK_A))
        assert answer.message.document.transactions[0].status is TxStatus.REJECTED
        result = await world.treasury.run(payments)
        assert result.by_status[PayoutStatus.PAID] == len(payments), result.by_status
        assert reasons.DUPLICATE not in result.by_reason
    finally:
        await world.stop()
