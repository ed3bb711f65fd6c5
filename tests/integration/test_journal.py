"""The switch's journal, the same tests on each database it may live in (SQLite, PostgreSQL):
writes are durable when they return, grouped, taken in order; a write the database refuses is
refused alone; only a storage failure stops the journal; and what the switch writes reads back
the same."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from switch.events import SwitchEvents
from switch.group_commit import GroupCommit
from switch.journal_errors import JournalBusy, JournalFailed, WriteRefused
from switch.records import Final, SettledReturn
from switch.states import TransferState
from switch.store import SqliteJournal
from switch.store_postgres import PostgresStore
from switch.transfer import Transfer

TREASURY, BANK = "TRSYVNV1", "BFTVVNVX"
LIMITS_VND = {TREASURY: 10**12, BANK: 10**12}
OpenJournal = Callable[..., Awaitable[GroupCommit]]


@pytest.fixture(params=["sqlite", "postgresql"])
async def open_journal(request: pytest.FixtureRequest, tmp_path: Path
                       ) -> AsyncIterator[OpenJournal]:
    """Opens a journal on the test's database (the same one each time, as a restart would):
    `await open_journal(started=True, **limits)`; all are closed after the test."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    opened: list[GroupCommit] = []

    async def open_one(started: bool = True, **settings: object) -> GroupCommit:
        journal: GroupCommit
        if url is None:
            journal = SqliteJournal(tmp_path / "journal.sqlite", **settings)  # type: ignore[arg-type]
        else:
            journal = PostgresStore(url, switch_bic="SWLBVNVX", **settings)  # type: ignore[arg-type]
        opened.append(journal)
        if started:
            await start(journal)
        return journal

    yield open_one
    for journal in opened:
        await journal.close()  # type: ignore[attr-defined]


async def start(journal: GroupCommit) -> None:
    await journal.start()  # type: ignore[attr-defined]
    if isinstance(journal, PostgresStore):
        await journal.seed_positions(LIMITS_VND)


def transfer(e2e: str, amount_vnd: int = 1_000, state: TransferState = TransferState.PENDING,
             bulk: bool = False) -> Transfer:
    return Transfer(end_to_end_id=e2e, tx_id=f"TX{e2e}", msg_id=f"M{e2e}", debtor_bic=TREASURY,
                    creditor_bic=BANK, amount_vnd=amount_vnd, bulk=bulk, received_at=1.0,
                    state=state)


def take(journal: GroupCommit, e2e: str, msg_id: str | None = None, **changes: object
         ) -> asyncio.Future[object]:
    """Journal one new transfer under its own message (or `msg_id`)."""
    return journal.record_new(TREASURY, msg_id or f"M{e2e}", b"digest",  # type: ignore[attr-defined]
                              [transfer(e2e, **changes)], 1.0)


async def test_concurrent_writes_are_grouped_and_all_durable_on_return(
        open_journal: OpenJournal) -> None:
    events = SwitchEvents()
    commits: list[int] = []
    events.journal_committed.add_listener(lambda writes, seconds: commits.append(writes))
    journal = await open_journal(events=events, max_queued_writes=500, max_batch=16)
    await asyncio.gather(*(take(journal, f"E{n}") for n in range(200)))
    assert sum(commits) == 200
    assert len(commits) < 200  # writes that queued together shared a commit
    assert max(commits) <= 16
    await journal.close()  # type: ignore[attr-defined]
    reopened = await open_journal()
    found = await reopened.lookup([f"E{n}" for n in range(200)])  # type: ignore[attr-defined]
    assert len(found) == 200 and found["E7"].state is TransferState.PENDING


async def test_a_refused_write_is_refused_alone_and_the_journal_goes_on(
        open_journal: OpenJournal) -> None:
    journal = await open_journal()
    await take(journal, "E1", msg_id="M1")
    same_batch = [take(journal, "E2", msg_id="M2"), take(journal, "E3", msg_id="M1"),
                  take(journal, "E4", msg_id="M4")]
    results = await asyncio.gather(*same_batch, return_exceptions=True)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], WriteRefused) and "unique" in str(results[1]).lower()
    await take(journal, "E5")
    found = await journal.lookup(["E1", "E2", "E3", "E4", "E5"])  # type: ignore[attr-defined]
    assert sorted(found) == ["E1", "E2", "E4", "E5"]


async def test_a_value_the_database_cannot_hold_is_refused_alone(
        open_journal: OpenJournal) -> None:
    journal = await open_journal()
    results = await asyncio.gather(take(journal, "E1"), take(journal, "E2", amount_vnd=10**19),
                                   take(journal, "E3"), return_exceptions=True)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], WriteRefused)
    assert sorted(await journal.lookup(["E1", "E2", "E3"])) == ["E1", "E3"]  # type: ignore[attr-defined]


async def break_storage(journal: GroupCommit, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make the next commit fail as a storage failure would; what the failure says."""
    if isinstance(journal, PostgresStore):  # the server ends the writer's session
        pid = journal._writer.get_server_pid()
        await journal.read("SELECT pg_terminate_backend($1)", (pid,))
        return "storage failure"

    def disk_gone(writes: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(journal, "_transaction", disk_gone)
    return "disk I/O error"


async def test_a_storage_failure_stops_the_journal(open_journal: OpenJournal,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    events = SwitchEvents()
    failures: list[BaseException] = []
    events.journal_failed.add_listener(lambda error: failures.append(error))
    journal = await open_journal(events=events)
    await take(journal, "E1")
    said = await break_storage(journal, monkeypatch)
    with pytest.raises(JournalFailed, match=said):
        await take(journal, "E2")
    with pytest.raises(JournalFailed, match="stopped after a storage failure"):
        take(journal, "E3")
    assert len(failures) == 1
    assert sorted(await journal.lookup(["E1", "E2", "E3"])) == ["E1"]  # type: ignore[attr-defined]


async def test_a_full_queue_refuses_without_taking(open_journal: OpenJournal) -> None:
    journal = await open_journal(started=False, max_queued_writes=3)
    taken = [take(journal, f"E{n}") for n in range(3)]
    with pytest.raises(JournalBusy, match="the limit is 3"):
        take(journal, "E99")
    await start(journal)
    await asyncio.gather(*taken)
    assert sorted(await journal.lookup(["E0", "E1", "E2", "E99"])) == ["E0", "E1", "E2"]  # type: ignore[attr-defined]


async def test_close_waits_for_writes_already_taken(open_journal: OpenJournal) -> None:
    journal = await open_journal()
    writes = [take(journal, f"E{n}") for n in range(100)]
    await journal.close()  # type: ignore[attr-defined]
    assert all(write.done() and write.exception() is None for write in writes)
    reopened = await open_journal()
    assert len(await reopened.lookup([f"E{n}" for n in range(100)])) == 100  # type: ignore[attr-defined]


async def test_a_transfer_settled_and_returned_reads_back_everywhere(
        open_journal: OpenJournal) -> None:
    """What the switch writes at each step, read back as a restarted switch, the admin API
    and the statements read it."""
    journal = await open_journal()
    open_id, _ = await journal.open_cycle_now()  # type: ignore[attr-defined]
    if open_id is None:
        await journal.open_cycle(1, 1.0)  # type: ignore[attr-defined]
        open_id = 1
    settled, rejected = transfer("E-OK", 5_000, bulk=True), transfer("E-NO", 7_000, bulk=True)
    assert await journal.record_new(TREASURY, "M1", b"d1", [settled, rejected], 1.0) is None  # type: ignore[attr-defined]
    assert await journal.message_digest(TREASURY, "M1") == b"d1"  # type: ignore[attr-defined]
    assert await journal.record_final([  # type: ignore[attr-defined]
        Final(settled, TransferState.SETTLED, None, None, open_id, True),
        Final(rejected, TransferState.REJECTED, "AC04", BANK, None, False)], 2.0) is None
    due = await journal.notices_due_now()  # type: ignore[attr-defined]
    assert [t.end_to_end_id for t in due.to_creditors] == ["E-OK"]
    assert sorted(t.end_to_end_id for t in due.to_debtors) == ["E-NO", "E-OK"]
    await journal.mark_sent("both", ["E-OK"])  # type: ignore[attr-defined]
    await journal.mark_sent("debtor", ["E-NO"])  # type: ignore[attr-defined]
    settled.state = TransferState.SETTLED
    assert await journal.record_returns(  # type: ignore[attr-defined]
        [SettledReturn("RT1", settled, 2_000, "MD07")], BANK, open_id, 3.0) is None
    due = await journal.notices_due_now()  # type: ignore[attr-defined]
    assert (due.to_creditors, due.to_debtors) == ([], [])
    assert [(r.return_id, r.amount_vnd) for r in due.returns] == [("RT1", 2_000)]
    assert await journal.returns_by_id(BANK, ["RT1", "RT9"]) == {"RT1": ("E-OK", 2_000)}  # type: ignore[attr-defined]
    found = await journal.lookup(["E-OK", "E-NO"])  # type: ignore[attr-defined]
    assert (found["E-OK"].state, found["E-OK"].reason_code) == (TransferState.RETURNED, "MD07")
    assert (found["E-NO"].state, found["E-NO"].reason_by) == (TransferState.REJECTED, BANK)
    described = await journal.describe("E-OK")  # type: ignore[attr-defined]
    assert [step["to"] for step in described["history"]] == ["PENDING", "SETTLED", "RETURNED"]
    assert (described["state"], described["return"]["return_id"]) == ("RETURNED", "RT1")
    by_state, returns = await journal.totals()  # type: ignore[attr-defined]
    assert sorted(by_state) == [("REJECTED", "AC04", 1, 7_000), ("RETURNED", "MD07", 1, 5_000)]
    assert tuple(returns) == (1, 2_000)
    flows = await journal.cycle_flows(open_id)  # type: ignore[attr-defined]
    assert flows is not None and flows.transfers == [(TREASURY, BANK, 1, 5_000)]
    assert flows.returns == [(BANK, TREASURY, 1, 2_000)]
    first = await journal.statement_entries(open_id, BANK, (0.0, ""), 1)  # type: ignore[attr-defined]
    assert [(ref, amount, credit) for ref, amount, credit, *_ in first] == [("E-OK", 5_000, True)]
    rest = await journal.statement_entries(open_id, BANK, (first[0][3], first[0][0]), 10)  # type: ignore[attr-defined]
    assert [(ref, amount, credit) for ref, amount, credit, *_ in rest] == [("RT1", 2_000, False)]
    assert await journal.returned_ids_now() == {"E-OK"}  # type: ignore[attr-defined]
    closed = await journal.close_cycle(open_id, 4.0)  # type: ignore[attr-defined]
    assert closed in (None, open_id)  # SQLite follows memory; PostgreSQL says which it closed
    assert await journal.open_cycle_now() == (open_id + 1, open_id + 1)  # type: ignore[attr-defined]
    await journal.save_settings(BANK, 123, True)  # type: ignore[attr-defined]
    assert await journal.settings_now() == [(BANK, 123, True)]  # type: ignore[attr-defined]


async def test_what_a_restart_finds_in_flight(open_journal: OpenJournal) -> None:
    journal = await open_journal()
    await take(journal, "E-FLY")
    await take(journal, "E-BAD", state=TransferState.REJECTED, bulk=True)
    assert [t.end_to_end_id for t in await journal.in_flight_now()] == ["E-FLY"]  # type: ignore[attr-defined]
    due = await journal.notices_due_now()  # type: ignore[attr-defined]
    assert [t.end_to_end_id for t in due.to_debtors] == ["E-BAD"]
