"""A payout day end to end: population, payment table, treasury, switch and banks together."""

from __future__ import annotations

from pathlib import Path

import pytest

from banks.behaviour import Behaviour
from banks.payment_table import Payment, PaymentTableError, read_payment_table
from banks.payout import PayoutResult
from banks.population import Mix, Population, generate_population
from banks.reconcile import SwitchTotals, reconcile
from banks.registry import DEFAULT_SHARES
from banks.treasury import TreasurySettings
from switchlab.demo import DemoSettings, run_demo
from switchlab.world import World, WorldSettings


def test_same_seed_same_population_other_seed_differs() -> None:
    first, again, other = (generate_population(500, seed) for seed in (7, 7, 8))
    assert first.payment_rows() == again.payment_rows()
    assert first.payment_rows() != other.payment_rows()


def test_population_shares_are_respected() -> None:
    mix = Mix(no_account=0.1, closed=0.1, blocked=0.0, name_mismatch=0.0, deceased=0.0,
              dies_after_payment=0.0, participants={"BFTVVNVX": 0.5, "EWLAVNV1": 0.5})
    people = generate_population(4_000, 1, mix).beneficiaries
    without = sum(p.participant_bic is None for p in people)
    closed = sum(p.status == "closed" for p in people)
    assert 320 < without < 480 and 280 < closed < 440
    assert {p.participant_bic for p in people} == {None, "BFTVVNVX", "EWLAVNV1"}
    assert all(len(p.citizen_id) == 12 and p.citizen_id.isdigit() for p in people)
    assert len({p.citizen_id for p in people}) == len(people)


def test_payment_table_errors_name_the_line(tmp_path: Path) -> None:
    table = tmp_path / "table.csv"
    generate_population(3, 1).write_payment_table(table)
    lines = table.read_text(encoding="utf-8").splitlines()
    fields = lines[2].split(",")
    fields[2] = "1.5"
    lines[2] = ",".join(fields)
    lines.append(lines[1])
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(PaymentTableError) as error:
        read_payment_table(table)
    message = str(error.value)
    assert "line 3: amount_vnd '1.5'" in message and "appears twice" in message


@pytest.mark.parametrize("mode", ["bulk", "instant"])
async def test_payout_pays_each_beneficiary_once_and_reconciles(tmp_path: Path,
                                                                mode: str) -> None:
    population = generate_population(600, 11, Mix(participants=DEFAULT_SHARES,
                                                   closed=0.05, name_mismatch=0.05))
    payments = _payments(population, tmp_path)
    result, stats, totals = await pay_day(World(WorldSettings(
        tmp_path, {bic: Behaviour() for bic in DEFAULT_SHARES},
        treasury=TreasurySettings(mode=mode, bulk_size=100))), population, payments)
    expected_rejections = sum(1 for b in population.payable()
                              if b.status != "active" or b.ledger_name != b.full_name
                              or b.deceased)
    assert result.by_status["rejected"] == expected_rejections > 0
    assert result.by_status["paid"] == len(payments) - expected_rejections
    assert result.by_status["unresolved"] == 0
    assert sum(t["credited"] for t in totals) == result.by_status["paid"]
    assert reconcile(result, stats, totals) == []


async def test_lost_answers_lead_to_inquiry_not_double_payment(tmp_path: Path) -> None:
    population = generate_population(60, 3, Mix(participants={"BFTVVNVX": 1.0}))
    payments = _payments(population, tmp_path)
    slow_bank = Behaviour(latency_ms_median=400, latency_ms_p99=400)
    result, stats, totals = await pay_day(World(WorldSettings(
        tmp_path, {"BFTVVNVX": slow_bank}, treasury=TreasurySettings(
            mode="instant", request_timeout_s=0.1, quiet_period_s=0.5))),
        population, payments)
    # Answers were lost, so the treasury asked; it may resend only what the switch never got
    # (AG09), and whatever it resent, each transfer exists once and is credited once.
    assert result.inquiries > 0
    assert result.by_status["unresolved"] == 0
    assert sum(v.count for v in stats.by_state.values()) == len(payments)
    assert sum(t["credited"] for t in totals) == result.by_status["paid"]
    assert reconcile(result, stats, totals) == []


def _payments(population: Population, tmp_path: Path) -> list[Payment]:
    population.write_payment_table(tmp_path / "table.csv")
    return read_payment_table(tmp_path / "table.csv")


async def pay_day(world: World, population: Population, payments: list[Payment]
                  ) -> tuple[PayoutResult, SwitchTotals, list[dict]]:
    """Run the payout and read the switch's and the banks' books over their admin APIs."""
    await world.start(population)
    try:
        result = await world.treasury.run(payments)
        return result, await world.switch_totals(), await world.bank_totals()
    finally:
        await world.stop()


def test_reconcile_finds_a_one_dong_difference() -> None:
    class Result:
        settled_vnd, returned_vnd = 1_000_000, 0  # what the treasury was debited, and got back

    stats = {"by_state": {"SETTLED": {"amount_vnd": 1_000_000}}, "returns": {"amount_vnd": 0}}
    banks = [{"bic": "BFTVVNVX", "credited_vnd": 999_999, "returned_vnd": 0,
              "credited_before_confirmation": 0}]
    problems = reconcile(Result(), SwitchTotals.from_stats(stats), banks)  # type: ignore[arg-type]
    assert problems == ["switch settlements vs bank credits: 1,000,000 VND ≠ 999,999 VND "
                        "(off by +1)"]


async def test_demo_runs_and_writes_its_files(tmp_path: Path) -> None:
    code = await run_demo(DemoSettings(beneficiaries=800, seed=5, output_dir=tmp_path,
                                       progress=False,
                                       treasury=TreasurySettings(bulk_size=200)))
    assert code == 0
    results = (tmp_path / "results.csv").read_text(encoding="utf-8").splitlines()
    assert len(results) - 1 == len(read_payment_table(tmp_path / "payment_table.csv"))
    assert (tmp_path / "cash_list.csv").exists() and (tmp_path / "summary.json").exists()
