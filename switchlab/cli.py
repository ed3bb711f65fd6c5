"""The `switchlab` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import pydantic

from banks.payment_table import MAX_TABLE_ROWS
from banks.treasury import MAX_CONCURRENCY, TreasurySettings
from loadtests.run import run_and_say
from loadtests.shape_names import SHAPE_NAMES
from protocol.runtime import run_event_loop
from scenarios.report import terminal, write_reports
from scenarios.runner import run_scenario
from scenarios.spec import ScenarioError, json_schema, load_scenario
from switch.__main__ import main as switch_main
from switchlab import postgres
from switchlab.bench import run_bench, table
from switchlab.demo import DemoSettings, run_demo

LIBRARY = Path(__file__).resolve().parents[1] / "scenarios" / "library"

MAX_INSTANT_TRANSFERS = 500_000  # the bench holds each message and its answer in memory


def _demo(args: argparse.Namespace) -> int:
    try:
        treasury = TreasurySettings(mode=args.mode, bulk_size=args.bulk_size,
                                    concurrency=args.concurrency)
    except pydantic.ValidationError as error:
        print(f"switchlab demo: {error}", file=sys.stderr)
        return 2
    settings = DemoSettings(beneficiaries=args.beneficiaries, seed=args.seed, treasury=treasury,
                            output_dir=args.output, progress=not args.no_progress)
    return run_event_loop(run_demo(settings))


def _run(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as error:
        print(f"invalid scenario:\n{error}", file=sys.stderr)
        return 2
    out = args.output or Path("runs") / scenario.name
    try:
        record = asyncio.run(run_scenario(scenario, out, ci=args.ci,
                                          progress=not args.no_progress))
    except RuntimeError as error:  # a server the scenario needs could not start here
        print(f"switchlab run: {error}", file=sys.stderr)
        return 2
    paths = write_reports(record, out)
    print(terminal(record))
    print("reports: " + ", ".join(str(p) for p in paths.values()))
    return 0 if record.passed else 1


def _whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`, or a readable error."""
    def whole_number(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value:,} is not from {low:,} to {high:,}")
        return value
    return whole_number


def _scenarios(args: argparse.Namespace) -> int:
    if args.schema:
        print(json.dumps(json_schema(), indent=1, ensure_ascii=False))
        return 0
    for path in sorted(LIBRARY.glob("*.yaml")):
        print(path)
    return 0


def _bench(args: argparse.Namespace) -> int:
    if args.journal is not None and args.journal != "local" and not args.journal.startswith(
            ("postgresql://", "postgres://")):
        print("switchlab bench: --journal takes a postgresql:// URL or 'local'",
              file=sys.stderr)
        return 2
    try:
        figures = run_event_loop(run_bench(args.instant_transfers, args.concurrency,
                                           args.bulk_beneficiaries, args.output,
                                           journal=args.journal,
                                           switch_processes=args.switch_processes))
    except (RuntimeError, OSError, *postgres.ERRORS) as error:  # a server it needs said no
        print(f"switchlab bench: {error}", file=sys.stderr)
        return 2
    print(table(figures))
    return 0


def _load(args: argparse.Namespace) -> int:
    return run_and_say("switchlab load", args.output, args.seconds, args.users,
                       args.spawn_rate, args.shape, args.accounts, args.workers)


def _switch(args: argparse.Namespace) -> int:
    return switch_main(["--config", str(args.config), "--log-level", args.log_level,
                        "--processes", str(args.processes)])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchlab",
        description="A NAPAS-style payment switch simulator and integration test harness.",
    )
    parser.add_argument("--log-level", default="WARNING", help="Python logging level")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo",
        help="pay a generated payout table through the switch, all on 127.0.0.1",
        description="Start the switch, three mock banks and two e-wallets in one process, "
        "generate a payment table, pay it from the mock treasury and print a summary.",
    )
    demo.add_argument("--beneficiaries", type=int, default=10_000)
    demo.add_argument("--seed", type=int, default=2026)
    demo.add_argument("--mode", choices=("bulk", "instant"), default="bulk")
    demo.add_argument("--bulk-size", type=int, default=1_000,
                      help="transactions per pacs.008 in bulk mode")
    demo.add_argument("--concurrency", type=int, default=64,
                      help="instant transfers in flight at once")
    demo.add_argument("--output", type=Path, default=Path("runs/demo"),
                      help="folder for the journal, payment table, results and cash list")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar (for CI logs)")
    demo.set_defaults(handler=_demo)

    run = commands.add_parser(
        "run", help="play a payout-day scenario and check its expectations",
        description="Exit status: 0 when every invariant and expectation holds, 1 when one "
        "fails, 2 when the scenario file is invalid.")
    run.add_argument("scenario", type=Path, help="scenario YAML, e.g. scenarios/library/x.yaml")
    run.add_argument("--ci", action="store_true", help="use the scenario's ci_size population")
    run.add_argument("--output", type=Path, help="report folder (default runs/<scenario>)")
    run.add_argument("--no-progress", action="store_true")
    run.set_defaults(handler=_run)

    scenarios = commands.add_parser(
        "scenarios", help="list the shipped scenarios, or print the scenario JSON Schema")
    scenarios.add_argument("--schema", action="store_true",
                           help="print the JSON Schema of scenario files (for editors)")
    scenarios.set_defaults(handler=_scenarios)

    bench = commands.add_parser(
        "bench", help="measure instant and bulk throughput against floors from the same run")
    bench.add_argument("--instant-transfers", type=_whole_number(100, MAX_INSTANT_TRANSFERS),
                       default=20_000, help="messages and answers are held in memory, ~3 KB each")
    bench.add_argument("--concurrency", type=_whole_number(1, MAX_CONCURRENCY), default=64)
    bench.add_argument("--bulk-beneficiaries", type=_whole_number(0, MAX_TABLE_ROWS),
                       default=1_000_000, help="0 to skip the bulk payout")
    bench.add_argument("--output", type=Path, default=Path("runs/bench"))
    bench.add_argument("--journal", metavar="URL|local",
                       help="also run on a PostgreSQL journal: a postgresql:// URL whose user "
                       "may create databases (one per run, dropped after), or 'local' for a "
                       "throwaway server from the installed PostgreSQL")
    bench.add_argument("--switch-processes", type=_whole_number(1, 16), default=2,
                       help="switch processes sharing the PostgreSQL journal (with --journal)")
    bench.set_defaults(handler=_bench)

    load = commands.add_parser(
        "load", help="Locust, headless and bounded, against a switch started on 127.0.0.1")
    load.add_argument("--seconds", type=int, default=30)
    load.add_argument("--users", type=int, default=20)
    load.add_argument("--spawn-rate", type=float, default=10.0)
    load.add_argument("--shape", choices=SHAPE_NAMES)
    load.add_argument("--accounts", type=int, default=20_000)
    load.add_argument("--workers", type=int, default=0,
                      help="Locust distributed on 127.0.0.1: a master and this many workers")
    load.add_argument("--output", type=Path, default=Path("runs/load"))
    load.set_defaults(handler=_load)

    switch = commands.add_parser("switch", help="run the switch alone from a YAML config")
    switch.add_argument("--config", type=Path, required=True)
    switch.add_argument("--processes", type=int, default=1,
                        help="switch processes on one port (SO_REUSEPORT); more than one needs "
                        "journal_url: a PostgreSQL database they share")
    switch.set_defaults(handler=_switch)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
