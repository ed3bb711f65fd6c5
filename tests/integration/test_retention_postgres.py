"""A year of payout days on PostgreSQL (issue #24): transfers, their history and returns
partitioned by business day, made ahead; `switchlab journal archive|drop --file postgresql://…`
archives a day in the SQLite journal's format and drops its partitions whole, choosing its rows
from the journal, never from the archive."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from protocol import reasons
from switch import retention
from switch.records import Final
from switch.retention_postgres import partitions
from switch.states import TransferState
from switch.store_postgres import PostgresStore
from switch.transfer import Transfer
from switchlab.cli import main
from tests.integration.test_retention import _forge

TREASURY, BANK = "TRSYVNV1", "BFTVVNVX"
DAY_S = 86_400
_MESSAGES = itertools.count()


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[PostgresStore]:
    journal = PostgresStore(postgres_url, switch_bic="SWLBVNVX")
    await journal.start()
    await journal.seed_positions({TREASURY: 10**12, BANK: 10**12})
    yield journal
    await journal.close()


def _transfer(e2e: str, at_s: float) -> Transfer:
    return Transfer(end_to_end_id=e2e, tx_id=f"TX{e2e}", msg_id=f"M{e2e}", debtor_bic=TREASURY,
                    creditor_bic=BANK, amount_vnd=1_000, bulk=False, received_at=at_s,
                    state=TransferState.PENDING)


async def _take(store: PostgresStore, e2e: str, at_s: float) -> object:
    return await store.record_new(TREASURY, f"M{next(_MESSAGES)}", b"digest",
                                  [_transfer(e2e, at_s)], at_s)


async def _settle(store: PostgresStore, e2e: str, at_s: float) -> None:
    """A transfer received at `at_s`, settled and its creditor told."""
    assert await _take(store, e2e, at_s) is None
    _, cycle = await store.open_cycle_now()
    assert await store.record_final([Final(_transfer(e2e, at_s), TransferState.SETTLED, None,
                                           None, cycle, True)], at_s + 1) is None
    await store.mark_sent("creditor", [e2e])


async def _partitions(url: str) -> set[str]:
    connection = await asyncpg.connect(url)
    try:
        return {row[0] for row in await connection.fetch(
            "SELECT inhrelid::regclass::text FROM pg_inherits")}
    finally:
        await connection.close()


async def _main(args: list[str]) -> int:
    """The command as a person runs it: in a thread, outside the test's event loop."""
    return await asyncio.to_thread(main, args)


def _archive(url: str, to: Path, before: str | None = None) -> list[str]:
    """`journal archive` of the days before `before` (today by default), nothing kept."""
    before = before or str(retention.business_day(time.time()))
    return ["journal", "archive", "--file", url, "--before", before, "--to", str(to),
            "--keep-days", "0"]


async def test_issue_24_postgres_a_dropped_day_leaves_other_days_and_the_duplicate_window(
        store: PostgresStore, postgres_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A day three days old archived, verified and dropped while the journal takes and settles
    today's transfers beside it: its partitions are gone, today's transfers stay and their ids
    are still refused DUPL, the dropped day's id is free again
    (its transfer_ids row went with it), and the all-time totals do not move. The archive is
    the SQLite journal's format: `journal show --archive` reads it back."""
    now = time.time()
    old_s = now - 3 * DAY_S
    await _settle(store, "OLD-1", old_s)
    await _settle(store, "TODAY-1", now)
    await store.close_cycle(0, now)
    today = retention.business_day(now)
    old_day = retention.business_day(old_s)
    archive = tmp_path / "old.jsonl.gz"
    totals = await store.totals()
    assert await _main(_archive(postgres_url, archive, str(today))) == 0
    assert "1 transfer, 2 transitions, 0 returns, 1 message" in capsys.readouterr().out
    dropping = asyncio.ensure_future(_main(["journal", "drop", "--file", postgres_url,
                                            "--archive", str(archive), "--keep-days", "0"]))
    beside = 0
    while not dropping.done():  # the switch writes on beside the drop's detach
        await _settle(store, f"BESIDE-{beside}", time.time())
        beside += 1
    assert await dropping == 0 and beside > 0
    assert "dropped 1 transfer, 2 transitions, 0 returns, 1 message" in (
        capsys.readouterr().out)
    assert len(await store.lookup([f"BESIDE-{n}" for n in range(beside)])) == beside
    kept = await _partitions(postgres_url)
    assert f"transfers_d{old_day:%Y%m%d}" not in kept
    assert {f"{table}_d{today:%Y%m%d}" for table in ("transfers", "transitions", "returns")
            } <= kept
    assert set(await store.lookup(["OLD-1", "TODAY-1"])) == {"TODAY-1"}
    settled = 2 + beside  # all-time: the dropped day's transfer still counted
    assert totals == ([("SETTLED", "", 2, 2_000)], (0, 0))
    assert await store.totals() == ([("SETTLED", "", settled, settled * 1_000)], (0, 0))
    await store.close_cycle(0, time.time())  # today over but for the transfers still to come
    tomorrow = str(today + timedelta(days=1))
    assert await _main([*_archive(postgres_url, tmp_path / "today.jsonl.gz", tomorrow),
                        "--drop"]) == 2  # today still takes transfers: its partitions stay
    assert "hold today" in capsys.readouterr().err
    assert f"transfers_d{today:%Y%m%d}" in await _partitions(postgres_url)
    again = await _take(store, "TODAY-1", now)
    assert again["TODAY-1"].reason == reasons.DUPLICATE  # type: ignore[index]
    assert await _take(store, "OLD-1", now) is None
    assert await _main(["journal", "show", "OLD-1", "--archive", str(archive), "--json"]) == 0
    assert '"state": "SETTLED"' in capsys.readouterr().out


async def test_issue_24_postgres_a_forged_archive_is_refused_and_the_day_stays(
        store: PostgresStore, postgres_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """An archive altered and its manifest recomputed (as anyone can) verifies, but the drop
    compares it with the day's detached partitions, finds the difference, attaches them again
    and drops nothing."""
    old_s = time.time() - 3 * DAY_S
    await _settle(store, "OLD-1", old_s)
    await store.close_cycle(0, time.time())
    archive = tmp_path / "old.jsonl.gz"
    assert await _main(_archive(postgres_url, archive)) == 0
    with gzip.open(archive, "rb") as lines:
        _forge(archive, [line.replace(b"1000", b"1001") for line in lines.readlines()])
    before = await _partitions(postgres_url)
    capsys.readouterr()
    assert await _main(["journal", "drop", "--file", postgres_url, "--archive", str(archive),
                 "--keep-days", "0"]) == 2
    assert "does not hold the journal's transfers row OLD-1" in capsys.readouterr().err
    assert await _partitions(postgres_url) == before
    assert set(await store.lookup(["OLD-1"])) == {"OLD-1"}


async def test_issue_24_postgres_a_day_not_over_is_refused(
        store: PostgresStore, postgres_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A transfer of the day still in flight, and its cycle open: no archive is written."""
    old_s = time.time() - 3 * DAY_S
    assert await _take(store, "OLD-PENDING", old_s) is None
    archive = tmp_path / "old.jsonl.gz"
    assert await _main(_archive(postgres_url, archive)) == 2
    assert "1 transfer still in flight (PENDING)" in capsys.readouterr().err
    assert not archive.exists()


async def test_issue_24_postgres_partitions_exist_ahead_after_a_day_change(
        store: PostgresStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Started, a process has made today's and tomorrow's partitions; its first beat on the
    next business day makes the day after."""
    today = retention.business_day(time.time())
    names = {f"transfers_d{day:%Y%m%d}" for day in (today, today + timedelta(days=1))}
    assert names <= await _partitions(postgres_url)
    later_s = time.time() + DAY_S
    monkeypatch.setattr(time, "time", lambda: later_s)
    assert await store.beat()
    monkeypatch.undo()
    after = today + timedelta(days=2)
    assert {f"{table}_d{after:%Y%m%d}" for table in ("transfers", "transitions", "returns")
            } <= await _partitions(postgres_url)


async def test_issue_24_postgres_a_journal_made_before_the_partitions_is_refused_saying_so(
        postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    connection = await asyncpg.connect(postgres_url)
    await connection.execute("CREATE TABLE transfers (end_to_end_id TEXT PRIMARY KEY)")
    await connection.close()
    with pytest.raises(RuntimeError, match="before its tables were partitioned"):
        await PostgresStore(postgres_url, switch_bic="SWLBVNVX").start()
    assert await _main(_archive(postgres_url, tmp_path / "a.jsonl.gz", "2026-01-01")) == 2
    assert "before its tables were partitioned" in capsys.readouterr().err


async def test_attacker3_finding2_finishing_an_interrupted_drop_keeps_a_reused_ids_row(
        store: PostgresStore, postgres_url: str, tmp_path: Path) -> None:
    """A drop interrupted after it freed its day's ids, before its DROP TABLE, leaves the day
    detached and its ids free; a debtor takes one of them again today. The drop that finishes
    the day deletes only that day's ids: today's transfer is still found, and the same id
    sent again is still refused DUPL (before the fix its transfer_ids row went too)."""
    now = time.time()
    old_day = retention.business_day(now - 3 * DAY_S)
    await _settle(store, "OLD-1", now - 3 * DAY_S)
    await store.close_cycle(0, now)
    archive = tmp_path / "old.jsonl.gz"
    assert await _main(_archive(postgres_url, archive)) == 0
    connection = await asyncpg.connect(postgres_url)
    try:  # what the interrupted drop left: the day detached, its ids freed
        for table, name in partitions(old_day).items():
            await connection.execute(f'ALTER TABLE "{table}" DETACH PARTITION "{name}"')
        await connection.execute("DELETE FROM transfer_ids WHERE business_day = $1", old_day)
    finally:
        await connection.close()
    await _settle(store, "OLD-1", now)
    assert await _main(["journal", "drop", "--file", postgres_url, "--archive", str(archive),
                        "--keep-days", "0"]) == 0
    assert f"transfers_d{old_day:%Y%m%d}" not in await _partitions(postgres_url)
    assert set(await store.lookup(["OLD-1"])) == {"OLD-1"}
    again = await _take(store, "OLD-1", now)
    assert again["OLD-1"].reason == reasons.DUPLICATE  # type: ignore[index]
