"""What every journal offers the switch, whichever database holds it: the `Journal` interface,
the reads both dialects share (`JournalReads`, `READS`: written once, SQLite's numbered
parameters, PostgreSQL's from them), the notice flags, exact sums of amounts, and the
listing of transfers for the operator (`switchlab journal`, the admin API)."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from switch.records import (
    AdminAnswer,
    AdminChange,
    CycleFlows,
    Decided,
    DirectoryChange,
    DirectoryEntry,
    Final,
    NoticesDue,
    SettledReturn,
)
from switch.states import TransferState
from switch.transfer import FORWARD_SECRET_BYTES, ForwardIds, Transfer

# Notice flags on a transfer or a return: whether a participant still has to be told.
NOTICE_NONE = 0
NOTICE_DUE = 1
NOTICE_SENT = 2

TRANSFER_COLUMNS = ("end_to_end_id, tx_id, msg_id, debtor_bic, creditor_bic, amount_vnd, bulk,"
                     " received_at, state, reason_code, reason_by")
DIRECTORY_COLUMNS = "citizen_id, participant_bic, account_id, holder_name, updated_at, updated_by"
MAX_LISTED_TRANSFERS = 1_000  # a listing of the journal, for a person or a tool looking in
JOURNAL_COLUMNS = frozenset({"end_to_end_id", "tx_id", "msg_id", "debtor_bic", "creditor_bic",
                              "amount_vnd", "state", "reason_code", "reason_by", "bulk",
                              "received_at", "final_at", "cycle_id"})
LISTED_COLUMNS = f"{TRANSFER_COLUMNS}, final_at, cycle_id"
MAX_TOTALS_KEYS = 2_000  # keys per `totals_of`: a request's ids, each also under its scope
MAX_DIRECTORY_CHANGES = 1_000  # read at once, by the directory API or a process catching up
# Sums of amounts, exact however large: SQLite's sum() stops with "integer overflow" past
# 2^63 (twelve rejected 18-digit amounts did it, and the admin stats answered 500 for good),
# and PostgreSQL's bigint would too. Each amount is summed in two parts, its billions and the
# rest, each part's sum holding a billion rows of the largest amount a row can hold; Python
# joins them (`joined_vnd`). Both databases truncate division towards zero and give a
# remainder the dividend's sign, so the parts add back to the amount for any sign.
AMOUNT_SPLIT = 10**9


def split_sum(column: str) -> str:
    """Two SQL sums, high part then low part, of an amount column (`joined_vnd` adds them)."""
    return (f"coalesce(sum({column} / {AMOUNT_SPLIT}), 0),"
            f" coalesce(sum({column} % {AMOUNT_SPLIT}), 0)")


def joined_vnd(high: Any, low: Any) -> int:
    """The exact sum from `split_sum`'s two parts (ints, or PostgreSQL's numeric)."""
    return int(high) * AMOUNT_SPLIT + int(low)


def joined_rows(rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Rows ending in `split_sum`'s two parts, each with the exact sum in their place."""
    return [(*row[:-2], joined_vnd(row[-2], row[-1])) for row in rows]


class Journal(Protocol):
    """What the switch asks of its journal, whichever database holds it.

    Writes return futures that are done once durable (WriteRefused when the database refused
    that write alone; JournalFailed, JournalBusy raised at once when nothing was taken).
    `shared` says whether other switch processes write the same journal: then the journal,
    not this process's memory, decides duplicates, caps, which answer finalizes a transfer
    and which cycle closes, and the writes return what it decided (`Decided` per key).
    """

    shared: bool
    failure: BaseException | None
    heals: bool  # whether it comes back by itself after a failure (reconnecting), or stays
    forward_ids: ForwardIds  # under the journal's secret; read by start() at the latest

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def fail(self, error: BaseException) -> None: ...
    async def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A query in the database's own dialect (diagnostics and tests)."""
    def record_new(self, sender_bic: str, msg_id: str, body_sha256: bytes,
                   transfers: Sequence[Transfer], now_s: float
                   ) -> asyncio.Future[dict[str, Decided] | None]: ...
    def record_final(self, finals: Sequence[Final], now_s: float
                     ) -> asyncio.Future[dict[str, Decided] | None]: ...
    def record_returns(self, returns: Sequence[SettledReturn], creditor_bic: str,
                       cycle_id: int, now_s: float
                       ) -> asyncio.Future[dict[str, Decided] | None]: ...
    def mark_sent(self, kind: str, keys: Iterable[str]) -> asyncio.Future[None]: ...
    def save_settings(self, bic: str, position_limit_vnd: int, signed_off: bool,
                      change: AdminChange | None = None) -> asyncio.Future[None]: ...
    def open_cycle(self, cycle_id: int, now_s: float) -> asyncio.Future[None]: ...
    def close_cycle(self, closed_id: int, now_s: float, min_age_s: float | None = None,
                    change: AdminChange | None = None) -> asyncio.Future[int | None]: ...
    def answer_admin_change(self, change: AdminChange, status: int, answer: str
                            ) -> asyncio.Future[None]: ...
    async def admin_change(self, key: str) -> AdminAnswer | None: ...
    async def lookup(self, end_to_end_ids: Sequence[str]) -> dict[str, Transfer]: ...
    async def message_digest(self, sender_bic: str, msg_id: str) -> bytes | None: ...
    async def returns_by_id(self, creditor_bic: str, return_ids: Sequence[str]
                            ) -> dict[str, tuple[str, int]]: ...
    def record_directory(self, changes: Sequence[DirectoryChange]
                         ) -> asyncio.Future[dict[str, str] | None]: ...
    async def describe(self, end_to_end_id: str) -> dict[str, Any] | None: ...
    async def transfers(self, state: str | None = None, participant: str | None = None,
                        since_s: float | None = None, limit: int = 100,
                        oldest_first: bool = False) -> tuple[list[JournalTransfer], bool]: ...
    async def directory_changes(self, citizen_id: str | None = None,
                                participant_bic: str | None = None, after_seq: int = 0,
                                limit: int = MAX_DIRECTORY_CHANGES) -> list[dict[str, Any]]: ...
    async def directory_now(self) -> tuple[list[DirectoryEntry], int]: ...
    async def totals(self) -> tuple[list[tuple[str, str, int, int]], tuple[int, int]]: ...
    async def totals_of(self, debtor_bic: str, keys: Sequence[str]
                        ) -> tuple[list[tuple[str, str, int, int]], tuple[int, int]]: ...
    async def cycle_flows(self, cycle_id: int) -> CycleFlows | None: ...
    async def statement_entries(self, cycle_id: int, bic: str, after: tuple[float, str],
                                limit: int) -> list[tuple[str, int, bool, float, str, str]]: ...
    async def open_cycle_now(self) -> tuple[int | None, int]: ...
    async def known_ids_now(self) -> set[str]: ...
    async def cycle_moves_now(self, cycle_id: int) -> list[tuple[str, str, int]]: ...
    async def returned_ids_now(self) -> set[str]: ...
    async def settings_now(self) -> list[tuple[str, int | None, bool]]: ...
    async def in_flight_now(self) -> list[Transfer]: ...
    async def notices_due_now(self) -> NoticesDue: ...
    def record_answers(self, creditor_bic: str,
                       answers: Sequence[tuple[str, TransferState, str | None]], now_s: float
                       ) -> asyncio.Future[list[Final]]: ...


class JournalReads:
    """The reads every journal makes, written once: each store gives `read` and its own
    dialect's statements (`_SQL`, by name; parameters by number, the same in each, written
    `_PLACEHOLDER` and the number)."""

    _SQL: dict[str, str]
    _PLACEHOLDER: str

    async def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def message_digest(self, sender_bic: str, msg_id: str) -> bytes | None:
        """The SHA-256 of the body the sender first sent under `msg_id`, or None."""
        rows = await self.read(self._SQL["digest"], (sender_bic, msg_id))
        return bytes(rows[0][0]) if rows else None

    async def describe(self, end_to_end_id: str) -> dict[str, Any] | None:
        """As JournalReader.describe: the transfer, its history and its return; None for an
        unknown id."""
        rows = await self.read(self._SQL["listed_one"], (end_to_end_id,))
        return described(rows[0], await self.read(self._SQL["history"], (end_to_end_id,)),
                         await self.read(self._SQL["return_of"], (end_to_end_id,))
                         ) if rows else None

    async def transfers(self, state: str | None = None, participant: str | None = None,
                        since_s: float | None = None, limit: int = 100,
                        oldest_first: bool = False) -> tuple[list[JournalTransfer], bool]:
        """As JournalReader.transfers: a listing of the journal, and whether more matched."""
        sql, params = listing(state, participant, since_s, limit, oldest_first,
                              self._PLACEHOLDER)
        return listed(await self.read(sql, params), limit, oldest_first)

    async def directory_changes(self, citizen_id: str | None = None,
                                participant_bic: str | None = None, after_seq: int = 0,
                                limit: int = MAX_DIRECTORY_CHANGES) -> list[dict[str, Any]]:
        """Journaled directory changes after `after_seq`, oldest first, of one citizen id
        and/or of one participant's entries (made by it or by the registry) when given."""
        rows = await self.read(self._SQL["directory_changes"],
                               (after_seq, citizen_id, participant_bic, limit))
        return [dict(zip(("seq", "citizen_id", "action", "participant_bic", "account_id",
                          "holder_name", "changed_by", "at"), row, strict=True)) for row in rows]

    async def totals(self) -> tuple[list[tuple[str, str, int, int]], tuple[int, int]]:
        """Transfers by (state, reason code): count and VND; and settled returns: count, VND."""
        by_state = joined_rows(await self.read(self._SQL["totals"]))
        returns = joined_rows(await self.read(self._SQL["returned_totals"]))
        return by_state, returns[0]  # type: ignore[return-value]

    async def totals_of(self, debtor_bic: str, keys: Sequence[str]
                        ) -> tuple[list[tuple[str, str, int, int]], tuple[int, int]]:
        """As `totals`, over `debtor_bic`'s transfers under these keys alone (end-to-end ids
        and their scoped keys, at most MAX_TOTALS_KEYS): what one payout run reconciles,
        whatever else went through the switch. Each key is found by its primary key."""
        if len(keys) > MAX_TOTALS_KEYS:
            raise ValueError(f"{len(keys):,} keys; at most {MAX_TOTALS_KEYS:,} at once")
        listed_keys = json.dumps(list(keys))
        by_state = joined_rows(await self.read(self._SQL["totals_of"], (listed_keys, debtor_bic)))
        returns = joined_rows(await self.read(self._SQL["returned_totals_of"],
                                              (listed_keys, debtor_bic)))
        return by_state, returns[0]  # type: ignore[return-value]

    async def cycle_flows(self, cycle_id: int) -> CycleFlows | None:
        """The cycle's bounds and what settled in it, or None for an unknown cycle."""
        bounds = await self.read(self._SQL["cycle"], (cycle_id,))
        if not bounds:
            return None
        transfers = joined_rows(await self.read(self._SQL["cycle_transfers"], (cycle_id,)))
        returns = joined_rows(await self.read(self._SQL["cycle_returns"], (cycle_id,)))
        return CycleFlows(bounds[0][0], bounds[0][1], transfers, returns)  # type: ignore[arg-type]

    async def statement_entries(self, cycle_id: int, bic: str, after: tuple[float, str],
                                limit: int) -> list[tuple[str, int, bool, float, str, str]]:
        """A participant's settled movements in a cycle, in (booked at, reference) order, the
        next `limit` after `after` (a page: (0.0, "") for the first): reference (end-to-end
        or return id), VND, credit?, booked at (unix s), counterparty BIC, transfer|return."""
        return [(ref, amount, bool(credit), at, other, kind) for ref, amount, credit, at, other,
                kind in await self.read(self._SQL["statement"], (cycle_id, bic, *after, limit))]

    async def open_cycle_now(self) -> tuple[int | None, int]:
        """The open cycle's id (None if none is open) and the highest id ever used."""
        rows = await self.read(self._SQL["open_cycle"])
        return rows[0][0], rows[0][1]

    async def directory_now(self) -> tuple[list[DirectoryEntry], int]:
        """Every active directory entry, and the number (seq) of the last change they hold at
        least: changes after it may be in them already (applying one again does no harm)."""
        last_seq = (await self.read(self._SQL["directory_seq"]))[0][0]
        return [DirectoryEntry(*row) for row in await self.read(self._SQL["directory"])], last_seq

    async def returned_ids_now(self) -> set[str]:
        return {row[0] for row in await self.read("SELECT end_to_end_id FROM returns")}

    async def settings_now(self) -> list[tuple[str, int | None, bool]]:
        """(BIC, position limit in VND or None, signed off) as the operator last set them."""
        return [(bic, limit, bool(signed_off)) for bic, limit, signed_off in await self.read(
            "SELECT bic, position_limit_vnd, signed_off FROM participant_settings")]


# The secret of ForwardIds: one row, made once by whichever process opens the journal first
# (its schema lock held), so every process of a cluster and every restart reads the same one.
# A journal from before it holds transfers forwarded under the unkeyed TxIds: the latest of
# their received_at marks them (legacy_until_s), so creditors can still name them.
FORWARD_SECRET_TABLE = """
CREATE TABLE IF NOT EXISTS forward_secret (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    secret BYTEA NOT NULL CHECK (length(secret) = 32),
    legacy_until_s DOUBLE PRECISION
)"""  # BYTEA: SQLite keeps a blob as it is in a column of any affinity
MAKE_FORWARD_SECRET = (
    "INSERT INTO forward_secret (only_row, secret, legacy_until_s) "
    "SELECT 1, {}, (SELECT max(received_at) FROM transfers) WHERE true "
    "ON CONFLICT (only_row) DO NOTHING")
READ_FORWARD_SECRET = "SELECT secret, legacy_until_s FROM forward_secret"


def new_forward_secret() -> bytes:
    """A fresh secret for ForwardIds, from the OS's CSPRNG."""
    return secrets.token_bytes(FORWARD_SECRET_BYTES)


def transfer_of_row(row: Sequence[Any]) -> Transfer:
    """A journal row (the columns of TRANSFER_COLUMNS) as a Transfer: written once here."""
    return Transfer(
        end_to_end_id=row[0], tx_id=row[1], msg_id=row[2], debtor_bic=row[3],
        creditor_bic=row[4], amount_vnd=row[5], bulk=bool(row[6]), received_at=row[7],
        state=TransferState(row[8]), reason_code=row[9], reason_by=row[10],
    )


def iso_utc(timestamp_s: float) -> str:
    """Unix time as ISO 8601 in UTC, to the millisecond: 2026-11-20T08:30:15.123Z."""
    return datetime.fromtimestamp(timestamp_s, UTC).isoformat(timespec="milliseconds"
                                                              ).replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class JournalTransfer:
    """A transfer as the journal holds it, with when it became final (unix s) and the
    settlement cycle it settled in, for whoever looks into the journal."""

    transfer: Transfer
    final_at: float | None
    cycle_id: int | None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> JournalTransfer:
        """A row of LISTED_COLUMNS."""
        return cls(transfer_of_row(row), row[-2], row[-1])

    def as_dict(self) -> dict[str, Any]:
        """As the admin API and `switchlab journal --json` give it: times in ISO 8601 UTC; an
        amount of None is one refused AM12 whose text was no whole number of dong (the
        journal keeps 0 for it: the switch takes no other amount of 0)."""
        t = self.transfer
        return {
            "end_to_end_id": t.wire_id, "tx_id": t.tx_id, "msg_id": t.msg_id,
            "debtor_bic": t.debtor_bic, "creditor_bic": t.creditor_bic,
            "amount_vnd": t.amount_vnd or None, "mode": "bulk" if t.bulk else "instant",
            "state": str(t.state), "reason_code": t.reason_code, "reason_by": t.reason_by,
            "received_at": iso_utc(t.received_at),
            "final_at": iso_utc(self.final_at) if self.final_at is not None else None,
            "cycle_id": self.cycle_id,
        }


def listing(state: str | None, participant: str | None, since_s: float | None, limit: int,
            oldest_first: bool, placeholder: str) -> tuple[str, list[Any]]:
    """The statement and parameters of a listing (JournalReader.transfers' arguments) in a
    dialect whose parameters are `placeholder` and a number (?1, $1); it asks for one row
    more than `limit`, to say whether more matched. Raises ValueError for a limit outside 1
    to MAX_LISTED_TRANSFERS."""
    if not 1 <= limit <= MAX_LISTED_TRANSFERS:
        raise ValueError(f"limit {limit} is not from 1 to {MAX_LISTED_TRANSFERS:,}")
    where, params = ["TRUE"], []

    def parameter(value: Any) -> str:
        params.append(value)
        return f"{placeholder}{len(params)}"

    if state is not None:
        where.append(f"state = {parameter(state)}")
    if participant is not None:
        bic = parameter(participant)
        where.append(f"(debtor_bic = {bic} OR creditor_bic = {bic})")
    if since_s is not None:
        where.append(f"received_at >= {parameter(since_s)}")
    order = "ASC" if oldest_first else "DESC"
    return (f"SELECT {LISTED_COLUMNS} FROM transfers WHERE {' AND '.join(where)}"
            f" ORDER BY received_at {order}, end_to_end_id {order}"
            f" LIMIT {parameter(limit + 1)}"), params


def listed(rows: Sequence[Sequence[Any]], limit: int, oldest_first: bool
           ) -> tuple[list[JournalTransfer], bool]:
    """A listing's rows (`listing`) as transfers in the order received, and whether more
    matched than `limit`."""
    found = [JournalTransfer.from_row(row) for row in rows[:limit]]
    if not oldest_first:
        found.reverse()
    return found, len(rows) > limit


def described(row: Sequence[Any], history: Iterable[Sequence[Any]],
              returned: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """A transfer as `describe` gives it, from its row (LISTED_COLUMNS), its transitions
    (from, to, reason code, at) and its return's row, if any (id, VND, reason, at, cycle)."""
    return JournalTransfer.from_row(row).as_dict() | {
        "history": [{"from": old, "to": new, "reason_code": reason, "at": iso_utc(at)}
                    for old, new, reason, at in history],
        "return": None if not returned else dict(zip(
            ("return_id", "amount_vnd", "reason_code", "settled_at", "cycle_id"),
            (*returned[0][:3], iso_utc(returned[0][3]), returned[0][4]), strict=True))}


# The read queries, written once for both dialects: SQL that SQLite and PostgreSQL read alike,
# with numbered parameters ?1, ?2… (SQLite's); PostgreSQL's journal numbers them $1, $2…
# (`dollar_placeholders`). A parameter that may be NULL is cast, which both understand.
READS = {
    "digest": "SELECT body_sha256 FROM messages WHERE sender_bic=?1 AND msg_id=?2",
    "listed_one": f"SELECT {LISTED_COLUMNS} FROM transfers WHERE end_to_end_id=?1",
    "return_of": "SELECT return_id, amount_vnd, reason_code, settled_at, cycle_id FROM returns"
                 " WHERE end_to_end_id=?1",
    "directory": f"SELECT {DIRECTORY_COLUMNS} FROM directory",
    "directory_seq": "SELECT coalesce(max(seq), 0) FROM directory_changes",
    "directory_changes": (
        "SELECT seq, citizen_id, action, participant_bic, account_id, holder_name, changed_by,"
        " at FROM directory_changes WHERE seq > ?1"
        " AND (CAST(?2 AS TEXT) IS NULL OR citizen_id = ?2)"
        " AND (CAST(?3 AS TEXT) IS NULL OR participant_bic = ?3) ORDER BY seq LIMIT ?4"),
    "history": "SELECT from_state, to_state, reason_code, at FROM transitions"
               " WHERE end_to_end_id=?1 ORDER BY seq",
    # The totals from their counters (each writer's slot summed), not from the rows: the
    # same figures as a scan (tests/integration/test_retention.py holds it), at any size.
    "totals": "SELECT state, reason_code, CAST(sum(count) AS BIGINT), sum(amount_high),"
              " sum(amount_low) FROM transfer_totals GROUP BY 1, 2 HAVING sum(count) <> 0",
    "returned_totals": "SELECT CAST(coalesce(sum(count), 0) AS BIGINT),"
                       " coalesce(sum(amount_high), 0), coalesce(sum(amount_low), 0)"
                       " FROM return_totals",
    # ?1 is a JSON array of keys: one parameter whatever their number, read by each
    # database's own JSON function (`KEYS_OF_JSON`, in each journal's reads).
    "totals_of": f"SELECT state, coalesce(reason_code, ''), count(*), {split_sum('amount_vnd')}"
                 " FROM transfers WHERE end_to_end_id IN ({keys}) AND debtor_bic = ?2"
                 " GROUP BY 1, 2",
    "returned_totals_of": f"SELECT count(*), {split_sum('amount_vnd')} FROM returns"
                          " WHERE end_to_end_id IN ({keys}) AND debtor_bic = ?2",
    "cycle": "SELECT opened_at, closed_at FROM cycles WHERE cycle_id=?1",
    "cycle_transfers": f"SELECT debtor_bic, creditor_bic, count(*), {split_sum('amount_vnd')}"
                       " FROM transfers WHERE cycle_id=?1 GROUP BY debtor_bic, creditor_bic",
    "cycle_returns": f"SELECT creditor_bic, debtor_bic, count(*), {split_sum('amount_vnd')}"
                     " FROM returns WHERE cycle_id=?1 GROUP BY creditor_bic, debtor_bic",
    "statement": (
        "SELECT * FROM (SELECT end_to_end_id AS ref, amount_vnd, creditor_bic = ?2,"
        " final_at AS at, CASE WHEN creditor_bic = ?2 THEN debtor_bic ELSE creditor_bic END,"
        " 'transfer' FROM transfers WHERE cycle_id=?1 AND (debtor_bic=?2 OR creditor_bic=?2)"
        " UNION ALL SELECT return_id, amount_vnd, debtor_bic = ?2, settled_at,"
        " CASE WHEN debtor_bic = ?2 THEN creditor_bic ELSE debtor_bic END, 'return'"
        " FROM returns WHERE cycle_id=?1 AND (debtor_bic=?2 OR creditor_bic=?2)) AS entries"
        " WHERE at > ?3 OR (at = ?3 AND ref > ?4) ORDER BY at, ref LIMIT ?5"),
    "open_cycle": "SELECT (SELECT max(cycle_id) FROM cycles WHERE closed_at IS NULL),"
                  " (SELECT coalesce(max(cycle_id), 0) FROM cycles)",
}


# Shared by both journals (the table is the same in both).
INSERT_ADMIN_CHANGE = ("INSERT INTO admin_changes (idempotency_key, request, at)"
                       " VALUES (?1, ?2, ?3)")
# The answer, with the change when it was not journaled with it (an idempotent change).
ANSWER_ADMIN_CHANGE = ("INSERT INTO admin_changes (idempotency_key, request, at, status, answer)"
                       " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (idempotency_key) DO UPDATE"
                       " SET status=excluded.status, answer=excluded.answer")
SELECT_ADMIN_CHANGE = "SELECT request, status, answer FROM admin_changes WHERE idempotency_key=?1"

SQLITE_KEYS_OF_JSON = "SELECT value FROM json_each(?1)"
POSTGRES_KEYS_OF_JSON = "SELECT json_array_elements_text(CAST(?1 AS json))"


def reads_for(keys_of_json: str) -> dict[str, str]:
    """READS with a dialect's way of reading a JSON array of keys in place of {keys}."""
    return {name: sql.replace("{keys}", keys_of_json) for name, sql in READS.items()}


def dollar_placeholders(sql: str) -> str:
    """?1, ?2… as PostgreSQL numbers its parameters: $1, $2…"""
    return re.sub(r"\?(\d+)", r"$\1", sql)
