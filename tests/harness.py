"""A real switch on loopback with participants whose every answer a test controls.

The scripted creditor answers each transfer as the test says (accept, reject with a reason,
answer late, answer asynchronously, or never), and records every confirmation it receives;
the recording debtor collects what the switch pushes to it (bulk reports, returns).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web

from lab.world import Keys, provision
from protocol.codec import new_id
from protocol.http import (
    SWITCH_MESSAGES_PATH,
    Peer,
    Reply,
    Sender,
    idempotency_key,
    read_signed,
    sign_answers,
    xml_response,
)
from protocol.keys import Signing, SwitchKeys
from protocol.messages import (
    BusinessMessage,
    CreditTransfer,
    CreditTransferMessage,
    MessageType,
    PaymentReturn,
    PaymentReturnItem,
    PaymentStatusReport,
    TransactionStatus,
    TxStatus,
)
from protocol.runtime import BoundSocket, bind, serve
from protocol.signing import Credentials
from switch.app import SWITCH, Switch, create_app
from switch.config import parse_config
from switch.transfer import wire_id

SWITCH_BIC = "SWLBVNVX"
TREASURY = "TRSYVNV1"
BANK_A = "BFTVVNVX"
BANK_B = "ICBVVNVX"
# The creditor deadline of these tests: short, so that a timeout costs about a second, yet far
# above an answer on loopback (a few milliseconds) and above the stalls of a shared VM (at
# 0.5 s, one transfer of a full run was once refused for lateness).
DEADLINE_S = 1.0


@dataclass(frozen=True)
class Answer:
    """A creditor's answer to one transfer: ACCP, RJCT with a reason, or "never" (no answer).

    delay_s and asynchronous default to the participant's own settings when None.
    """

    verdict: str = "ACCP"
    reason: str | None = None
    delay_s: float | None = None
    asynchronous: bool | None = None


@dataclass
class ScriptedParticipant:
    """A participant server whose answers follow `decide`, recording all it receives."""

    bic: str
    keys: dict[str, str]  # SwitchKeys' fields, as provisioned
    decide: Callable[[CreditTransfer], Answer] = lambda tx: Answer()
    delay_s: float = 0.0
    answer_async: bool = False
    raw_answer: bytes | None = None  # answer every pacs.008 with these bytes (HTTP 200, XML)
    received: list[BusinessMessage] = field(default_factory=list)
    confirmations: dict[str, list[TransactionStatus]] = field(default_factory=dict)
    switch_peer: Peer | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def credentials(self) -> Credentials:
        return SwitchKeys.model_validate(self.keys).credentials()

    def app(self) -> web.Application:
        self.senders = {SWITCH_BIC: Sender(self.credentials)}
        app = web.Application(client_max_size=256 * 1024 * 1024,
                              middlewares=[sign_answers(self.bic, self.senders)])
        app.router.add_post("/iso20022", self._inbound)
        return app

    async def _inbound(self, request: web.Request) -> web.Response:
        message = (await read_signed(request, self.senders, self.bic)).message
        self.received.append(message)
        document = message.document
        if isinstance(document, CreditTransferMessage):
            if self.raw_answer is not None:
                return web.Response(body=self.raw_answer, content_type="application/xml")
            answers = [self.decide(tx) for tx in document.transactions]
            delay_s = max((self.delay_s if a.delay_s is None else a.delay_s) for a in answers)
            report = self.answer(document, answers)
            if any(self.answer_async if a.asynchronous is None else a.asynchronous
                   for a in answers):
                task = asyncio.get_running_loop().create_task(self._answer_later(report, delay_s))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                return web.Response(status=202)
            if delay_s:
                await asyncio.sleep(delay_s)
            return xml_response(self.bic, SWITCH_BIC, report)
        if isinstance(document, PaymentStatusReport):
            for item in document.transactions:
                self.confirmations.setdefault(item.original_end_to_end_id, []).append(item)
        return web.Response(status=200)

    def answer(
        self, document: CreditTransferMessage, answers: list[Answer] | None = None
    ) -> PaymentStatusReport:
        """The pacs.002 this participant gives for a pacs.008 (skipping "never" answers)."""
        answers = answers or [self.decide(tx) for tx in document.transactions]
        items = [
            TransactionStatus(
                original_end_to_end_id=tx.end_to_end_id, original_tx_id=tx.tx_id,
                status=TxStatus(answer.verdict), reason_code=answer.reason,
            )
            for tx, answer in zip(document.transactions, answers, strict=True)
            if answer.verdict != "never"
        ]
        return PaymentStatusReport(
            msg_id=new_id("CR"), created_at=datetime.now(UTC), original_msg_id=document.msg_id,
            original_msg_type=MessageType.CREDIT_TRANSFER, transactions=items,
        )

    async def _answer_later(self, report: PaymentStatusReport, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        assert self.switch_peer is not None
        if report.transactions:
            await self.switch_peer.send(report)

    def statuses(self, kind: type = PaymentStatusReport) -> list[TransactionStatus]:
        return [item for m in self.received if isinstance(m.document, kind)
                for item in getattr(m.document, "transactions", [])]

    def returns(self) -> list[PaymentReturn]:
        return [m.document for m in self.received if isinstance(m.document, PaymentReturn)]


class SwitchLab:
    """A switch and three scripted participants, all real servers on 127.0.0.1."""

    def __init__(self, journal_path: Path, signing: Signing = "hmac",
                 **switch_settings: object) -> None:
        self.journal_path = journal_path
        self.switch_settings = switch_settings
        self.keys: Keys = provision(signing, [TREASURY, BANK_A, BANK_B])
        self.participants = {bic: ScriptedParticipant(bic, self.keys.handed[bic])
                             for bic in self.keys.handed}
        self.runners: list[web.AppRunner] = []
        self.session: aiohttp.ClientSession | None = None
        self.switch_socket: BoundSocket | None = None
        self.switch_runner: web.AppRunner | None = None

    def config_data(self, participant_sockets: dict[str, BoundSocket]) -> dict[str, object]:
        kinds = {TREASURY: "treasury", BANK_A: "bank", BANK_B: "ewallet"}
        return {
            "switch": {"bic": SWITCH_BIC, "journal_path": str(self.journal_path),
                       "admin_token": "t0ken", "creditor_timeout_s": DEADLINE_S}
                      | self.keys.switch | self.switch_settings,
            "participants": [
                {"bic": bic, "kind": kinds[bic], "inbound_url": f"{sock.base_url}/iso20022",
                 "position_limit_vnd": 10**12} | self.keys.registered[bic]
                for bic, sock in participant_sockets.items()
            ],
        }

    async def start_participants(self) -> dict[str, BoundSocket]:
        """Serve the scripted participants and reserve the switch's port."""
        self.session = aiohttp.ClientSession()
        sockets = {bic: bind() for bic in self.participants}
        self.switch_socket = bind()
        self.port = self.switch_socket.port
        for bic, participant in self.participants.items():
            participant.switch_peer = self.peer(bic)
            self.runners.append(await serve(participant.app(), sockets[bic]))
        return sockets

    async def start(self) -> SwitchLab:
        self.config = parse_config(self.config_data(await self.start_participants()))
        await self.start_switch()
        return self

    async def start_switch(self) -> None:
        if self.switch_socket is None:
            self.switch_socket = bind(port=self.port)
        self.app = create_app(self.config)
        self.switch_runner = await serve(self.app, self.switch_socket)
        self.switch_socket = None

    async def restart_switch(self) -> None:
        """A clean stop and a new switch process-state on the same journal and port."""
        assert self.switch_runner is not None
        await self.switch_runner.cleanup()
        await self.start_switch()

    @property
    def switch(self) -> Switch:
        return self.app[SWITCH]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def peer(self, bic: str, credentials: Credentials | None = None) -> Peer:
        """`bic`'s signed channel to the switch, with its own keys unless others are given."""
        assert self.session is not None
        return Peer(self.session, f"{self.url}{SWITCH_MESSAGES_PATH}", bic,
                    credentials or self.participants[bic].credentials, SWITCH_BIC)

    async def admin(self, method: str, path: str, **kwargs: object) -> tuple[int, object]:
        assert self.session is not None
        async with self.session.request(
            method, f"{self.url}{path}",
            headers={"Authorization": "Bearer t0ken"} | idempotency_key(), **kwargs
        ) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()

    async def stop(self) -> None:
        if self.switch_runner is not None:
            await self.switch_runner.cleanup()
        for runner in self.runners:
            await runner.cleanup()
        if self.session is not None:
            await self.session.close()


def transfer(
    e2e: str, amount_vnd: int = 1_500_000, creditor: str = BANK_A, debtor: str = TREASURY,
    **changes: object,
) -> CreditTransfer:
    values: dict[str, object] = dict(
        end_to_end_id=e2e, tx_id=f"TX{e2e}"[:35], amount_vnd=amount_vnd,
        amount_text=str(amount_vnd), debtor_name="Kho bạc Nhà nước",
        debtor_account="KBNN0001", debtor_agent_bic=debtor, creditor_name="Nguyễn Thị Hồng Nhung",
        creditor_account="0011004455667", creditor_agent_bic=creditor,
        creditor_citizen_id="001190012345", remittance_info="tro_cap_xa_hoi",
    )
    values.update(changes)
    return CreditTransfer(**values)  # type: ignore[arg-type]


def credit_transfers(
    transactions: list[CreditTransfer], sender: str = TREASURY, msg_id: str | None = None
) -> CreditTransferMessage:
    return CreditTransferMessage(
        msg_id=msg_id or new_id("M"), created_at=datetime.now(UTC),
        instructing_agent_bic=sender, instructed_agent_bic=SWITCH_BIC, transactions=transactions,
    )


async def until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait for something the switch does in the background (a bound wait, not a timing test)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def pay(lab: SwitchLab, *transactions: CreditTransfer, sender: str = TREASURY,
              msg_id: str | None = None) -> Reply:
    """Send the transactions in one pacs.008, signed by `sender`; the switch's answer."""
    return await lab.peer(sender).send(credit_transfers(list(transactions), sender, msg_id))


def only_status(reply: Reply) -> tuple[TxStatus, str | None]:
    """The one transaction status of an instant answer."""
    assert reply.status == 200, reply.text
    assert reply.message is not None and isinstance(reply.message.document, PaymentStatusReport)
    (item,) = reply.message.document.transactions
    return item.status, item.reason_code


async def journal_state(lab: SwitchLab, e2e: str) -> tuple[str, str | None]:
    """A transfer's state and reason code as the switch's journal holds them."""
    status, body = await lab.admin("GET", f"/v1/admin/transfers/{e2e}")
    assert status == 200 and isinstance(body, dict), body
    return body["state"], body["reason_code"]


def return_of(e2e: str, amount_vnd: int, reason: str = "MD07", creditor: str = BANK_A,
              return_id: str | None = None) -> PaymentReturn:
    """A pacs.004 from `creditor` returning `amount_vnd` of the transfer `e2e`."""
    return PaymentReturn(
        msg_id=new_id("R"), created_at=datetime.now(UTC), instructing_agent_bic=creditor,
        instructed_agent_bic=SWITCH_BIC, items=[PaymentReturnItem(
            return_id=return_id or new_id("RT"), original_end_to_end_id=e2e,
            original_tx_id=f"TX{e2e}", returned_amount_vnd=amount_vnd, reason_code=reason,
            amount_text=str(amount_vnd),
        )],
    )


SHARED_POSITIONS = """
WITH s AS (SELECT bic, sum(net_vnd) AS net, sum(held_vnd) AS held, sum(room_vnd) AS room
           FROM position_slices GROUP BY bic)
SELECT p.bic, (p.net_vnd + coalesce(s.net, 0))::bigint,
  (p.reserved_vnd + coalesce(s.held, 0))::bigint,
  coalesce((SELECT sum(t.amount_vnd) FROM transfers t WHERE t.debtor_bic = p.bic
            AND t.state = 'PENDING'), 0)::bigint,
  (coalesce((SELECT sum(CASE WHEN t.creditor_bic = p.bic THEN t.amount_vnd ELSE -t.amount_vnd
                        END) FROM transfers t WHERE (t.debtor_bic = p.bic OR t.creditor_bic = p.bic)
             AND t.state IN ('SETTLED', 'RETURNED')), 0)
   + coalesce((SELECT sum(CASE WHEN r.debtor_bic = p.bic THEN r.amount_vnd ELSE -r.amount_vnd
                          END) FROM returns r WHERE r.debtor_bic = p.bic OR r.creditor_bic = p.bic),
              0))::bigint,
  -- the escrow invariant (switch/escrow.py): no room promised past the cap
  coalesce(s.room, 0) = 0
  OR s.room + s.held + p.reserved_vnd <= p.limit_vnd + p.net_vnd + s.net
FROM positions p LEFT JOIN s ON s.bic = p.bic ORDER BY p.bic"""


async def check_invariants(lab: SwitchLab, all_final: bool) -> None:
    """docs/design.md's invariants, from the switch's journal (whichever database) and its
    memory: nothing settled twice, no ACSC for what is not settled, positions equal to what
    moved, sum zero, reservations equal to what is in flight; with `all_final`, nothing
    PENDING. With a shared journal, positions and holds are the journal's own."""
    state = lab.switch.state
    store = state.store
    doubled = await store.read(  # type: ignore[attr-defined]
        "SELECT end_to_end_id FROM transitions WHERE to_state='SETTLED'"
        " GROUP BY end_to_end_id HAVING count(*) > 1")
    assert doubled == []
    rows = await store.read(  # type: ignore[attr-defined]
        "SELECT end_to_end_id, state, debtor_bic, creditor_bic FROM transfers")
    states = {key: journaled for key, journaled, _, _ in rows}
    # A party's transfers by the id as sent: two debtors may use one id (issue #22).
    of_party: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key, journaled, debtor, creditor in rows:
        for party in (debtor, creditor):
            of_party[(wire_id(key), party)].append(journaled)
    moved: dict[str, int] = defaultdict(int)
    for debtor, creditor, amount in await store.read(  # type: ignore[attr-defined]
            "SELECT debtor_bic, creditor_bic, amount_vnd FROM transfers"
            " WHERE state IN ('SETTLED', 'RETURNED')"):
        moved[debtor] -= amount
        moved[creditor] += amount
    for debtor, creditor, amount in await store.read(  # type: ignore[attr-defined]
            "SELECT debtor_bic, creditor_bic, amount_vnd FROM returns"):
        moved[creditor] -= amount
        moved[debtor] += amount
    pending = dict(await store.read(  # type: ignore[attr-defined]
        "SELECT debtor_bic, sum(amount_vnd) FROM transfers WHERE state='PENDING'"
        " GROUP BY debtor_bic"))
    if store.shared:  # one statement, one snapshot: the journal's positions against its rows
        rows = await store.read(SHARED_POSITIONS)  # type: ignore[attr-defined]
        assert sum(net for _, net, *_ in rows) == 0
        assert [(bic, net, held) for bic, net, held, *_ in rows] == [
            (bic, moved_vnd, pending_vnd) for bic, _, _, pending_vnd, moved_vnd, _ in rows]
        assert [bic for bic, *_, room_within_cap in rows if not room_within_cap] == []
    else:
        book = state.book.positions
        assert sum(book.net_vnd.values()) == 0
        assert {b: n for b, n in book.net_vnd.items() if n} == {
            b: n for b, n in moved.items() if n}
        assert book.reserved_vnd[TREASURY] == sum(t.amount_vnd
                                                  for t in state.book.in_flight.values())
    for bic in (BANK_A, BANK_B):
        for e2e, items in lab.participants[bic].confirmations.items():
            if any(i.status is TxStatus.SETTLED for i in items):
                assert {"SETTLED", "RETURNED"} & set(of_party[(e2e, bic)]), (
                    e2e, of_party[(e2e, bic)])
    if all_final:
        assert not pending and "PENDING" not in states.values()
