"""Retention of the PostgreSQL journal (issue #24, a year of payout days): its business days
archived by switch/retention.py's engine (the same checks, the same file, the same verify),
then dropped whole: each day's partitions of transfers, transitions and returns detached
(`ALTER TABLE … DETACH PARTITION … CONCURRENTLY`: the switch's reads and writes go on),
compared with the verified archive (a detached table no longer changes), their ids deleted
from transfer_ids and return_ids, and the tables dropped. A difference re-attaches them and
refuses the drop: nothing goes.

The days' partitions are switch/store_postgres.py's (`switch_make_days`): `transfers_dYYYYMMDD`
and the same for transitions and returns. A drop interrupted after a detach leaves the tables
detached and whole: the next drop of those days finishes the detach and goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from switch.journal_errors import NotAJournal
from switch.retention import (
    DROP_BATCH,
    LIVE,
    TABLES,
    RetentionRefused,
    _check_days_over,
    _compare,
    _rows,
    archived_rows,
    business_day,
)
from switch.store_postgres import CONNECT_TIMEOUT_S, OLD_JOURNAL_SENTENCE, postgres_missing

try:
    import asyncpg
except ImportError:  # the optional `postgres` extra is not installed
    asyncpg = None  # type: ignore[assignment]

FETCH_ROWS = 2_000  # rows a round trip while a day is streamed
COMMAND_TIMEOUT_S = 900.0  # a day's detach waits for the transactions that still see it
PARTITIONED = ("transfers", "transitions", "returns")
_PARTITION = re.compile(r"transfers_d(\d{8})")
_T = TypeVar("_T")


def without_password(url: str) -> str:
    """A libpq URL as a manifest names the journal: no password, no query."""
    parts = urlsplit(url)
    netloc = f"{parts.username}@{parts.hostname or ''}" if parts.username else (
        parts.hostname or "")
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def partitions(day: date) -> dict[str, str]:
    """The names of a business day's partitions, per table."""
    return {table: f"{table}_d{day:%Y%m%d}" for table in PARTITIONED}


class PostgresDays:
    """A PostgreSQL journal's business days (switch/retention.py's JournalDays), on one
    connection of its own. NotAJournal when the database cannot be reached or holds no
    journal; RetentionRefused for a journal made before the partitions."""

    def __init__(self, url: str) -> None:
        self.name = without_password(url)
        missing = postgres_missing()
        if missing is not None:
            raise NotAJournal(missing)
        self.dialect = {"old": "t.business_day < switch_day($1)",
                        "old_x": " AND x.business_day < switch_day($1)",
                        "old_r": " AND r.business_day < switch_day($1)",
                        "same": "USING (end_to_end_id, business_day)", "bound": "$1"}
        self._loop = asyncio.new_event_loop()
        self._connection: Any = None
        try:
            self._connection = self._run(asyncpg.connect(
                url, timeout=CONNECT_TIMEOUT_S, command_timeout=COMMAND_TIMEOUT_S))
            kind = self._run(self._connection.fetchval(
                "SELECT relkind::text FROM pg_class WHERE oid = to_regclass('transfers')"))
            counted = self._run(self._connection.fetchval(
                "SELECT to_regclass('transfer_totals') IS NOT NULL"))
        except BaseException:
            self.close()
            raise
        if kind not in (None, "p"):
            self.close()
            raise RetentionRefused(f"{self.name}: {OLD_JOURNAL_SENTENCE}")
        if kind is None or not counted:
            self.close()
            raise NotAJournal(f"{self.name}: no switch journal in this database (start the "
                              "switch on it once)")

    def _run(self, step: Awaitable[_T]) -> _T:
        """One step on the connection; the database's refusal or absence as NotAJournal."""
        try:
            return self._loop.run_until_complete(step)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise NotAJournal(f"{self.name}: {str(error) or type(error).__name__}") from None

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        self._run(self._connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ"))
        try:
            yield
        finally:
            with contextlib.suppress(NotAJournal):
                self._run(self._connection.execute("COMMIT"))

    def count(self, sql: str, bound_s: float) -> int:
        return int(self._run(self._connection.fetchval(sql, bound_s)))

    def fetch(self, sql: str, bound_s: float) -> Iterator[tuple[Any, ...]]:
        """A query's rows, FETCH_ROWS a round trip (a server-side cursor: inside `snapshot`)."""
        cursor = self._run(self._connection.cursor(sql, bound_s))
        while rows := self._run(cursor.fetch(FETCH_ROWS)):
            yield from (tuple(row) for row in rows)

    def drop_days(self, before: date, bound_s: float, archive_path: Path) -> dict[str, int]:
        """The days before `before` checked over, their partitions detached, compared with
        the archive (re-attached, and RetentionRefused, at a difference), their ids deleted
        and their tables dropped; the rows dropped per table."""
        today = business_day(time.time())
        if before > today:
            raise RetentionRefused(
                f"the days before {before} hold today ({today}), which still takes transfers: "
                f"on PostgreSQL a day goes whole, with its partitions, once it is past; the "
                f"latest day to drop before is {today}")
        with self.snapshot():
            _check_days_over(self, before, bound_s)
        days = [day for day in self._days() if day < before]
        for day in days:
            self._detach(day)
        try:
            with self.snapshot():
                _compare(_rows(self, bound_s, [partitions(day) for day in days] or [LIVE]),
                         archived_rows(archive_path), archive_path)
        except RetentionRefused:
            for day in days:
                self._attach(day)
            raise
        deleted = dict.fromkeys(TABLES, 0)
        for day in days:
            for table, count in self._drop_day(day).items():
                deleted[table] += count
        return deleted

    def delete_messages(self, keys: list[tuple[str, str, float]], bound_s: float) -> int:
        said = self._run(self._connection.execute(
            "DELETE FROM messages m USING unnest($1::text[], $2::text[], $3::float8[])"
            " AS k(sender, id, at) WHERE m.sender_bic = k.sender AND m.msg_id = k.id"
            " AND m.received_at = k.at AND m.received_at < $4",
            [key[0] for key in keys], [key[1] for key in keys], [key[2] for key in keys],
            bound_s))
        return int(said.split()[-1])

    def _days(self) -> list[date]:
        """The days that have partitions of transfers, attached or detached by a drop that
        did not finish."""
        names = self._run(self._connection.fetch(
            "SELECT relname FROM pg_class WHERE relname ~ '^transfers_d[0-9]{8}$'"
            " AND relnamespace = current_schema()::regnamespace AND relkind = 'r'"))
        found = (_PARTITION.fullmatch(row[0]) for row in names)
        return sorted(date(int(m[1][:4]), int(m[1][4:6]), int(m[1][6:])) for m in found if m)

    def _detach(self, day: date) -> None:
        """A day's partitions detached (each in its own transactions, waiting for those that
        still see it); a detach left pending by an interrupted drop is finished."""
        for table, name in partitions(day).items():
            pending = self._run(self._connection.fetchval(
                "SELECT i.inhdetachpending FROM pg_inherits i WHERE i.inhrelid ="
                " to_regclass($1) AND i.inhparent = to_regclass($2)", name, table))
            if pending is None:  # detached already (or never made: nothing to detach)
                continue
            how = "FINALIZE" if pending else "CONCURRENTLY"
            self._run(self._connection.execute(
                f'ALTER TABLE "{table}" DETACH PARTITION "{name}" {how}'))

    def _attach(self, day: date) -> None:
        bounds = f"FOR VALUES FROM ('{day}') TO ('{day + timedelta(days=1)}')"
        for table, name in partitions(day).items():
            if self._run(self._connection.fetchval(
                    "SELECT to_regclass($1) IS NOT NULL AND NOT EXISTS (SELECT 1 FROM"
                    " pg_inherits WHERE inhrelid = to_regclass($1))", name)):
                self._run(self._connection.execute(
                    f'ALTER TABLE "{table}" ATTACH PARTITION "{name}" {bounds}'))

    def _drop_day(self, day: date) -> dict[str, int]:
        """A detached day gone: its ids first, DROP_BATCH a transaction in key order (the
        switch's writer waits on none for long; memory bounded), then its tables. Only the
        ids of `day` go: a drop interrupted after its ids freed them may be finished after
        a new transfer took one of them again (attacker report 3, finding 2)."""
        names = partitions(day)
        deleted = {table: self._run(self._connection.fetchval(
            f'SELECT count(*) FROM "{name}"')) for table, name in names.items()}
        for keys, ids, sql in (
                ("end_to_end_id", "transfer_ids", f'"{names["transfers"]}"'),
                ("creditor_bic, return_id", "return_ids", f'"{names["returns"]}"')):
            width = len(keys.split(", "))
            last: tuple[Any, ...] | None = ("",) * width
            while last is not None:
                last = self._run(self._connection.fetchrow(
                    f"WITH batch AS (SELECT {keys} FROM {sql} WHERE ({keys}) > "
                    f"({', '.join(f'${n}' for n in range(1, width + 1))})"
                    f" ORDER BY {keys} LIMIT {DROP_BATCH}), gone AS (DELETE FROM {ids} n"
                    f" USING batch WHERE ({', '.join(f'n.{k}' for k in keys.split(', '))})"
                    f" = ({', '.join(f'batch.{k}' for k in keys.split(', '))})"
                    f" AND n.business_day = ${width + 1})"
                    f" SELECT {keys} FROM batch ORDER BY {keys} DESC LIMIT 1", *last, day))
                last = None if last is None else tuple(last)
        self._run(self._connection.execute(
            "DROP TABLE " + ", ".join(f'"{name}"' for name in names.values())))
        return deleted

    def close(self) -> None:
        if self._connection is not None and not self._connection.is_closed():
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(self._connection.close())
        self._loop.close()
