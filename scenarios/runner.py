"""Plays a scenario: a whole payout day with its faults, then says whether it held.

The invariants of docs/design.md are checked on every run (nothing lost, nothing doubled, money
conserved, no credit before confirmation, positions net to zero); the scenario's own
expectations come on top. Faults come from the participants' behaviour and from the timeline,
which the runner applies at the second it names: over the admin APIs, or by killing and
restarting the switch process.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from tqdm import tqdm

from banks.payment_table import read_payment_table
from banks.payout import PayoutResult
from banks.population import Population, generate_population
from banks.reconcile import Balance, SwitchTotals, reconcile
from scenarios.expectations import Check, Observed, judge
from scenarios.spec import Scenario
from scenarios.timeline import Event, perform
from switchlab import postgres
from switchlab.world import World, WorldSettings

SAMPLE_EVERY_S = 0.25


@dataclass
class RunRecord:
    """Everything a report needs: outcome, checks, and the curves over time."""

    scenario: str
    description: str
    size: int
    result: PayoutResult
    checks: list[Check]
    samples: list[dict[str, float]] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    latencies_ms: list[tuple[float, float]] = field(default_factory=list)
    settlement: dict[str, Any] = field(default_factory=dict)
    duplicates_refused: int = 0

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


def _population(scenario: Scenario, ci: bool) -> Population:
    section = scenario.population  # a Mix, with the sizes
    return generate_population(section.ci_size if ci else section.size, scenario.seed, section)


def _world(scenario: Scenario, population: Population, run_dir: Path,
           journal_url: str | None) -> World:
    bics = {b.participant_bic for b in population.beneficiaries if b.participant_bic}
    bics |= set(scenario.participants)
    journal = {} if journal_url is None else {"journal_url": journal_url}
    return World(WorldSettings(
        run_dir=run_dir, behaviours={bic: scenario.behaviour_of(bic) for bic in sorted(bics)},
        treasury=scenario.run.treasury(), switch_process=scenario.switch.get("process", False),
        switch_processes=scenario.switch.get("processes", 1),
        switch_settings=scenario.switch_settings() | journal,
    ))


async def _apply_timeline(world: World, timeline: list[Event], started_s: float,
                          applied: list[dict[str, Any]]) -> None:
    for event in sorted(timeline, key=lambda e: e.at_s):
        await asyncio.sleep(max(0.0, started_s + event.at_s - time.monotonic()))
        await perform(world, event)
        applied.append({"at_s": round(time.monotonic() - started_s, 3), "action": event.action,
                        "participant": event.participant or "", "note": event.note})


async def _sample(world: World, started_s: float, samples: list[dict[str, float]],
                  bar: tqdm) -> None:
    """The switch's counts over time, for the throughput curve and the live view; gaps while
    it is down."""
    while True:
        try:
            totals: SwitchTotals | None = await world.switch_totals()
            health = await world.switch_admin("GET", "/v1/admin/participants")
        except (aiohttp.ClientError, OSError):
            bar.set_postfix_str("switch unreachable")
            totals = None
        if totals is not None:
            sample = {
                "t_s": round(time.monotonic() - started_s, 3),
                "settled": totals.settled.count,
                "rejected": totals.rejected.count,
                "in_flight": totals.in_flight,
            }
            samples.append(sample)
            down = [p["bic"] for p in health if p["signed_off"] or p["breaker_open"]]
            bar.set_postfix_str(f"settled {sample['settled']:,} rejected {sample['rejected']:,}"
                                f" in flight {sample['in_flight']:,}"
                                f" down {','.join(down) or 'none'}")
        await asyncio.sleep(SAMPLE_EVERY_S)


async def run_scenario(scenario: Scenario, run_dir: Path, ci: bool = False,
                       progress: bool = True) -> RunRecord:
    """Play the scenario; on a PostgreSQL journal, a throwaway server started for the run.
    Raises RuntimeError naming why when that server cannot start here."""
    if scenario.switch.get("journal") != "postgresql":
        return await _play(scenario, run_dir, ci, progress, None)
    server = postgres.start()
    try:
        return await _play(scenario, run_dir, ci, progress,
                           await postgres.create_database(server.url, "switchlab"))
    finally:
        postgres.stop(server)


async def _play(scenario: Scenario, run_dir: Path, ci: bool, progress: bool,
                journal_url: str | None) -> RunRecord:
    population = _population(scenario, ci)
    run = scenario.run
    world = _world(scenario, population, run_dir, journal_url)
    payments_path = run_dir / "payment_table.csv"
    population.write_payment_table(payments_path)
    payments = read_payment_table(payments_path)
    faults: list[dict[str, Any]] = []
    samples: list[dict[str, float]] = []
    await world.start(population)
    started_s = time.monotonic()
    bar = tqdm(total=len(payments), unit="tx", disable=not progress, desc=scenario.name)
    background = [
        asyncio.ensure_future(_apply_timeline(world, scenario.timeline, started_s, faults)),
        asyncio.ensure_future(_sample(world, started_s, samples, bar)),
    ]
    try:
        await world.treasury.run(payments, lambda done, _: bar.update(done - bar.n))
        bar.close()
        if run.resubmit_whole_file:
            world.treasury.forget_outcomes()
            await world.treasury.run(payments)
        expected_returns = sum(1 for b in population.payable() if b.dies_after_payment)
        await world.treasury.wait_for_returns(expected_returns, run.returns_wait_s)
        await background[0]
        settlement = await world.switch_admin("POST", "/v1/admin/settlement/close")
        switch_totals = await world.switch_totals()
        totals = await world.bank_totals()
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await world.stop()
    result = world.treasury.result(payments)
    checks = invariants(result, switch_totals, totals, settlement) + judge(
        scenario.expect, Observed(result, world.treasury.latencies_ms,
                                  world.treasury.duplicates_refused))
    return RunRecord(
        scenario=scenario.name, description=scenario.description,
        size=len(population.beneficiaries), result=result, checks=checks, samples=samples,
        faults=faults, latencies_ms=world.treasury.latencies_ms, settlement=settlement,
        duplicates_refused=world.treasury.duplicates_refused,
    )


def invariants(result: PayoutResult, switch: SwitchTotals, totals: list[dict[str, Any]],
               settlement: dict[str, Any]) -> list[Check]:
    """docs/design.md's invariants, checked on every run whatever the scenario says."""
    unresolved = result.by_status["unresolved"]
    settled = switch.settled.count
    credited = sum(t["credited"] for t in totals)
    early = {t["bic"]: t["credited_before_confirmation"] for t in totals
             if t["credited_before_confirmation"]}
    # Early credits are an invariant of their own, below.
    mismatches = [m for m in reconcile(result, switch, totals)
                  if m.check is not Balance.CREDITED_EARLY]
    net_sum = sum(settlement.get("net_vnd", {}).values())
    return [
        Check("nothing lost", unresolved == 0 and switch.in_flight == 0,
              f"{unresolved} transfers without a final status, {switch.in_flight} in flight",
              invariant=True),
        Check("nothing doubled", credited == settled,
              f"banks credited {credited:,} transfers; the switch settled {settled:,}",
              invariant=True),
        Check("money conserved", not mismatches,
              "; ".join(mismatches) or "treasury, switch and banks agree to the dong",
              invariant=True),
        Check("no credit before confirmation", not early,
              "; ".join(f"{bic} credited {n} transfers before the switch's ACSC (protocol bug)"
                        for bic, n in early.items()) or "every credit followed an ACSC",
              invariant=True),
        Check("net positions sum to zero", net_sum == 0, f"sum of net positions {net_sum:+,} VND",
              invariant=True),
    ]
