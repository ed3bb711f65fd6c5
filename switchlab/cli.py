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
from banks.registry import SWITCH_BIC, TREASURY_BIC
from banks.treasury import MAX_CONCURRENCY, TreasurySettings
from loadtests.run import run_load
from loadtests.shape_names import SHAPE_NAMES
from protocol.runtime import run_event_loop
from scenarios.report import terminal, write_reports
from scenarios.runner import run_scenario
from scenarios.spec import ScenarioError, json_schema, load_scenario
from switch.__main__ import main as switch_main
from switchlab import journal
from switchlab.bench import run_bench, table
from switchlab.demo import DemoSettings, run_demo
from switchlab.payout import PayoutRefused, PayoutSettings, RemoteSwitch, describe, pay_table

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
    record = asyncio.run(run_scenario(scenario, out, ci=args.ci, progress=not args.no_progress))
    paths = write_reports(record, out)
    print(terminal(record))
    print("reports: " + ", ".join(str(p) for p in paths.values()))
    return 0 if record.passed else 1


def _read_key(path: Path | None, option: str) -> bytes:
    """A key from its file (never from the command line, where `ps` shows it)."""
    if path is None:
        raise ValueError(f"--switch needs {option}")
    key = path.read_bytes().strip()
    if not key:
        raise ValueError(f"{option} {path} is empty")
    return key


def _payout_settings(args: argparse.Namespace) -> PayoutSettings:
    """The command's arguments as settings; raises ValueError (or OSError for a key file)
    with a sentence for the user."""
    treasury = TreasurySettings(mode=args.mode, bulk_size=args.bulk_size,
                                concurrency=args.concurrency, files_in_flight=args.files_in_flight,
                                rate_per_s=args.rate, verify=args.verify,
                                final_timeout_s=args.time_limit_s)
    remote = None
    if args.switch:
        if args.inbound_port is None:
            raise ValueError("--switch needs --inbound-port: the port the switch pushes bulk "
                             "reports and returns to (the treasury's inbound_url)")
        token = (args.admin_token_file.read_text(encoding="utf-8").strip()
                 if args.admin_token_file else None)
        remote = RemoteSwitch(
            url=args.switch, bic=args.bic, secret=_read_key(args.key_file, "--key-file"),
            switch_bic=args.switch_bic,
            switch_secret=_read_key(args.switch_key_file, "--switch-key-file"),
            inbound_host=args.inbound_host, inbound_port=args.inbound_port, admin_token=token)
    output = args.output or Path(f"payout-{args.table.stem}")
    return PayoutSettings(table=args.table, output=output, treasury=treasury, remote=remote,
                          returns_wait_s=args.returns_wait_s, progress=not args.no_progress)


def _payout(args: argparse.Namespace) -> int:
    try:
        settings = _payout_settings(args)
        report = run_event_loop(pay_table(settings))
    except (ValueError, OSError, PayoutRefused) as error:  # pydantic's errors are ValueErrors
        print(f"switchlab payout: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("switchlab payout: interrupted; nothing is lost: run the same command again to "
              "finish", file=sys.stderr)
        return 130
    print(describe(report))
    return report.exit_code


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
    figures = run_event_loop(run_bench(args.instant_transfers, args.concurrency,
                                    args.bulk_beneficiaries, args.output))
    print(table(figures))
    return 0


def _load(args: argparse.Namespace) -> int:
    return run_load(args.output, args.seconds, args.users, args.spawn_rate, args.shape,
                    args.accounts)


def _switch(args: argparse.Namespace) -> int:
    return switch_main(["--config", str(args.config), "--log-level", args.log_level])


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
    bench.set_defaults(handler=_bench)

    load = commands.add_parser(
        "load", help="Locust, headless and bounded, against a switch started on 127.0.0.1")
    load.add_argument("--seconds", type=int, default=30)
    load.add_argument("--users", type=int, default=20)
    load.add_argument("--spawn-rate", type=float, default=10.0)
    load.add_argument("--shape", choices=SHAPE_NAMES)
    load.add_argument("--accounts", type=int, default=20_000)
    load.add_argument("--output", type=Path, default=Path("runs/load"))
    load.set_defaults(handler=_load)

    journal.add_parser(commands)
    payout = commands.add_parser(
        "payout", help="pay your own payment table (CSV), resumably, and report",
        description="Check the table, verify each account against the row's citizen id and "
        "name (acmt.023), pay it through the switch, and write the results, the post "
        "office's cash list and the list of deceased for the ministry. By default in an "
        "embedded lab on 127.0.0.1; with --switch, against a running switch. Killed or "
        "interrupted, the same command finishes the run without paying anyone twice. "
        "Exit status: 0 every good row paid or listed, 1 a reconciliation mismatch or an "
        "unresolved row, 2 a bad table or bad arguments. The table's format: "
        "docs/payment-table.md.")
    payout.add_argument("table", type=Path, help="the payment table, CSV in UTF-8")
    payout.add_argument("--output", type=Path,
                        help="folder for the run's state, results and lists "
                        "(default payout-<table name>)")
    payout.add_argument("--mode", choices=("bulk", "instant"), default="bulk")
    payout.add_argument("--bulk-size", type=_whole_number(1, 100_000), default=1_000)
    payout.add_argument("--concurrency", type=_whole_number(1, MAX_CONCURRENCY), default=64,
                        help="instant transfers in flight at once")
    payout.add_argument("--files-in-flight", type=_whole_number(1, 64), default=4,
                        help="bulk files (and verification requests) in flight at once")
    payout.add_argument("--rate", type=float, help="at most this many transfers a second")
    payout.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True,
                        help="verify each account (acmt.023) before paying it (default on)")
    payout.add_argument("--time-limit-s", type=float, default=3_600.0,
                        help="for the whole run, from the first payment to the last status")
    payout.add_argument("--returns-wait-s", type=float, default=0.0,
                        help="wait this long for returns (pacs.004) after the last status")
    payout.add_argument("--switch", metavar="URL", help="a running switch, e.g. "
                        "http://127.0.0.1:8080 (default: an embedded lab)")
    payout.add_argument("--bic", default=TREASURY_BIC, help="the treasury's BIC (--switch)")
    payout.add_argument("--key-file", type=Path, help="the treasury's key (--switch)")
    payout.add_argument("--switch-bic", default=SWITCH_BIC)
    payout.add_argument("--switch-key-file", type=Path,
                        help="the switch's key, to check what it sends (--switch)")
    payout.add_argument("--inbound-host", default="127.0.0.1")
    payout.add_argument("--inbound-port", type=_whole_number(1, 65_535),
                        help="where the switch pushes reports and returns (--switch)")
    payout.add_argument("--admin-token-file", type=Path,
                        help="the switch's admin token, to reconcile with its books (--switch)")
    payout.add_argument("--no-progress", action="store_true")
    payout.set_defaults(handler=_payout)

    switch = commands.add_parser("switch", help="run the switch alone from a YAML config")
    switch.add_argument("--config", type=Path, required=True)
    switch.set_defaults(handler=_switch)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
