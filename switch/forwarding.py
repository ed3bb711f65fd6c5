"""Forwarding: from journaled PENDING transfers to the creditor and back, within its deadline.

Bulk transfers are split per creditor into pacs.008s of up to `forward_batch_size`; instant
transfers to one creditor arriving within `forward_linger_ms` share one pacs.008 (as Kafka's
linger.ms), each keeping its own answer. The creditor answers ACCP or RJCT per transaction, or
with a group status for the transactions its items do not name, in the HTTP answer or later
by its own pacs.002; whatever has no answer at the deadline is rejected AB05, and an
unreachable creditor AB08 (its breaker then opens).

With a journal shared by several switch processes, a creditor may post its answer to any of
them: the process that forwarded the transfer judges it as above; another one hands it to the
journal (`take_posted_answers`), which takes it while the transfer is PENDING, and the
forwarding process stops waiting for what was made final elsewhere (`decided_elsewhere`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from protocol import reasons
from protocol.codec import new_id
from protocol.messages import (
    CreditTransferMessage,
    PaymentStatusReport,
    TransactionStatus,
    TxStatus,
)
from protocol.runtime import spawn
from switch.calls import exchange
from switch.context import SwitchState
from switch.finality import Finality
from switch.participants import Participant
from switch.states import TransferState
from switch.transfer import Transfer

log = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class ForwardedBatch:
    """A pacs.008 the switch sent a creditor, and the answers it has had so far."""

    msg_id: str
    creditor_bic: str
    transfers: dict[str, Transfer]
    answers: dict[str, tuple[TxStatus, str | None]] = field(default_factory=dict)
    answered: asyncio.Event = field(default_factory=asyncio.Event)


class Forwarding:
    def __init__(self, state: SwitchState, finality: Finality) -> None:
        self.state = state
        self.finality = finality
        self.awaiting: dict[str, ForwardedBatch] = {}  # end-to-end id -> its batch
        self.forwards: dict[str, ForwardedBatch] = {}  # the forward's MsgId -> the batch
        self.refused_answers = 0
        config = state.config
        self._forward_slots: dict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(config.max_forwards_in_flight_per_creditor))
        self._background: set[asyncio.Task[None]] = set()
        self._lingering: dict[str, list[Transfer]] = {}  # creditor BIC -> instant transfers
        self._linger_timers: dict[str, asyncio.TimerHandle] = {}

    def forward(self, transfers: Iterable[Transfer]) -> None:
        """Send journaled PENDING transfers on their way (in the background)."""
        by_creditor: dict[str, list[Transfer]] = defaultdict(list)
        linger_s = self.state.config.forward_linger_ms / 1000
        for transfer in transfers:
            if linger_s and not transfer.bulk:
                self._linger(transfer, linger_s)
            else:
                by_creditor[transfer.creditor_bic].append(transfer)
        size = self.state.config.forward_batch_size
        for creditor_bic, group in by_creditor.items():
            for start in range(0, len(group), size):
                spawn(self._background,
                      self._forward_batch(creditor_bic, group[start:start + size]))

    def _linger(self, transfer: Transfer, linger_s: float) -> None:
        """Hold an instant transfer until the window closes or the batch is full, so that
        transfers to the same creditor share one exchange."""
        creditor_bic = transfer.creditor_bic
        waiting = self._lingering.setdefault(creditor_bic, [])
        waiting.append(transfer)
        if len(waiting) >= self.state.config.forward_batch_size:
            self._flush_lingering(creditor_bic)
        elif len(waiting) == 1:
            self._linger_timers[creditor_bic] = asyncio.get_running_loop().call_later(
                linger_s, self._flush_lingering, creditor_bic)

    def _flush_lingering(self, creditor_bic: str) -> None:
        timer = self._linger_timers.pop(creditor_bic, None)
        if timer is not None:
            timer.cancel()
        spawn(self._background,
              self._forward_batch(creditor_bic, self._lingering.pop(creditor_bic)))

    async def drain(self) -> None:
        """Wait for the forwards under way, for a clean shutdown."""
        for creditor_bic in list(self._lingering):
            self._flush_lingering(creditor_bic)
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def _forward_batch(self, creditor_bic: str, transfers: list[Transfer]) -> None:
        state = self.state
        transfers = state.book.still_pending(transfers)
        if not transfers:  # made final elsewhere meanwhile (a shared journal)
            return
        creditor = state.participants[creditor_bic]
        batch = ForwardedBatch(msg_id=new_id("SWF"), creditor_bic=creditor_bic,
                               transfers={t.end_to_end_id: t for t in transfers})
        failure_reason = reasons.OFFLINE_CREDITOR_AGENT  # the forward failed (AB06: a crash)
        try:
            async with self._forward_slots[creditor_bic]:
                for transfer in transfers:
                    self.awaiting[transfer.end_to_end_id] = batch
                self.forwards[batch.msg_id] = batch
                state.events.forwarded.fire(creditor_bic=creditor_bic, transfers=transfers)
                failure_reason = await self._exchange(creditor, batch)
        except Exception:  # never leave transfers PENDING because of a bug or a strange reply
            log.exception("forwarding %s to %s failed", batch.msg_id, creditor_bic)
        finally:
            for e2e in batch.transfers:
                self.awaiting.pop(e2e, None)  # from here on, a late answer is refused
            self.forwards.pop(batch.msg_id, None)
        outcomes = []
        switch_bic = state.config.bic
        for e2e, transfer in batch.transfers.items():
            answer = batch.answers.get(e2e)
            if transfer.state is not TransferState.PENDING:  # made final elsewhere
                continue
            if answer is None:  # the creditor may be holding it: tell it
                outcomes.append((transfer, TransferState.REJECTED, failure_reason, switch_bic,
                                 True))
            elif answer[0] is TxStatus.ACCEPTED:
                outcomes.append((transfer, TransferState.SETTLED, None, None, True))
            else:  # rejected by the creditor itself, whatever its reason code
                outcomes.append((transfer, TransferState.REJECTED, answer[1], creditor_bic,
                                 False))
        with contextlib.suppress(Exception):  # logged by finish; recovery resolves the rest
            await self.finality.finish(outcomes)

    async def _exchange(self, creditor: Participant, batch: ForwardedBatch) -> str:
        """Send the batch and wait for answers until the deadline; the reason for the rest."""
        config = self.state.config
        loop = asyncio.get_running_loop()
        deadline_s = loop.time() + config.creditor_timeout_s
        message = CreditTransferMessage(
            msg_id=batch.msg_id,
            created_at=datetime.now(UTC),
            instructing_agent_bic=config.bic,
            instructed_agent_bic=creditor.bic,
            transactions=[tx for tx in (t.forwarded(self.state.store.forward_ids)
                                        for t in batch.transfers.values())
                          if tx is not None],
        )
        reply, failure_reason = await exchange(
            self.state.book, creditor, message, config.creditor_timeout_s,
            lambda reply: reply.status == 202 or (reply.status == 200 and isinstance(
                reply.message.document if reply.message is not None else None,
                PaymentStatusReport)))
        if reply is None:
            assert failure_reason is not None
            return failure_reason
        if reply.status == 200:
            assert reply.message is not None
            self.take_answers(creditor.bic, reply.message.document)  # type: ignore[arg-type]
        remaining_s = deadline_s - loop.time()
        if len(batch.answers) < len(batch.transfers) and remaining_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(batch.answered.wait(), remaining_s)
        return reasons.TIMEOUT_CREDITOR_AGENT

    def take_answers(self, creditor_bic: str, report: PaymentStatusReport,
                     elsewhere: list[TransactionStatus] | None = None) -> tuple[int, int]:
        """Record a creditor's ACCP/RJCT items; returns (taken, refused).

        An item is refused when the switch is not waiting for it from this creditor: late
        (the transfer already timed out), duplicate, about a transfer it never received, or
        naming it by another OrgnlTxId than the one it was forwarded under.
        With `elsewhere` given (an answer the creditor posted), an ACCP/RJCT this process
        does not await is put there instead, for the journal to judge.
        """
        taken = refused = 0
        named = set()  # keys the items name, taken or not: a group status is for the others
        forward_ids = self.state.store.forward_ids
        for item in report.transactions:
            key = forward_ids.key_named(item.original_end_to_end_id, item.original_tx_id,
                                        self.state.participants)
            named.add(key)
            batch = self.awaiting.get(key)
            if item.status not in (TxStatus.ACCEPTED, TxStatus.REJECTED):
                refused += 1
                continue
            if batch is None and elsewhere is not None:
                elsewhere.append(item)
                continue
            if (
                batch is None
                or batch.creditor_bic != creditor_bic
                or key in batch.answers
                or not batch.transfers[key].named_by(creditor_bic, item.original_tx_id,
                                                     forward_ids)
            ):
                refused += 1
                continue
            reason = item.reason_code or reasons.NOT_SPECIFIED
            batch.answers[key] = (
                item.status, None if item.status is TxStatus.ACCEPTED else reason)
            taken += 1
            if len(batch.answers) == len(batch.transfers):
                batch.answered.set()
        if report.group_status is TxStatus.PARTIALLY_ACCEPTED or (
                not report.transactions
                and report.group_status in (TxStatus.ACCEPTED, TxStatus.REJECTED)):
            grouped = self._take_group_status(creditor_bic, report, named)
            taken += grouped
            refused += not grouped and not named  # a group status that names nothing
        self.refused_answers += refused
        self.state.events.answered.fire(creditor_bic=creditor_bic, taken=taken, refused=refused)
        return taken, refused

    def _take_group_status(self, creditor_bic: str, report: PaymentStatusReport,
                           named: set[str]) -> int:
        """The OrgnlGrpInfAndSts/GrpSts of a pacs.002 on a forward this process awaits from
        this creditor (OrgnlMsgId): by ISO 20022 the status of every transaction of it that
        the items do not name: ACCP with no items, PART (the refused ones named, as in the EPC
        rulebook's pacs.002), RJCT with no items (its reason). Taken for each such transfer not
        yet answered; returns how many (0: refused, as for an item: another creditor's
        forward, one no longer awaited, or one already wholly answered). A forward another
        process sent (a shared journal) cannot be named by its MsgId here: refused."""
        batch = self.forwards.get(report.original_msg_id)
        if batch is None or batch.creditor_bic != creditor_bic:
            return 0
        answer = ((TxStatus.REJECTED, report.group_reason_code or reasons.NOT_SPECIFIED)
                  if report.group_status is TxStatus.REJECTED else (TxStatus.ACCEPTED, None))
        unanswered = [key for key in batch.transfers
                      if key not in batch.answers and key not in named]
        for key in unanswered:
            batch.answers[key] = answer
        if len(batch.answers) == len(batch.transfers):
            batch.answered.set()
        return len(unanswered)

    async def take_posted_answers(self, creditor_bic: str, report: PaymentStatusReport
                                  ) -> tuple[int, int]:
        """A pacs.002 the creditor posted (202 first, the answer later): (taken, refused).
        An answer this process does not await goes to the journal, which takes it when it
        holds the transfer PENDING for this creditor: a shared journal, for a transfer
        another process forwarded; one process's journal takes none."""
        elsewhere: list[TransactionStatus] = []
        taken, refused = self.take_answers(creditor_bic, report, elsewhere)
        if elsewhere:
            participants = self.state.participants
            forward_ids = self.state.store.forward_ids
            keys = [forward_ids.key_named(item.original_end_to_end_id, item.original_tx_id,
                                          participants)
                    for item in elsewhere]
            if any(item.original_tx_id is not None for item in elsewhere):
                known = await self.state.store.lookup(keys)  # whose OrgnlTxId names it
                named = [(key, item) for key, item in zip(keys, elsewhere, strict=True)
                         if key in known and known[key].named_by(
                             creditor_bic, item.original_tx_id, forward_ids)]
            else:
                named = list(zip(keys, elsewhere, strict=True))
            taken_elsewhere = await self.finality.finish_answered(creditor_bic, [
                (key,
                 TransferState.SETTLED if item.status is TxStatus.ACCEPTED
                 else TransferState.REJECTED,
                 None if item.status is TxStatus.ACCEPTED
                 else item.reason_code or reasons.NOT_SPECIFIED)
                for key, item in named])
            refused_elsewhere = len(elsewhere) - taken_elsewhere
            self.refused_answers += refused_elsewhere
            self.state.events.answered.fire(creditor_bic=creditor_bic, taken=taken_elsewhere,
                                            refused=refused_elsewhere)
            taken += taken_elsewhere
            refused += refused_elsewhere
        return taken, refused

    def decided_elsewhere(self, transfers: Iterable[Transfer]) -> None:
        """Transfers another process made final (a shared journal): their forwards stop
        waiting for them."""
        for transfer in transfers:
            batch = self.awaiting.get(transfer.end_to_end_id)
            if batch is None or transfer.end_to_end_id in batch.answers:
                continue
            batch.answers[transfer.end_to_end_id] = (transfer.status().status,
                                                     transfer.reason_code)
            if len(batch.answers) == len(batch.transfers):
                batch.answered.set()
