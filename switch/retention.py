"""Retention of the SQLite journal (issue #24, a year of payout days): the rows of the
business days before a given day archived to a file a person and a program can read back,
the archive verified, then those rows dropped from the journal in batches.

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

The drop deletes by primary key, in batches of DROP_BATCH rows a transaction, only rows still
as archived (a row changed since, say a transfer returned meanwhile, stays and is counted as
kept): so it runs beside a running switch, whose writer waits at most one batch. The totals
behind `GET /v1/admin/stats` are counters that a delete leaves alone (switch/store.py): the
all-time totals do not change when a day is dropped.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from switch.journal_errors import NotAJournal
from switch.journal_reader import JournalReader

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


def _open_writable(journal: Path) -> sqlite3.Connection:
    """The journal opened for retention; NotAJournal for anything but a journal, and
    RetentionRefused for one no switch of this version opened yet: without its counters,
    a drop would take the dropped days out of the all-time totals."""
    JournalReader(journal).close()  # NotAJournal, saying why, for anything but a journal
    connection = sqlite3.connect(journal, isolation_level=None)
    connection.execute("PRAGMA busy_timeout=5000")
    connection.execute("PRAGMA synchronous=FULL")
    if connection.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                          " AND name = 'transfer_totals'").fetchone()[0] == 0:
        connection.close()
        raise RetentionRefused(f"{journal} has no totals kept as counters yet: start the "
                               "switch on it once (it counts the rows it holds), then retry")
    return connection


def _refusals(db: sqlite3.Connection, bound_s: float) -> list[str]:
    """Why the rows received before `bound_s` cannot go yet, each a sentence (none: they
    can)."""
    checks = {
        "transfers still in flight (PENDING)":
            "SELECT count(*) FROM transfers WHERE received_at < ?1 AND state = 'PENDING'",
        "transfers settled in a settlement cycle still open":
            "SELECT count(*) FROM transfers t JOIN cycles c USING (cycle_id)"
            " WHERE t.received_at < ?1 AND c.closed_at IS NULL",
        "transfers whose notices are not delivered yet":
            "SELECT count(*) FROM transfers WHERE received_at < ?1"
            " AND (creditor_notice = 1 OR debtor_notice = 1)",
        "returns not settled in a closed cycle or not told to the debtor yet":
            "SELECT count(*) FROM returns r JOIN transfers t USING (end_to_end_id)"
            " LEFT JOIN cycles c ON c.cycle_id = r.cycle_id WHERE t.received_at < ?1"
            " AND (c.closed_at IS NULL OR r.debtor_notice = 1)",
    }
    found = []
    for what, sql in checks.items():
        (count,) = db.execute(sql, (bound_s,)).fetchone()
        if count:
            found.append(f"{count:,} {what}")
    return found


def _rows(db: sqlite3.Connection, bound_s: float) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every row of the days before `bound_s`, table by table, streamed."""
    queries = {
        "transfers": (TRANSFER_FIELDS, f"SELECT {', '.join(TRANSFER_FIELDS)} FROM transfers"
                      " WHERE received_at < ?1 ORDER BY received_at, end_to_end_id"),
        "transitions": (TRANSITION_FIELDS, "SELECT " + ", ".join(
            f"x.{name}" for name in TRANSITION_FIELDS) + " FROM transfers t JOIN transitions"
            " x USING (end_to_end_id) WHERE t.received_at < ?1"
            " ORDER BY t.received_at, t.end_to_end_id, x.seq"),
        "returns": (RETURN_FIELDS, "SELECT " + ", ".join(f"r.{name}" for name in RETURN_FIELDS)
                    + " FROM transfers t JOIN returns r USING (end_to_end_id)"
                    " WHERE t.received_at < ?1 ORDER BY t.received_at, t.end_to_end_id"),
        "messages": (MESSAGE_FIELDS, f"SELECT {', '.join(MESSAGE_FIELDS)} FROM messages"
                     " WHERE received_at < ?1 ORDER BY received_at, sender_bic, msg_id"),
    }
    for table, (names, sql) in queries.items():
        for values in db.execute(sql, (bound_s,)):
            row = dict(zip(names, values, strict=True))
            if table == "messages":
                row["body_sha256"] = bytes(row["body_sha256"]).hex()
            yield table, row


def archive(journal: Path, before: date, to: Path, min_keep_days: int = DEFAULT_KEEP_DAYS,
            today: date | None = None) -> dict[str, Any]:
    """Write the rows of the business days before `before` to `to` and its manifest, then
    verify them (`verify`); return the manifest. Raises NotAJournal for a file that is no
    journal, RetentionRefused when those days are not over or are within the online window,
    OSError when the archive cannot be written (an existing archive is never overwritten)."""
    latest = (today or business_day(time.time())) + timedelta(days=1 - min_keep_days)
    if before > latest:
        raise RetentionRefused(
            f"--before {before} would take some of the last {min_keep_days} days, in which "
            f"the switch still answers for its transfers (duplicates, inquiries, returns); "
            f"the latest it can be is {latest}")
    for path in (to, manifest_path(to)):
        if path.exists():
            raise RetentionRefused(f"{path} exists already; an archive is never overwritten")
    bound_s = day_start_s(before)
    db = _open_writable(journal)
    try:
        db.execute("BEGIN")  # one snapshot: the checks and the rows agree
        refusals = _refusals(db, bound_s)
        if refusals:
            raise RetentionRefused(f"the days before {before} are not over: "
                                   + "; ".join(refusals))
        tally = Tally()
        digest = hashlib.sha256()
        partial = to.with_name(to.name + ".partial")
        with partial.open("wb") as raw, gzip.GzipFile(
                fileobj=_Hashing(raw, digest), mode="wb", mtime=0, compresslevel=6) as out:
            lines: list[str] = []
            for table, row in _rows(db, bound_s):
                tally.add(table, row)
                lines.append(_LINE.encode({"table": table, "row": row}))
                if len(lines) >= WRITE_LINES:  # one compression call for many lines
                    out.write(("\n".join(lines) + "\n").encode())
                    lines.clear()
            if lines:
                out.write(("\n".join(lines) + "\n").encode())
        db.execute("COMMIT")
    finally:
        db.close()
    manifest = {"format": FORMAT, "journal": str(journal.resolve()), "before": str(before),
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
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RetentionRefused(f"{archive_path}: no manifest {path.name} beside it") from None
    except (OSError, ValueError) as error:
        raise RetentionRefused(f"{path}: not a readable manifest: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RetentionRefused(f"{path} is not a manifest of a journal archive ({FORMAT})")
    return manifest


def archived_rows(archive_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The rows of an archive, streamed: (table, row). RetentionRefused for a file that is not
    an archive (not gzip, a line that is not a row)."""
    if not archive_path.is_file():
        raise RetentionRefused(f"{archive_path}: no such file")
    try:
        with gzip.open(archive_path, "rb") as lines:
            for number, line in enumerate(lines, 1):
                try:
                    item = json.loads(line)
                    table, row = item["table"], item["row"]
                except (ValueError, KeyError, TypeError):
                    raise RetentionRefused(f"{archive_path}: line {number} is not an archived "
                                           "row") from None
                if table not in TABLES or not isinstance(row, dict):
                    raise RetentionRefused(f"{archive_path}: line {number} is not an archived "
                                           "row")
                yield table, row
    except (OSError, EOFError, gzip.BadGzipFile) as error:
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
    try:
        for table, row in archived_rows(archive_path):
            tally.add(table, row)
    except (KeyError, TypeError) as error:
        raise RetentionRefused(f"{archive_path}: a row lacks {error}") from None
    counted = json.loads(json.dumps(tally.as_dict()))
    for key in ("rows", "by_state", "participants"):
        if counted[key] != manifest.get(key):
            raise RetentionRefused(f"{archive_path}: its {key} are not the manifest's")
    return manifest


def drop(journal: Path, archive_path: Path, verified: dict[str, Any] | None = None
         ) -> Dropped:
    """Delete from the journal the rows an archive holds, after verifying the archive (unless
    `verified`, the manifest `archive` has just verified, is given) and checking it is this
    journal's: by primary key, DROP_BATCH a transaction, each only if it is still as
    archived. Raises RetentionRefused or NotAJournal."""
    manifest = verified or verify(archive_path)
    if manifest["journal"] != str(journal.resolve()):
        raise RetentionRefused(f"{archive_path} is an archive of {manifest['journal']}, not of "
                               f"{journal.resolve()}")
    started = time.monotonic()
    deletes = {
        "transfers": ("DELETE FROM transfers WHERE end_to_end_id = ? AND state = ?"
                      " AND coalesce(reason_code, '') = ?",
                      lambda r: (r["end_to_end_id"], r["state"], r["reason_code"] or "")),
        "transitions": ("DELETE FROM transitions WHERE seq = ? AND end_to_end_id = ?",
                        lambda r: (r["seq"], r["end_to_end_id"])),
        "returns": ("DELETE FROM returns WHERE creditor_bic = ? AND return_id = ?",
                    lambda r: (r["creditor_bic"], r["return_id"])),
        "messages": ("DELETE FROM messages WHERE sender_bic = ? AND msg_id = ?",
                     lambda r: (r["sender_bic"], r["msg_id"])),
    }
    deleted = dict.fromkeys(TABLES, 0)
    db = _open_writable(journal)
    try:
        batch: dict[str, list[tuple[Any, ...]]] = {table: [] for table in TABLES}

        def flush() -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                for table, keys in batch.items():
                    if keys:
                        deleted[table] += db.executemany(deletes[table][0], keys).rowcount
                        keys.clear()
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

        for taken, (table, row) in enumerate(archived_rows(archive_path), 1):
            batch[table].append(deletes[table][1](row))
            if taken % DROP_BATCH == 0:
                flush()
        flush()
    except sqlite3.Error as error:
        raise NotAJournal(f"{journal}: cannot delete from it: {error}") from None
    finally:
        db.close()
    kept = sum(manifest["rows"].values()) - sum(deleted.values())
    return Dropped(deleted, kept, time.monotonic() - started)
