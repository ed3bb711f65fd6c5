"""`switchlab conformance`: its options, and the run from the arguments to the exit status.

Exit status (RunResult.verdict): 0 CONFORMS, every mandatory case run and passed; 1 DOES NOT
CONFORM, a mandatory case failed or could not run for want of an account or hook; 2 bad
arguments, a bad accounts or key file, a port in use, or a bank that cannot be tested at all
(unreachable, or refusing the switch's signature), each said in one sentence; 4 PARTIAL RUN,
--case or --tag left mandatory cases out and none of those run failed: not a verdict.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from yarl import URL

from banks.accounts_file import read_accounts
from banks.registry import SWITCH_BIC
from conformance import credentials, evidence
from conformance.catalogue import CASES, selected
from conformance.context import UNKNOWN_ACCOUNT
from conformance.declaration import Declaration, read_declaration
from conformance.lab import LabError
from conformance.report import terminal, write_reports
from conformance.rules import Schemas
from conformance.runner import (
    CONFORMS,
    DOES_NOT_CONFORM,
    NOT_TESTED,
    PARTIAL_RUN,
    SuiteSettings,
    run_suite,
)
from protocol.ids import is_bic
from protocol.iso_schemas import SCHEMA_FOLDER
from protocol.keys import read_public_key
from protocol.runtime import run_event_loop
from protocol.wording import count

PASSED_EXIT, FAILED_EXIT, INVALID_EXIT, PARTIAL_EXIT = 0, 1, 2, 4  # 3: a run that crashed
EXITS = {CONFORMS: PASSED_EXIT, DOES_NOT_CONFORM: FAILED_EXIT, NOT_TESTED: INVALID_EXIT,
         PARTIAL_RUN: PARTIAL_EXIT}
MAX_BURST = 1_000
DEFAULT_SWITCH_PORT = 8480


def add_options(command: argparse.ArgumentParser,
                whole_number: Callable[[int, int], Callable[[str], int]]) -> None:
    command.usage = ("%(prog)s --participant-url URL --bic BIC --accounts CSV [options]\n"
                     "       %(prog)s verify REPORT [--public-key PEM]\n"
                     "       %(prog)s --list | --plan")
    actions = command.add_subparsers(
        dest="conformance_action", title="commands", metavar="COMMAND",
        description="without one, the options below run the suite against the bank")
    verify = actions.add_parser(
        "verify", formatter_class=command.formatter_class, prog=f"{command.prog} verify",
        help="check a signed report folder: `verify REPORT [--public-key PEM]`",
        description="Check a signed report folder (or a file in it): exit 0 when no file in "
        "it was added, removed or changed since the suite signed it, 1 naming the first that "
        "was (or a signature that does not check), 2 for bad arguments.")
    verify.add_argument("report", type=Path, metavar="REPORT",
                        help="the report folder, e.g. conformance-BANKVNVX/")
    verify.add_argument("--public-key", type=Path, metavar="PEM",
                        help="the public key the report must be signed with: "
                        f"{credentials.REPORT_PUBLIC} in the credentials folder (the run "
                        "writes it), or the one the scheme holds; without it the key the "
                        "folder carries, which shows the folder is intact, not who signed")
    command.add_argument("--participant-url", metavar="URL",
                         help="the bank's inbound URL, where the switch posts to it, e.g. "
                         "http://127.0.0.1:8201/iso20022")
    command.add_argument("--bic", help="the bank's BIC, e.g. BANKVNVX")
    command.add_argument("--accounts", type=Path, metavar="CSV",
                         help="the bank's test accounts (docs/conformance.md)")
    command.add_argument("--case", action="append", default=[], metavar="NAME",
                         help="run this case (repeat for more); see --list. A run that "
                         "leaves mandatory cases out is a PARTIAL RUN (exit 4), not a verdict")
    command.add_argument("--tag", action="append", default=[],
                         help="run the cases with this tag (repeat for more); as --case")
    command.add_argument("--list", action="store_true", help="list the cases and exit")
    command.add_argument("--plan", action="store_true",
                         help="print the test plan (ids, versions, what each case proves and "
                         "catches, mandatory for which role) as Markdown and exit")
    command.add_argument("--declaration", type=Path, metavar="JSON",
                         help="the bank's roles and optional features, which make cases "
                         "mandatory (default: a creditor bank with every creditor feature)")
    command.add_argument("--burst", type=whole_number(1, MAX_BURST), default=20,
                         help="concurrent instant transfers in creditor.burst")
    command.add_argument("--signing", choices=("hmac", "ed25519"), default="hmac",
                         help="the scheme's signing mode")
    command.add_argument("--credentials", type=Path, default=Path("conformance-credentials"),
                         help="folder of the keys between the switch and the bank: made on "
                         "the first run, reused after")
    command.add_argument("--secret-file", type=Path,
                         help="hmac: the shared secret (instead of the folder's)")
    command.add_argument("--bank-public-key-file", type=Path,
                         help="ed25519: the bank's public key, PEM (instead of the folder's)")
    command.add_argument("--switch-private-key-file", type=Path,
                         help="ed25519: the switch's private key, PEM (instead of the "
                         "folder's); the bank holds its public half")
    command.add_argument("--switch-host", default="127.0.0.1",
                         help="address the bank posts to the switch at")
    command.add_argument("--switch-port", type=whole_number(1, 65_535),
                         default=DEFAULT_SWITCH_PORT, help="port the bank posts to the switch at")
    command.add_argument("--schemas", type=Path, default=SCHEMA_FOLDER,
                         help="folder of the ISO 20022 schemas (XSD) to validate against "
                         "instead of those the package ships")
    command.add_argument("--output", type=Path,
                         help="folder for the reports (default conformance-<BIC>)")


def list_cases(declaration: Declaration) -> str:
    """One line a case: id@version, mandatory or conditional for `declaration`, tags, title."""
    width = max(len(case.plan_id) for case in CASES.values()) + 2
    tags = max(len(", ".join(case.tags)) for case in CASES.values()) + 2
    lines = [f"{'case':<{width}}{'required':<13}{'tags':<{tags}}what the bank must do"]
    for case in CASES.values():
        required = ("mandatory" if declaration.requires(case.role, case.feature)
                    else "conditional")
        lines.append(f"{case.plan_id:<{width}}{required:<13}"
                     f"{', '.join(case.tags):<{tags}}{case.title}")
    return "\n".join(lines)


def test_plan() -> str:
    """The published test plan (docs/conformance.md holds it, a test keeps them equal): a
    Markdown table of every case with its id, version, role and feature, what it proves and
    the defect it catches."""
    rows = ["| id | version | mandatory for | proves | catches |",
            "| --- | --- | --- | --- | --- |"]
    for case in CASES.values():
        who = {"any": "every bank", "creditor": "a creditor", "debtor": "a debtor"}[case.role]
        if case.feature:
            who += f" declaring `{case.feature}`"
        rows.append(f"| `{case.name}` | {case.version} | {who} | {case.expected} | "
                    f"{case.catches or '—'} |")
    return "\n".join(rows)


def _problem(args: argparse.Namespace) -> str | None:
    missing = [flag for flag, value in (("--participant-url", args.participant_url),
                                        ("--bic", args.bic), ("--accounts", args.accounts))
               if not value]
    if missing:
        return f"{', '.join(missing)} needed (or --list)"
    url = URL(args.participant_url)
    if url.scheme not in ("http", "https") or not url.host:
        return f"--participant-url {args.participant_url!r} is not an http(s) URL with a host"
    if not is_bic(args.bic):
        return f"--bic {args.bic!r} is not a BIC (8 or 11 capital letters and digits)"
    if args.bic == SWITCH_BIC:
        return f"--bic {args.bic} is the switch's own BIC"
    return None


def verify_report(report: Path, public_key: Path | None) -> int:
    """`switchlab conformance verify REPORT`: 0 untouched, 1 changed, 2 bad arguments."""
    try:
        key = None if public_key is None else read_public_key(
            public_key.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        print(f"switchlab conformance verify: {public_key}: {error} (the public half of the "
              f"report's key is {credentials.REPORT_PUBLIC} in the credentials folder)",
              file=sys.stderr)
        return INVALID_EXIT
    try:
        print(evidence.verify(report, key))
    except evidence.EvidenceError as error:
        print(f"switchlab conformance verify: REFUSED: {error}", file=sys.stderr)
        return FAILED_EXIT
    return PASSED_EXIT


def run(args: argparse.Namespace) -> int:
    """The command's body; returns the exit status."""
    if args.conformance_action == "verify":
        return verify_report(args.report, args.public_key)
    if args.plan:
        print(test_plan())
        return PASSED_EXIT
    try:
        declaration = (Declaration() if args.declaration is None
                       else read_declaration(args.declaration))
        if args.list:
            print(list_cases(declaration))
            return PASSED_EXIT
        problem = _problem(args)
        if problem is not None:
            raise ValueError(problem)
        cases = selected(args.case, args.tag)
        accounts = read_accounts(args.accounts)
        if any(a.account_id == UNKNOWN_ACCOUNT for a in accounts):
            raise ValueError(f"{args.accounts}: {UNKNOWN_ACCOUNT} is the account the suite "
                             "uses as one the bank does not hold; rename it")
        if not any(a.status == "open" for a in accounts):
            raise ValueError(f"{args.accounts}: at least one open account is needed")
        out = args.output or Path(f"conformance-{args.bic}")
        flags = (args.secret_file, args.bank_public_key_file, args.switch_private_key_file)
        made = [] if any(flags) else credentials.create(args.credentials, args.signing)
        keys = credentials.load(args.credentials, args.signing, *flags)
        schemas = Schemas(args.schemas)
        signer = credentials.report_key(args.credentials, keys)
        settings = SuiteSettings(
            participant_url=args.participant_url, bic=args.bic, keys=keys, accounts=accounts,
            cases=cases, run_dir=out / "switch", schemas=schemas, burst=args.burst,
            declaration=declaration, switch_host=args.switch_host,
            switch_port=args.switch_port)
    except (ValueError, OSError) as error:  # AccountsFileError, CredentialsError too
        print(f"switchlab conformance: {error}", file=sys.stderr)
        return INVALID_EXIT
    if made:
        print("New credentials made: " + ", ".join(str(p) for p in made))
    print(credentials.describe(args.credentials, keys,
                               f"http://{args.switch_host}:{args.switch_port}", SWITCH_BIC))
    print(f"Running {len(cases)} of {count(len(CASES), 'case')} against {args.bic} at "
          f"{args.participant_url} …", flush=True)
    try:
        result = run_event_loop(run_suite(settings))
    except LabError as error:
        print(f"switchlab conformance: {error}", file=sys.stderr)
        return INVALID_EXIT
    paths = write_reports(result, out)
    paths["signature"] = evidence.sign(out, signer)
    print(terminal(result))
    print("reports: " + ", ".join(str(p) for p in paths.values()))
    print(f"check them: switchlab conformance verify {out} --public-key "
          f"{args.credentials / credentials.REPORT_PUBLIC}")
    if result.stopped_because is not None:
        print(f"switchlab conformance: {result.stopped_because}", file=sys.stderr)
    return EXITS[result.verdict]

