"""`switchlab journal`: look into a switch's journal, from its file or from the running switch.

From a file, the journal is opened read-only (`JournalReader`, switch/store.py), which works
while the switch writes it; from a running switch, the same queries run behind its admin API
(`GET /v1/admin/transfers...`), so both sources give the same JSON and the same table. A
PostgreSQL journal has no file: any switch process on it answers for it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

from protocol.ids import is_bic
from protocol.reasons import DESCRIPTIONS
from protocol.wording import count
from switch import retention
from switch.journal import LISTED_COLUMNS, MAX_LISTED_TRANSFERS, described, iso_utc, listed
from switch.journal_errors import NotAJournal
from switch.journal_reader import JournalReader
from switch.retention_postgres import PostgresDays
from switch.states import TransferState

TOKEN_VARIABLE = "SWITCHLAB_ADMIN_TOKEN"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
REQUEST_TIMEOUT_S = 30.0
DEFAULT_SHOWN = 20
_DURATION = re.compile(r"(\d{1,6})([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}


class JournalError(Exception):
    """The source cannot answer (unreachable, refused, not a journal): exit 2."""


class Source(Protocol):
    def describe(self, end_to_end_id: str) -> dict[str, Any] | None: ...

    def transfers(self, state: str | None, participant: str | None, since_s: float | None,
                  limit: int, oldest_first: bool) -> dict[str, Any]: ...


class FileSource:
    """A journal file, opened read-only."""

    def __init__(self, path: Path) -> None:
        try:
            self.journal = JournalReader(path)
        except NotAJournal as error:
            raise JournalError(str(error)) from None

    def describe(self, end_to_end_id: str) -> dict[str, Any] | None:
        return self._read(lambda: self.journal.describe(end_to_end_id))

    def transfers(self, state: str | None, participant: str | None, since_s: float | None,
                  limit: int, oldest_first: bool) -> dict[str, Any]:
        found, more = self._read(lambda: self.journal.transfers(
            state, participant, since_s, limit, oldest_first))
        return {"transfers": [t.as_dict() for t in found], "more": more, "limit": limit}

    @staticmethod
    def _read(query: Callable[[], Any]) -> Any:
        try:
            return query()
        except NotAJournal as error:
            raise JournalError(str(error)) from None


class ArchiveSource:
    """An archive of the journal's past days (`switchlab journal archive`), read as a stream
    for each question: bounded memory, one pass over the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            retention.read_manifest(path)
        except retention.RetentionRefused as error:
            raise JournalError(str(error)) from None

    def describe(self, end_to_end_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = None
        history: list[tuple[Any, ...]] = []
        returned: list[tuple[Any, ...]] = []
        for table, row in self._rows():
            if row.get("end_to_end_id") != end_to_end_id:
                continue
            if table == "transfers":
                found = row
            elif table == "transitions":
                history.append((row["from_state"], row["to_state"], row["reason_code"],
                                row["at"]))
            elif table == "returns":
                returned.append((row["return_id"], row["amount_vnd"], row["reason_code"],
                                 row["settled_at"], row["cycle_id"]))
        if found is None:
            return None
        return described(_listed(found), history, returned)

    def transfers(self, state: str | None, participant: str | None, since_s: float | None,
                  limit: int, oldest_first: bool) -> dict[str, Any]:
        kept: deque[tuple[Any, ...]] = deque(maxlen=None if oldest_first else limit + 1)
        for table, row in self._rows():
            if table != "transfers" or (state is not None and row["state"] != state) or (
                    participant is not None and participant not in (
                        row["debtor_bic"], row["creditor_bic"])) or (
                    since_s is not None and row["received_at"] < since_s):
                continue
            kept.append(_listed(row))
            if oldest_first and len(kept) > limit:
                break
        rows = list(kept) if oldest_first else list(reversed(kept))
        found, more = listed(rows, limit, oldest_first)
        return {"transfers": [t.as_dict() for t in found], "more": more, "limit": limit}

    def _rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        try:
            yield from retention.archived_rows(self.path)
        except retention.RetentionRefused as error:
            raise JournalError(str(error)) from None


def _listed(row: dict[str, Any]) -> tuple[Any, ...]:
    """An archived transfer as a row of LISTED_COLUMNS."""
    return tuple(row[name] for name in LISTED_COLUMNS.split(", "))


class SwitchSource:
    """A running switch, through its admin API (bearer token)."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.token = token

    def describe(self, end_to_end_id: str) -> dict[str, Any] | None:
        return self._get(f"/v1/admin/transfers/{quote(end_to_end_id, safe='')}", {})

    def transfers(self, state: str | None, participant: str | None, since_s: float | None,
                  limit: int, oldest_first: bool) -> dict[str, Any]:
        query = {"limit": str(limit), "order": "oldest" if oldest_first else "newest"}
        if state is not None:
            query["state"] = state
        if participant is not None:
            query["participant"] = participant
        if since_s is not None:
            query["since"] = iso_utc(since_s)
        found = self._get("/v1/admin/transfers", query)
        assert found is not None
        return found

    def _get(self, path: str, query: dict[str, str]) -> dict[str, Any] | None:
        """The JSON the switch answers; None for a 404; JournalError for anything else."""
        async def get() -> tuple[int, str]:
            async with aiohttp.ClientSession(
                    headers={"Authorization": f"Bearer {self.token}"},
                    timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)) as session, \
                    session.get(f"{self.url}{path}", params=query) as response:
                return response.status, await response.text()

        try:
            status, body = asyncio.run(get())
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as error:
            raise JournalError(f"cannot reach the switch at {self.url}: "
                               f"{str(error) or type(error).__name__}") from None
        if status == 404 and path != "/v1/admin/transfers":
            return None
        if status == 401:
            raise JournalError(f"the switch at {self.url} refused the admin token (401)")
        if status != 200:
            raise JournalError(f"the switch at {self.url} answered {status}: {body.strip()}")
        try:
            answer: dict[str, Any] = json.loads(body)
        except ValueError:
            raise JournalError(f"{self.url} did not answer JSON: is it a switchlab switch?"
                               ) from None
        return answer


# ---- what the command line takes ------------------------------------------------------------


def _shown(text: str) -> int:
    """An argparse type: how many transfers to show."""
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_LISTED_TRANSFERS):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number from 1 to {MAX_LISTED_TRANSFERS:,}")
    return int(text)


def _bic(text: str) -> str:
    if not is_bic(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a BIC (8 or 11 capital letters and digits, e.g. BFTVVNVX)")
    return text


def _state(text: str) -> str:
    if text.upper() not in TransferState.__members__:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a state: {', '.join(TransferState)}")
    return text.upper()


def since(text: str, now_s: float | None = None) -> float:
    """An argparse type: a moment as unix seconds, from an ISO 8601 time (UTC unless it
    says otherwise) or a duration before now: 90s, 15m, 2h, 1d."""
    duration = _DURATION.fullmatch(text)
    if duration:
        now_s = time.time() if now_s is None else now_s
        return now_s - int(duration[1]) * _SECONDS[duration[2]]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an ISO 8601 time (2026-11-20T08:00:00Z) nor a duration "
            "before now (90s, 15m, 2h, 1d)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _source(args: argparse.Namespace) -> Source:
    if args.archive is not None:
        return ArchiveSource(args.archive)
    if args.file is not None:
        if str(args.file).startswith(("postgresql:", "postgres:")):
            raise JournalError("--file is for a SQLite journal file; a PostgreSQL journal is "
                               "looked into through a running switch: --switch URL")
        return FileSource(args.file)
    if not args.switch.startswith(("http://", "https://")):
        raise JournalError(f"--switch {args.switch!r} is not an http(s) URL, e.g. "
                           "http://127.0.0.1:8080")
    token = args.token or os.environ.get(TOKEN_VARIABLE)
    if not token:
        raise JournalError(f"--switch needs the admin token: --token, or {TOKEN_VARIABLE} "
                           "in the environment (kept out of the shell's history)")
    return SwitchSource(args.switch, token)


def add_parser(commands: Any) -> None:
    """`switchlab journal` and its three questions, under the `switchlab` command."""
    where = argparse.ArgumentParser(add_help=False)
    source = where.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", type=Path, metavar="PATH",
                        help="where the journal is: a SQLite journal file, e.g. "
                        "runs/demo/switch.sqlite (opened read-only; fine while the switch runs)")
    source.add_argument("--switch", metavar="URL",
                        help="or: a running switch, e.g. http://127.0.0.1:8080, asked through "
                        "its admin API (any switch process, on either journal)")
    source.add_argument("--archive", type=Path, metavar="FILE",
                        help="or: an archive of past days that `switchlab journal archive` "
                        "wrote (read from start to end for each question)")
    where.add_argument("--token", help="the switch's admin token, with --switch (default: "
                       f"${TOKEN_VARIABLE}, which keeps it out of the shell's history)")
    where.add_argument("--json", action="store_true", help="JSON for machines, not a table")

    journal = commands.add_parser(
        "journal", help="look into a switch's journal: a transfer, what is in flight, a "
        "participant's transfers",
        description="Look into a switch's journal, from its file (read-only, fine while the "
        "switch runs) or from the running switch (its admin API): a transfer's history by "
        "end-to-end id, what is in flight, a participant's transfers. Both give the same "
        "table, or the same JSON with --json. Exit status: 0 shown, 1 no such transfer, 2 a "
        "mistake in the command or a journal that cannot be read.")
    questions = journal.add_subparsers(dest="journal_question", required=True,
                                       metavar="QUESTION")

    show = questions.add_parser(
        "show", parents=[where], help="a transfer's state, history and return",
        description="A transfer by end-to-end id: parties, amount, state and reason, every "
        "change of state, and its return. Exit status 1 when the journal has no such id.")
    show.add_argument("end_to_end_id", help="the EndToEndId, as the debtor sent it")
    show.set_defaults(handler=run, answer=_show)

    in_flight = questions.add_parser(
        "in-flight", parents=[where], help="transfers PENDING, oldest first",
        description="Transfers journaled PENDING (forwarded, no final status yet), oldest "
        "first: the ones stuck longest come at the top.")
    in_flight.add_argument("--participant", type=_bic, help="only with this BIC as debtor or "
                           "creditor")
    in_flight.add_argument("--last", type=_shown, default=DEFAULT_SHOWN, metavar="N",
                           help=f"show at most N (1 to {MAX_LISTED_TRANSFERS:,}; default "
                           f"{DEFAULT_SHOWN})")
    in_flight.set_defaults(handler=run, answer=_in_flight)

    participant = questions.add_parser(
        "participant", parents=[where], help="a participant's last transfers",
        description="The last transfers a participant took part in, as debtor or creditor, "
        "in the order received.")
    participant.add_argument("bic", type=_bic, help="the participant's BIC, e.g. BFTVVNVX")
    participant.add_argument("--state", type=_state,
                             help=f"only in this state: {', '.join(TransferState)}")
    participant.add_argument("--since", type=since, metavar="TIME",
                             help="only received since TIME: ISO 8601 (UTC unless it says "
                             "otherwise) or a duration before now, like 15m or 2h")
    participant.add_argument("--last", type=_shown, default=DEFAULT_SHOWN, metavar="N",
                             help=f"show the last N (1 to {MAX_LISTED_TRANSFERS:,}; default "
                             f"{DEFAULT_SHOWN})")
    participant.set_defaults(handler=run, answer=_participant)
    _add_retention(questions)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day such as 2026-11-20") from None


def _journal_file(text: str) -> Path | str:
    """A SQLite journal file, or a PostgreSQL journal's libpq URL (kept as text: a path would
    fold its //)."""
    return text if text.startswith(POSTGRES_SCHEMES) else Path(text)


def _journal(file: Path | str) -> Path | retention.JournalDays:
    return file if isinstance(file, Path) else PostgresDays(file)


def _days(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 5):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days")
    return int(text)


def _add_retention(questions: Any) -> None:
    """`switchlab journal archive`, `verify` and `drop`: a year of payout days (issue #24)."""
    archive = questions.add_parser(
        "archive", help="archive the business days before a day to a file (and drop them)",
        description="Write every row of the business days (Vietnam time) before DAY to FILE, "
        "gzip-compressed JSON Lines, with FILE.manifest.json beside it (rows per table, totals "
        "per state and participant, SHA-256); verify it; with --drop, then delete those rows "
        "from the journal. Refused while any of those days is not over (a transfer in "
        "flight, a cycle open, a notice owed) or within the last --keep-days days. Fine "
        "while the switch runs. Exit status: 0 done, 2 refused or a mistake in the command.")
    archive.add_argument("--file", type=_journal_file, metavar="PATH|URL", required=True,
                         help="the SQLite journal file, e.g. runs/demo/switch.sqlite, or a "
                         "PostgreSQL journal's URL, postgresql://user@host:5432/switch")
    archive.add_argument("--before", type=_day, metavar="DAY", required=True,
                         help="archive the days before this one (YYYY-MM-DD), not itself")
    archive.add_argument("--to", type=Path, metavar="FILE", required=True,
                         help="the archive to write, e.g. archive-2026-11.jsonl.gz (never "
                         "overwritten)")
    archive.add_argument("--keep-days", type=_days, default=retention.DEFAULT_KEEP_DAYS,
                         metavar="N", help="days the journal keeps online whatever is asked "
                         f"(default {retention.DEFAULT_KEEP_DAYS}: the switch answers "
                         "duplicates, inquiries and returns over them)")
    archive.add_argument("--drop", action="store_true",
                         help="once the archive is verified, drop those rows from the journal")
    archive.set_defaults(handler=_retention, action=_archive)
    verify = questions.add_parser(
        "verify", help="check an archive against its manifest",
        description="Read an archive again and check it against its manifest: its SHA-256, "
        "its rows per table and its totals. Exit status 0 when they agree, 2 otherwise.")
    verify.add_argument("archive", type=Path, metavar="FILE")
    verify.set_defaults(handler=_retention, action=_verify)
    drop = questions.add_parser(
        "drop", help="drop from the journal the rows an archive holds",
        description="Verify an archive, check that it holds every row the journal has of its "
        "days, unchanged, and that those days are over and outside --keep-days; then delete "
        "those rows from the journal, in batches a running switch hardly notices (on "
        "PostgreSQL: each past day's partitions detached, compared, dropped whole). "
        "The switch's all-time totals (GET /v1/admin/stats) do not change.")
    drop.add_argument("--file", type=_journal_file, metavar="PATH|URL", required=True,
                      help="the journal the archive was made of: a SQLite file or a "
                      "PostgreSQL URL")
    drop.add_argument("--archive", type=Path, metavar="FILE", required=True)
    drop.add_argument("--keep-days", type=_days, default=retention.DEFAULT_KEEP_DAYS,
                      metavar="N", help="as for archive: refused for days within the last N")
    drop.set_defaults(handler=_retention, action=_drop)


def _retention(args: argparse.Namespace) -> int:
    """Archive, verify or drop; a refusal or a journal that is none is a sentence on stderr
    and exit 2."""
    try:
        return int(args.action(args))
    except (retention.RetentionRefused, NotAJournal) as error:
        print(f"switchlab journal {args.journal_question}: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"switchlab journal {args.journal_question}: {error.filename or ''}: "
              f"{error.strerror or error}", file=sys.stderr)
        return 2


def _archive(args: argparse.Namespace) -> int:
    started = time.monotonic()
    manifest = retention.archive(_journal(args.file), args.before, args.to, args.keep_days)
    elapsed_s = time.monotonic() - started
    rows = sum(manifest["rows"].values())
    print(f"archived the days before {args.before}: {_counts(manifest['rows'])}\n"
          f"  {args.to} ({count(manifest['bytes'], 'byte')}, SHA-256 {manifest['sha256'][:16]}…), "
          f"verified; manifest {retention.manifest_path(args.to)}\n"
          f"  {count(rows, 'row')} in {elapsed_s:.1f} s ({rows / max(elapsed_s, 1e-9):,.0f} "
          f"rows/s)")
    if args.drop:
        _print_dropped(retention.drop(_journal(args.file), args.to, manifest, args.keep_days))
    return 0


def _verify(args: argparse.Namespace) -> int:
    manifest = retention.verify(args.archive)
    print(f"{args.archive}: verified, the days before {manifest['before']}: "
          f"{_counts(manifest['rows'])}")
    return 0


def _drop(args: argparse.Namespace) -> int:
    _print_dropped(retention.drop(_journal(args.file), args.archive,
                                  min_keep_days=args.keep_days))
    return 0


def _print_dropped(dropped: retention.Dropped) -> None:
    kept = (f"; {count(dropped.kept, 'archived row')} were not in the journal as archived (dropped "
            "already, or changed since) and were left alone" if dropped.kept else "")
    print(f"dropped {_counts(dropped.deleted)} in {dropped.elapsed_s:.1f} s{kept}")


def _counts(rows: dict[str, int]) -> str:
    """The rows per table: '1 transfer, 2 transitions, 0 returns, 1 message'."""
    return ", ".join(count(n, table.removesuffix("s")) for table, n in rows.items())


def run(args: argparse.Namespace) -> int:
    """Answer the question asked; a source that cannot answer is a sentence on stderr and
    exit 2."""
    try:
        return int(args.answer(_source(args), args))
    except JournalError as error:
        print(f"switchlab journal: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader (head, less) stopped reading: nothing went wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


# ---- the three questions ----------------------------------------------------------------------


def _show(source: Source, args: argparse.Namespace) -> int:
    found = source.describe(args.end_to_end_id)
    if found is None:
        print(f"no transfer {_printable(args.end_to_end_id)} in the journal", file=sys.stderr)
        return 1
    print(json.dumps(found, indent=1, ensure_ascii=False) if args.json else describe(found))
    return 0


def _in_flight(source: Source, args: argparse.Namespace) -> int:
    listing = source.transfers(str(TransferState.PENDING), args.participant, None, args.last,
                               True)
    who = f" with {args.participant}" if args.participant else ""
    shown = f"more than {args.last:,}" if listing["more"] else f"{len(listing['transfers']):,}"
    return _list(listing, args, f"nothing in flight{who}",
                 f"{shown} in flight{who}, oldest first", waiting_at_s=time.time())


def _participant(source: Source, args: argparse.Namespace) -> int:
    listing = source.transfers(args.state, args.bic, args.since, args.last, False)
    what = " ".join(filter(None, [
        args.state, f"transfers of {args.bic}",
        f"since {iso_utc(args.since)}"
        if args.since is not None else ""]))
    count = len(listing["transfers"])
    shown = f"the last {count:,}" if listing["more"] else f"all {count:,}"
    return _list(listing, args, f"no {what} in the journal",
                 f"{what}: {shown}, in the order received")


def _list(listing: dict[str, Any], args: argparse.Namespace, empty: str, title: str,
          waiting_at_s: float | None = None) -> int:
    """A listing as JSON, or as a title and a table (a sentence when it is empty)."""
    if args.json:
        print(json.dumps(listing, indent=1, ensure_ascii=False))
    elif listing["transfers"]:
        print(f"{title}\n{table(listing['transfers'], waiting_at_s)}")
    else:
        print(empty)
    return 0


# ---- for a person in a terminal -----------------------------------------------------------


def _printable(text: object) -> str:
    """Text a participant wrote, safe to print: no control or direction characters."""
    return "".join(c if c.isprintable() else "\N{REPLACEMENT CHARACTER}" for c in str(text))


def _reason(code: str | None, by: str | None = None) -> str:
    if not code:
        return ""
    text = f"{_printable(code)} {DESCRIPTIONS.get(code, '')}".rstrip()
    return f"{text} (given by {_printable(by)})" if by else text


def _unix(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def vnd(amount_vnd: int | None) -> str:
    """An amount; None is one refused AM12 whose text was no whole number of dong."""
    return "not a whole number of dong (AM12)" if amount_vnd is None else f"{amount_vnd:,} VND"


def table(transfers: Sequence[dict[str, Any]], waiting_at_s: float | None = None) -> str:
    """Aligned columns: times in ISO UTC, amounts in VND with thousands separators. With
    `waiting_at_s` (transfers in flight), how long each has waited by then instead of its
    state, reason and final time."""
    header: tuple[str, ...] = ("received (UTC)", "end-to-end id", "debtor", "creditor",
                               "amount", "mode")
    rows = [(t["received_at"], _printable(t["end_to_end_id"]), t["debtor_bic"],
             _printable(t["creditor_bic"]), vnd(t["amount_vnd"]), t["mode"]) for t in transfers]
    if waiting_at_s is None:
        header += ("state", "reason", "final (UTC)")
        rows = [(*row, t["state"], _printable(t["reason_code"] or ""), t["final_at"] or "")
                for row, t in zip(rows, transfers, strict=True)]
    else:
        header += ("waiting",)
        rows = [(*row, f"{waiting_at_s - _unix(t['received_at']):,.1f} s")
                for row, t in zip(rows, transfers, strict=True)]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {header.index("amount"), len(header) - 1} if waiting_at_s else {
        header.index("amount")}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.rjust(width) if i in right else cell.ljust(width)
                         for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
                         ).rstrip()

    return "\n".join([line(header), line(["-" * width for width in widths]),
                      *(line(row) for row in rows)])


def describe(found: dict[str, Any]) -> str:
    """A transfer, its history and its return, for a person."""
    received = datetime.fromisoformat(found["received_at"])
    final = found["final_at"]
    took = (f"  ({(datetime.fromisoformat(final) - received) / timedelta(seconds=1):,.3f} s "
            "after it was received)") if final else ""
    # The state it became final in, and the step that gave it its state now: after a
    # return, the reason is the return's, later than the final time (the history says when)
    became = next((f" {h['to']}" for h in found["history"] if h["at"] == final), "")
    now = next((h for h in reversed(found["history"]) if h["to"] == found["state"]), None)
    later = (f" (why it became {found['state']}, at {now['at']})"
             if now is not None and final and now["at"] != final else "")
    lines = [
        f"transfer {_printable(found['end_to_end_id'])}: {found['state']}",
        f"  debtor      {found['debtor_bic']}",
        f"  creditor    {_printable(found['creditor_bic'])}",
        f"  amount      {vnd(found['amount_vnd'])}",
        f"  mode        {found['mode']}",
        f"  message     MsgId {_printable(found['msg_id'])}, TxId {_printable(found['tx_id'])}",
        f"  received    {found['received_at']}",
        f"  final       {final or 'not yet (in flight)'}{became}{took}",
    ]
    if found["reason_code"]:
        lines.append(f"  reason      {_reason(found['reason_code'], found['reason_by'])}"
                     f"{later}")
    if found["cycle_id"] is not None:
        lines.append(f"  settled in  settlement cycle {found['cycle_id']}")
    history = [(h["at"], h["from"] or "(new)", h["to"], _reason(h["reason_code"]))
               for h in found["history"]]
    widths = [max(len(row[i]) for row in [("at (UTC)", "from", "to", ""), *history])
              for i in range(3)]
    lines += ["", "history"] + [
        f"  {at.ljust(widths[0])}  {old.ljust(widths[1])}  {new.ljust(widths[2])}  {reason}"
        .rstrip() for at, old, new, reason in [("at (UTC)", "from", "to", "reason"), *history]]
    returned = found["return"]
    if returned is not None:
        lines += ["", f"returned    {vnd(returned['amount_vnd'])} at {returned['settled_at']}, "
                  f"{_reason(returned['reason_code'])}, return id "
                  f"{_printable(returned['return_id'])}, settlement cycle "
                  f"{returned['cycle_id']}"]
    return "\n".join(lines)
