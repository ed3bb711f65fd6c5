"""Plays a scenario: a whole payout day with its faults, then says whether it held.

The invariants of DESIGN.md are checked on every run (nothing lost, nothing doubled, money
conserved, no credit before confirmation, positions net to zero); the scenario's own
expectations come on top. Faults come from the participants' behaviour and from the timeline,
which the runner applies at the second it names: over the admin APIs, or by killing and
restarting the switch process.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from tqdm import tqdm

from banks.behaviour import Behaviour
from banks.payment_table import read_payment_table
from banks.payout import PayoutResult
from banks.population import Mix, Population, generate_population
from banks.reconcile import Balance, SwitchTotals, reconcile
from banks.treasury import TreasurySettings
from scenarios.spec import Scenario
from switchlab.world import World, WorldSettings

SAMPLE_EVERY_S = 0.25
DEFAULT_SEED = 2026
DEFAULT_SIZE = 10_000
DEFAULT_CI_SIZE = 2_000


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    detail: str
    invariant: bool = False


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
    section = scenario.section("population")
    size = section.pop("ci_size", DEFAULT_CI_SIZE) if ci else section.get("size", DEFAULT_SIZE)
    section.pop("ci_size", None)
    section.pop("size", None)
    mix = Mix(**section) if section else Mix()
    return generate_population(int(size), int(scenario.data.get("seed", DEFAULT_SEED)), mix)


def _world(scenario: Scenario, population: Population, run_dir: Path) -> World:
    seed = int(scenario.data.get("seed", DEFAULT_SEED))
    overrides = scenario.section("participants")
    bics = {b.participant_bic for b in population.beneficiaries if b.participant_bic}
    bics |= set(overrides)
    behaviours = {bic: Behaviour.model_validate({"seed": seed} | overrides.get(bic, {}))
                  for bic in sorted(bics)}
    switch = scenario.section("switch")
    run = scenario.section("run")
    treasury = {key: run[key] for key in ("mode", "bulk_size", "concurrency", "files_in_flight",
                                          "request_timeout_s", "quiet_period_s") if key in run}
    if "time_limit_s" in run:
        treasury["final_timeout_s"] = run["time_limit_s"]
    return World(WorldSettings(
        run_dir=run_dir, behaviours=behaviours, treasury=TreasurySettings(**treasury),
        switch_process=bool(switch.pop("process", False)), switch_settings=switch,
    ))


async def _apply_timeline(world: World, timeline: list[dict[str, Any]], started_s: float,
                          applied: list[dict[str, Any]]) -> None:
    for event in sorted(timeline, key=lambda e: e["at_s"]):
        await asyncio.sleep(max(0.0, started_s + event["at_s"] - time.monotonic()))
        action, bic = event["action"], event.get("participant", "")
        if action in ("sign_off", "sign_on"):
            await world.switch_admin("POST", f"/v1/admin/participants/{bic}/"
                                     f"{action.replace('_', '-')}")
        elif action == "kill_switch":
            await world.kill_switch()
        elif action == "restart_switch":
            await world.start_switch_process()
        elif action == "set_behaviour":
            assert world.session is not None
            async with world.session.put(f"{world.bank_urls[bic]}/admin/behaviour",
                                         json=event.get("behaviour", {})) as response:
                response.raise_for_status()
        applied.append({"at_s": round(time.monotonic() - started_s, 3), "action": action,
                        "participant": bic, "note": event.get("note", "")})


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
    population = _population(scenario, ci)
    run = scenario.section("run")
    world = _world(scenario, population, run_dir)
    payments_path = run_dir / "payment_table.csv"
    population.write_payment_table(payments_path)
    payments = read_payment_table(payments_path)
    faults: list[dict[str, Any]] = []
    samples: list[dict[str, float]] = []
    await world.start(population)
    started_s = time.monotonic()
    bar = tqdm(total=len(payments), unit="tx", disable=not progress, desc=scenario.name)
    background = [
        asyncio.ensure_future(_apply_timeline(world, scenario.data.get("timeline", []),
                                              started_s, faults)),
        asyncio.ensure_future(_sample(world, started_s, samples, bar)),
    ]
    try:
        await world.treasury.run(payments, lambda done, _: bar.update(done - bar.n))
        bar.close()
        if run.get("resubmit_whole_file"):
            world.treasury.forget_outcomes()
            await world.treasury.run(payments)
        expected_returns = sum(1 for b in population.payable() if b.dies_after_payment)
        await world.treasury.wait_for_returns(expected_returns, run.get("returns_wait_s", 10.0))
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
    checks = invariants(result, switch_totals, totals, settlement) + expectations(
        scenario.section("expect"), result, world.treasury.latencies_ms,
        world.treasury.duplicates_refused)
    return RunRecord(
        scenario=scenario.name, description=str(scenario.data.get("description", "")),
        size=len(population.beneficiaries), result=result, checks=checks, samples=samples,
        faults=faults, latencies_ms=world.treasury.latencies_ms, settlement=settlement,
        duplicates_refused=world.treasury.duplicates_refused,
    )


def invariants(result: PayoutResult, switch: SwitchTotals, totals: list[dict[str, Any]],
               settlement: dict[str, Any]) -> list[Check]:
    """DESIGN.md's invariants, checked on every run whatever the scenario says."""
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


def _p99(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def expectations(expect: dict[str, Any], result: PayoutResult,
                 latencies_ms: list[tuple[float, float]], duplicates: int) -> list[Check]:
    checks = []
    payable = len(result.outcomes) or 1
    paid_share = result.by_status["paid"] / payable
    if "paid_by_account_min" in expect:
        checks.append(Check("paid by account at least", paid_share >= expect[
            "paid_by_account_min"], f"{paid_share:.2%} paid (want ≥ "
            f"{expect['paid_by_account_min']:.2%})"))
    if "paid_by_account_max" in expect:
        checks.append(Check("paid by account at most", paid_share <= expect[
            "paid_by_account_max"], f"{paid_share:.2%} paid (want ≤ "
            f"{expect['paid_by_account_max']:.2%})"))
    if "latency_ms_p99_max" in expect:
        p99 = _p99([ms for _, ms in latencies_ms])
        checks.append(Check("p99 end-to-end latency", bool(latencies_ms) and p99 <= expect[
            "latency_ms_p99_max"], f"p99 {p99:.1f} ms over {len(latencies_ms):,} instant "
            f"transfers (want ≤ {expect['latency_ms_p99_max']} ms)"))
    if "max_unresolved" in expect:
        unresolved = result.by_status["unresolved"]
        checks.append(Check("unresolved at most", unresolved <= expect["max_unresolved"],
                            f"{unresolved} unresolved"))
    for code in expect.get("reasons_present", []):
        count = result.by_reason[code]
        checks.append(Check(f"reason {code} seen", count > 0, f"{count} transfers with {code}"))
    if "returns_min" in expect:
        returned = result.by_status["returned"]
        checks.append(Check("returns at least", returned >= expect["returns_min"],
                            f"{returned} returned"))
    if "duplicates_refused_min" in expect:
        checks.append(Check("duplicates refused", duplicates >= expect[
            "duplicates_refused_min"], f"{duplicates:,} resubmitted transfers refused DUPL"))
    return checks
