"""`switchlab demo`: one payout day, end to end, on this machine.

Generates beneficiaries, pays their table from the treasury through the switch into three
banks and two e-wallets, waits for late returns, closes the settlement cycle, reconciles the
treasury's, the switch's and the banks' figures to the dong, and says whether the day held.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from banks.behaviour import Behaviour
from banks.payment_table import read_payment_table
from banks.population import Mix, generate_population
from banks.reconcile import reconcile
from banks.registry import DEFAULT_SHARES
from banks.treasury import TreasurySettings
from switchlab.live import watching
from switchlab.world import World, WorldSettings

RETURN_WAIT_S = 10.0


@dataclass
class DemoSettings:
    beneficiaries: int = 10_000
    seed: int = 2026
    treasury: TreasurySettings = field(default_factory=TreasurySettings)  # mode, bulk size…
    output_dir: Path = Path("runs/demo")
    progress: bool = True
    live_port: int | None = 0  # the live page's port (0: the OS chooses; None: no page)


async def run_demo(settings: DemoSettings) -> int:
    """Run the day; 0 when every transfer is final and the books agree, 1 otherwise."""
    out = settings.output_dir
    population = generate_population(settings.beneficiaries, settings.seed,
                                     Mix(participants=DEFAULT_SHARES))
    table_path = out / "payment_table.csv"
    population.write_payment_table(table_path)
    payments = read_payment_table(table_path)
    behaviours = {bic: Behaviour(seed=settings.seed, return_deceased_after_s=0.2)
                  for bic in DEFAULT_SHARES}
    world = World(WorldSettings(run_dir=out, behaviours=behaviours, treasury=settings.treasury))
    print(f"switchlab demo: {len(population.beneficiaries):,} beneficiaries "
          f"({len(payments):,} with a linked account), {settings.treasury.mode} mode, "
          f"seed {settings.seed}")
    try:
        await world.start(population)  # inside: a party that fails to start is stopped too
        async with watching(world, len(payments), "payout", settings.progress,
                            settings.live_port) as monitor:
            await world.treasury.run(payments)
            await monitor.sample()
        expected_returns = sum(1 for b in population.payable() if b.dies_after_payment)
        await world.treasury.wait_for_returns(expected_returns, RETURN_WAIT_S)
        result = world.treasury.result(payments)
        cycle = await world.switch_admin("POST", "/v1/admin/settlement/close")
        problems = reconcile(result, await world.switch_totals(), await world.bank_totals())
    finally:
        await world.stop()
    result.write(out / "results.csv")
    cash = result.write_cash_list(out / "cash_list.csv", (
        {"citizen_id": b.citizen_id, "full_name": b.full_name, "amount_vnd": b.amount_vnd,
         "programme": b.programme} for b in population.cash_list()))
    deceased = result.write_deceased_list(out / "deceased.csv")
    (out / "summary.json").write_text(json.dumps(
        result.as_dict() | {"settlement": cycle, "reconciliation": problems}, indent=1,
        ensure_ascii=False), encoding="utf-8")
    print(result.summary())
    print(f"Settlement cycle {cycle['cycle_id']}: {cycle['transfers']:,} transfers, "
          f"{cycle['transfers_vnd']:,} VND; net positions "
          + ", ".join(f"{bic} {net:+,}" for bic, net in sorted(cycle["net_vnd"].items())))
    print(f"Cash list for the post office: {cash:,} beneficiaries ({out / 'cash_list.csv'})")
    print(f"Reported deceased, back to the ministry: {deceased:,} ({out / 'deceased.csv'})")
    if problems:
        print("RECONCILIATION FAILED:\n  " + "\n  ".join(problems))
        return 1
    if result.by_status["unresolved"]:
        print(f"{result.by_status['unresolved']} transfers unresolved")
        return 1
    print("Reconciled to the dong: treasury debits = bank credits + returns; "
          "net positions sum to zero.")
    return 0
