"""What limits scale on a PostgreSQL journal, read from the server's own statistics (issue
#24): the serialised time per transfer, and the ceiling it implies for any number of switch
processes.

**The serialised time.** A write transaction of the switch is serialised with other
processes' from the moment it asks for a row that other processes' transactions also lock (a
debtor's shared `positions` row: an escrow refill, a revocation of the other slices' room, a
return, a close, a new limit; switch/store_postgres.py) until its COMMIT releases it: the
lock's wait, then the locked section. Its own escrow slices, which only its own process
writes, serialise nothing. Over a window of a run, in the switch's database:

    serialised_s = Σ exec(s) over the statements s of the locked sections
                   + locks × (flush_mean_s + wal_flush_s)

- `exec(s)`: pg_stat_statements' total execution time of each statement that takes a shared
  row's lock or runs only under one, nested in the switch's PL/pgSQL functions
  (`pg_stat_statements.track = all`): the wait for the lock (a statement waiting for a row
  lock is executing), taking it, and the refill's or revocation's own work;
- `locks`: how many transactions took one, the calls of the statements that take a
  transaction's first shared lock (`positions … FOR UPDATE`; a new limit's update);
- `flush_mean_s`: the rest of the locked transaction before COMMIT, the part of
  `switch_flush` every batch runs, bounded above by the mean execution of `switch_flush`
  (pg_stat_statements);
- `wal_flush_s`: the COMMIT's durable WAL flush, (write + sync time) / syncs of pg_stat_wal
  (`track_wal_io_timing`); on a server that does not time its WAL, one durable one-row commit
  of the probe (an upper bound: it includes a round trip).

Per transfer, divided by the transfers of the window; the ceiling it implies is 10⁶ / that
(µs): however many processes and cores, the shared rows admit no more transfers a second.

**The lock waits seen.** Independently, a sampler reads `pg_locks` (`granted = false`, with
`pg_stat_activity`) every SAMPLE_EVERY_S during the window: each sample counts the sessions
waiting for a heavyweight lock, by what they run; waiting seconds are estimated as samples ×
interval (a Riemann sum: right in expectation, however short each wait). It tells which
statements waited, which pg_stat_statements cannot: the writes (between processes: a shared
row), or a process's beat and its own batches' `switch_begin` waiting for each other (the
process's own `switch_processes` row: within a process, so not in the serialised time).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

try:
    import asyncpg
except ImportError:  # the optional `postgres` extra is not installed
    asyncpg = None  # type: ignore[assignment]

SAMPLE_EVERY_S = 0.02  # ~50 reads of pg_locks a second: ~1-2 % of a core on the server
MAX_SAMPLES = 100_000  # a window of half an hour at most is sampled
# The statements of a shared row's locked section, as pg_stat_statements spells them (nested
# in switch_flush, switch_return, switch_close; or the operator's new limit, top level).
# `FIRST_SHARED_LOCK` take a transaction's first shared lock: one locked section each; the
# others run only inside a section already taken (revoking other processes' room, the
# refill's arithmetic, a return's or a close's moves).
FIRST_SHARED_LOCK = (re.compile(r"\bFROM positions\b[^;]*\bFOR UPDATE\b"),
                     re.compile(r"^\s*WITH revoked AS \(UPDATE position_slices\b"))
SHARED_LOCK = (
    *FIRST_SHARED_LOCK,
    re.compile(r"^\s*UPDATE positions\b"),
    re.compile(r"^\s*UPDATE position_slices\b[^;]*(process_id <>|o\.bic = p_creditor)"),
    re.compile(r"\bFROM position_slices ORDER BY\b[^;]*\bFOR UPDATE\b"),  # a close's
    re.compile(r"\bswitch_(free|escrow_take)\("),
)
FLUSH = re.compile(r"^\s*SELECT switch_flush\(")
# What a waiting session runs, named for the summary (first match wins).
# A beat and its own process's batches wait for each other (the beat's UPDATE of the process's
# row against switch_begin's FOR SHARE of it): within a process, not between processes.
WAITERS = (("the beat", re.compile(r"^\s*UPDATE switch_processes SET heartbeat_at")),
           ("a batch's begin", re.compile(r"\bswitch_begin\(")),
           ("a write", re.compile(r"switch_|\bCOMMIT\b|^\s*UPDATE (transfers|returns)\b")))

# The measuring's own statements (the snapshots, the sampler) and the beats (their time is
# spent waiting for their own process's writer), left out of the statements and the server
# time per transfer.
NOT_WRITES = re.compile(r"\bpg_(stat_statements|locks|stat_wal)\b|^\s*UPDATE switch_processes\b")
_STATEMENTS = (
    "SELECT s.toplevel, s.query, sum(s.calls)::bigint, sum(s.total_exec_time)"
    " FROM pg_stat_statements s WHERE s.dbid = (SELECT oid FROM pg_database"
    " WHERE datname = current_database()) GROUP BY s.toplevel, s.query")
_WAL = ("SELECT wal_sync, (wal_write_time + wal_sync_time) / 1000.0,"
        " current_setting('track_wal_io_timing') = 'on' FROM pg_stat_wal")
# This database's entries only: a user's server keeps everyone else's statistics.
_RESET = ("SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database"
          " WHERE datname = current_database()), 0)")
_FOR_DATABASE = ("SELECT format('ALTER DATABASE %I SET {setting} = {value}',"
                 " current_database())")
_WAITING = (
    "SELECT a.query FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE NOT l.granted AND a.datname = current_database() AND a.pid <> pg_backend_pid()")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """pg_stat_statements of one database at a moment, summed by (top level, text) (a
    statement on a temporary table has a queryid per session), and pg_stat_wal's flushes."""

    statements: dict[tuple[bool, str], tuple[int, float]]  # → (calls, total exec ms)
    wal_syncs: int
    wal_flush_s: float  # write + sync time of those syncs; 0 when not timed
    wal_timed: bool


@dataclass(slots=True)
class Waits:
    """What the pg_locks sampler saw: samples taken, and per kind of waiter the sessions seen
    waiting summed over samples."""

    interval_s: float = SAMPLE_EVERY_S  # asked for; `elapsed_s / samples` is what it was
    samples: int = 0
    elapsed_s: float = 0.0
    seen: Counter[str] = field(default_factory=Counter)

    def waiting_s(self, who: str) -> float:
        """Seconds sessions of kind `who` spent waiting for a lock, estimated."""
        return self.seen[who] * self.elapsed_s / self.samples if self.samples else 0.0


@dataclass(frozen=True, slots=True)
class Serialised:
    """The window's figures, per transfer where it says so (µs)."""

    transfers: int
    serialised_us: float  # per transfer: lock statements + locked sections (module docstring)
    locks: int  # transactions that took a shared row's lock
    lock_statements_ms: float  # Σ exec of the statements taking shared locks (waits in)
    flush_mean_ms: float
    wal_flush_ms: float
    wal_flush_source: str  # "pg_stat_wal" or "the probe's commit"
    statements_per_transfer: float  # top-level statements (a message may hold two) but beats
    server_exec_us: float  # per transfer: their execution time in the server
    write_waits_us: float  # per transfer: pg_locks samples of waiting writes × interval
    beat_waits_ms: float  # in all: the beats waiting (for their own process's writer)
    begin_waits_ms: float  # in all: batches' switch_begin waiting (for their own beat)
    samples: int

    @property
    def ceiling_per_s(self) -> float:
        return 1e6 / self.serialised_us if self.serialised_us > 0 else float("inf")


async def prepare(url: str) -> str | None:
    """Make the new database `url` ready to be measured, before the switch connects: the
    extension created in it (its owner may when the server allows), the library loaded
    (shared_preload_libraries), nested statements tracked and the WAL timed (asked of the
    database when the server does not), this database's statistics reset where allowed.
    None once ready; else why not, never raising for a server that says no."""
    if asyncpg is None:
        return "asyncpg is not installed"
    try:
        connection = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        return f"cannot connect: {type(error).__name__}: {error}"
    try:
        try:
            await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            await connection.fetch("SELECT 1 FROM pg_stat_statements LIMIT 1")
        except asyncpg.PostgresError as error:
            return (f"pg_stat_statements is not usable there ({str(error).splitlines()[0]});"
                    " the server needs shared_preload_libraries = 'pg_stat_statements' and the"
                    " bench's user the right to CREATE EXTENSION pg_stat_statements")
        track = await connection.fetchval("SELECT current_setting('pg_stat_statements.track')")
        if track != "all":
            try:
                await connection.execute(await connection.fetchval(_FOR_DATABASE.format(
                    setting="pg_stat_statements.track", value="''all''")))
            except asyncpg.PostgresError:
                return (f"pg_stat_statements.track is {track!r} there, and the bench's user"
                        " may not set it to 'all' for its database: the statements inside the"
                        " switch's functions, which take the shared locks, are not counted")
        with contextlib.suppress(asyncpg.PostgresError):  # the WAL timed if allowed
            await connection.execute(await connection.fetchval(_FOR_DATABASE.format(
                setting="track_wal_io_timing", value="on")))
        with contextlib.suppress(asyncpg.PostgresError):  # windows are differences anyway
            await connection.execute(_RESET)
        return None
    finally:
        await connection.close()


async def snapshot(connection: Any) -> Snapshot:
    rows = await connection.fetch(_STATEMENTS)
    wal_syncs, wal_flush_s, timed = await connection.fetchrow(_WAL)
    return Snapshot({(row[0], row[1]): (row[2], row[3]) for row in rows}, wal_syncs,
                    float(wal_flush_s), timed)


def _matches(patterns: tuple[re.Pattern[str], ...], query: str) -> bool:
    return any(pattern.search(query) for pattern in patterns)


def waiter(query: str) -> str:
    """The kind of session a waiting one is, from its statement."""
    return next((name for name, pattern in WAITERS if pattern.search(query)), "another")


def serialised(before: Snapshot, after: Snapshot, waits: Waits, transfers: int,
               probe_commit_s: float) -> Serialised:
    """The window between two snapshots, `transfers` made final in it (module docstring).
    `probe_commit_s` stands in for the WAL flush where the server does not time it."""
    delta: dict[tuple[bool, str], tuple[int, float]] = {}
    for key, (calls, exec_ms) in after.statements.items():
        calls_before, exec_before_ms = before.statements.get(key, (0, 0.0))
        if calls > calls_before:
            delta[key] = (calls - calls_before, exec_ms - exec_before_ms)
    locks = sum(calls for (_, query), (calls, _) in delta.items()
                if _matches(FIRST_SHARED_LOCK, query))
    lock_ms = sum(exec_ms for (_, query), (_, exec_ms) in delta.items()
                  if _matches(SHARED_LOCK, query))
    flushes = [(calls, exec_ms) for (top, query), (calls, exec_ms) in delta.items()
               if top and FLUSH.search(query)]
    flush_calls = sum(calls for calls, _ in flushes)
    flush_mean_ms = sum(ms for _, ms in flushes) / flush_calls if flush_calls else 0.0
    syncs = after.wal_syncs - before.wal_syncs
    if after.wal_timed and syncs > 0:
        wal_ms, source = (after.wal_flush_s - before.wal_flush_s) / syncs * 1e3, "pg_stat_wal"
    else:
        wal_ms, source = probe_commit_s * 1e3, "the probe's commit"
    top = [(calls, exec_ms) for (toplevel, query), (calls, exec_ms) in delta.items()
           if toplevel and not NOT_WRITES.search(query)]
    each = max(1, transfers)
    return Serialised(
        transfers, (lock_ms + locks * (flush_mean_ms + wal_ms)) * 1e3 / each, locks, lock_ms,
        flush_mean_ms, wal_ms, source, sum(calls for calls, _ in top) / each,
        sum(ms for _, ms in top) * 1e3 / each, waits.waiting_s("a write") * 1e6 / each,
        waits.waiting_s("the beat") * 1e3, waits.waiting_s("a batch's begin") * 1e3,
        waits.samples)


@contextlib.asynccontextmanager
async def window(url: str, waits: Waits) -> AsyncIterator[list[Snapshot]]:
    """Snapshot the database `url` at the start and at the end (the list gets both), and
    sample pg_locks into `waits` meanwhile, on connections of its own."""
    reader = await asyncpg.connect(url)
    sampler = await asyncpg.connect(url)
    snapshots = [await snapshot(reader)]

    async def sample() -> None:
        first_s = time.perf_counter()
        while waits.samples < MAX_SAMPLES:
            started_s = time.perf_counter()
            waits.seen.update(waiter(row[0]) for row in await sampler.fetch(_WAITING))
            waits.samples += 1
            waits.elapsed_s = time.perf_counter() - first_s
            await asyncio.sleep(max(0.0, waits.interval_s - (time.perf_counter() - started_s)))

    task = asyncio.ensure_future(sample())
    try:
        yield snapshots
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        with contextlib.suppress(Exception):
            snapshots.append(await snapshot(reader))
        await reader.close()
        await sampler.close()
