"""Clearing: from a debtor's pacs.008 to a settled or rejected transfer, exactly once.

Per transfer the hot path is: check (µs), reserve the debtor's position (in memory), journal
PENDING (group commit), forward to the creditor, take its answer, journal SETTLED or REJECTED
with the position move (group commit), then answer the debtor and confirm to the creditor.
Bulk files are split per creditor into forwarded messages of up to `forward_batch_size`
transactions, so a 100,000-transfer file costs about a hundred HTTP exchanges, not 100,000.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import aiohttp

from protocol import reasons
from protocol.codec import new_id
from protocol.messages import (
    CreditTransfer,
    CreditTransferMessage,
    MessageType,
    PaymentReturn,
    PaymentReturnItem,
    PaymentStatusReport,
    StatusRequest,
    TransactionStatus,
    TxStatus,
)
from switch.config import SwitchConfig
from switch.journal import NOTICE_DUE, NOTICE_NONE, Journal
from switch.notices import Notifier
from switch.participants import Participant
from switch.positions import PositionBook
from switch.states import WIRE_STATUS, TransferState, check_transition

log = logging.getLogger(__name__)

MAX_AMOUNT_VND = 10**13  # ten trillion dong: far above any single social payment

INSERT_TRANSFER = (
    "INSERT INTO transfers (end_to_end_id, tx_id, msg_id, debtor_bic, creditor_bic, amount_vnd,"
    " state, reason_code, bulk, received_at, final_at, cycle_id, creditor_notice, debtor_notice)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
FINISH_TRANSFER = (
    "UPDATE transfers SET state=?, reason_code=?, final_at=?, cycle_id=?, creditor_notice=?,"
    " debtor_notice=? WHERE end_to_end_id=? AND state='PENDING'"
)
INSERT_TRANSITION = (
    "INSERT INTO transitions (end_to_end_id, from_state, to_state, reason_code, at)"
    " VALUES (?,?,?,?,?)"
)


@dataclass(slots=True, eq=False)
class Transfer:
    end_to_end_id: str
    tx_id: str
    msg_id: str
    debtor_bic: str
    creditor_bic: str
    amount_vnd: int
    bulk: bool
    received_at: float
    state: TransferState | None = None
    reason_code: str | None = None
    source: CreditTransfer | None = None
    outcome: asyncio.Future[Transfer] | None = None

    def status(self) -> TransactionStatus:
        assert self.state is not None
        return TransactionStatus(
            original_end_to_end_id=self.end_to_end_id,
            original_tx_id=self.tx_id,
            status=WIRE_STATUS[self.state],
            reason_code=self.reason_code,
            reason_text=reasons.DESCRIPTIONS.get(self.reason_code or ""),
            original_msg_id=self.msg_id,
        )


@dataclass(slots=True, eq=False)
class ForwardedBatch:
    """A pacs.008 the switch sent a creditor, and the answers it has had so far."""

    msg_id: str
    creditor_bic: str
    transfers: dict[str, Transfer]
    answers: dict[str, tuple[TxStatus, str | None]] = field(default_factory=dict)
    answered: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(slots=True)
class Submission:
    """What the switch made of one pacs.008: the journaled transfers and immediate refusals."""

    accepted: list[Transfer]
    refused: list[TransactionStatus]  # duplicates: not journaled, the original stands


class Clearing:
    def __init__(
        self,
        config: SwitchConfig,
        journal: Journal,
        participants: dict[str, Participant],
        notifier: Notifier,
    ) -> None:
        self.config = config
        self.journal = journal
        self.participants = participants
        self.notifier = notifier
        self.positions = PositionBook()
        self.cycle_id = 0
        self.known_ids: set[str] = set()
        self.pending: dict[str, Transfer] = {}
        self.awaiting: dict[str, ForwardedBatch] = {}
        self.returning: set[str] = set()
        self.refused_answers = 0
        self.outcomes: Counter[str] = Counter()
        self._forward_slots: dict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(config.max_forwards_in_flight_per_creditor)
        )
        self._background: set[asyncio.Task[None]] = set()
        self._lingering: dict[str, list[Transfer]] = {}  # creditor BIC -> instant transfers
        self._linger_timers: dict[str, asyncio.TimerHandle] = {}

    # ---- intake -------------------------------------------------------------------------

    def has_room_for(self, transactions: int) -> bool:
        """Whether taking this many more transfers keeps the in-flight set within its limit."""
        return len(self.pending) + transactions <= self.config.max_transfers_in_flight

    def check_group(self, message: CreditTransferMessage) -> str | None:
        """A reason to refuse the whole message, or None: counts and sums must agree."""
        if message.declared_count is not None and message.declared_count != len(
            message.transactions
        ):
            return reasons.INVALID_NUMBER_OF_TRANSACTIONS
        if message.declared_control_sum is not None:
            try:
                declared = Decimal(message.declared_control_sum)
                actual = sum(Decimal(tx.amount_text) for tx in message.transactions)
            except InvalidOperation:
                return reasons.INVALID_CONTROL_SUM
            if declared != actual:
                return reasons.INVALID_CONTROL_SUM
        return None

    def _check_transaction(self, tx: CreditTransfer) -> str | None:
        if tx.currency != "VND":
            return reasons.NOT_ALLOWED_CURRENCY
        if not _whole_dong(tx.amount_text) or not 0 < tx.amount_vnd <= MAX_AMOUNT_VND:
            return reasons.INVALID_AMOUNT
        creditor = self.participants.get(tx.creditor_agent_bic)
        if creditor is None or creditor.config.kind == "treasury":
            return reasons.WRONG_BIC
        if not creditor.reachable():
            return reasons.OFFLINE_CREDITOR_AGENT
        return None

    async def submit(
        self, debtor_bic: str, message: CreditTransferMessage, bulk: bool
    ) -> Submission:
        """Check, deduplicate, reserve and journal every transaction; then forward them.

        Returns once every accepted transaction is durable as PENDING or REJECTED.
        """
        debtor = self.participants[debtor_bic]
        now_s = time.time()
        accepted: list[Transfer] = []
        duplicates: list[CreditTransfer] = []
        for tx in message.transactions:
            if tx.end_to_end_id in self.known_ids:
                duplicates.append(tx)
                continue
            self.known_ids.add(tx.end_to_end_id)
            transfer = Transfer(
                end_to_end_id=tx.end_to_end_id,
                tx_id=tx.tx_id,
                msg_id=message.msg_id,
                debtor_bic=debtor_bic,
                creditor_bic=tx.creditor_agent_bic,
                amount_vnd=tx.amount_vnd,
                bulk=bulk,
                received_at=now_s,
                source=tx,
            )
            reason = self._check_transaction(tx)
            if reason is None and not self.positions.reserve(
                debtor_bic, tx.amount_vnd, debtor.position_limit_vnd
            ):
                reason = reasons.INSUFFICIENT_FUNDS
            self._advance(transfer, TransferState.REJECTED if reason else TransferState.PENDING,
                          reason)
            accepted.append(transfer)
        await self._journal_new(accepted, now_s)
        refused = await self._duplicate_statuses(duplicates, message.msg_id, debtor_bic)
        for transfer in accepted:
            if transfer.state is TransferState.PENDING:
                self.pending[transfer.end_to_end_id] = transfer
        self._forward(t for t in accepted if t.state is TransferState.PENDING)
        if bulk:
            self.notifier.report_to_debtor(
                debtor_bic,
                [t.status() for t in accepted if t.state is TransferState.REJECTED] + refused,
            )
        return Submission(accepted, refused)

    async def _duplicate_statuses(
        self, duplicates: list[CreditTransfer], msg_id: str, debtor_bic: str
    ) -> list[TransactionStatus]:
        """A re-sent message (same MsgId, same debtor) gets the known outcome; any other reuse
        of an end-to-end id is refused DUPL and leaves the original untouched."""
        if not duplicates:
            return []
        known = await self.lookup([tx.end_to_end_id for tx in duplicates])
        statuses = []
        for tx in duplicates:
            original = known.get(tx.end_to_end_id)
            if original is not None and original.msg_id == msg_id and (
                original.debtor_bic == debtor_bic
            ):
                statuses.append(original.status())
                continue
            statuses.append(TransactionStatus(
                original_end_to_end_id=tx.end_to_end_id,
                original_tx_id=tx.tx_id,
                status=TxStatus.REJECTED,
                reason_code=reasons.DUPLICATE,
                reason_text=reasons.DESCRIPTIONS[reasons.DUPLICATE],
                original_msg_id=msg_id,
            ))
        return statuses

    def _advance(
        self, transfer: Transfer, target: TransferState, reason_code: str | None = None
    ) -> None:
        check_transition(transfer.state, target)
        transfer.state = target
        transfer.reason_code = reason_code
        self.outcomes[target if reason_code is None else f"{target}:{reason_code}"] += 1

    async def _journal_new(self, transfers: list[Transfer], now_s: float) -> None:
        rows = []
        transitions = []
        for t in transfers:
            rejected = t.state is TransferState.REJECTED
            rows.append((
                t.end_to_end_id, t.tx_id, t.msg_id, t.debtor_bic, t.creditor_bic, t.amount_vnd,
                t.state, t.reason_code, int(t.bulk), now_s, now_s if rejected else None, None,
                NOTICE_NONE, NOTICE_DUE if rejected and t.bulk else NOTICE_NONE,
            ))
            transitions.append((t.end_to_end_id, None, t.state, t.reason_code, now_s))
        await self.journal.write([(INSERT_TRANSFER, rows), (INSERT_TRANSITION, transitions)])

    # ---- forwarding ---------------------------------------------------------------------

    def _forward(self, transfers: Iterable[Transfer]) -> None:
        by_creditor: dict[str, list[Transfer]] = defaultdict(list)
        linger_s = self.config.forward_linger_ms / 1000
        for transfer in transfers:
            if linger_s and not transfer.bulk:
                self._linger(transfer, linger_s)
            else:
                by_creditor[transfer.creditor_bic].append(transfer)
        size = self.config.forward_batch_size
        for creditor_bic, group in by_creditor.items():
            for start in range(0, len(group), size):
                self._spawn(self._forward_batch(creditor_bic, group[start:start + size]))

    def _linger(self, transfer: Transfer, linger_s: float) -> None:
        """Hold an instant transfer until the window closes or the batch is full, so that
        transfers to the same creditor share one exchange."""
        creditor_bic = transfer.creditor_bic
        waiting = self._lingering.setdefault(creditor_bic, [])
        waiting.append(transfer)
        if len(waiting) >= self.config.forward_batch_size:
            self._flush_lingering(creditor_bic)
        elif len(waiting) == 1:
            self._linger_timers[creditor_bic] = asyncio.get_running_loop().call_later(
                linger_s, self._flush_lingering, creditor_bic)

    def _flush_lingering(self, creditor_bic: str) -> None:
        timer = self._linger_timers.pop(creditor_bic, None)
        if timer is not None:
            timer.cancel()
        self._spawn(self._forward_batch(creditor_bic, self._lingering.pop(creditor_bic)))

    def _spawn(self, coroutine: object) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)  # type: ignore[arg-type]
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _forward_batch(self, creditor_bic: str, transfers: list[Transfer]) -> None:
        creditor = self.participants[creditor_bic]
        async with self._forward_slots[creditor_bic]:
            batch = ForwardedBatch(
                msg_id=new_id("SWF"),
                creditor_bic=creditor_bic,
                transfers={t.end_to_end_id: t for t in transfers},
            )
            for transfer in transfers:
                self.awaiting[transfer.end_to_end_id] = batch
            failure_reason = await self._exchange(creditor, batch)
        for e2e in batch.transfers:
            self.awaiting.pop(e2e, None)  # from here on, a late answer is refused
        await self._finish_batch(batch, failure_reason)

    async def _exchange(self, creditor: Participant, batch: ForwardedBatch) -> str:
        """Send the batch and wait for answers until the deadline; the reason for the rest."""
        deadline_s = time.monotonic() + self.config.creditor_timeout_s
        message = CreditTransferMessage(
            msg_id=batch.msg_id,
            created_at=datetime.now(UTC),
            instructing_agent_bic=self.config.bic,
            instructed_agent_bic=creditor.bic,
            transactions=[t.source for t in batch.transfers.values() if t.source is not None],
        )
        try:
            reply = await creditor.peer.send(message, timeout_s=self.config.creditor_timeout_s)
        except TimeoutError:
            creditor.breaker.failed(time.monotonic())
            return reasons.TIMEOUT_CREDITOR_AGENT
        except (aiohttp.ClientError, OSError, ValueError) as error:
            log.info("forward to %s failed: %s", creditor.bic, error)
            creditor.breaker.failed(time.monotonic())
            return reasons.OFFLINE_CREDITOR_AGENT
        if reply.status == 200 and isinstance(reply.message.document if reply.message else None,
                                              PaymentStatusReport):
            assert reply.message is not None
            self.take_answers(creditor.bic, reply.message.document)  # type: ignore[arg-type]
        elif reply.status != 202:
            log.info("creditor %s answered HTTP %d: %s", creditor.bic, reply.status, reply.text)
            creditor.breaker.failed(time.monotonic())
            return reasons.OFFLINE_CREDITOR_AGENT
        creditor.breaker.succeeded()
        remaining_s = deadline_s - time.monotonic()
        if len(batch.answers) < len(batch.transfers) and remaining_s > 0:
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                await asyncio.wait_for(batch.answered.wait(), remaining_s)
        return reasons.TIMEOUT_CREDITOR_AGENT

    def take_answers(self, creditor_bic: str, report: PaymentStatusReport) -> tuple[int, int]:
        """Record a creditor's ACCP/RJCT answers; returns (taken, refused).

        An answer is refused when the switch is not waiting for it from this creditor: late
        (the transfer already timed out), duplicate, or about a transfer it never received.
        """
        taken = refused = 0
        for item in report.transactions:
            batch = self.awaiting.get(item.original_end_to_end_id)
            valid_status = item.status in (TxStatus.ACCEPTED, TxStatus.REJECTED)
            if (
                batch is None
                or batch.creditor_bic != creditor_bic
                or item.original_end_to_end_id in batch.answers
                or not valid_status
            ):
                refused += 1
                continue
            reason = item.reason_code or reasons.NOT_SPECIFIED
            batch.answers[item.original_end_to_end_id] = (
                item.status, None if item.status is TxStatus.ACCEPTED else reason
            )
            taken += 1
            if len(batch.answers) == len(batch.transfers):
                batch.answered.set()
        self.refused_answers += refused
        return taken, refused

    async def _finish_batch(self, batch: ForwardedBatch, failure_reason: str) -> None:
        now_s = time.time()
        finished: list[tuple[Transfer, bool]] = []  # (transfer, creditor must be told)
        for e2e, transfer in batch.transfers.items():
            status, reason = batch.answers.get(e2e, (TxStatus.REJECTED, failure_reason))
            if status is TxStatus.ACCEPTED:
                self.positions.settle(transfer.debtor_bic, transfer.creditor_bic,
                                      transfer.amount_vnd)
                self._advance(transfer, TransferState.SETTLED)
                finished.append((transfer, True))
            else:
                self.positions.release(transfer.debtor_bic, transfer.amount_vnd)
                self._advance(transfer, TransferState.REJECTED, reason)
                # The creditor rejected it itself, or may be holding it: tell it only then.
                finished.append((transfer, e2e not in batch.answers))
        await self._journal_final(finished, now_s)
        self._announce(finished)

    async def _journal_final(self, finished: list[tuple[Transfer, bool]], now_s: float) -> None:
        rows = []
        transitions = []
        for transfer, tell_creditor in finished:
            settled = transfer.state is TransferState.SETTLED
            rows.append((
                transfer.state, transfer.reason_code, now_s, self.cycle_id if settled else None,
                NOTICE_DUE if tell_creditor else NOTICE_NONE,
                NOTICE_DUE if transfer.bulk else NOTICE_NONE, transfer.end_to_end_id,
            ))
            transitions.append((transfer.end_to_end_id, TransferState.PENDING, transfer.state,
                                transfer.reason_code, now_s))
        await self.journal.write([(FINISH_TRANSFER, rows), (INSERT_TRANSITION, transitions)])

    def _announce(self, finished: list[tuple[Transfer, bool]]) -> None:
        """After the final state is durable: answer the debtor, confirm to the creditor."""
        to_creditors: dict[str, list[TransactionStatus]] = defaultdict(list)
        to_debtors: dict[str, list[TransactionStatus]] = defaultdict(list)
        for transfer, tell_creditor in finished:
            self.pending.pop(transfer.end_to_end_id, None)
            status = transfer.status()
            if tell_creditor:
                to_creditors[transfer.creditor_bic].append(status)
            if transfer.bulk:
                to_debtors[transfer.debtor_bic].append(status)
            elif transfer.outcome is not None and not transfer.outcome.done():
                transfer.outcome.set_result(transfer)
            transfer.source = None
        for bic, statuses in to_creditors.items():
            self.notifier.confirm_to_creditor(bic, statuses)
        for bic, statuses in to_debtors.items():
            self.notifier.report_to_debtor(bic, statuses)

    # ---- inquiries and returns ------------------------------------------------------------

    async def lookup(self, end_to_end_ids: list[str]) -> dict[str, Transfer]:
        """Current state of transfers, from memory when in flight, else from the journal."""
        found = {e2e: self.pending[e2e] for e2e in end_to_end_ids if e2e in self.pending}
        missing = [e2e for e2e in end_to_end_ids if e2e not in found]
        for start in range(0, len(missing), 500):
            chunk = missing[start:start + 500]
            rows = await self.journal.read(
                "SELECT end_to_end_id, tx_id, msg_id, debtor_bic, creditor_bic, amount_vnd, state,"
                f" reason_code, bulk, received_at FROM transfers WHERE end_to_end_id IN"
                f" ({','.join('?' * len(chunk))})",
                chunk,
            )
            for row in rows:
                found[row[0]] = Transfer(
                    end_to_end_id=row[0], tx_id=row[1], msg_id=row[2], debtor_bic=row[3],
                    creditor_bic=row[4], amount_vnd=row[5], bulk=bool(row[8]),
                    received_at=row[9], state=TransferState(row[6]), reason_code=row[7],
                )
        return found

    async def status_report(
        self, requester_bic: str, request: StatusRequest
    ) -> PaymentStatusReport:
        """pacs.028 → pacs.002 from the journal; a party to the transfer only, AG09 otherwise."""
        known = await self.lookup([item.original_end_to_end_id for item in request.items])
        statuses = []
        for item in request.items:
            transfer = known.get(item.original_end_to_end_id)
            if transfer is None or requester_bic not in (transfer.debtor_bic,
                                                         transfer.creditor_bic):
                statuses.append(TransactionStatus(
                    original_end_to_end_id=item.original_end_to_end_id,
                    original_tx_id=item.original_tx_id or "NOTPROVIDED",
                    status=TxStatus.REJECTED,
                    reason_code=reasons.PAYMENT_NOT_RECEIVED,
                    reason_text=reasons.DESCRIPTIONS[reasons.PAYMENT_NOT_RECEIVED],
                ))
            else:
                statuses.append(transfer.status())
        return PaymentStatusReport(
            msg_id=new_id("SWS"), created_at=datetime.now(UTC), original_msg_id=request.msg_id,
            original_msg_type=MessageType.STATUS_REQUEST, transactions=statuses,
        )

    async def take_return(self, creditor_bic: str, message: PaymentReturn) -> PaymentStatusReport:
        """pacs.004 from a creditor: check each item against its original, settle, forward."""
        known = await self.lookup([item.original_end_to_end_id for item in message.items])
        now_s = time.time()
        statuses: list[TransactionStatus] = []
        accepted: list[tuple[PaymentReturnItem, Transfer]] = []
        for item in message.items:
            original = known.get(item.original_end_to_end_id)
            reason = self._return_refusal(creditor_bic, item, original)
            if reason is None:
                assert original is not None
                if not self.positions.reserve(
                    creditor_bic, item.returned_amount_vnd,
                    self.participants[creditor_bic].position_limit_vnd,
                ):
                    reason = reasons.INSUFFICIENT_FUNDS
            if reason is not None:
                statuses.append(_return_status(item, TxStatus.REJECTED, reason))
                continue
            assert original is not None
            self.returning.add(original.end_to_end_id)
            self.positions.settle(creditor_bic, original.debtor_bic, item.returned_amount_vnd)
            self._advance(original, TransferState.RETURNED, item.reason_code)
            accepted.append((item, original))
            statuses.append(_return_status(item, TxStatus.SETTLED, None))
        if accepted:
            await self.journal.write([
                ("UPDATE transfers SET state='RETURNED', reason_code=?"
                 " WHERE end_to_end_id=? AND state='SETTLED'",
                 [(i.reason_code, t.end_to_end_id) for i, t in accepted]),
                ("INSERT INTO returns (return_id, end_to_end_id, creditor_bic, debtor_bic,"
                 " amount_vnd, reason_code, settled_at, cycle_id) VALUES (?,?,?,?,?,?,?,?)",
                 [(i.return_id, t.end_to_end_id, creditor_bic, t.debtor_bic,
                   i.returned_amount_vnd, i.reason_code, now_s, self.cycle_id)
                  for i, t in accepted]),
                (INSERT_TRANSITION, [(t.end_to_end_id, TransferState.SETTLED,
                                      TransferState.RETURNED, i.reason_code, now_s)
                                     for i, t in accepted]),
            ])
            by_debtor: dict[str, list[PaymentReturnItem]] = defaultdict(list)
            for item, original in accepted:
                by_debtor[original.debtor_bic].append(item)
            for debtor_bic, items in by_debtor.items():
                self.notifier.forward_returns(debtor_bic, items)
        return PaymentStatusReport(
            msg_id=new_id("SWR"), created_at=datetime.now(UTC), original_msg_id=message.msg_id,
            original_msg_type=MessageType.PAYMENT_RETURN, transactions=statuses,
        )

    def _return_refusal(
        self, creditor_bic: str, item: PaymentReturnItem, original: Transfer | None
    ) -> str | None:
        if original is None:
            return reasons.PAYMENT_NOT_RECEIVED
        if original.creditor_bic != creditor_bic:
            return reasons.TRANSACTION_FORBIDDEN
        if original.state is TransferState.RETURNED or original.end_to_end_id in self.returning:
            return reasons.DUPLICATE
        if original.state is not TransferState.SETTLED:
            return reasons.TRANSACTION_FORBIDDEN
        if not _whole_dong(item.amount_text) or not 0 < item.returned_amount_vnd <= (
            original.amount_vnd
        ):
            return reasons.WRONG_AMOUNT
        return None

    # ---- recovery ---------------------------------------------------------------------------

    async def recover(self) -> dict[str, int]:
        """Rebuild memory from the journal and resolve what a crash left in flight.

        A PENDING transfer may have been forwarded, and its creditor may even have answered
        ACCP, but nothing was settled (ACCP and settlement are one write), and creditors credit
        only on ACSC: rejecting it (AB06) and telling both sides is always safe.
        """
        journal = self.journal
        open_cycle = journal.read_now("SELECT max(cycle_id) FROM cycles WHERE closed_at IS NULL")
        if open_cycle[0][0] is None:
            last = journal.read_now("SELECT coalesce(max(cycle_id), 0) FROM cycles")[0][0]
            self.cycle_id = last + 1
            await journal.write([("INSERT INTO cycles (cycle_id, opened_at) VALUES (?, ?)",
                                  [(self.cycle_id, time.time())])])
        else:
            self.cycle_id = open_cycle[0][0]
        self.known_ids = {row[0] for row in journal.iterate_now(
            "SELECT end_to_end_id FROM transfers")}
        for debtor, creditor, amount in journal.read_now(
            "SELECT debtor_bic, creditor_bic, sum(amount_vnd) FROM transfers WHERE cycle_id=?"
            " GROUP BY debtor_bic, creditor_bic", (self.cycle_id,)
        ):
            self.positions.move(debtor, creditor, amount)
        for debtor, creditor, amount in journal.read_now(
            "SELECT debtor_bic, creditor_bic, sum(amount_vnd) FROM returns WHERE cycle_id=?"
            " GROUP BY debtor_bic, creditor_bic", (self.cycle_id,)
        ):
            self.positions.move(creditor, debtor, amount)
        self.returning = {row[0] for row in journal.read_now("SELECT end_to_end_id FROM returns")}
        for bic, limit, signed_off in journal.read_now(
            "SELECT bic, position_limit_vnd, signed_off FROM participant_settings"
        ):
            if bic in self.participants:
                if limit is not None:
                    self.participants[bic].position_limit_vnd = limit
                self.participants[bic].signed_off = bool(signed_off)
        in_flight = [
            (Transfer(end_to_end_id=r[0], tx_id=r[1], msg_id=r[2], debtor_bic=r[3],
                      creditor_bic=r[4], amount_vnd=r[5], bulk=bool(r[6]), received_at=r[7],
                      state=TransferState.PENDING), True)
            for r in journal.read_now(
                "SELECT end_to_end_id, tx_id, msg_id, debtor_bic, creditor_bic, amount_vnd, bulk,"
                " received_at FROM transfers WHERE state='PENDING'")
        ]
        for transfer, _ in in_flight:
            self._advance(transfer, TransferState.REJECTED, reasons.TIMEOUT_INSTRUCTED_AGENT)
        if in_flight:
            await self._journal_final(in_flight, time.time())
        self.notifier.reload(journal)
        return {"known_transfers": len(self.known_ids), "resolved_in_flight": len(in_flight)}

    # ---- settlement ----------------------------------------------------------------------

    async def close_cycle(self) -> tuple[int, dict[str, int]]:
        """Close the open cycle; returns its id and every participant's net position."""
        closed_id = self.cycle_id
        closing = self.positions.close_cycle()
        self.cycle_id += 1
        now_s = time.time()
        await self.journal.write([
            ("UPDATE cycles SET closed_at=? WHERE cycle_id=?", [(now_s, closed_id)]),
            ("INSERT INTO cycles (cycle_id, opened_at) VALUES (?, ?)", [(self.cycle_id, now_s)]),
        ])
        return closed_id, closing

    async def save_settings(self, participant: Participant) -> None:
        await self.journal.write([(
            "INSERT INTO participant_settings (bic, position_limit_vnd, signed_off)"
            " VALUES (?,?,?) ON CONFLICT(bic) DO UPDATE SET"
            " position_limit_vnd=excluded.position_limit_vnd, signed_off=excluded.signed_off",
            [(participant.bic, participant.position_limit_vnd, int(participant.signed_off))],
        )])

    async def drain(self) -> None:
        """Wait for the forwards under way, for a clean shutdown."""
        for creditor_bic in list(self._lingering):
            self._flush_lingering(creditor_bic)
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)



def _whole_dong(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts "١٢" and other scripts' digits."""
    return text.isascii() and text.isdigit()


def _return_status(item: PaymentReturnItem, status: TxStatus, reason: str | None) -> (
    TransactionStatus
):
    return TransactionStatus(
        original_end_to_end_id=item.original_end_to_end_id,
        original_tx_id=item.return_id,
        status=status,
        reason_code=reason,
        reason_text=reasons.DESCRIPTIONS.get(reason or ""),
        original_msg_id=item.original_msg_id,
    )
