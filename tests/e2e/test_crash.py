"""Kill the switch process with SIGKILL mid-run, restart it, and check the invariants.

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
from datetime import UTC, datetime
from pathlib import Path

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


async def start_switch_process(config_path: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "switch", "--config", str(config_path)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.get_running_loop().run_in_executor(None, process.stdout.readline)
    assert b"listening on" in line, process.stderr.read().decode() if process.stderr else line
    return process


async def test_sigkill_mid_run_loses_nothing_and_settles_nothing_twice(tmp_path: Path) -> None:
    lab = SwitchLab(tmp_path / "switch.sqlite")
    sockets = await lab.start_participants()
    assert lab.switch_socket is not None
    lab.switch_socket.hand_over()  # the switch process binds this port itself
    config = lab.config_data(sockets)
    config["switch"] |= {"port": lab.port, "creditor_timeout_s": 5.0}
    config_path = tmp_path / "switch.yaml"
    config_path.write_text(yaml.safe_dump(config))
    # Creditors answer slowly, so that hundreds of transfers are in flight at the kill.
    lab.participants[BANK_A].delay_s = 0.3
    lab.participants[BANK_B].decide = lambda tx: (
        Answer("RJCT", "AC01") if tx.end_to_end_id.endswith("7") else Answer())
    process = await start_switch_process(config_path)
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
        in_flight_at_kill = _count_pending(tmp_path / "switch.sqlite")
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        await asyncio.gather(*instant, return_exceptions=True)
        submitted += [f"CRASH-I-{n}" for n in range(50)]
        restarted = await start_switch_process(config_path)
        try:
            final = await _statuses(lab, submitted)
            assert set(final) == set(submitted)
            assert all(status in (TxStatus.SETTLED, TxStatus.REJECTED) for status, _ in
                       final.values()), Counter(s for s, _ in final.values())
            await until(lambda: _creditors_told(lab, final), timeout_s=30)
            _, participants = await lab.admin("GET", "/v1/admin/participants")
            nets = {p["bic"]: p["net_vnd"] for p in participants}
            assert sum(nets.values()) == 0
            settled_vnd = _settled_vnd(tmp_path / "switch.sqlite")
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


def _count_pending(journal: Path) -> int:
    with sqlite3.connect(journal) as connection:
        return connection.execute("SELECT count(*) FROM transfers WHERE state='PENDING'"
                                  ).fetchone()[0]


def _settled_vnd(journal: Path) -> int:
    with sqlite3.connect(journal) as connection:
        doubled = connection.execute(
            "SELECT end_to_end_id FROM transitions WHERE to_state='SETTLED'"
            " GROUP BY end_to_end_id HAVING count(*) > 1").fetchall()
        assert doubled == [], f"settled twice: {doubled}"
        return connection.execute(
            "SELECT coalesce(sum(amount_vnd), 0) FROM transfers WHERE state='SETTLED'"
        ).fetchone()[0]


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
