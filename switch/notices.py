"""Telling participants what became of their transfers, reliably and in batches, and sending
each its statement when a settlement cycle closes.

Every notice is first made durable as a flag on the transfer (creditor_notice, debtor_notice,
or the return's debtor_notice) in the same journal write as the final state, then sent from
memory. Delivery is retried with capped backoff; a restarted switch reloads the flags still
due, so a participant is told at least once, and participants key by end-to-end id, so being
told twice is harmless. Batching matters: a 100,000-transfer payout is confirmed in about a
hundred pacs.002 messages, and instant confirmations coalesce for a few milliseconds.

A delivery is done when the participant answers 2xx, signed; anything else (no answer, a
timeout, another status, an answer that does not check) is retried from FIRST_BACKOFF_S
doubling to MAX_BACKOFF_S, up to `notice_max_attempts` attempts of `notice_timeout_s` each.
Statements (camt.053) are pushed the same way but are no durable flag: a participant that
missed one fetches it with a signed request (switch/statements.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp

from protocol.codec import CodecError, new_id
from protocol.http import Reply
from protocol.messages import (
    MessageType,
    PaymentReturn,
    PaymentReturnItem,
    PaymentStatusReport,
    Statement,
    TransactionStatus,
    TxStatus,
)
from protocol.reasons import DUPLICATE
from protocol.retry import with_backoff
from protocol.runtime import spawn
from switch.config import SwitchConfig
from switch.events import SwitchEvents
from switch.journal import Journal
from switch.journal_errors import JournalInconsistent
from switch.participants import Participant
from switch.records import NoticesDue, SettledReturn

log = logging.getLogger(__name__)

MAX_ITEMS_PER_NOTICE = 1_000
LINGER_S = 0.005
# A bulk transfer's two notices (the creditor's confirmation, the debtor's report) are marked
# sent in one journal write once both are delivered: one row update a transfer, not two. The
# first one told waits at most PAIR_WAIT_S for the other, then is written alone; at most
# MAX_PAIRED transfers are awaited so (the rest are marked one notice at a time).
PAIR_WAIT_S = 1.0
MAX_PAIRED = 200_000
FIRST_BACKOFF_S = 0.05
MAX_BACKOFF_S = 5.0


@dataclass(slots=True)
class _Outbox:
    confirmations: deque[TransactionStatus] = field(default_factory=deque)
    reports: deque[TransactionStatus] = field(default_factory=deque)
    returns: deque[SettledReturn] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def __len__(self) -> int:
        return len(self.confirmations) + len(self.reports) + len(self.returns)


class Notifier:
    def __init__(self, config: SwitchConfig, participants: dict[str, Participant], store: Journal,
                 events: SwitchEvents) -> None:
        self.config = config
        self.participants = participants
        self.store = store
        self.events = events
        self.outboxes = {bic: _Outbox() for bic in participants}
        self.delivered = 0
        self.failed_attempts = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._pushes: set[asyncio.Task[None]] = set()
        self._paired: set[str] = set()  # keys whose two notices are both due and not yet told
        self._half_told: dict[str, tuple[str, float]] = {}  # key -> (kind told, when), oldest first
        self._pair_timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._deliver_loop(bic)) for bic in self.outboxes]

    async def stop(self) -> None:
        tasks = [*self._tasks, *self._pushes]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._pair_timer is not None:
            self._pair_timer.cancel()
        await self._mark_half_told(float("inf"))  # else told again after a restart: harmless

    def push_statements(self, statement_of: Callable[[str], AsyncIterator[Statement]]
                        ) -> None:
        """Send every participant its statement (`statement_of(bic)`, page by page) in the
        background, each on its own so that one unreachable participant delays no other."""
        loop = asyncio.get_running_loop()
        for bic in self.outboxes:
            task = loop.create_task(self._push_statement(bic, statement_of))
            self._pushes.add(task)
            task.add_done_callback(self._pushes.discard)

    async def _push_statement(self, bic: str,
                              statement_of: Callable[[str], AsyncIterator[Statement]]
                              ) -> None:
        try:
            async for page in statement_of(bic):
                if not await self._send(bic, page, 1):
                    log.error("gave up sending %s page %d of its statement of cycle %d; it can"
                              " fetch it", bic, page.page_number, page.cycle_id)
                    return
        except JournalInconsistent as error:  # logged where found; the fetch says why too
            log.error("statement not pushed to %s: %s", bic, error)

    def backlog(self) -> int:
        return sum(len(outbox) for outbox in self.outboxes.values())

    def tell_finals(self, to_creditors: dict[str, list[TransactionStatus]],
                    to_debtors: dict[str, list[TransactionStatus]]) -> None:
        """Queue the notices of transfers made final (by creditor and by bulk debtor BIC);
        those of a transfer due to both are to be marked sent in one write."""
        if to_creditors and to_debtors and len(self._paired) < MAX_PAIRED:
            reported = {_key(item) for statuses in to_debtors.values() for item in statuses}
            self._paired.update(key for statuses in to_creditors.values() for item in statuses
                                if (key := _key(item)) in reported)
        for bic, statuses in to_creditors.items():
            self.confirm_to_creditor(bic, statuses)
        for bic, statuses in to_debtors.items():
            self.report_to_debtor(bic, statuses)

    def confirm_to_creditor(self, bic: str, statuses: Sequence[TransactionStatus]) -> None:
        self._queue(self.outboxes[bic], self.outboxes[bic].confirmations, statuses)

    def report_to_debtor(self, bic: str, statuses: Sequence[TransactionStatus]) -> None:
        self._queue(self.outboxes[bic], self.outboxes[bic].reports, statuses)

    def forward_returns(self, bic: str, returns: Sequence[SettledReturn]) -> None:
        self._queue(self.outboxes[bic], self.outboxes[bic].returns, returns)

    @staticmethod
    def _queue(outbox: _Outbox, queue: deque, items: Sequence) -> None:  # type: ignore[type-arg]
        if items:
            queue.extend(items)
            outbox.wake.set()

    def reload(self, due: NoticesDue) -> None:
        """Queue again every notice the journal says is still due (after a restart)."""
        for transfer in due.to_creditors:
            self.confirm_to_creditor(transfer.creditor_bic,
                                     [transfer.status(self.store.forward_ids)])
        for transfer in due.to_debtors:
            self.report_to_debtor(transfer.debtor_bic, [transfer.status()])
        for settled in due.returns:
            self.forward_returns(settled.original.debtor_bic, [settled])

    async def _deliver_loop(self, bic: str) -> None:
        outbox = self.outboxes[bic]
        while True:
            await outbox.wake.wait()
            outbox.wake.clear()
            await asyncio.sleep(LINGER_S)
            while outbox:
                for queue, kind in ((outbox.confirmations, "creditor"),
                                    (outbox.reports, "debtor"), (outbox.returns, "return")):
                    if queue:
                        items = [queue.popleft()
                                 for _ in range(min(len(queue), MAX_ITEMS_PER_NOTICE))]
                        await self._deliver(bic, kind, items)

    def _document(self, bic: str, kind: str, items: list  # type: ignore[type-arg]
                  ) -> tuple[PaymentReturn | PaymentStatusReport, list[str]]:
        """The message to send and the journal keys it marks as told."""
        if kind == "return":
            returns: list[SettledReturn] = items
            document: PaymentReturn | PaymentStatusReport = PaymentReturn(
                msg_id=new_id("SWN"), created_at=datetime.now(UTC),
                instructing_agent_bic=self.config.bic, instructed_agent_bic=bic,
                items=[PaymentReturnItem(
                    return_id=r.return_id, original_end_to_end_id=r.original.wire_id,
                    original_tx_id=r.original.tx_id, returned_amount_vnd=r.amount_vnd,
                    reason_code=r.reason_code, original_msg_id=r.original.msg_id,
                    amount_text=str(r.amount_vnd),
                ) for r in returns],
            )
            return document, [r.return_id for r in returns]
        statuses: list[TransactionStatus] = items
        original_ids = {item.original_msg_id for item in statuses}
        document = PaymentStatusReport(
            msg_id=new_id("SWN"), created_at=datetime.now(UTC),
            original_msg_id=original_ids.pop() if len(original_ids) == 1 else "MULTIPLE",
            original_msg_type=MessageType.CREDIT_TRANSFER, transactions=statuses,
        )
        # A DUPL refusal names the original's id: it must not mark the original as told.
        return document, [_key(item) for item in statuses
                          if not (item.status is TxStatus.REJECTED
                                  and item.reason_code == DUPLICATE)]

    async def _deliver(self, bic: str, kind: str, items: list) -> None:  # type: ignore[type-arg]
        document, keys = self._document(bic, kind, items)
        if not await self._send(bic, document, len(items)):
            log.error("gave up telling %s about %d transfers; the journal keeps them due",
                      bic, len(items))
            if kind != "return":  # their pairs, told or to be told, are marked alone
                await self._unpair(keys)
            return
        self.delivered += len(items)
        self.events.notice_delivered.fire(bic=bic, items=len(items))
        if kind != "return":
            keys, both = self._pair(kind, keys)
            await self._mark_sent("both", both, bic)
        await self._mark_sent(kind, keys, bic)

    def _pair(self, kind: str, keys: list[str]) -> tuple[list[str], list[str]]:
        """Of the keys just told `kind`: those to mark now alone, and those whose other
        notice was told before (marked both at once); the first told of a pair waits."""
        alone, both = [], []
        paired, half_told = self._paired, self._half_told
        now_s = time.monotonic()
        for key in keys:
            if key not in paired:
                alone.append(key)
            elif key in half_told and half_told[key][0] != kind:
                del half_told[key]
                paired.discard(key)
                both.append(key)
            else:
                half_told[key] = (kind, now_s)
        self._wait_for_pairs()
        return alone, both

    async def _unpair(self, keys: list[str]) -> None:
        """Keys whose notice was given up: their other notice waits for nothing."""
        by_kind: dict[str, list[str]] = {}
        for key in keys:
            self._paired.discard(key)
            waiting = self._half_told.pop(key, None)
            if waiting is not None:
                by_kind.setdefault(waiting[0], []).append(key)
        for kind, alone in by_kind.items():
            await self._mark_sent(kind, alone, "participants")

    def _wait_for_pairs(self) -> None:
        """In PAIR_WAIT_S, mark alone what waited that long for its pair (while any waits)."""
        if self._half_told and self._pair_timer is None:
            self._pair_timer = asyncio.get_running_loop().call_later(
                PAIR_WAIT_S, lambda: spawn(self._pushes, self._pairs_waited()))

    async def _pairs_waited(self) -> None:
        self._pair_timer = None
        await self._mark_half_told(time.monotonic() - PAIR_WAIT_S)
        self._wait_for_pairs()

    async def _mark_half_told(self, told_before_s: float) -> None:
        """Mark alone the notices told before `told_before_s` (monotonic) whose pair is
        still untold (a participant slow or gone)."""
        by_kind: dict[str, list[str]] = {}
        half_told = self._half_told
        for key, (kind, told_s) in half_told.items():  # oldest first: one pass (popping the
            if told_s >= told_before_s:  # first again and again rescans the freed slots)
                break
            by_kind.setdefault(kind, []).append(key)
        for keys in by_kind.values():
            for key in keys:
                del half_told[key]
                self._paired.discard(key)
        for kind, keys in by_kind.items():
            await self._mark_sent(kind, keys, "participants")

    async def _mark_sent(self, kind: str, keys: list[str], bic: str) -> None:
        if not keys:
            return
        try:
            await self.store.mark_sent(kind, keys)
        except Exception as error:  # told already; a restart may tell again, harmlessly
            if not self.store.heals or self.store.failure is None:  # else logged once
                log.error("could not journal notices to %s as sent: %s", bic, error)

    async def _send(self, bic: str, document: PaymentReturn | PaymentStatusReport | Statement,
                    items: int) -> bool:
        """Post until the participant answers 2xx (signed) or the attempts run out; whether
        it took the message."""
        peer = self.participants[bic].peer

        async def attempt() -> Reply | None:
            try:
                reply = await peer.send(document, timeout_s=self.config.notice_timeout_s)
            except (aiohttp.ClientError, OSError, TimeoutError, CodecError) as error:
                log.info("notice to %s failed: %r", bic, error)
                reply = None
            else:
                if not 200 <= reply.status < 300:
                    log.info("notice to %s refused: HTTP %d %s", bic, reply.status, reply.text)
            if reply is None or not 200 <= reply.status < 300:
                self.failed_attempts += 1
                self.events.notice_failed.fire(bic=bic, items=items)
            return reply

        reply = await with_backoff(
            attempt, attempts=self.config.notice_max_attempts, first_backoff_s=FIRST_BACKOFF_S,
            max_backoff_s=MAX_BACKOFF_S, done=lambda r: r is not None and 200 <= r.status < 300)
        return reply is not None and 200 <= reply.status < 300


def _key(item: TransactionStatus) -> str:
    """The journal's key of the transfer a status tells of."""
    return item.switch_key or item.original_end_to_end_id
