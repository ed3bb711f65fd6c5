"""Two switch processes' worth of switch (two applications, two ports) on one PostgreSQL
journal, serving the same participants: the journal is the arbiter of caps, duplicates,
answers, cycles and settings, whichever process a participant reaches; and a process found
dead is taken over and can write nothing more."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from protocol import reasons
from protocol.codec import encode, new_id
from protocol.http import SWITCH_MESSAGES_PATH, Peer, idempotency_key, wrap
from protocol.messages import StatusRequest, StatusRequestItem, TxStatus
from protocol.runtime import bind, serve
from switch import app as app_module
from switch.app import SWITCH, Switch, create_app
from switch.directory import ACCOUNT_TAKEN
from switch.journal_errors import JournalFailed
from switch.records import Final
from switch.states import TransferState
from switch.store_postgres import PostgresStore, TakenOver, taken_over
from switch.transfer import Transfer
from tests.harness import (
    BANK_A,
    BANK_B,
    DEADLINE_S,
    SWITCH_BIC,
    TREASURY,
    Answer,
    SwitchLab,
    check_invariants,
    credit_transfers,
    only_status,
    pay,
    return_of,
    transfer,
    until,
)


@dataclass
class Pair:
    """Process A is the lab's own switch; process B a second one on the same journal."""

    lab: SwitchLab
    b_app: web.Application
    b_runner: web.AppRunner
    b_url: str

    @property
    def a(self) -> Switch:
        return self.lab.switch

    @property
    def b(self) -> Switch:
        return self.b_app[SWITCH]

    async def admin_b(self, method: str, path: str, **kwargs: object) -> tuple[int, object]:
        """Process B's admin API, as the operator reaches it."""
        assert self.lab.session is not None
        async with self.lab.session.request(method, f"{self.b_url}{path}", headers={
                "Authorization": "Bearer t0ken"} | idempotency_key(), **kwargs) as response:
            return response.status, await response.json()

    def peer_b(self, bic: str) -> Peer:
        assert self.lab.session is not None
        return Peer(self.lab.session, f"{self.b_url}{SWITCH_MESSAGES_PATH}", bic,
                    self.lab.participants[bic].credentials, SWITCH_BIC)


@pytest.fixture
async def pair(tmp_path: Path, postgres_url: str) -> AsyncIterator[Pair]:
    lab = await SwitchLab(tmp_path / "unused.sqlite", journal_url=postgres_url).start()
    b_app = create_app(lab.config)
    socket = bind()
    b_runner = await serve(b_app, socket)
    yield Pair(lab, b_app, b_runner, socket.base_url)
    await b_runner.cleanup()
    await lab.stop()


async def status_at(peer: Peer, e2e: str) -> TxStatus:
    reply = await peer.send(StatusRequest(msg_id=new_id("Q"), created_at=datetime.now(UTC),
                                          items=[StatusRequestItem(e2e)]))
    assert reply.status == 200, reply.text
    (item,) = reply.message.document.transactions  # type: ignore[union-attr]
    return item.status


async def test_an_answer_posted_to_the_other_process_settles_and_the_debtor_hears_it(
        pair: Pair) -> None:
    creditor = pair.lab.participants[BANK_A]
    creditor.answer_async, creditor.switch_peer = True, pair.peer_b(BANK_A)
    reply = await pay(pair.lab, transfer("E2E-ELSEWHERE"))
    assert only_status(reply) == (TxStatus.SETTLED, None)
    await until(lambda: "E2E-ELSEWHERE" in creditor.confirmations)
    assert [c.status for c in creditor.confirmations["E2E-ELSEWHERE"]] == [TxStatus.SETTLED]
    assert not pair.a.state.book.in_flight and not pair.a.forwarding.awaiting
    found = await pair.a.state.store.describe("E2E-ELSEWHERE")
    assert found is not None
    assert [(h["from"], h["to"]) for h in found["history"]] == [
        (None, "PENDING"), ("PENDING", "SETTLED")]
    await check_invariants(pair.lab, all_final=True)


async def test_the_same_answer_posted_to_both_processes_settles_once(pair: Pair) -> None:
    """The same answer posted to both processes at once: the forwarding process takes it in
    memory, the other may take it into the journal before that process's final write (both
    say 202) or find it final already (409); the transfer settles once either way."""
    creditor = pair.lab.participants[BANK_A]
    creditor.decide = lambda tx: Answer("never")
    payment = asyncio.ensure_future(pay(pair.lab, transfer("E2E-TWICE")))
    await until(lambda: "E2E-TWICE" in pair.a.forwarding.awaiting)
    answer = creditor.answer(credit_transfers([transfer("E2E-TWICE")]), [Answer()])
    replies = await asyncio.gather(pair.lab.peer(BANK_A).send(answer),
                                   pair.peer_b(BANK_A).send(answer))
    assert sorted(r.status for r in replies) in ([202, 202], [202, 409])
    assert only_status(await payment) == (TxStatus.SETTLED, None)
    found = await pair.a.state.store.describe("E2E-TWICE")
    assert found is not None and [h["to"] for h in found["history"]] == ["PENDING", "SETTLED"]
    await check_invariants(pair.lab, all_final=True)


async def test_no_process_lets_the_debtor_pass_its_cap(pair: Pair) -> None:
    status, _ = await pair.lab.admin("PUT", f"/v1/admin/participants/{TREASURY}/limit",
                                     json={"position_limit_vnd": 5_000_000})
    assert status == 200
    await until(lambda: pair.b.state.participants[TREASURY].position_limit_vnd == 5_000_000)
    pair.lab.participants[BANK_A].delay_s = DEADLINE_S / 2  # all of them in flight at once
    peers = [pair.lab.peer(TREASURY), pair.peer_b(TREASURY)]
    replies = await asyncio.gather(*(
        peers[n % 2].send(credit_transfers([transfer(f"E2E-CAP-{n}", 1_000_000)]))
        for n in range(10)))
    outcomes = sorted(only_status(reply) for reply in replies)
    assert outcomes == [(TxStatus.SETTLED, None)] * 5 + [
        (TxStatus.REJECTED, reasons.INSUFFICIENT_FUNDS)] * 5
    _, participants = await pair.lab.admin("GET", "/v1/admin/participants")
    treasury = next(p for p in participants if p["bic"] == TREASURY)
    assert (treasury["net_vnd"], treasury["reserved_vnd"]) == (-5_000_000, 0)
    await check_invariants(pair.lab, all_final=True)


async def test_issue_24_holds_a_slice_covers_lock_no_shared_row(pair: Pair) -> None:
    """Escrow slices: the first hold refills process A's slice of the treasury's cap (its
    shared positions row locked for that batch); the next ones, and their settlements, touch
    only A's own rows: no batch of A's locks a shared row again."""
    store = pair.a.state.store
    assert isinstance(store, PostgresStore)
    peer = pair.lab.peer(TREASURY)
    first = await peer.send(credit_transfers([transfer("E2E-SLICE-0", 1_000)]))
    assert only_status(first) == (TxStatus.SETTLED, None)
    locked_s = store.locked_s
    assert locked_s > 0
    for n in range(1, 6):
        reply = await peer.send(credit_transfers([transfer(f"E2E-SLICE-{n}", 1_000)]))
        assert only_status(reply) == (TxStatus.SETTLED, None)
    assert store.locked_s == locked_s
    await check_invariants(pair.lab, all_final=True)


async def test_one_end_to_end_id_sent_to_both_processes_is_taken_once(pair: Pair) -> None:
    pair.lab.participants[BANK_A].delay_s = DEADLINE_S / 2
    replies = await asyncio.gather(pay(pair.lab, transfer("E2E-BOTH")),
                                   pair.peer_b(TREASURY).send(credit_transfers(
                                       [transfer("E2E-BOTH")])))
    assert sorted(only_status(reply) for reply in replies) == [
        (TxStatus.SETTLED, None), (TxStatus.REJECTED, reasons.DUPLICATE)]
    forwarded = [tx for m in pair.lab.participants[BANK_A].received
                 for tx in getattr(m.document, "transactions", [])
                 if getattr(tx, "end_to_end_id", None) == "E2E-BOTH"]
    assert len(forwarded) == 1
    await check_invariants(pair.lab, all_final=True)


async def test_a_status_inquiry_at_either_process_tells_where_a_transfer_stands(
        pair: Pair) -> None:
    pair.lab.participants[BANK_A].delay_s = DEADLINE_S / 2
    payment = asyncio.ensure_future(pay(pair.lab, transfer("E2E-ASK")))
    await until(lambda: "E2E-ASK" in pair.a.forwarding.awaiting)
    assert await status_at(pair.peer_b(TREASURY), "E2E-ASK") is TxStatus.PENDING
    assert only_status(await payment) == (TxStatus.SETTLED, None)
    assert await status_at(pair.peer_b(TREASURY), "E2E-ASK") is TxStatus.SETTLED
    assert await status_at(pair.peer_b(BANK_B), "E2E-ASK") is TxStatus.REJECTED  # not a party


async def test_a_cycle_closed_at_one_process_is_closed_for_both(pair: Pair) -> None:
    assert only_status(await pay(pair.lab, transfer("E2E-C1", 2_000))) == (TxStatus.SETTLED,
                                                                           None)
    assert await pair.b.cycles.close(min_age_s=3_600) is None  # a timer: too young to close
    closed = await pair.b.cycles.close()
    assert closed == 1
    await until(lambda: pair.a.state.book.cycle_id == 2)
    assert only_status(await pay(pair.lab, transfer("E2E-C2", 3_000))) == (TxStatus.SETTLED,
                                                                           None)
    first, second = await pair.a.cycles.summarize(1), await pair.a.cycles.summarize(2)
    assert first is not None and second is not None
    assert (first.transfers_vnd, first.net_vnd[BANK_A]) == (2_000, 2_000)
    assert (second.transfers_vnd, second.net_vnd[TREASURY]) == (3_000, -3_000)
    both = await asyncio.gather(pair.a.cycles.close(), pair.b.cycles.close())
    assert sorted(both) == [2, 3]  # two closes asked, two cycles closed, each once


async def test_an_admin_close_repeated_at_the_other_process_closes_nothing(
        pair: Pair) -> None:
    """Admin Idempotency-Keys are journaled with the change (issue #22's gap): a close asked
    at A and repeated with the same key at B closes one cycle and answers alike; the same
    close sent to A and B at once closes one cycle too (the other answers the first answer,
    or 409 while it is being made), and a repeat afterwards answers the first answer."""
    session = pair.lab.session
    assert session is not None

    async def close(url: str, headers: dict[str, str]) -> tuple[int, str]:
        async with session.post(f"{url}/v1/admin/settlement/close",
                                headers=headers) as response:
            return response.status, await response.text()

    headers = {"Authorization": "Bearer t0ken"} | idempotency_key()
    first = await close(pair.lab.url, headers)
    assert first[0] == 200 and await close(pair.b_url, headers) == first
    headers = {"Authorization": "Bearer t0ken"} | idempotency_key()
    both = await asyncio.gather(close(pair.lab.url, headers), close(pair.b_url, headers))
    made = [answer for answer in both if answer[0] == 200]
    assert made and {status for status, _ in both} <= {200, 409}
    assert await close(pair.b_url, headers) == await close(pair.lab.url, headers) == made[0]
    assert (await pair.a.state.store.open_cycle_now())[0] == 3  # two closes made, once each


async def test_a_sign_off_at_one_process_is_obeyed_by_the_other(pair: Pair) -> None:
    status, _ = await pair.lab.admin("POST", f"/v1/admin/participants/{BANK_B}/sign-off")
    assert status == 200
    await until(lambda: pair.b.state.participants[BANK_B].signed_off)
    reply = await pair.peer_b(TREASURY).send(credit_transfers(
        [transfer("E2E-OFF", creditor=BANK_B)]))
    assert only_status(reply) == (TxStatus.REJECTED, reasons.OFFLINE_CREDITOR_AGENT)


async def test_a_msg_id_reaching_both_processes_is_taken_once(pair: Pair) -> None:
    """The same MsgId with other content at both processes at once: one takes it, the other
    refuses it DU01; the very bytes taken, resent to either, get the known outcome."""
    bodies = [encode(wrap(TREASURY, SWITCH_BIC, credit_transfers([transfer(e2e)],
                                                                 msg_id="MSG-BOTH")))
              for e2e in ("E2E-MSG-A", "E2E-MSG-B")]
    replies = await asyncio.gather(pair.lab.peer(TREASURY).post(bodies[0]),
                                   pair.peer_b(TREASURY).post(bodies[1]))
    outcomes = [only_status(reply) for reply in replies]
    assert sorted(outcomes) == [(TxStatus.SETTLED, None),
                                (TxStatus.REJECTED, reasons.DUPLICATE_MESSAGE_ID)]
    taken = bodies[outcomes.index((TxStatus.SETTLED, None))]
    for peer in (pair.lab.peer(TREASURY), pair.peer_b(TREASURY)):
        assert only_status(await peer.post(taken)) == (TxStatus.SETTLED, None)
    _, stats = await pair.admin_b("GET", "/v1/admin/stats")
    assert stats["by_state"]["SETTLED"]["count"] == 1  # type: ignore[index]
    await check_invariants(pair.lab, all_final=True)


async def test_a_return_id_reaching_both_processes_is_taken_once(pair: Pair) -> None:
    """One RtrId for two transfers at both processes at once: one settles, the other is
    DU05; the return taken, resent to the other process, gets its answer again."""
    await pay(pair.lab, transfer("E2E-RT-1"), transfer("E2E-RT-2"))
    await until(lambda: not pair.a.state.book.in_flight)
    returns = [return_of(e2e, 1_500_000, return_id="RTR-BOTH") for e2e in ("E2E-RT-1",
                                                                          "E2E-RT-2")]
    replies = await asyncio.gather(pair.lab.peer(BANK_A).send(returns[0]),
                                   pair.peer_b(BANK_A).send(returns[1]))
    outcomes = [only_status(reply) for reply in replies]
    assert sorted(outcomes) == [(TxStatus.SETTLED, None),
                                (TxStatus.REJECTED, reasons.DUPLICATE_INSTRUCTION_ID)]
    taken = outcomes.index((TxStatus.SETTLED, None))
    other = (pair.peer_b if taken == 0 else pair.lab.peer)(BANK_A)
    assert only_status(await other.send(returns[taken])) == (TxStatus.SETTLED, None)
    await check_invariants(pair.lab, all_final=True)


async def test_the_directory_is_the_journal_s_whichever_process_is_asked(pair: Pair) -> None:
    """Links racing for one account at both processes: the journal takes one. A link made
    at one process resolves a transfer by citizen id at the other once it has heard of it."""
    link = {"participant_bic": BANK_A, "account_id": "0011004455667",
            "holder_name": "Nguyễn Thị Hồng Nhung"}
    answers = await asyncio.gather(*(
        admin("POST", "/v1/admin/directory/entries", json={"entries": [
            link | {"citizen_id": citizen_id}]})
        for admin, citizen_id in ((pair.lab.admin, "001190012345"),
                                  (pair.admin_b, "079090054321"))))
    verdicts = [body["results"][0] for _, body in answers]  # type: ignore[index]
    assert sorted(v["status"] for v in verdicts) == ["linked", "refused"]
    refused = next(v for v in verdicts if v["status"] == "refused")
    assert refused["reason"] == ACCOUNT_TAKEN
    linked = next(v["citizen_id"] for v in verdicts if v["status"] == "linked")
    for process in (pair.a, pair.b):
        await until(lambda process=process: linked in process.state.directory.by_citizen)
        assert refused["citizen_id"] not in process.state.directory.by_citizen
    by_citizen_id = transfer("E2E-BY-CID", creditor=SWITCH_BIC, creditor_account="",
                             creditor_citizen_id=linked)
    reply = await pair.peer_b(TREASURY).send(credit_transfers([by_citizen_id]))
    assert only_status(reply) == (TxStatus.SETTLED, None)
    assert (await pair.a.state.store.lookup(["E2E-BY-CID"]))["E2E-BY-CID"].creditor_bic == BANK_A
    unlink = {"Authorization": "Bearer t0ken"} | idempotency_key()
    assert pair.lab.session is not None
    answers = []
    for url in (pair.b_url, pair.lab.url):  # made at B; the same change repeated at A
        async with pair.lab.session.delete(f"{url}/v1/admin/directory/entries/{linked}",
                                           headers=unlink) as response:
            answers.append((response.status, await response.json()))
    assert answers[0] == answers[1] and answers[0][0] == 200  # the first answer, again
    await until(lambda: linked not in pair.a.state.directory.by_citizen)
    status, _ = await pair.lab.admin("DELETE", f"/v1/admin/directory/entries/{linked}")
    assert status == 404  # unlinked already, at the other process


async def test_a_settlement_counts_in_the_cycle_the_journal_has_open(pair: Pair) -> None:
    """A close at one process that the other has not heard of yet: what the other settles
    counts in the journal's open cycle, and its events say which, as the metrics need."""
    cycles: list[tuple[str, int]] = []
    pair.a.events.settled.add_listener(
        lambda transfers, now_s, cycle_id: cycles.append(("settled", cycle_id)))
    pair.a.events.returned.add_listener(
        lambda returns, now_s, cycle_id: cycles.append(("returned", cycle_id)))
    assert await pair.b.cycles.close() == 1
    await until(lambda: pair.a.state.book.cycle_id == 2)
    pair.a.state.book.cycle_id = 1  # as if the word of the close had not come yet
    assert only_status(await pay(pair.lab, transfer("E2E-LATE-CYCLE"))) == (
        TxStatus.SETTLED, None)
    assert only_status(await pair.lab.peer(BANK_A).send(
        return_of("E2E-LATE-CYCLE", 1_000))) == (TxStatus.SETTLED, None)
    assert cycles == [("settled", 2), ("returned", 2)]
    found = await pair.a.state.store.describe("E2E-LATE-CYCLE")
    assert found is not None and found["cycle_id"] == 2
    assert found["return"]["cycle_id"] == 2
    await check_invariants(pair.lab, all_final=True)


async def test_issue_24_after_every_session_ended_both_processes_heal_and_serve_every_path(
        pair: Pair, postgres_url: str) -> None:
    """Issue #24, healing: every session of both processes ended at once, as a database
    restart that is over within a beat does (pg_terminate_backend), twice. Each process
    heals by itself (it used to reconnect its listener alone and go on beating, "serving",
    while its writer's connection was dead: the next write answered 503 'InterfaceError:
    connection is closed'), and then every path that reads or writes the journal answers,
    at each process: pacs.008 instant and bulk, notices, pacs.028, pacs.004, admin stats
    and totals, a limit set at one process heard by the other, a cycle closed."""
    processes = {"A": (pair.a, pair.lab.peer, pair.lab.admin),
                 "B": (pair.b, pair.peer_b, pair.admin_b)}
    for restart in range(2):
        healed = {name: len(p.cluster.outages) + 1 for name, (p, _, _) in processes.items()}
        await _end_every_session(postgres_url)
        await until(lambda healed=healed: all(
            len(p.cluster.outages) == healed[name] and p.cluster.outage is None
            for name, (p, _, _) in processes.items()), 20)
        for name, (_, peer, admin) in processes.items():
            ids = [f"E2E-{restart}{name}-{n}" for n in range(3)]
            assert only_status(await peer(TREASURY).send(credit_transfers(
                [transfer(ids[0])]))) == (TxStatus.SETTLED, None)
            reply = await peer(TREASURY).send(credit_transfers([transfer(e2e, 2_000)
                                                                for e2e in ids[1:]]))
            assert reply.status == 202, reply.text
            await until(lambda ids=ids: all(
                e2e in pair.lab.participants[BANK_A].confirmations for e2e in ids))
            assert await status_at(peer(TREASURY), ids[1]) is TxStatus.SETTLED
            assert only_status(await peer(BANK_A).send(return_of(ids[0], 1_000))) == (
                TxStatus.SETTLED, None)
            (stats_status, _), (totals_status, totals) = (
                await admin("GET", "/v1/admin/stats"),
                await admin("POST", "/v1/admin/totals",
                            json={"debtor": TREASURY, "end_to_end_ids": ids}))
            assert (stats_status, totals_status) == (200, 200)
            assert totals["by_state"]["SETTLED"]["count"] == 2  # type: ignore[index]
            limit_vnd = 10**11 + restart * 10 + len(name)
            status, _ = await admin("PUT", f"/v1/admin/participants/{TREASURY}/limit",
                                    json={"position_limit_vnd": limit_vnd})
            assert status == 200
            await until(lambda limit_vnd=limit_vnd: all(
                p.state.participants[TREASURY].position_limit_vnd == limit_vnd
                for p, _, _ in processes.values()))  # the other heard it: its listener
        await _until_rows(pair.a.state.store, "SELECT 1 FROM transfers WHERE creditor_notice"
                          " = 1 OR debtor_notice = 1 UNION ALL SELECT 1 FROM returns"
                          " WHERE debtor_notice = 1", present=False)  # notices delivered
        await check_invariants(pair.lab, all_final=True)
    closed = await pair.b.cycles.close()  # last: the invariants count since the first cycle
    assert closed == 1
    await until(lambda: pair.a.state.book.cycle_id == 2)


async def test_issue_24_a_writer_s_session_ended_heals_before_any_write_meets_it(
        pair: Pair) -> None:
    """The writer's session alone ended by the server (an operator's pg_terminate_backend,
    a failover that cut one connection): the process used to go on 'serving' until its next
    write found the connection closed and answered 503. Now its next beat finds it closed
    and heals, and the next payment settles."""
    store = pair.a.state.store
    assert isinstance(store, PostgresStore) and pair.a.cluster is not None
    await pair.b.state.store.read("SELECT pg_terminate_backend($1)",  # type: ignore[attr-defined]
                                  (store._writer.get_server_pid(),))
    await until(lambda: len(pair.a.cluster.outages) == 1, 10)  # type: ignore[union-attr]
    assert "writer's connection was closed" in pair.a.cluster.outages[0].reason
    assert only_status(await pay(pair.lab, transfer("E2E-AFTER-WRITER"))) == (
        TxStatus.SETTLED, None)


async def _end_every_session(url: str) -> None:
    """Every session on the journal's database ended, as a restart of the server does."""
    connection = await asyncpg.connect(url)
    try:
        ended = await connection.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        assert ended >= 4  # each process's writer and listener at least
    finally:
        await connection.close()


def _pending(e2e: str, bulk: bool = False) -> Transfer:
    return Transfer(end_to_end_id=e2e, tx_id=e2e, msg_id=f"M-{e2e}", debtor_bic=TREASURY,
                    creditor_bic=BANK_A, amount_vnd=1_000, bulk=bulk, received_at=1.0,
                    state=TransferState.PENDING)


@pytest.fixture
async def two_stores(postgres_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    stores = (PostgresStore(postgres_url, switch_bic=SWITCH_BIC),
              PostgresStore(postgres_url, switch_bic=SWITCH_BIC))
    for store in stores:
        await store.start()
        await store.seed_positions({TREASURY: 10**9, BANK_A: 10**9})
    yield stores
    for store in stores:
        await store.close()


async def test_a_dead_process_is_taken_over_once_and_can_write_nothing_more(
        two_stores: tuple[PostgresStore, PostgresStore]) -> None:
    dead, survivor = two_stores
    rejected = _pending("E-BULK-NO", bulk=True)
    rejected.state, rejected.reason_code = TransferState.REJECTED, "AC01"
    await dead.record_new(TREASURY, "M1", b"d", [_pending("E-FLY", bulk=True), rejected], 1.0)
    assert await survivor.take_over(dead.process_id, lease_s=60) is None  # still beating
    await dead.read("UPDATE switch_processes SET heartbeat_at = 0 WHERE process_id = $1",
                    (dead.process_id,))  # as if it had stopped beating long ago
    assert await survivor.dead(lease_s=60) == [dead.process_id]
    claimed = await survivor.take_over(dead.process_id, lease_s=60)
    assert claimed is not None
    assert [t.end_to_end_id for t in claimed.in_flight] == ["E-FLY"]
    assert [t.end_to_end_id for t in claimed.notices.to_debtors] == ["E-BULK-NO"]
    assert await survivor.take_over(dead.process_id, lease_s=60) is None  # once
    assert not await dead.beat()
    with pytest.raises(JournalFailed, match="found dead"):
        await dead.record_new(TREASURY, "M2", b"d", [_pending("E-LATE")], 2.0)
    assert await survivor.lookup(["E-LATE"]) == {}
    assert [t.end_to_end_id for t in await survivor.in_flight_now()] == ["E-FLY"]


async def test_two_processes_finishing_one_transfer_finish_it_once(
        two_stores: tuple[PostgresStore, PostgresStore]) -> None:
    first, second = two_stores
    transfer_ = _pending("E-RACE")
    await first.record_new(TREASURY, "M1", b"d", [transfer_], 1.0)
    words = await asyncio.gather(
        first.record_final([Final(transfer_, TransferState.REJECTED, "AB05", SWITCH_BIC, None,
                                  True)], 2.0),
        second.record_answers(BANK_A, [("E-RACE", TransferState.SETTLED, None)], 2.0))
    lost, taken = words
    if lost is None:  # the timeout was first: the answer was taken by nobody
        assert taken == []
        assert (await first.lookup(["E-RACE"]))["E-RACE"].state is TransferState.REJECTED
    else:  # the answer was first: the timeout learns it
        assert lost["E-RACE"].state is TransferState.SETTLED and len(taken) == 1
    net, held = await first.positions_now()
    assert held[TREASURY] == 0 and sum(net.values()) == 0


async def test_issue_24_a_process_that_lost_the_journal_takes_writes_again_once_reconnected(
        two_stores: tuple[PostgresStore, PostgresStore]) -> None:
    """Issue #24: a lost connection used to stop the process until an operator restarted it.
    Now the failure says the journal is out of reach, and after `reconnect` and `resume` the
    same process (the same row, the same PENDING transfers) writes again."""
    healing, other = two_stores
    await healing.record_new(TREASURY, "M1", b"d", [_pending("E-BEFORE")], 1.0)
    await other.read("SELECT pg_terminate_backend($1)", (healing._writer.get_server_pid(),))
    with pytest.raises(JournalFailed, match="out of reach"):
        await healing.record_new(TREASURY, "M2", b"d", [_pending("E-LOST")], 2.0)
    with pytest.raises(JournalFailed):  # refused at once until it heals: nothing queued
        healing.record_new(TREASURY, "M3", b"d", [_pending("E-REFUSED")], 3.0)
    await healing.reconnect()
    assert await healing.beat()  # still itself: nobody took it over
    await healing.resume()
    await healing.record_new(TREASURY, "M4", b"d", [_pending("E-AFTER")], 4.0)
    assert sorted(t.end_to_end_id for t in await healing.in_flight_now()) == [
        "E-AFTER", "E-BEFORE"]
    assert sorted(await other.lookup(["E-LOST", "E-REFUSED"])) == []


async def test_issue_24_a_batch_the_lost_writer_still_had_never_commits_after_healing(
        two_stores: tuple[PostgresStore, PostgresStore], postgres_url: str) -> None:
    """Healing used to cut only the client's end of the old writer connection: its server
    session, waiting for a lock in the batch's flush-and-COMMIT, committed once the lock was
    free, after healing had read what the process holds in flight; the transfer its caller
    was told was not taken (503) stayed PENDING, held, known to no process's memory. Now a
    new writer session ends the old one, and waits until it is gone, before anything else."""
    healing, other = two_stores
    blocker = await asyncpg.connect(postgres_url)
    try:
        locking = blocker.transaction()
        await locking.start()  # the treasury's shared row, as another process's refill has it
        await blocker.execute("SELECT 1 FROM positions WHERE bic = $1 FOR UPDATE", TREASURY)
        old_writer = healing._writer.get_server_pid()
        taken = healing.record_new(TREASURY, "M1", b"d", [_pending("E-HELD")], 1.0)
        await _until_rows(other, "SELECT 1 FROM pg_stat_activity WHERE pid = $1"
                          " AND wait_event_type = 'Lock'", old_writer)  # its slice refill
        healing.fail(ConnectionError("the journal is out of reach: the listener's connection"
                                     " was lost"))  # as the cluster's beat does
        await healing.reconnect()
        with pytest.raises(JournalFailed):
            await taken
        await locking.commit()
        await _until_rows(other, "SELECT 1 FROM pg_stat_activity WHERE pid = $1", old_writer,
                          present=False)
    finally:
        await blocker.close()
    assert await other.lookup(["E-HELD"]) == {}
    assert await healing.beat()
    await healing.resume()
    await healing.record_new(TREASURY, "M2", b"d", [_pending("E-AFTER")], 2.0)
    assert [t.end_to_end_id for t in await healing.in_flight_now()] == ["E-AFTER"]


async def test_issue_24_a_beat_never_waits_for_its_own_writer(
        two_stores: tuple[PostgresStore, PostgresStore], postgres_url: str) -> None:
    """The beat (an UPDATE of the process's row) used to wait for every write transaction of
    its own process: each locked that row FOR SHARE from its first statement to COMMIT
    (pgstat: 7-28 ms a beat at 200-350 transfers/s); a batch held up longer than the lease
    (a lock, a slow fsync) would have the process found dead and taken over. The row is now
    locked FOR KEY SHARE: a takeover's DELETE still waits for the batch and then refuses the
    next one, and the beat, which changes no key, waits for nothing."""
    store, survivor = two_stores
    blocker = await asyncpg.connect(postgres_url)
    try:
        locking = blocker.transaction()
        await locking.start()
        await blocker.execute("SELECT 1 FROM positions WHERE bic = $1 FOR UPDATE", TREASURY)
        taken = store.record_new(TREASURY, "M1", b"d", [_pending("E-SLOW")], 1.0)
        await _until_rows(survivor, "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND"
                          " wait_event_type = 'Lock'", store._writer.get_server_pid())
        assert await asyncio.wait_for(store.beat(), 10)  # while the batch is held up
        await survivor.read("UPDATE switch_processes SET heartbeat_at = 0 WHERE process_id"
                            " = $1", (store.process_id,))  # as if it had stopped beating
        takeover = survivor.take_over(store.process_id, lease_s=60)
        await locking.commit()
        assert await taken is None  # its batch committed first; the takeover then buried it
        assert await takeover is not None
    finally:
        await blocker.close()
    with pytest.raises(JournalFailed, match="found dead"):
        await store.record_new(TREASURY, "M2", b"d", [_pending("E-LATE")], 2.0)


async def _until_rows(store: PostgresStore, sql: str, *params: object, present: bool = True
                      ) -> None:
    """Wait until the query has rows (or, with `present=False`, none): a bound wait."""
    for _ in range(500):
        if bool(await store.read(sql, params)) is present:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not reached in time: {sql}")


async def test_issue_24_a_process_taken_over_while_it_was_cut_off_knows_it(
        two_stores: tuple[PostgresStore, PostgresStore]) -> None:
    """Cut off longer than the lease, it was taken over: its beat says so once reconnected
    (it then ends, to be started again), and its writes are refused by its missing row."""
    cut_off, survivor = two_stores
    await survivor.read("SELECT pg_terminate_backend($1)", (cut_off._writer.get_server_pid(),))
    with pytest.raises(JournalFailed):
        await cut_off.record_new(TREASURY, "M1", b"d", [_pending("E-LOST")], 1.0)
    await survivor.read("UPDATE switch_processes SET heartbeat_at = 0 WHERE process_id = $1",
                        (cut_off.process_id,))
    assert await survivor.take_over(cut_off.process_id, lease_s=60) is not None
    await cut_off.reconnect()
    assert not await cut_off.beat()
    assert taken_over(TakenOver("gone"))


async def test_issue_24_a_kept_alive_connection_ends_after_its_budget(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #24: after a worker restarted, every later transfer went through the survivor,
    whose kept-alive connections never ended. Now the response that spends a connection's
    budget says `Connection: close`, and the client's next request opens a new connection
    (which SO_REUSEPORT may give to any process)."""
    monkeypatch.setattr(app_module, "MAX_REQUESTS_PER_CONNECTION", 3)
    lab = await SwitchLab(tmp_path / "switch.sqlite").start()
    try:
        opened: list[object] = []
        tracing = aiohttp.TraceConfig()

        async def on_open(*_: object) -> None:
            opened.append(None)

        tracing.on_connection_create_end.append(on_open)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1),
                                         trace_configs=[tracing]) as session:
            closes = []
            for _ in range(7):
                async with session.get(f"{lab.url}/v1/health") as response:
                    assert response.status == 200
                    closes.append(response.headers.get("Connection", "").lower() == "close")
        assert closes == [False, False, True, False, False, True, False]
        assert len(opened) == 3  # a new connection after each budget spent
    finally:
        await lab.stop()
