"""Kill a switch process with SIGKILL mid-run and check the invariants: on SQLite, the switch
is restarted from its journal; on PostgreSQL, one of two switch processes sharing the journal
is killed while the other keeps serving (the supervisor restarts the killed one).

Nothing lost: every submitted transfer is final after the restart. Nothing doubled: no
transfer settles twice and no creditor is confirmed ACSC for a transfer the journal rejected.
Money conserved: net positions sum to zero and equal the settled transfers.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import yaml

from protocol.codec import new_id
from protocol.messages import StatusRequest, StatusRequestItem, TxStatus
from tests.harness import (
    BANK_A,
    BANK_B,
    TREASURY,
    Answer,
    SwitchLab,
    credit_transfers,
    transfer,
    until,
)

pytestmark = pytest.mark.slow  # whole runs: `pytest -m "not slow"` leaves them out

REPO = Path(__file__).resolve().parents[2]


async def start_switch_process(config_path: Path, processes: int = 1
                               ) -> tuple[subprocess.Popen[bytes], list[int]]:
    """`python -m switch`, and the pids of its switch processes (its own, or its workers')."""
    process = subprocess.Popen(
        [sys.executable, "-m", "switch", "--config", str(config_path),
         "--processes", str(processes)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.get_running_loop().run_in_executor(None, process.stdout.readline)
    assert b"listening on" in line, process.stderr.read().decode() if process.stderr else line
    workers = [int(pid) for pid in line.decode().split("pids ", 1)[1].strip(" )\n").split()
               ] if processes > 1 else [process.pid]
    return process, workers


async def configured_switch(lab: SwitchLab, tmp_path: Path, **switch: object) -> Path:
    """The lab's participants served, the switch's port left for the switch process to bind,
    and its configuration written with `switch`'s settings; the configuration's path."""
    sockets = await lab.start_participants()
    assert lab.switch_socket is not None
    lab.switch_socket.hand_over()  # the switch process binds this port itself
    config = lab.config_data(sockets)
    config["switch"] |= {"port": lab.port, **switch}
    config_path = tmp_path / "switch.yaml"
    config_path.write_text(yaml.safe_dump(config))
    return config_path


@pytest.fixture(params=["sqlite", "postgresql, two processes"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the switch keeps its journal: a SQLite file, or a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "switch.sqlite")
    return request.getfixturevalue("postgres_url")


async def test_sigkill_mid_run_loses_nothing_and_settles_nothing_twice(
        tmp_path: Path, journal: str) -> None:
    shared = journal.startswith("postgresql://")
    lab = SwitchLab(Path(journal) if not shared else tmp_path / "unused.sqlite",
                    **({"journal_url": journal} if shared else {}))
    config_path = await configured_switch(lab, tmp_path, creditor_timeout_s=5.0)
    # Creditors answer slowly, so that hundreds of transfers are in flight at the kill.
    lab.participants[BANK_A].delay_s = 0.3
    lab.participants[BANK_B].decide = lambda tx: (
        Answer("RJCT", "AC01") if tx.end_to_end_id.endswith("7") else Answer())
    process, workers = await start_switch_process(config_path, 2 if shared else 1)
    submitted: list[str] = []
    try:
        for batch in range(6):
            ids = [f"CRASH-{batch}-{n}" for n in range(200)]
            transactions = [transfer(e2e, amount_vnd=1_000 + n, creditor=(BANK_A, BANK_B)[n % 2])
                            for n, e2e in enumerate(ids)]
            reply = await lab.peer(TREASURY).send(credit_transfers(transactions))
            assert reply.status == 202
            submitted += ids
        instant = [asyncio.ensure_future(lab.peer(TREASURY).send(
            credit_transfers([transfer(f"CRASH-I-{n}", creditor=BANK_A)]))) for n in range(50)]
        await asyncio.sleep(0.15)
        in_flight_at_kill = await _count_pending(journal)
        os.kill(workers[0], signal.SIGKILL)  # the switch, or one of its two processes
        if not shared:
            process.wait()
        await asyncio.gather(*instant, return_exceptions=True)
        submitted += [f"CRASH-I-{n}" for n in range(50)]
        # SQLite: the switch again, from its journal. PostgreSQL: the other process serves on;
        # a survivor takes over the dead one's work once its lease (5 s) has run out.
        restarted = process if shared else (await start_switch_process(config_path))[0]
        try:
            final: dict[str, tuple[TxStatus, str | None]] = {}

            async def all_final() -> bool:
                final.update(await _statuses(lab, submitted))
                return all(status in (TxStatus.SETTLED, TxStatus.REJECTED)
                           for status, _ in final.values())

            await until_async(all_final, timeout_s=30)
            assert set(final) == set(submitted)
            await until(lambda: _creditors_told(lab, final), timeout_s=30)
            _, participants = await lab.admin("GET", "/v1/admin/participants")
            nets = {p["bic"]: p["net_vnd"] for p in participants}
            assert sum(nets.values()) == 0
            settled_vnd = await _settled_vnd(journal)
            assert nets[BANK_A] + nets[BANK_B] == settled_vnd == -nets[TREASURY]
            assert all(p["reserved_vnd"] == 0 for p in participants)
            figures = {
                "submitted": len(submitted),
                "in_flight_at_kill": in_flight_at_kill,
                "final": dict(Counter(f"{s}:{r}" if r else str(s) for s, r in final.values())),
            }
            print("crash-restart figures:", json.dumps(figures))
            assert in_flight_at_kill > 0, "the kill came when nothing was in flight"
        finally:
            restarted.terminate()
            restarted.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
        await lab.stop()


async def _query(journal: str, sql: str) -> list[tuple]:
    """Read the journal directly, as an auditor would: a SQLite file or a PostgreSQL URL."""
    if not journal.startswith("postgresql://"):
        with sqlite3.connect(journal) as connection:
            return connection.execute(sql).fetchall()
    connection = await asyncpg.connect(journal)
    try:
        return [tuple(row) for row in await connection.fetch(sql)]
    finally:
        await connection.close()


async def _count_pending(journal: str) -> int:
    return (await _query(journal, "SELECT count(*) FROM transfers WHERE state='PENDING'"))[0][0]


async def _settled_vnd(journal: str) -> int:
    doubled = await _query(journal, "SELECT end_to_end_id FROM transitions WHERE"
                           " to_state='SETTLED' GROUP BY end_to_end_id HAVING count(*) > 1")
    assert doubled == [], f"settled twice: {doubled}"
    return int((await _query(journal, "SELECT coalesce(sum(amount_vnd), 0) FROM transfers"
                             " WHERE state='SETTLED'"))[0][0])


async def until_async(predicate: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
    """Ask again until `predicate` holds (a bound wait, not a timing test)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.5)


async def _statuses(lab: SwitchLab, ids: list[str]) -> dict[str, tuple[TxStatus, str | None]]:
    found: dict[str, tuple[TxStatus, str | None]] = {}
    for start in range(0, len(ids), 1_000):
        request = StatusRequest(msg_id=new_id("Q"), created_at=datetime.now(UTC), items=[
            StatusRequestItem(e2e) for e2e in ids[start:start + 1_000]])
        reply = await lab.peer(TREASURY).send(request)
        assert reply.status == 200, reply.text
        found |= {i.original_end_to_end_id: (i.status, i.reason_code)
                  for i in reply.message.document.transactions}
    return found


def _creditors_told(lab: SwitchLab, final: dict[str, tuple[TxStatus, str | None]]) -> bool:
    """Every ACSC a creditor got is for a settled transfer; every settled one was confirmed."""
    confirmed: dict[str, set[TxStatus]] = {}
    for bic in (BANK_A, BANK_B):
        for e2e, items in lab.participants[bic].confirmations.items():
            confirmed.setdefault(e2e, set()).update(i.status for i in items)
    for e2e, statuses in confirmed.items():
        assert TxStatus.SETTLED not in statuses or final[e2e][0] is TxStatus.SETTLED, e2e
    return all(TxStatus.SETTLED in confirmed.get(e2e, ()) for e2e, (status, _) in final.items()
               if status is TxStatus.SETTLED)
