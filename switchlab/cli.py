"""The `switchlab` command."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pydantic

from banks.payment_table import MAX_TABLE_ROWS
from banks.registry import SWITCH_BIC, TREASURY_BIC
from banks.treasury import MAX_CONCURRENCY, TreasurySettings
from conformance import command as conformance_command
from lab import postgres, prometheus
from lab.citizens import LINKED, LinkRequestsError, link_from_file
from lab.prometheus import PrometheusUnavailable
from loadtests.run import MAX_RUN_S as MAX_LOAD_S
from loadtests.run import MAX_WORKERS as MAX_LOAD_WORKERS
from loadtests.run import run_load
from loadtests.shape_names import SHAPE_NAMES
from protocol.codec import MAX_TRANSACTIONS_PER_MESSAGE
from protocol.directory import DirectoryError
from protocol.keys import SwitchKeys
from protocol.runtime import run_event_loop
from protocol.settings import describe as settings_problems
from scenarios.report import CRASH_EXIT_STATUS, terminal, write_crash_reports, write_reports
from scenarios.runner import run_scenario
from scenarios.spec import LIBRARY, ScenarioError, json_schema, load_scenario, shipped
from sim import command as simulate
from switch.__main__ import main as switch_main
from switch.workers import MAX_PROCESSES as MAX_SWITCH_PROCESSES
from switchlab import journal, payout_register_command, targets
from switchlab.bench import run_bench, table
from switchlab.demo import DemoSettings, run_demo
from switchlab.payout import (
    PayoutRefused,
    PayoutSettings,
    RemoteSwitch,
    SwitchFailed,
    describe,
    pay_table,
)

MAX_INSTANT_TRANSFERS = 500_000  # the bench holds each message and its answer in memory
MAX_USERS = 10_000  # Locust users on one machine
MAX_HOLD_S = 86_400  # `demo --hold-s`: a day
HELD, FAILED, INVALID = 0, 1, 2  # exit statuses; CRASH_EXIT_STATUS (3) when the run broke
# Standard output closed by its reader (`switchlab payout … | head -1`): the status a shell
# gives a program SIGPIPE ended (128 + 13), never 1, which would read as the books failing.
OUTPUT_CLOSED = 141


def _demo(args: argparse.Namespace) -> int:
    """pay a generated payout table through the switch, all on 127.0.0.1

    Start the switch, three mock banks and two e-wallets in one process, generate a payment
    table, pay it from the mock treasury, reconcile and print a summary. Exit status 0 when
    the books agree to the dong, 1 otherwise, 2 on a bad argument."""
    try:
        treasury = TreasurySettings(mode=args.mode, bulk_size=args.bulk_size,
                                    concurrency=args.concurrency)
    except pydantic.ValidationError as error:
        print(f"switchlab demo: {settings_problems(None, None, error)}", file=sys.stderr)
        return INVALID
    settings = DemoSettings(beneficiaries=args.beneficiaries, seed=args.seed, treasury=treasury,
                            output_dir=args.output, progress=not args.no_progress,
                            live_port=None if args.no_live else args.live_port,
                            hold_s=args.hold_s, prometheus=args.prometheus,
                            mtls=args.mtls)
    if not _prometheus_here(args):
        return INVALID
    try:
        return run_event_loop(run_demo(settings))
    except PrometheusUnavailable as error:
        print(f"switchlab demo: {error}", file=sys.stderr)
        return INVALID


def _run(args: argparse.Namespace) -> int:
    """play a payout-day scenario and check its expectations

    Exit status: 0 when every invariant and expectation holds, 1 when one fails, 2 when the
    scenario file is invalid (the error names file, line and field), 3 when the run itself
    crashed (junit.xml then holds the error as a test case). `switchlab scenarios` lists the
    shipped ones."""
    path = _scenario_file(args.scenario)
    if not path.exists():
        print(f"switchlab run: no file {path} and no shipped scenario of that name "
              "(`switchlab scenarios` lists them)", file=sys.stderr)
        return INVALID
    try:
        scenario = load_scenario(path)
    except ScenarioError as error:
        print(f"switchlab run: invalid scenario: {error}" if "\n" not in str(error)
              else f"switchlab run: invalid scenario:\n{error}", file=sys.stderr)
        return INVALID
    if scenario.switch.get("journal") == "postgresql" and (
            why := postgres.unavailable()) is not None:
        print(f"switchlab run: {scenario.name} needs PostgreSQL here: {why}", file=sys.stderr)
        return INVALID
    if not _prometheus_here(args):
        return INVALID
    out = args.output or Path("runs") / scenario.name
    try:
        record = run_event_loop(run_scenario(
            scenario, out, ci=args.ci, progress=not args.no_progress,
            live_port=None if args.no_live else args.live_port, prometheus=args.prometheus))
    except PrometheusUnavailable as error:
        print(f"switchlab run: {error}", file=sys.stderr)
        return INVALID
    except Exception as error:  # the run broke: CI must still see why, in junit.xml
        paths = write_crash_reports(scenario.name, error, out)
        logging.getLogger("switchlab").exception("the run of %s crashed", scenario.name)
        print(f"Scenario {scenario.name}: the run CRASHED ({type(error).__name__}: {error})\n"
              "reports: " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
        return CRASH_EXIT_STATUS
    paths = write_reports(record, out)
    print(terminal(record))
    print("reports: " + ", ".join(str(p) for p in paths.values()))
    return HELD if record.passed else FAILED


def _prometheus_here(args: argparse.Namespace) -> bool:
    """False, said on stderr, when --prometheus is asked and Prometheus is not installed:
    found before the day starts, not after its servers are up."""
    if args.prometheus and prometheus.binary() is None:
        print(f"switchlab {args.command}: --prometheus needs Prometheus's server, which is not "
              "installed (Debian: apt-get install prometheus)", file=sys.stderr)
        return False
    return True


def _scenario_file(given: str) -> Path:
    """A scenario file's path: the file if it exists, else the shipped scenario of that name
    (with or without .yaml), so that `switchlab run switch-crash-mid-run` works anywhere."""
    path = Path(given)
    if path.exists() or path.parent != Path("."):
        return path
    return shipped(given) or path


def _read_key(path: Path | None, option: str) -> str:
    """A key from its file (never from the command line, where `ps` shows it)."""
    if path is None:
        raise ValueError(f"--switch needs {option}")
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise ValueError(f"{option} {path} is empty")
    return key


def _remote_keys(args: argparse.Namespace) -> SwitchKeys:
    """The treasury's keys towards a running switch, in the scheme's signing mode: hmac, the
    secret the operator provisioned (--key-file); ed25519, the treasury's private key
    (--key-file) and the switch's public key (--switch-key-file)."""
    key = _read_key(args.key_file, "--key-file")
    if args.signing == "hmac":
        return SwitchKeys(signing="hmac", secret=key.encode())
    return SwitchKeys(signing="ed25519", private_key=key,
                      switch_public_key=_read_key(args.switch_key_file, "--switch-key-file"))


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
            url=args.switch, bic=args.bic, keys=_remote_keys(args), switch_bic=args.switch_bic,
            inbound_host=args.inbound_host, inbound_port=args.inbound_port, admin_token=token)
    lab_files = {"accounts_dir": args.accounts, "register_file": args.register,
                 "links_file": args.links}
    if remote is not None and any(lab_files.values()):
        raise ValueError("--accounts, --register and --links make the embedded lab's world; "
                         "a running switch (--switch) has its own")
    if args.accounts is not None and not args.accounts.is_dir():
        raise ValueError(f"--accounts {args.accounts}: not a folder of <BIC>.csv files")
    output = args.output or Path(f"payout-{args.table.stem}")
    return PayoutSettings(table=args.table, output=output, treasury=treasury, remote=remote,
                          returns_wait_s=args.returns_wait_s, progress=not args.no_progress,
                          payout_register=args.payout_register, **lab_files)


def _payout(args: argparse.Namespace) -> int:
    """pay your own payment table (CSV), resumably, and report

    Check the table, verify each account against the row's citizen id and name (acmt.023),
    pay it through the switch, and write the results, the post office's cash list and the
    list of deceased for the ministry, and a report. A corrected table pays only what no
    earlier run of the treasury paid or listed (its payout register; see `switchlab
    payout-register`). By default in an embedded lab on 127.0.0.1; with
    --switch, against a running switch. Killed or interrupted, the same command finishes the
    run without paying anyone twice. Exit status: 0 every good row paid or listed, 1 a
    reconciliation mismatch, books the admin token cannot read, an unresolved row, or a switch
    that refuses the treasury or cannot be reached, 2 a bad table or bad arguments. The table's
    format: docs/payment-table.md."""
    try:
        settings = _payout_settings(args)
        report = run_event_loop(pay_table(settings))
    except OSError as error:  # the table or a folder; or a switch that cannot be reached
        print(f"switchlab payout: {error.filename}: {error.strerror}" if error.filename
              else f"switchlab payout: {error}", file=sys.stderr)
        return INVALID
    except pydantic.ValidationError as error:
        print(f"switchlab payout: {settings_problems(None, None, error)}", file=sys.stderr)
        return INVALID
    except (ValueError, PayoutRefused) as error:
        print(f"switchlab payout: {error}", file=sys.stderr)
        return INVALID
    except SwitchFailed as error:  # the payout's own failure, not a creditor's
        print(f"switchlab payout: {error}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        print("switchlab payout: interrupted; nothing is lost: run the same command again to "
              "finish", file=sys.stderr)
        return 130
    print(describe(report))
    for trouble in (report.unreached, report.not_reconciled):
        if trouble:
            print(f"switchlab payout: {trouble}", file=sys.stderr)
    return report.exit_code


def _link(args: argparse.Namespace) -> int:
    """citizens link their own payout accounts, from your file of their requests

    Each row (citizen_id, participant_bic, account_id, login) is one citizen's request, signed
    in to the population register as themselves (login: the one the register issued them);
    the register asks the switch, which asks the account's participant to confirm (acmt.023)
    before linking. Each verdict is written to --output. Exit status: 0 every request linked,
    1 some refused, 2 a bad file or a register that refused the whole request. The flow and
    the file: docs/population.md."""
    output = args.output or args.requests.with_name(f"{args.requests.stem}-verdicts.csv")
    try:
        counts = run_event_loop(link_from_file(args.requests, args.register, output))
    except (LinkRequestsError, DirectoryError) as error:
        print(f"switchlab link: {error}", file=sys.stderr)
        return INVALID
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        print(f"switchlab link: the register at {args.register} cannot be reached: {error}",
              file=sys.stderr)
        return INVALID
    print(", ".join(f"{n:,} {status}" for status, n in sorted(counts.items()))
          + f"; each verdict in {output}")
    return HELD if set(counts) <= LINKED else FAILED


def _whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`, or a readable error."""
    def whole_number(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value:,} is not from {low:,} to {high:,}")
        return value
    return whole_number


def _positive(high: float) -> Callable[[str], float]:
    """An argparse type: a number above 0 and at most `high`."""
    def positive_number(text: str) -> float:
        value = float(text)
        if not 0 < value <= high:
            raise argparse.ArgumentTypeError(f"{value:g} is not above 0 and at most {high:g}")
        return value
    return positive_number


def _scenarios(args: argparse.Namespace) -> int:
    """list the shipped scenarios, or print the scenario JSON Schema

    One line per scenario of the shipped library; with --schema, the JSON Schema of scenario
    files (for editors)."""
    if args.schema:
        print(json.dumps(json_schema(), indent=1, ensure_ascii=False))
        return HELD
    print(f"Shipped scenarios ({LIBRARY}); play one with `switchlab run <name> [--ci]`:")
    paths = sorted(LIBRARY.glob("*.yaml"), key=lambda path: path.stem)
    width = max(len(path.stem) for path in paths)
    for path in paths:
        scenario = load_scenario(path)
        first = " ".join(scenario.description.split()).split(". ")[0].rstrip(".")
        print(f"  {path.stem:<{width}}  {textwrap.shorten(first, 100, placeholder=' …')}")
    return HELD


def _bench(args: argparse.Namespace) -> int:
    """measure instant and bulk throughput against floors from the same run

    Probe the machine, then measure the codec, a bare forwarder (the floor), instant transfers
    through the switch and a bulk payout; print each figure beside its floor; with --journal,
    the instant and bulk runs again on a PostgreSQL journal with --switch-processes switch
    processes, beside the SQLite ones. Takes both cores for minutes at the default sizes.
    Then each figure against its target (switchlab/targets.py); with --check, exit status 1
    when one is missed, 4 when none is but the run did not measure them all (e.g.
    --bulk-beneficiaries 0: a partial gate). Exit status 2 when a PostgreSQL server it needs
    refuses or cannot start."""
    if args.journal is not None and args.journal != "local" and not args.journal.startswith(
            ("postgresql://", "postgres://")):
        print("switchlab bench: --journal takes a postgresql:// URL or 'local'",
              file=sys.stderr)
        return INVALID
    try:
        figures = run_event_loop(run_bench(args.instant_transfers, args.concurrency,
                                           args.bulk_beneficiaries, args.output,
                                           show_progress=not args.no_progress,
                                           mode=args.signing, journal=args.journal,
                                           switch_processes=args.switch_processes))
    except (RuntimeError, OSError, *postgres.ERRORS) as error:  # a server it needs said no
        print(f"switchlab bench: {error}", file=sys.stderr)
        return INVALID
    print(table(figures))
    verdicts = targets.check(figures)
    print(f"\ntargets (switchlab/targets.py; where they stand: docs/performance.md)"
          f"{'' if args.check else '; --check gates on them'}:")
    print(targets.verdict_table(verdicts))
    status, said = targets.gate(verdicts)
    if not args.check:
        return HELD
    print(f"switchlab bench --check: {said}", file=sys.stderr if status else sys.stdout)
    return status


def _load(args: argparse.Namespace) -> int:
    """Locust, headless and bounded, against a switch started on 127.0.0.1

    Start the switch and five participants in a process of their own, run Locust headless
    against them for a bounded time, write Locust's CSV and HTML reports, and exit with
    Locust's status (non-zero on any failure; 3 if the target did not start). With
    --workers, Locust runs distributed: a master and that many worker processes."""
    try:
        return run_load(args.output, args.seconds, args.users, args.spawn_rate, args.shape,
                        args.accounts, args.workers, progress=not args.no_progress)
    except RuntimeError as error:  # the target did not start
        print(f"switchlab load: {error}", file=sys.stderr)
        return CRASH_EXIT_STATUS


def _conformance(args: argparse.Namespace) -> int:
    """run the conformance suite against your bank's own endpoint

    Start a switch and the participants it needs on this machine, admit your bank with the
    credentials printed (or given), run the cases against its inbound URL through recording
    relays, and write the verdicts with every message exchanged: terminal, report.json,
    junit.xml, report.html. Exit status: 0 CONFORMS (every mandatory case run and passed),
    1 DOES NOT CONFORM (a mandatory case failed, or could not run for want of an account or
    hook), 2 bad arguments or a bank that cannot be tested (unreachable, refusing the
    switch's signature), 4 PARTIAL RUN (--case or --tag left mandatory cases out and none
    of those run failed: not a conformance verdict). How to prepare the bank:
    docs/conformance.md."""
    return conformance_command.run(args)


def _switch(args: argparse.Namespace) -> int:
    """run the switch alone from a YAML config

    Serve the switch from a configuration file (README: Running the switch alone) until
    SIGTERM or Ctrl-C; a relative journal_path is taken from the current folder. With
    --processes N (and a PostgreSQL journal_url), N switch processes on one port, any that
    dies restarted. Exit status 2 on a bad configuration."""
    return switch_main(["--config", str(args.config.resolve()), "--log-level", args.log_level,
                        "--processes", str(args.processes)])


class _DefaultsShown(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default after its help, except where there is none to show (a flag that
    is off, an option with no default)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _command(commands: Any, name: str, handler: Callable[[argparse.Namespace], int]
             ) -> argparse.ArgumentParser:
    """A subcommand run by `handler`, described by its docstring (first line: the summary in
    the command list; the rest: the description), whose --help shows every default."""
    summary, _, description = (handler.__doc__ or "").partition("\n")
    command = commands.add_parser(
        name, help=summary, description=" ".join(description.split()),
        formatter_class=_DefaultsShown)
    command.set_defaults(handler=handler, command=name)
    return command


def _watching(command: argparse.ArgumentParser) -> None:
    """The progress and live-page options of the commands that play a payout day."""
    command.add_argument("--no-progress", action="store_true",
                         help="no progress bar (for CI logs)")
    command.add_argument("--live-port", type=_whole_number(0, 65_535), default=0,
                         help="port of the live page on 127.0.0.1 (0: one the OS chooses)")
    command.add_argument("--no-live", action="store_true", help="serve no live page")
    command.add_argument("--prometheus", action="store_true",
                         help="start a Prometheus server on 127.0.0.1 for the day, with the "
                         "shipped alert rules, scraping the switch and the participants "
                         "(Debian's prometheus package; docs/operations.md, Alerts)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchlab",
        description="A NAPAS-style payment switch simulator and integration test harness. "
        f"Exit status: {HELD} held, {FAILED} a check failed, {INVALID} the input is invalid, "
        f"{CRASH_EXIT_STATUS} the run itself crashed, {targets.PARTIAL_EXIT} a partial run (a "
        "verdict on part of what was asked: conformance --case, bench --check with targets "
        "not measured).",
        formatter_class=_DefaultsShown,
    )
    parser.add_argument("--log-level", default="WARNING",
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="Python logging level")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = _command(commands, "demo", _demo)
    demo.add_argument("--beneficiaries", type=_whole_number(1, MAX_TABLE_ROWS), default=10_000,
                      help="people in the generated population (about 98 %% have an account)")
    demo.add_argument("--seed", type=int, default=2026, help="the population's and faults' seed")
    demo.add_argument("--mode", choices=("bulk", "instant"), default="bulk",
                      help="bulk pacs.008 files, or one instant transfer at a time")
    for flag, high, default, what in (
            ("--bulk-size", MAX_TRANSACTIONS_PER_MESSAGE, 1_000, "transactions per pacs.008 in "
             "bulk mode"),
            ("--concurrency", MAX_CONCURRENCY, 64, "instant transfers in flight at once")):
        demo.add_argument(flag, type=_whole_number(1, high), default=default, help=what)
    demo.add_argument("--output", type=Path, default=Path("runs/demo"),
                      help="folder for the journal, payment table, results and cash list")
    demo.add_argument("--hold-s", type=_whole_number(0, MAX_HOLD_S), default=0,
                      metavar="SECONDS", help="after the day, keep the switch, the banks and "
                      "the live page up this long to look around (Ctrl-C ends it early)")
    demo.add_argument("--mtls", action="store_true", help="mutual TLS everywhere: the lab "
                      "makes an authority and each party's certificate under OUTPUT/tls, every "
                      "participant is taken only with its client certificate (issue #22)")
    _watching(demo)

    run = _command(commands, "run", _run)
    run.add_argument("scenario", help="a scenario YAML file, or the name of a shipped one "
                     "(`switchlab scenarios` lists them)")
    run.add_argument("--ci", action="store_true", help="use the scenario's ci_size population")
    run.add_argument("--output", type=Path,
                     help="folder for the journal and the reports (default: runs/<scenario>)")
    _watching(run)

    scenarios = _command(commands, "scenarios", _scenarios)
    scenarios.add_argument("--schema", action="store_true",
                           help="print the JSON Schema of scenario files")

    bench = _command(commands, "bench", _bench)
    bench.add_argument("--instant-transfers", type=_whole_number(100, MAX_INSTANT_TRANSFERS),
                       default=20_000,
                       help="instant transfers (held in memory with their answers, ~3 KB each)")
    bench.add_argument("--concurrency", type=_whole_number(1, MAX_CONCURRENCY), default=64,
                       help="instant transfers in flight at once")
    bench.add_argument("--signing", choices=("hmac", "ed25519"), default="hmac",
                       help="the signing mode of the instant runs (the signing rows measure "
                            "both)")
    bench.add_argument("--bulk-beneficiaries", type=_whole_number(0, MAX_TABLE_ROWS),
                       default=1_000_000, help="people in the bulk payout; 0 skips it")
    bench.add_argument("--output", type=Path, default=Path("runs/bench"),
                       help="folder for the journals, ledgers and tables")
    bench.add_argument("--journal", metavar="URL|local",
                       help="also run on a PostgreSQL journal: a postgresql:// URL whose user "
                       "may create databases (one per run, dropped after), or 'local' for a "
                       "throwaway server from the installed PostgreSQL")
    bench.add_argument("--switch-processes", type=_whole_number(1, 16), default=2,
                       help="switch processes sharing the PostgreSQL journal (with --journal)")
    bench.add_argument("--no-progress", action="store_true", help="no progress bars (CI logs)")
    bench.add_argument("--check", action="store_true",
                       help="exit 1 when a figure misses its target (a pipeline's gate)")

    load = _command(commands, "load", _load)
    load.add_argument("--seconds", type=_whole_number(1, MAX_LOAD_S), default=30,
                      help="how long the load runs")
    load.add_argument("--users", type=_whole_number(1, MAX_USERS), default=20,
                      help="Locust users (a shape's peak)")
    load.add_argument("--spawn-rate", type=_positive(MAX_USERS), default=10.0,
                      help="users started per second")
    load.add_argument("--shape", choices=SHAPE_NAMES,
                      help="payout-day load shape; without one, a constant --users")
    load.add_argument("--accounts", type=_whole_number(100, MAX_TABLE_ROWS), default=20_000,
                      help="beneficiaries with accounts at the mock banks")
    load.add_argument("--workers", type=_whole_number(0, MAX_LOAD_WORKERS), default=0,
                      help="Locust distributed on 127.0.0.1: a master and this many workers")
    load.add_argument("--output", type=Path, default=Path("runs/load"),
                      help="folder for Locust's reports and the target's files")
    load.add_argument("--no-progress", action="store_true", help="no progress bar (CI logs)")

    journal.add_parser(commands)
    simulate.add_parser(commands)
    payout = _command(commands, "payout", _payout)
    payout.add_argument("table", type=Path, help="the payment table, CSV in UTF-8")
    payout.add_argument("--output", type=Path,
                        help="folder for the run's state, results and lists "
                        "(default payout-<table name>)")
    payout.add_argument("--mode", choices=("bulk", "instant"), default="bulk",
                        help="bulk pacs.008 files, or one instant transfer at a time")
    payout.add_argument("--bulk-size", type=_whole_number(1, 100_000), default=1_000,
                        help="transactions per pacs.008 in bulk mode")
    payout.add_argument("--concurrency", type=_whole_number(1, MAX_CONCURRENCY), default=64,
                        help="instant transfers in flight at once")
    payout.add_argument("--files-in-flight", type=_whole_number(1, 64), default=4,
                        help="bulk files (and verification requests) in flight at once")
    payout.add_argument("--rate", type=float, help="at most this many transfers a second")
    payout.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True,
                        help="verify each account (acmt.023) before paying it")
    payout.add_argument("--time-limit-s", type=float, default=3_600.0,
                        help="for the whole run, from the first payment to the last status")
    payout.add_argument("--returns-wait-s", type=float, default=0.0,
                        help="wait this long for returns (pacs.004) after the last status")
    payout.add_argument("--accounts", type=Path, metavar="DIR",
                        help="the embedded lab's bank accounts: <BIC>.csv files (account_id,"
                        "holder_name,citizen_id,status: open, closed, blocked or deceased)")
    payout.add_argument("--register", type=Path, metavar="FILE",
                        help="the embedded lab's population register (CSV, docs/population.md)"
                        ": the table is checked against it before anyone is paid")
    payout.add_argument("--links", type=Path, metavar="FILE",
                        help="citizens' own link requests for the embedded lab (CSV: "
                        "citizen_id,participant_bic,account_id)")
    payout.add_argument("--switch", metavar="URL", help="a running switch, e.g. "
                        "http://127.0.0.1:8080 (default: an embedded lab)")
    payout.add_argument("--bic", default=TREASURY_BIC, help="the treasury's BIC (--switch)")
    payout.add_argument("--signing", choices=("hmac", "ed25519"), default="hmac",
                        help="the running switch's signing mode (--switch)")
    payout.add_argument("--key-file", type=Path,
                        help="the treasury's key as the operator provisioned it: the secret "
                        "(hmac) or the private key (ed25519) (--switch)")
    payout.add_argument("--switch-bic", default=SWITCH_BIC,
                        help="the switch's BIC, as its answers are addressed (--switch)")
    payout.add_argument("--switch-key-file", type=Path,
                        help="ed25519 only: the switch's public key, to check what it signs "
                        "(--switch; with hmac the treasury's own secret checks it)")
    payout.add_argument("--inbound-host", default="127.0.0.1",
                        help="the address the treasury listens on for what the switch pushes "
                        "(--switch)")
    payout.add_argument("--inbound-port", type=_whole_number(1, 65_535),
                        help="where the switch pushes reports and returns (--switch)")
    payout.add_argument("--admin-token-file", type=Path,
                        help="the switch's admin token, to reconcile with its books (--switch)")
    payout.add_argument("--payout-register", type=Path, metavar="PATH",
                        help="the treasury's payout register, shared by its runs (default "
                        "payout-register/<BIC>.sqlite beside the --output folder)")
    payout.add_argument("--no-progress", action="store_true",
                        help="no progress bar (for CI logs)")
    payout_register_command.add_parser(commands)

    link = _command(commands, "link", _link)
    link.add_argument("requests", type=Path, help="citizens' requests, CSV in UTF-8")
    link.add_argument("--register", required=True, metavar="URL",
                      help="the population register, e.g. http://127.0.0.1:8090")
    link.add_argument("--output", type=Path,
                      help="the verdicts, CSV (default <requests>-verdicts.csv)")

    conformance = _command(commands, "conformance", _conformance)
    conformance_command.add_options(conformance, _whole_number)

    switch = _command(commands, "switch", _switch)
    switch.add_argument("--config", type=Path, required=True,
                        help="the switch's YAML configuration")
    switch.add_argument("--processes", type=_whole_number(1, MAX_SWITCH_PROCESSES), default=1,
                        help="switch processes on one port (SO_REUSEPORT); more than one needs "
                        "journal_url: a PostgreSQL database they share")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The `switchlab` command; returns its exit status (argparse's 2 on bad arguments)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a bad argument (2, the error printed)
        return int(exit_.code or 0)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    try:
        status = int(args.handler(args))
        sys.stdout.flush()  # a reader that left shows here, not in the interpreter's exit
        return status
    except BrokenPipeError:  # `switchlab … | head` closed our output: not an error of ours
        # Python's documented way (library/signal.html, "Note on SIGPIPE"): point stdout at
        # devnull so that the interpreter's last flush does not complain a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        with contextlib.suppress(OSError):
            print(f"switchlab {args.command}: standard output closed by its reader (| head?); "
                  f"stopped writing (exit status {OUTPUT_CLOSED})", file=sys.stderr)
        return OUTPUT_CLOSED
    except OSError as error:  # a port in use, a folder it may not write: the machine said no
        print(f"switchlab {args.command}: {error}", file=sys.stderr)
        return INVALID


if __name__ == "__main__":
    sys.exit(main())
