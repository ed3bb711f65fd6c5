"""Plays a scenario: a whole payout day with its faults, then says whether it held.

The invariants of docs/design.md are checked on every run (nothing lost, nothing doubled, money
conserved, no credit before confirmation, positions net to zero); the scenario's own
expectations come on top, and a protocol bug the scenario expects to find excuses the
invariant it breaks for that participant. Faults come from the participants' behaviour and
from the timeline, which the runner applies when each event's trigger comes (a second of the
run, or a share of the table settled): over the admin APIs, or by killing and restarting the
switch process. While it runs, a live page shows the day (lab/live.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from banks.ministry import check_table, stop_codes
from banks.payment_table import PaymentTable, read_payment_table
from banks.payout import LatencyLog, PayoutResult, PayoutStatus
from banks.population import Population, generate_population
from banks.reconcile import Balance, SwitchTotals, reconcile
from lab import postgres
from lab.live import Monitor, watching
from lab.world import World, WorldSettings
from protocol.messages import TxStatus
from protocol.wording import count
from scenarios.expectations import Bug, Check, Observed, judge
from scenarios.spec import Scenario
from scenarios.timeline import Event, perform


@dataclass
class RunRecord:
    """Everything a report needs: outcome, checks, and the curves over time (seconds from
    `started_s`, a time.monotonic() reading)."""

    scenario: str
    description: str
    size: int
    result: PayoutResult
    checks: list[Check]
    started_s: float = 0.0
    samples: list[dict[str, float]] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    latencies: LatencyLog = field(default_factory=LatencyLog)
    settlement: dict[str, Any] = field(default_factory=dict)
    duplicates_refused: int = 0
    bank_totals: list[dict[str, Any]] = field(default_factory=list)
    # Transfers each switch process made final, by process id, from its own /metrics (the
    # processes running at the end: a killed one's counts went with it).
    final_by_process: dict[str, int] = field(default_factory=dict)
    scenario_size: int = 0  # the scenario's population; `size` is smaller at CI size

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


def _population(scenario: Scenario, ci: bool) -> Population:
    section = scenario.population  # a Mix, with the sizes
    return generate_population(section.ci_size if ci else section.size, scenario.seed, section)


def _world(scenario: Scenario, population: Population, run_dir: Path,
           journal_url: str | None, journal_server: postgres.Server | None) -> World:
    bics = {b.participant_bic for b in population.beneficiaries if b.participant_bic}
    bics |= set(scenario.participants)
    journal = {} if journal_url is None else {"journal_url": journal_url}
    return World(WorldSettings(
        run_dir=run_dir, behaviours={bic: scenario.behaviour_of(bic) for bic in sorted(bics)},
        treasury=scenario.run.treasury(), switch_process=scenario.switch.get("process", False),
        switch_processes=scenario.switch.get("processes", 1),
        switch_settings=scenario.switch_settings() | journal, journal_server=journal_server,
        register=scenario.run.check_register,
    ))


async def _check_register(world: World, population: Population, payments: PaymentTable
                          ) -> list[dict[str, object]]:
    """The ministry's check before paying: the table's stopped rows handed to the treasury;
    the cash list of those without an account, less those the register stops (the dead are
    paid nothing, not even in cash)."""
    assert world.ministry is not None
    world.treasury.stop(stop_codes(payments, await check_table(world.ministry, payments)))
    cash = population.cash_list()
    findings = await world.ministry.check([{"citizen_id": b.citizen_id,
                                            "full_name": b.full_name} for b in cash])
    return [{"citizen_id": b.citizen_id, "full_name": b.full_name,
             "amount_vnd": b.amount_vnd, "programme": b.programme,
             "end_to_end_id": b.end_to_end_id}
            for b, finding in zip(cash, findings, strict=True) if not finding["code"]]


async def _apply_timeline(world: World, timeline: list[Event], monitor: Monitor,
                          missed: list[str]) -> None:
    """Each event in the order written: wait for its trigger, then its delay, then act. An
    event whose share of the table is never settled is missed, and so is what follows."""
    for index, event in enumerate(timeline):
        if event.at_s is not None:
            await asyncio.sleep(max(0.0, monitor.started_s + event.at_s - time.monotonic()))
        else:
            pct = event.after_settled_pct
            await monitor.wait_until(lambda pct=pct: monitor.settled_pct >= pct
                                     or monitor.finished)
            if monitor.settled_pct < pct:
                missed += [f"{e.action} {e.trigger()} (the run ended at "
                           f"{monitor.settled_pct:.1f} % settled)" for e in timeline[index:]]
                return
        await asyncio.sleep(event.delay_s)
        at_s = monitor.elapsed_s()  # when it began: a restart takes a second to finish
        await perform(world, event)
        monitor.fault(at_s, event.action, event.participant, event.note, event.trigger())


def _returns_due(population: Population, world: World) -> int:
    """Returns come for those who die after a payment that settled; waiting for one whose
    payment was rejected would wait out returns_wait_s for nothing."""
    final = world.treasury.final
    return sum(1 for b in population.payable() if b.dies_after_payment and (
        b.end_to_end_id in final and final[b.end_to_end_id].status == TxStatus.SETTLED))


async def run_scenario(scenario: Scenario, run_dir: Path, ci: bool = False,
                       progress: bool = True, live_port: int | None = 0,
                       announce: Callable[[str], None] = print, prometheus: bool = False
                       ) -> RunRecord:
    """Play the day in `run_dir`; with `live_port` not None, serve the live page on it
    (0: a port the OS chooses), with `prometheus` start a Prometheus server for the day, and
    `announce` where they and the switch are. On a PostgreSQL
    journal, a throwaway server is started for the run; RuntimeError names why when it
    cannot start here."""
    if scenario.switch.get("journal") != "postgresql":
        return await _play(scenario, run_dir, ci, progress, live_port, announce, None,
                           prometheus)
    server = postgres.start()
    try:
        return await _play(scenario, run_dir, ci, progress, live_port, announce,
                           await postgres.create_database(server.url, "switchlab"),
                           prometheus, server)
    finally:
        postgres.stop(server)


async def _play(scenario: Scenario, run_dir: Path, ci: bool, progress: bool,
                live_port: int | None, announce: Callable[[str], None],
                journal_url: str | None, prometheus: bool = False,
                journal_server: postgres.Server | None = None) -> RunRecord:
    population = _population(scenario, ci)
    run = scenario.run
    world = _world(scenario, population, run_dir, journal_url, journal_server)
    payments_path = world.run_dir / "payment_table.csv"
    population.write_payment_table(payments_path)
    payments = read_payment_table(payments_path)
    missed: list[str] = []
    try:
        await world.start(population)  # inside: a party that fails to start is stopped too
        cash = None
        if run.check_register:
            cash = await _check_register(world, population, payments)
        async with watching(world, len(payments), scenario.name, progress, live_port,
                            announce, prometheus) as monitor:
            timeline = asyncio.ensure_future(
                _apply_timeline(world, scenario.timeline, monitor, missed))
            try:
                await world.treasury.run(payments)
                if run.resubmit_whole_file:
                    world.treasury.forget_outcomes()
                    await world.treasury.run(payments)
                unresolved = world.treasury.result(payments).by_status[PayoutStatus.UNRESOLVED]
                await monitor.finish(final_rows=len(payments) - unresolved)
                await world.treasury.wait_for_returns(_returns_due(population, world),
                                                      run.returns_wait_s)
                await timeline
            finally:
                timeline.cancel()
                await asyncio.gather(timeline, return_exceptions=True)
            settlement = await world.switch_admin("POST", "/v1/admin/settlement/close")
            switch_totals = await world.switch_totals()
            totals = await world.bank_totals()
            final_by_process = await world.final_by_process()
            await monitor.sample()
    finally:
        await world.stop()
    result = world.treasury.result(payments)
    expected_bugs = list(getattr(scenario.expect, "bugs_found", None) or [])
    checks = invariants(result, switch_totals, totals, settlement, expected_bugs)
    if scenario.timeline:
        checks.append(Check("timeline happened", not missed, "; ".join(
            f"never happened: "
            f"{m}" for m in missed) or f"all {count(len(scenario.timeline), 'event')}"))
    checks += judge(scenario.expect, Observed(
        result, world.treasury.latencies, world.treasury.duplicates_refused, bank_totals=totals,
        wrong_holders=population.wrong_holder_ids(), population=population,
        cash_without_account=cash, final_by_process=final_by_process,
        switch_processes=world.settings.switch_processes))
    return RunRecord(
        scenario=scenario.name, description=scenario.description,
        size=len(population.beneficiaries), result=result, checks=checks,
        started_s=monitor.started_s, samples=monitor.samples, faults=monitor.faults,
        latencies=world.treasury.latencies, settlement=settlement,
        duplicates_refused=world.treasury.duplicates_refused, bank_totals=totals,
        final_by_process=final_by_process, scenario_size=scenario.population.size,
    )


def _excuse_early_credits(result: PayoutResult, totals: list[dict[str, Any]],
                          expected: list[Bug]) -> tuple[list[dict[str, Any]], list[str]]:
    """The banks' totals with the credits an expected credit-before-confirmation bug made on
    transfers that never settled taken out (at most as many as the bank made early), so the
    other invariants judge the rest of the books; and a sentence per participant excused."""
    excused = {bug.participant for bug in expected if bug.kind == "credit_before_confirmation"}
    adjusted, notes = [], []
    for entry in totals:
        if entry["bic"] not in excused:
            adjusted.append(entry)
            continue
        settled = [o.payment.amount_vnd for o in result.outcomes
                   if o.payment.creditor_bic == entry["bic"]
                   and o.status in (PayoutStatus.PAID, PayoutStatus.RETURNED)]
        extra = max(0, min(entry["credited"] - len(settled),
                           entry["credited_before_confirmation"]))
        extra_vnd = max(0, min(entry["credited_vnd"] - sum(settled),
                               entry["credited_before_confirmation_vnd"]))
        adjusted.append(entry | {"credited": entry["credited"] - extra,
                                 "credited_vnd": entry["credited_vnd"] - extra_vnd,
                                 "credited_before_confirmation": 0})
        notes.append(f"{entry['bic']}'s "
                     f"{count(entry['credited_before_confirmation'], 'early credit')} excused "
                     f"as the expected bug ({extra:,} never settled, "
                     f"{extra_vnd:,} VND)")
    return adjusted, notes


def invariants(result: PayoutResult, switch: SwitchTotals, totals: list[dict[str, Any]],
               settlement: dict[str, Any], expected_bugs: list[Bug] | None = None
               ) -> list[Check]:
    """docs/design.md's invariants, checked on every run whatever the scenario says; the
    bugs a scenario expects to find are excused in the invariants they break (and judged
    found or not by the `bugs_found` expectation)."""
    totals, excused = _excuse_early_credits(result, totals, expected_bugs or [])
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
              f"{count(unresolved, 'transfer')} without a final status, "
              f"{switch.in_flight:,} in flight",
              invariant=True),
        Check("nothing doubled", credited == settled,
              f"banks credited {count(credited, 'transfer')}; the switch settled {settled:,}",
              invariant=True),
        Check("money conserved", not mismatches,
              "; ".join(mismatches) or "treasury, switch and banks agree to the dong",
              invariant=True),
        Check("no credit before confirmation", not early,
              "; ".join([*(f"{bic} credited {count(n, 'transfer')} before the switch's ACSC "
                           "(protocol bug)" for bic, n in early.items()), *excused])
              or "every credit followed an ACSC", invariant=True),
        Check("net positions sum to zero", net_sum == 0, f"sum of net positions {net_sum:+,} VND",
              invariant=True),
    ]
