"""`switchlab demo`: one payout day, end to end, on this machine.

Generates beneficiaries, pays their table from the treasury through the switch into three
banks and two e-wallets, waits for late returns, closes the settlement cycle, reconciles the
treasury's, the switch's and the banks' figures to the dong, and says whether the day held.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from banks import cash_list
from banks.behaviour import Behaviour
from banks.payment_table import read_payment_table
from banks.payout import PayoutResult
from banks.population import Mix, Population, generate_population
from banks.registry import DEFAULT_SHARES, TREASURY
from banks.treasury import TreasurySettings
from lab.live import watching
from lab.world import World, WorldSettings
from protocol.runtime import until_stopped
from protocol.wording import count, vietnam_now

RETURN_WAIT_S = 10.0


@dataclass
class DemoSettings:
    beneficiaries: int = 10_000
    seed: int = 2026
    treasury: TreasurySettings = field(default_factory=TreasurySettings)  # mode, bulk size…
    output_dir: Path = Path("runs/demo")
    progress: bool = True
    live_port: int | None = 0  # the live page's port (0: the OS chooses; None: no page)
    hold_s: float = 0.0  # servers and live page kept up after the day, to look around
    prometheus: bool = False  # a Prometheus server scraping the day, with the shipped rules
    mtls: bool = False  # HTTPS with client certificates everywhere (protocol/tls.py)


async def run_demo(settings: DemoSettings, announce: Callable[[str], None] = print) -> int:
    """Run the day, `announce` saying where to look; 0 when every transfer is final and the
    books agree, 1 otherwise."""
    out = settings.output_dir
    population = generate_population(settings.beneficiaries, settings.seed,
                                     Mix(participants=DEFAULT_SHARES))
    table_path = out / "payment_table.csv"
    population.write_payment_table(table_path, places=True)
    payments = read_payment_table(table_path)
    behaviours = {bic: Behaviour(seed=settings.seed, return_deceased_after_s=0.2)
                  for bic in DEFAULT_SHARES}
    world = World(WorldSettings(run_dir=out, behaviours=behaviours, treasury=settings.treasury,
                                mtls=settings.mtls))
    print(f"switchlab demo: {count(len(population.beneficiaries), 'beneficiary', 'beneficiaries')} "
          f"({len(payments):,} with a linked account), {settings.treasury.mode} mode, "
          f"seed {settings.seed}")
    try:
        await world.start(population)  # inside: a party that fails to start is stopped too
        if settings.mtls:
            print(f"mutual TLS: every party's certificate under {out / 'tls'} (curl --cacert "
                  f"{out / 'tls' / 'authority.pem'} for the admin API)")
        async with watching(world, len(payments), "payout", settings.progress,
                            settings.live_port, announce, settings.prometheus) as monitor:
            await world.treasury.run(payments)
            await monitor.sample()
            await monitor.finish()
            expected_returns = sum(1 for b in population.payable() if b.dies_after_payment)
            await world.treasury.wait_for_returns(expected_returns, RETURN_WAIT_S)
            result = world.treasury.result(payments)
            cycle = await world.switch_admin("POST", "/v1/admin/settlement/close")
            problems = await world.reconcile(result)
            outcome = _report(out, result, cycle, problems, population)
            if settings.hold_s:
                print(f"Holding the switch, the banks and the live page for "
                      f"{settings.hold_s:,.0f} s (Ctrl-C ends it) …", flush=True)
                await until_stopped(settings.hold_s, (signal.SIGINT,))
    finally:
        await world.stop()
    return outcome


def _report(out: Path, result: PayoutResult, cycle: dict[str, Any], problems: list[str],
            population: Population) -> int:
    """Write the files and print the day; 0 when the books agree and nothing is unresolved."""
    result.write(out / "results.csv")
    # The lists people read, by the one writer `switchlab payout` uses (banks/cash_list.py)
    heading = cash_list.Heading(f"{TREASURY.name} — {TREASURY.bic}", vietnam_now().date())
    cash = [cash_list.list_row(row)
            for row in result.cash_list_rows(population.without_account_rows())]
    deceased = [cash_list.list_row(row) for row in result.deceased_rows()]
    cash_list.write_list(out, "cash_list", cash, cash_list.CASH_LIST, heading, ",")
    cash_list.write_list(out, "deceased", deceased, cash_list.DECEASED_LIST, heading, ",")
    (out / "summary.json").write_text(json.dumps(
        result.as_dict() | {"settlement": cycle, "reconciliation": problems}, indent=1,
        ensure_ascii=False), encoding="utf-8")
    print(result.summary())
    print(f"Settlement cycle {cycle['cycle_id']}: {count(cycle['transfers'], 'transfer')}, "
          f"{cycle['transfers_vnd']:,} VND; net positions "
          + ", ".join(f"{bic} {net:+,}" for bic, net in sorted(cycle["net_vnd"].items())))
    print(f"Cash list for the post office: "
          f"{count(len(cash), 'beneficiary', 'beneficiaries')} ({out / 'cash_list.xlsx'}, "
          ".html, .csv)")
    print(f"Reported deceased, back to the ministry: {len(deceased):,} "
          f"({out / 'deceased.xlsx'}, .html, .csv)")
    if problems:
        print("RECONCILIATION FAILED:\n  " + "\n  ".join(problems))
        return 1
    if result.by_status["unresolved"]:
        print(f"{count(result.by_status['unresolved'], 'transfer')} unresolved")
        return 1
    print("Reconciled to the dong: treasury debits = bank credits + returns; "
          "net positions sum to zero.", flush=True)
    return 0
