"""Issue #24, healing: the PostgreSQL journal stopped at once (`pg_ctl stop -m immediate`, as
a crash) in the middle of a payout through two switch processes, and started again seconds
later. Meanwhile every process answers 503 saying it is reconnecting (the admin API too,
never 500), and takes nothing; once the server is back each heals by itself (the same pids:
no restart, no operator), resolves what it held in flight, and serves again. Afterwards every
invariant holds: every transfer taken is final, none settled twice, nothing taken from a
message refused 503, net positions sum to zero and equal what settled, no hold left."""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from lab import postgres
from protocol.messages import TxStatus
from tests.e2e.test_crash import (
    _creditors_told,
    _query,
    _settled_vnd,
    _statuses,
    configured_switch,
    start_switch_process,
    until_async,
)
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

pytestmark = pytest.mark.slow  # a whole run: `pytest -m "not slow"` leaves it out

OUTAGE_S = 7.0  # longer than the lease (5 s): every process's beat is stale when it is back


async def test_the_journal_restarted_mid_payout_heals_without_an_operator(
        tmp_path: Path, own_postgres_server: postgres.Server) -> None:
    server = own_postgres_server
    journal = await postgres.create_database(server.url, "switchlab")
    lab = SwitchLab(tmp_path / "unused.sqlite", journal_url=journal)
    config_path = await configured_switch(lab, tmp_path, creditor_timeout_s=5.0)
    lab.participants[BANK_A].delay_s = 0.3  # hundreds in flight when the server stops
    lab.participants[BANK_B].decide = lambda tx: (
        Answer("RJCT", "AC01") if tx.end_to_end_id.endswith("7") else Answer())
    process, workers = await start_switch_process(config_path, 2)
    submitted: list[str] = []
    try:
        for batch in range(4):
            ids = [f"HEAL-{batch}-{n}" for n in range(200)]
            reply = await lab.peer(TREASURY).send(credit_transfers(
                [transfer(e2e, amount_vnd=1_000 + n, creditor=(BANK_A, BANK_B)[n % 2])
                 for n, e2e in enumerate(ids)]))
            assert reply.status == 202, reply.text
            submitted += ids
        instant = [asyncio.ensure_future(lab.peer(TREASURY).send(
            credit_transfers([transfer(f"HEAL-I-{n}", creditor=BANK_A)]))) for n in range(30)]
        await asyncio.sleep(0.15)
        in_flight_at_stop = (await _query(
            journal, "SELECT count(*) FROM transfers WHERE state='PENDING'"))[0][0]
        await asyncio.to_thread(postgres.halt, server)
        stopped_at = asyncio.get_running_loop().time()
        instant_replies = await asyncio.gather(*instant, return_exceptions=True)

        # The outage: every answer is a 503 that says why; nothing is taken.
        refused_ids = [f"HEAL-OUT-{n}" for n in range(10)]
        while asyncio.get_running_loop().time() - stopped_at < OUTAGE_S:
            health_status, health = await lab.admin("GET", "/v1/health")
            stats_status, _ = await lab.admin("GET", "/v1/admin/stats")
            reply = await lab.peer(TREASURY).send(credit_transfers(
                [transfer(e2e, creditor=BANK_B) for e2e in refused_ids]))
            assert health_status == 503 and health["status"] in ("reconnecting", "taken_over")
            assert stats_status == 503
            assert reply.status == 503 and "nothing was taken" in reply.text, reply.text
            await asyncio.sleep(0.5)
        await asyncio.to_thread(postgres.resume, server)
        back_at = asyncio.get_running_loop().time()

        async def serving() -> bool:  # every process, not whichever one a connection reaches
            answers = await _from_every_process(lab, workers, "/v1/health")
            return all(status == 200 for status, _ in answers.values())

        await until_async(serving, timeout_s=30)
        healed_s = asyncio.get_running_loop().time() - back_at
        for n in range(2):  # and it takes transfers again
            ids = [f"HEAL-AFTER-{n}-{m}" for m in range(100)]
            reply = await lab.peer(TREASURY).send(credit_transfers(
                [transfer(e2e, creditor=(BANK_A, BANK_B)[m % 2]) for m, e2e in enumerate(ids)]))
            assert reply.status == 202, reply.text
            submitted += ids
        submitted += [f"HEAL-I-{n}" for n in range(30)
                      if not isinstance(instant_replies[n], BaseException)
                      and instant_replies[n].status == 200]

        final: dict[str, tuple[TxStatus, str | None]] = {}

        async def all_final() -> bool:
            final.update(await _statuses(lab, submitted))
            return all(status in (TxStatus.SETTLED, TxStatus.REJECTED)
                       for status, _ in final.values())

        await until_async(all_final, timeout_s=60)
        await until(lambda: _creditors_told(lab, final), timeout_s=30)
        assert await _query(journal, "SELECT count(*) FROM transfers WHERE state='PENDING'"
                            ) == [(0,)]
        assert await _query(journal, "SELECT count(*) FROM transfers WHERE end_to_end_id"
                            " LIKE 'HEAL-OUT-%'") == [(0,)], "taken from a message refused 503"
        _, participants = await lab.admin("GET", "/v1/admin/participants")
        nets = {p["bic"]: p["net_vnd"] for p in participants}
        assert sum(nets.values()) == 0
        assert nets[BANK_A] + nets[BANK_B] == await _settled_vnd(journal) == -nets[TREASURY]
        assert all(p["reserved_vnd"] == 0 for p in participants)
        # The alert's gauge clears once healed, at every process.
        for pid, (_, exposition) in (await _from_every_process(lab, workers, "/metrics")).items():
            assert "\nswitchlab_journal_failed 0.0" in str(exposition), pid
        alive = [pid for pid in workers if _alive(pid)]
        outages = [stats["process"].get("outages") for _, stats in
                   (await _from_every_process(lab, workers, "/v1/admin/stats")).values()]
        figures = {
            "in_flight_at_stop": in_flight_at_stop, "outage_s": OUTAGE_S,
            "serving_again_after_s": round(healed_s, 1), "workers_not_restarted": len(alive),
            "final": dict(Counter(f"{s}:{r}" if r else str(s) for s, r in final.values())),
            "outages_reported": outages,
        }
        print("database-restart figures:", json.dumps(figures))
        assert in_flight_at_stop > 0, "the server stopped when nothing was in flight"
        assert alive == workers, "a worker had to be restarted to heal"
        assert all(o and o[-1]["lasted_s"] >= OUTAGE_S - 1 for o in outages), outages
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 30)
        await lab.stop()


async def _from_every_process(lab: SwitchLab, workers: list[int], path: str
                              ) -> dict[int, tuple[int, object]]:
    """`path`'s answer (status, body) from each switch process, by pid. SO_REUSEPORT spreads
    connections, not requests: asks on one kept-alive connection all reach one process (in
    CI, eight 200s from the healed process while the other was still reconnecting). So each
    try opens a connection of its own, learns whose it is (/v1/admin/health names the pid)
    and asks on it; 64 tries miss one of two processes with odds of 2**-63."""
    answers: dict[int, tuple[int, object]] = {}
    for _ in range(64):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            _, health = await _ask(session, lab, "/v1/admin/health")
            pid = health["process"]["pid"]  # type: ignore[index]
            if pid not in answers:
                answers[pid] = await _ask(session, lab, path)
        if set(answers) >= set(workers):
            return answers
    raise AssertionError(f"asks reached the processes {sorted(answers)} only, not {workers}")


async def _ask(session: aiohttp.ClientSession, lab: SwitchLab, path: str
               ) -> tuple[int, object]:
    async with session.get(f"{lab.url}{path}", headers={"Authorization": "Bearer t0ken"}
                           ) as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_worker_taken_over_ends_and_its_supervisor_starts_it_again(
        tmp_path: Path, postgres_url: str) -> None:
    """Issue #24: a process found taken over used to answer 503 until someone restarted it
    by hand. Now it ends (exit status 3) and `--processes` starts it again."""
    lab = SwitchLab(tmp_path / "unused.sqlite", journal_url=postgres_url)
    config_path = await configured_switch(lab, tmp_path)
    process, workers = await start_switch_process(config_path, 2)
    try:
        assert process.stdout is not None
        # As a survivor's takeover does: the process's row deleted.
        await _query(postgres_url, f"DELETE FROM switch_processes WHERE pid = {workers[0]}")
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 60)
        assert line.startswith(b"switch worker 0 restarted: pid "), line
        assert not _alive(workers[0]) and int(line.split()[-1]) != workers[0]
        reply = await lab.peer(TREASURY).send(credit_transfers(
            [transfer(f"AGAIN-{n}", creditor=BANK_B) for n in range(20)]))
        assert reply.status == 202, reply.text
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 30)
        await lab.stop()
