"""`switchlab payout-register`: read a treasury's payout register, and cancel a cash entry as
the post office confirms it did not pay it (with the reason), so that a later run may pay that
payment by account."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from banks.payout_register import PayoutRegister, RegisterError, key_of
from protocol.ids import citizen_id_problem

INVALID = 2


def add_parser(commands: Any) -> None:
    """`switchlab payout-register show|cancel-cash`, under the `switchlab` command."""
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--register", type=Path, required=True, metavar="PATH",
                       help="the register's file, e.g. payout-register/TRSYVNV1.sqlite beside "
                       "the payout folders (summary.json names it)")
    where.add_argument("--citizen-id", required=True, help="the beneficiary's CCCD")
    register = commands.add_parser(
        "payout-register", help="a treasury's payout register: show a citizen's entries, "
        "cancel a cash entry",
        description="What every payout run of a treasury paid, listed for cash or is paying, "
        "per citizen id, programme, period and arrears. Exit status: 0 done, 2 a mistake "
        "in the command or nothing to cancel.")
    actions = register.add_subparsers(dest="register_action", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show", parents=[where], help="a citizen's entries, and the cash entries cancelled "
        "(state cancelled: when, by whom, why), as JSON")
    show.set_defaults(handler=_show)
    cancel = actions.add_parser(
        "cancel-cash", parents=[where], help="cancel a cash entry the post office did not pay",
        description="Cancel one cash entry, as the post office confirms it did not pay it: a "
        "later run may then pay it by account. The reason is kept with the cancellation.")
    cancel.add_argument("--programme", required=True, help="as in the table, e.g. luong_huu")
    cancel.add_argument("--period", default="", help="as in the table, e.g. 2026-11")
    cancel.add_argument("--arrears", default="", help="as in the table, when it had one")
    cancel.add_argument("--reason", required=True,
                        help="why, as the post office confirmed it (kept in the register)")
    cancel.add_argument("--by", default=None, metavar="NAME",
                        help="who cancels, kept with the reason (default: your login name)")
    cancel.set_defaults(handler=_cancel)


def _checked(args: argparse.Namespace) -> PayoutRegister | None:
    problem = citizen_id_problem(args.citizen_id)
    if problem is not None:
        print(f"switchlab payout-register: citizen id {problem}", file=sys.stderr)
        return None
    if not args.register.is_file():
        print(f"switchlab payout-register: {args.register}: no such register", file=sys.stderr)
        return None
    try:
        return PayoutRegister(args.register)
    except RegisterError as error:
        print(f"switchlab payout-register: {error}", file=sys.stderr)
        return None


def _show(args: argparse.Namespace) -> int:
    register = _checked(args)
    if register is None:
        return INVALID
    with register:
        shown = [*register.entries(args.citizen_id), *register.cancellations(args.citizen_id)]
        print(json.dumps(shown, ensure_ascii=False, indent=1))
    return 0


def _cancel(args: argparse.Namespace) -> int:
    register = _checked(args)
    if register is None:
        return INVALID
    key = key_of(args.citizen_id, args.programme, args.period, args.arrears)
    try:
        with register:
            entry = register.cancel_cash(key, args.reason, _login() if args.by is None
                                         else args.by)
    except RegisterError as error:
        print(f"switchlab payout-register: {error}", file=sys.stderr)
        return INVALID
    print(f"Cancelled: {args.citizen_id} {args.programme} {args.period} {args.arrears}".rstrip()
          + f", {entry.amount_vnd:,} VND on the cash list of run {entry.run_id} "
          f"({entry.folder}); a later run may pay it by account.")
    return 0


def _login() -> str:
    """Who runs the command, by the operating system's account; "" when it cannot tell."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no name in the environment nor in the password database
        return ""
