"""Retention of the journal (issue #24, a year of payout days): the rows of the business days
before a given day archived to a file a person and a program can read back, the archive
verified, then those rows dropped from the journal. One engine for both journals: a journal
supplies its days (JournalDays: SqliteDays here, deleting in batches; PostgresDays in
switch/retention_postgres.py, dropping whole partitions), the checks, the archive and the
comparison are the same.

A business day is a calendar day in Vietnam (UTC+7, no daylight saving), the day a transfer
was received. Only days that are over are taken: every transfer final, settled in a closed
settlement cycle, every notice delivered, every return settled in a closed cycle; and at
least `min_keep_days` old (the window in which the switch still answers for them: a
duplicate end-to-end id, a pacs.028 inquiry, a pacs.004 return; docs/operations.md).

The archive: `FILE` is gzip-compressed JSON Lines, one row a line ({"table": ..., "row":
{...}}): transfers, then their transitions, then their returns, then the messages received
those days; `FILE.manifest.json` holds the rows per table, the totals per state and per
participant, and the file's SHA-256. Memory is bounded: rows are streamed out and, for the
drop, the keys are streamed back from the archive.

On SQLite the drop deletes by primary key, in batches of DROP_BATCH rows a transaction, only
rows still as archived (a row changed since, say a transfer returned meanwhile, stays and is
counted as kept): so it runs beside a running switch, whose writer waits at most one batch.
The totals behind `GET /v1/admin/stats` are counters that a delete (or a dropped partition)
leaves alone: the all-time totals do not change when a day is dropped.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import itertools
import json
import math
import sqlite3
import time
import zlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

from protocol.wording import count
from switch.journal_errors import NotAJournal
from switch.journal_reader import JournalReader
from switch.states import TransferState

FORMAT = "switchlab-journal-archive/1"
BUSINESS_TIME = timezone(timedelta(hours=7), "ICT")  # Vietnam: the scheme's business day
DEFAULT_KEEP_DAYS = 35  # the online window: returns and inquiries of a month, and a margin
DROP_BATCH = 5_000  # rows deleted a transaction: the switch's writer waits at most that long
TRANSFER_FIELDS = ("end_to_end_id", "tx_id", "msg_id", "debtor_bic", "creditor_bic",
                   "amount_vnd", "state", "reason_code", "reason_by", "bulk", "received_at",
                   "final_at", "cycle_id", "creditor_notice", "debtor_notice")
TRANSITION_FIELDS = ("seq", "end_to_end_id", "from_state", "to_state", "reason_code", "at")
RETURN_FIELDS = ("return_id", "end_to_end_id", "creditor_bic", "debtor_bic", "amount_vnd",
                 "reason_code", "settled_at", "cycle_id", "debtor_notice")
MESSAGE_FIELDS = ("sender_bic", "msg_id", "body_sha256", "received_at")
TABLES = ("transfers", "transitions", "returns", "messages")
PAID = ("SETTLED", "RETURNED")  # states in which the creditor was paid
WRITE_LINES = 2_000  # lines compressed at once
MAX_LINE_BYTES = 8_192  # an archived row is well under 1 KB
MAX_MANIFEST_BYTES = 1 << 20  # a manifest's totals name a few hundred participants at most
_LINE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class RetentionRefused(Exception):
    """The days asked cannot be archived or dropped (yet); the sentence says why."""


def day_start_s(day: date) -> float:
    """Unix time at which a business day begins (00:00 in Vietnam)."""
    return datetime(day.year, day.month, day.day, tzinfo=BUSINESS_TIME).timestamp()


def business_day(at_s: float) -> date:
    """The business day of a moment (unix s)."""
    return datetime.fromtimestamp(at_s, BUSINESS_TIME).date()


@dataclass
class Tally:
    """What an archive holds, counted as rows are written or read back: rows per table,
    count and VND per transfer state, and per participant the VND debited and credited by
    transfers that paid (SETTLED or RETURNED) and the VND returned."""

    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    by_state: dict[str, dict[str, int]] = field(default_factory=dict)
    participants: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: {"debited_vnd": 0, "credited_vnd": 0,
                                                     "returned_vnd": 0}))

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.rows[table] += 1
        if table == "transfers":
            entry = self.by_state.setdefault(row["state"], {"count": 0, "amount_vnd": 0})
            entry["count"] += 1
            entry["amount_vnd"] += row["amount_vnd"]
            if row["state"] in PAID:
                self.participants[row["debtor_bic"]]["debited_vnd"] += row["amount_vnd"]
                self.participants[row["creditor_bic"]]["credited_vnd"] += row["amount_vnd"]
        elif table == "returns":
            self.participants[row["creditor_bic"]]["returned_vnd"] += row["amount_vnd"]

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "by_state": dict(sorted(self.by_state.items())),
                "participants": dict(sorted(self.participants.items()))}


@dataclass(frozen=True)
class Dropped:
    """What a drop deleted, and the archived rows it left: no longer in the journal as
    archived (dropped already, or changed since the archive)."""

    deleted: dict[str, int]
    kept: int
    elapsed_s: float


def manifest_path(archive: Path) -> Path:
    return archive.with_name(archive.name + ".manifest.json")


# The SQL of retention, one text for both journals: each fills in its own way of saying "of
# the days before the bound" ({old}: SQLite by received_at, PostgreSQL by business_day, which
# prunes the partitions), its join key ({same}), the bound's placeholder ({bound}), and the
# tables a day's rows are read from ({transfers}, {transitions}, {returns}: PostgreSQL reads
# a drop's detached partitions).
OVER_CHECKS = {
    ("transfer", "still in flight (PENDING)"):
        "SELECT count(*) FROM {transfers} t WHERE {old} AND t.state = 'PENDING'",
    ("transfer", "settled in a settlement cycle still open"):
        "SELECT count(*) FROM {transfers} t JOIN cycles c USING (cycle_id)"
        " WHERE {old} AND c.closed_at IS NULL",
    ("transfer", "whose notices are not delivered yet"):
        "SELECT count(*) FROM {transfers} t WHERE {old}"
        " AND (t.creditor_notice = 1 OR t.debtor_notice = 1)",
    ("return", "not settled in a closed cycle or not told to the debtor yet"):
        "SELECT count(*) FROM {returns} r JOIN {transfers} t {same}"
        " LEFT JOIN cycles c ON c.cycle_id = r.cycle_id WHERE {old}{old_r}"
        " AND (c.closed_at IS NULL OR r.debtor_notice = 1)",
}
DAY_ROWS = {
    "transfers": (TRANSFER_FIELDS, "SELECT " + ", ".join(f"t.{name}" for name in TRANSFER_FIELDS)
                  + " FROM {transfers} t WHERE {old} ORDER BY t.received_at, t.end_to_end_id"),
    "transitions": (TRANSITION_FIELDS, "SELECT " + ", ".join(
        f"x.{name}" for name in TRANSITION_FIELDS) + " FROM {transfers} t JOIN {transitions}"
        " x {same} WHERE {old}{old_x} ORDER BY t.received_at, t.end_to_end_id, x.seq"),
    "returns": (RETURN_FIELDS, "SELECT " + ", ".join(f"r.{name}" for name in RETURN_FIELDS)
                + " FROM {transfers} t JOIN {returns} r {same} WHERE {old}{old_r}"
                " ORDER BY t.received_at, t.end_to_end_id"),
    "messages": (MESSAGE_FIELDS, f"SELECT {', '.join(MESSAGE_FIELDS)} FROM messages"
                 " WHERE received_at < {bound} ORDER BY received_at, sender_bic, msg_id"),
}
LIVE = {"transfers": "transfers", "transitions": "transitions", "returns": "returns"}


class JournalDays(Protocol):
    """A journal as retention reads and drops its business days: SqliteDays here, and
    switch/retention_postgres.py's PostgresDays. `dialect` fills OVER_CHECKS and DAY_ROWS;
    `name` is the journal as a manifest names it."""

    name: str
    dialect: dict[str, str]

    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        """One snapshot: the checks and the rows read inside it agree."""
        ...

    def count(self, sql: str, bound_s: float) -> int: ...

    def fetch(self, sql: str, bound_s: float) -> Iterator[tuple[Any, ...]]:
        """The rows of a query, streamed."""
        ...

    def drop_days(self, before: date, bound_s: float, archive_path: Path) -> dict[str, int]:
        """Delete the rows of the days before `before` (checked over, compared with the
        verified archive, `drop`); the rows deleted per table."""
        ...

    def delete_messages(self, keys: list[tuple[str, str, float]], bound_s: float) -> int:
        """Delete messages (sender, MsgId, received_at) received before `bound_s`."""
        ...

    def close(self) -> None: ...


def _check_days_over(days: JournalDays, before: date, bound_s: float,
                     tables: dict[str, str] = LIVE) -> None:
    """Raises RetentionRefused naming why the rows received before `bound_s` (the start of
    `before`) cannot go yet: in flight, in an open cycle, notices or returns owed."""
    found = []
    for (noun, what), sql in OVER_CHECKS.items():
        rows = days.count(sql.format(**days.dialect, **tables), bound_s)
        if rows:
            found.append(f"{count(rows, noun)} {what}")
    if found:
        raise RetentionRefused(f"the days before {before} are not over: " + "; ".join(found))


def _rows(days: JournalDays, bound_s: float, parts: Sequence[dict[str, str]] = (LIVE,)
          ) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every row of the days before `bound_s`, table by table, streamed: the archive's order.
    `parts`: the tables to read the days from, one after the other (PostgreSQL: each day's
    partitions, detached by a drop); messages from the journal's own table."""
    for table, (names, sql) in DAY_ROWS.items():
        for tables in parts[:1] if table == "messages" else parts:
            for values in days.fetch(sql.format(**days.dialect, **tables), bound_s):
                row = dict(zip(names, values, strict=True))
                if table == "messages":
                    row["body_sha256"] = bytes(row["body_sha256"]).hex()
                elif table == "transfers":
                    row["bulk"] = int(row["bulk"])  # SQLite's integer, PostgreSQL's boolean
                yield table, row


class SqliteDays:
    """A SQLite journal file's days (switch/store.py): one connection, deletes in batches."""

    def __init__(self, journal: Path) -> None:
        """NotAJournal for anything but a journal, and RetentionRefused for one no switch
        of this version opened yet: without its counters, a drop would take the dropped
        days out of the all-time totals."""
        JournalReader(journal).close()  # NotAJournal, saying why, for anything but a journal
        self.dialect = {"old": "t.received_at < ?1", "old_x": "", "old_r": "",
                        "same": "USING (end_to_end_id)", "bound": "?1"}
        self.name = str(journal.resolve())
        self.journal = journal
        db = self.db = sqlite3.connect(journal, isolation_level=None)
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA synchronous=FULL")
        if db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                      " AND name = 'transfer_totals'").fetchone()[0] == 0:
            db.close()
            raise RetentionRefused(f"{journal} has no totals kept as counters yet: start the "
                                   "switch on it once (it counts the rows it holds), then retry")

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    def count(self, sql: str, bound_s: float) -> int:
        return int(self.db.execute(sql, (bound_s,)).fetchone()[0])

    def fetch(self, sql: str, bound_s: float) -> Iterator[tuple[Any, ...]]:
        return self.db.execute(sql, (bound_s,))  # a cursor, streamed as it is read

    def drop_days(self, before: date, bound_s: float, archive_path: Path) -> dict[str, int]:
        """Transfers go DROP_BATCH a transaction, each with its transitions and return, only
        when still as archived."""
        deleted = dict.fromkeys(TABLES, 0)
        try:
            with self.snapshot():  # one snapshot: the checks and the comparison agree
                _check_days_over(self, before, bound_s)
                _compare(_rows(self, bound_s), archived_rows(archive_path), archive_path)
            transfers = (row for table, row in archived_rows(archive_path)
                         if table == "transfers")
            while batch := list(itertools.islice(transfers, DROP_BATCH)):
                self._drop_transfers(batch, bound_s, deleted)
        except sqlite3.Error as error:
            raise NotAJournal(f"{self.journal}: cannot delete from it: {error}") from None
        return deleted

    def delete_messages(self, keys: list[tuple[str, str, float]], bound_s: float) -> int:
        try:
            self.db.execute("BEGIN IMMEDIATE")
            count = self.db.executemany(
                "DELETE FROM messages WHERE sender_bic = ? AND msg_id = ? AND received_at = ?"
                " AND received_at < ?", [(*key, bound_s) for key in keys]).rowcount
            self.db.execute("COMMIT")
        except sqlite3.Error as error:
            raise NotAJournal(f"{self.journal}: cannot delete from it: {error}") from None
        return int(count)

    def _drop_transfers(self, batch: list[dict[str, Any]], bound_s: float,
                        deleted: dict[str, int]) -> None:
        """One transaction: the batch's transfers still as archived, with their transitions
        and returns (a transfer unchanged has none it had not when archived)."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            ids = json.dumps([row["end_to_end_id"] for row in batch])
            now = {values[0]: dict(zip(TRANSFER_FIELDS, values, strict=True)) for values in
                   db.execute(f"SELECT {', '.join(TRANSFER_FIELDS)} FROM transfers WHERE"
                              " end_to_end_id IN (SELECT value FROM json_each(?1))"
                              " AND received_at < ?2", (ids, bound_s))}
            unchanged = json.dumps([row["end_to_end_id"] for row in batch
                                    if now.get(row["end_to_end_id"]) == row])
            for table in ("transitions", "returns", "transfers"):
                deleted[table] += db.execute(
                    f"DELETE FROM {table} WHERE end_to_end_id IN"
                    " (SELECT value FROM json_each(?1))", (unchanged,)).rowcount
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()


def _days_of(journal: Path | JournalDays) -> JournalDays:
    return SqliteDays(journal) if isinstance(journal, Path) else journal


def _check_window(before: date, min_keep_days: int, today: date | None) -> None:
    """RetentionRefused when the days before `before` reach into the online window."""
    latest = (today or business_day(time.time())) + timedelta(days=1 - min_keep_days)
    if before > latest:
        raise RetentionRefused(
            f"the days before {before} reach into the last {min_keep_days} days, in which "
            f"the switch still answers for its transfers (duplicates, inquiries, returns); "
            f"the latest day to archive before is {latest}")


def archive(journal: Path | JournalDays, before: date, to: Path,
            min_keep_days: int = DEFAULT_KEEP_DAYS, today: date | None = None
            ) -> dict[str, Any]:
    """Write the rows of the business days before `before` to `to` and its manifest, then
    verify them (`verify`); return the manifest. `journal`: a SQLite journal file, or the
    days of another journal (switch/retention_postgres.py). Raises NotAJournal for a file
    that is no journal, RetentionRefused when those days are not over or are within the
    online window, OSError when the archive cannot be written (an existing archive is never
    overwritten). The archive's folder is made when missing."""
    _check_window(before, min_keep_days, today)
    for path in (to, manifest_path(to)):
        if path.exists():
            raise RetentionRefused(f"{path} exists already; an archive is never overwritten")
    bound_s = day_start_s(before)
    days = _days_of(journal)
    try:
        with days.snapshot():  # one snapshot: the checks and the rows agree
            _check_days_over(days, before, bound_s)
            tally = Tally()
            digest = hashlib.sha256()
            partial = to.with_name(to.name + ".partial")
            to.parent.mkdir(parents=True, exist_ok=True)  # as every output folder is made
            with partial.open("wb") as raw, gzip.GzipFile(
                    fileobj=_Hashing(raw, digest), mode="wb", mtime=0, compresslevel=6) as out:
                lines: list[str] = []
                for table, row in _rows(days, bound_s):
                    tally.add(table, row)
                    lines.append(_LINE.encode({"table": table, "row": row}))
                    if len(lines) >= WRITE_LINES:  # one compression call for many lines
                        out.write(("\n".join(lines) + "\n").encode())
                        lines.clear()
                if lines:
                    out.write(("\n".join(lines) + "\n").encode())
    finally:
        days.close()
    manifest = {"format": FORMAT, "journal": days.name, "before": str(before),
                "before_s": bound_s, "archived_at": datetime.now(UTC).isoformat(),
                "file": to.name, "bytes": partial.stat().st_size,
                "sha256": digest.hexdigest()} | tally.as_dict()
    partial.rename(to)
    manifest_path(to).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    verify(to)
    return manifest


class _Hashing:
    """A file that hashes what is written to it."""

    def __init__(self, raw: Any, digest: Any) -> None:
        self.raw, self.digest = raw, digest

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return int(self.raw.write(data))

    def flush(self) -> None:
        self.raw.flush()


def read_manifest(archive_path: Path) -> dict[str, Any]:
    """The manifest beside an archive; RetentionRefused when it is missing or unreadable."""
    path = manifest_path(archive_path)
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise RetentionRefused(f"{path}: larger than any manifest")
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RetentionRefused(f"{archive_path}: no manifest {path.name} beside it") from None
    except RecursionError:
        raise RetentionRefused(f"{path}: not a readable manifest: nested too deep") from None
    except (OSError, ValueError) as error:
        raise RetentionRefused(f"{path}: not a readable manifest: {error}") from None
    if not (isinstance(manifest, dict) and manifest.get("format") == FORMAT
            and isinstance(manifest.get("sha256"), str)
            and isinstance(manifest.get("journal"), str)
            and isinstance(manifest.get("before"), str) and _is_day(manifest["before"])
            and isinstance(manifest.get("rows"), dict)
            and all(type(manifest["rows"].get(t)) is int for t in TABLES)):
        raise RetentionRefused(f"{path} is not a manifest of a journal archive ({FORMAT})")
    return manifest


def _is_day(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


_TEXT, _INT, _REAL = (str,), (int,), (int, float)
_MAYBE = (type(None),)
_SHAPES: dict[str, dict[str, tuple[type, ...]]] = {
    "transfers": {"end_to_end_id": _TEXT, "tx_id": _TEXT, "msg_id": _TEXT,
                  "debtor_bic": _TEXT, "creditor_bic": _TEXT, "amount_vnd": _INT,
                  "state": _TEXT, "reason_code": _TEXT + _MAYBE, "reason_by": _TEXT + _MAYBE,
                  "bulk": _INT, "received_at": _REAL, "final_at": _REAL + _MAYBE,
                  "cycle_id": _INT + _MAYBE, "creditor_notice": _INT, "debtor_notice": _INT},
    "transitions": {"seq": _INT, "end_to_end_id": _TEXT, "from_state": _TEXT + _MAYBE,
                    "to_state": _TEXT, "reason_code": _TEXT + _MAYBE, "at": _REAL},
    "returns": {"return_id": _TEXT, "end_to_end_id": _TEXT, "creditor_bic": _TEXT,
                "debtor_bic": _TEXT, "amount_vnd": _INT, "reason_code": _TEXT,
                "settled_at": _REAL, "cycle_id": _INT, "debtor_notice": _INT},
    "messages": {"sender_bic": _TEXT, "msg_id": _TEXT, "body_sha256": _TEXT,
                 "received_at": _REAL},
}
MAX_ARCHIVED_INT = 10**19  # past any journal's integer
MAX_ARCHIVED_TEXT = 200  # past any id, BIC or reason code the journal holds


def _well_formed(table: Any, row: Any) -> bool:
    """Whether an archived line's row has its table's columns, each of its type: text short
    and printable, numbers finite and within a journal's integers, states known."""
    shape = _SHAPES.get(table) if isinstance(table, str) else None
    if shape is None or not isinstance(row, dict) or row.keys() != shape.keys():
        return False
    for name, value in row.items():
        if type(value) not in shape[name]:  # bool is no int here, nor a string a number
            return False
        if isinstance(value, str) and not (len(value) <= MAX_ARCHIVED_TEXT
                                           and value.isprintable()):
            return False
        if isinstance(value, (int, float)) and not (
                math.isfinite(value) and abs(value) < MAX_ARCHIVED_INT):
            return False
    states = [row[name] for name in ("state", "from_state", "to_state") if row.get(name)]
    return all(state in TransferState.__members__ for state in states)


def archived_rows(archive_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The rows of an archive, streamed: (table, row), each of its table's shape.
    RetentionRefused for a file that is not an archive (not gzip, a line that is not JSON or
    not a row of the journal's shape)."""
    if not archive_path.is_file():
        raise RetentionRefused(f"{archive_path}: no such file")
    try:
        with gzip.open(archive_path, "rb") as lines:
            # read no line past its bound: a file of one endless line stays out of memory
            for number, line in enumerate(iter(lambda: lines.readline(MAX_LINE_BYTES + 1),
                                               b""), 1):
                if len(line) > MAX_LINE_BYTES:
                    raise RetentionRefused(f"{archive_path}: line {number} is longer than any "
                                           "archived row")
                try:
                    item = json.loads(line)
                except (ValueError, RecursionError):
                    item = None
                table, row = (item.get("table"), item.get("row")) if isinstance(
                    item, dict) else (None, None)
                if not _well_formed(table, row):
                    raise RetentionRefused(f"{archive_path}: line {number} is not an archived "
                                           "row of the journal")
                yield table, row
    except (OSError, EOFError, zlib.error) as error:
        raise RetentionRefused(f"{archive_path}: not a readable archive: {error}") from None


def verify(archive_path: Path) -> dict[str, Any]:
    """Check an archive against its manifest: the file's SHA-256, and its rows and totals
    counted again from the file; the manifest when they agree, RetentionRefused naming the
    first difference otherwise."""
    manifest = read_manifest(archive_path)
    digest = hashlib.sha256()
    with archive_path.open("rb") as raw:
        while chunk := raw.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != manifest.get("sha256"):
        raise RetentionRefused(f"{archive_path}: its SHA-256 is not the manifest's: the file "
                               "changed since it was written")
    tally = Tally()
    for table, row in archived_rows(archive_path):
        tally.add(table, row)
    counted = json.loads(json.dumps(tally.as_dict()))
    for key in ("rows", "by_state", "participants"):
        if counted[key] != manifest.get(key):
            raise RetentionRefused(f"{archive_path}: its {key} are not the manifest's")
    return manifest


def drop(journal: Path | JournalDays, archive_path: Path,
         verified: dict[str, Any] | None = None, min_keep_days: int = DEFAULT_KEEP_DAYS,
         today: date | None = None) -> Dropped:
    """Delete from the journal its rows of the business days before the archive's day, once
    the archive holds every one of them as the journal does. The rows are chosen from the
    journal, never from the archive (a forged archive can make nothing go that a true one
    would not): those days are checked over and outside the online window as `archive`
    checks them; the journal's rows of those days must each be in the archive, unchanged
    (rows an earlier drop deleted may be in the archive alone); then they go, as the journal
    drops days (JournalDays.drop_days), and the messages of those days after them. Raises
    RetentionRefused or NotAJournal."""
    manifest = verified or verify(archive_path)
    days = _days_of(journal)
    try:
        if manifest["journal"] != days.name:
            raise RetentionRefused(f"{archive_path} is an archive of {manifest['journal']}, "
                                   f"not of {days.name}")
        before = date.fromisoformat(manifest["before"])
        _check_window(before, min_keep_days, today)
        bound_s = day_start_s(before)
        started = time.monotonic()
        deleted = days.drop_days(before, bound_s, archive_path)
        messages = ((row["sender_bic"], row["msg_id"], row["received_at"])
                    for table, row in archived_rows(archive_path) if table == "messages")
        while keys := list(itertools.islice(messages, DROP_BATCH)):
            deleted["messages"] += days.delete_messages(keys, bound_s)
    finally:
        days.close()
    kept = sum(manifest["rows"].values()) - sum(deleted.values())
    return Dropped(deleted, kept, time.monotonic() - started)


def _compare(journal_rows: Iterator[tuple[str, dict[str, Any]]],
             archive_rows: Iterator[tuple[str, dict[str, Any]]], archive_path: Path) -> None:
    """RetentionRefused unless every journal row is in the archive, unchanged: both streams
    are in the same order (`_rows`'), so the journal's must be a subsequence of the
    archive's (an earlier drop may have taken some already)."""
    for table, row in journal_rows:
        for archived in archive_rows:
            if archived == (table, row):
                break
        else:
            raise RetentionRefused(
                f"{archive_path} does not hold the journal's {table} row "
                f"{_key_of(table, row)} as the journal does: refused, nothing dropped "
                "(archive those days again)")


def _key_of(table: str, row: dict[str, Any]) -> str:
    keys = {"transfers": ("end_to_end_id",), "transitions": ("seq",),
            "returns": ("creditor_bic", "return_id"), "messages": ("sender_bic", "msg_id")}
    return "/".join(str(row[name]) for name in keys[table])[:80]
