"""Intake: a debtor's pacs.008 checked, deduplicated, reserved and journaled, then forwarded.

Per transaction: check (µs), reserve the debtor's position, and the whole message's
transactions journaled in one group-committed write, PENDING (to be forwarded) or REJECTED
(refused at intake with its reason). Only then are they in flight and on their way.
An instant transfer's answer is a future created with the transfer, before anything is
journaled or forwarded, so its final status can never be missed whatever the awaits between.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal

from protocol import reasons
from protocol.messages import (
    CreditTransfer,
    CreditTransferMessage,
    TransactionStatus,
)
from switch.context import SwitchState
from switch.forwarding import Forwarding
from switch.inquiry import lookup
from switch.journal_errors import WriteRefused
from switch.states import TransferState
from switch.transfer import Transfer, refusal

log = logging.getLogger(__name__)

ANSWER_MARGIN_S = 2.0  # beyond the creditor deadline, for two journal writes and the reply
# An xs:decimal as ISO 20022 amounts write it, bounded (totalDigits 18, fractionDigits 5) so
# that no text can cost more than a few microseconds of arithmetic.
_DECIMAL = re.compile(r"[+-]?\d{1,18}(?:\.\d{1,5})?")  # xs:decimal allows a sign
MAX_SUM_DIGITS = 24  # 100,000 amounts of 18 digits add up to at most 23
# An amount as the control sum counts it: whole digits up to MAX_SUM_DIGITS, so that a sum
# agreeing with amounts too long for the schema is not mistaken for a wrong sum (their
# transactions are refused AM12 each, the message is not refused AM10).
_SUM_TERM = re.compile(rf"\d{{1,{MAX_SUM_DIGITS}}}")


@dataclass(slots=True)
class Submission:
    """What the switch made of one pacs.008: the transfers it journaled (PENDING, or REJECTED
    at intake), the refusals of resent ids (not journaled), or a reason to refuse the whole
    message (nothing of it taken)."""

    journaled: list[Transfer] = field(default_factory=list)
    refused: list[TransactionStatus] = field(default_factory=list)  # resent ids, not journaled
    group_reason: str | None = None


class Intake:
    def __init__(self, state: SwitchState, forwarding: Forwarding) -> None:
        self.state = state
        self.forwarding = forwarding

    def has_room_for(self, transactions: int) -> bool:
        """Whether taking this many more transfers keeps the in-flight set within its limit."""
        return len(self.state.book.in_flight) + transactions <= (
            self.state.config.max_transfers_in_flight)

    def check_group(self, message: CreditTransferMessage) -> str | None:
        """A reason to refuse the whole message, or None: counts and sums must agree, and
        each EndToEndId appear once (DU04)."""
        transactions = message.transactions
        if message.declared_count is not None and message.declared_count != len(transactions):
            return reasons.INVALID_NUMBER_OF_TRANSACTIONS
        if len(transactions) > 1 and len({tx.end_to_end_id for tx in transactions}) != len(
                transactions):
            return reasons.DUPLICATE_END_TO_END_ID
        declared = message.declared_control_sum
        if declared is None:
            return None
        if _SUM_TERM.fullmatch(declared) and all(
                _SUM_TERM.fullmatch(tx.amount_text) for tx in transactions):
            whole_sum = sum(int(tx.amount_text) for tx in transactions)  # ints of <25 digits
            return None if int(declared) == whole_sum else reasons.INVALID_CONTROL_SUM
        if not _DECIMAL.fullmatch(declared):
            return reasons.INVALID_CONTROL_SUM
        actual = sum(Decimal(tx.amount_text) for tx in transactions
                     if _DECIMAL.fullmatch(tx.amount_text))
        return None if Decimal(declared) == actual else reasons.INVALID_CONTROL_SUM

    async def submit(self, debtor_bic: str, message: CreditTransferMessage, bulk: bool,
                     body_sha256: bytes) -> Submission:
        """Check, deduplicate, reserve and journal every transaction; then forward them.

        `body_sha256` is the digest of the message as received: a MsgId the debtor used before
        gets the known outcomes when the body is byte for byte the same, and refuses the whole
        message (DU01) otherwise. Returns once every accepted transaction is durable as
        PENDING or REJECTED. Raises JournalFailed or JournalBusy when the journal did not take
        them: then nothing of the message was taken.
        """
        state = self.state
        book = state.book
        owners: dict[str, str] = {}
        if book.knows_any(message.transactions):
            resent = await self._resent(debtor_bic, message, body_sha256)
            if resent is not None:
                return resent
            owners = await self._owners(book.owners_wanted(message.transactions))
        accepted, duplicates = book.take(debtor_bic, message, bulk, self._resolve,
                                         asyncio.get_running_loop(), time.time(), owners)
        if accepted:
            try:
                decided = await state.store.record_new(debtor_bic, message.msg_id, body_sha256,
                                                       accepted, accepted[0].received_at)
            except WriteRefused:
                book.untake(accepted)
                resent = await self._resent(debtor_bic, message, body_sha256)
                if resent is None:
                    raise
                return resent
            except BaseException:
                book.untake(accepted)
                raise
            accepted, pending = book.taken(accepted, duplicates, decided)
        else:
            pending = []
        if duplicates:
            owners |= await self._owners(book.owners_wanted(duplicates))
        refused = await self._duplicate_statuses(duplicates, message.msg_id, debtor_bic,
                                                 owners)
        if accepted:
            state.events.received.fire(debtor_bic=debtor_bic, transfers=accepted, bulk=bulk)
        if refused:
            state.events.refused.fire(debtor_bic=debtor_bic, statuses=refused)
        self.forwarding.forward(pending)
        if bulk:
            state.notifier.report_to_debtor(
                debtor_bic,
                [t.status() for t in accepted if t.state is TransferState.REJECTED] + refused,
            )
        return Submission(accepted, refused)

    def _resolve(self, tx: CreditTransfer) -> str | None:
        """A transfer naming its creditor by citizen id alone (CdtrAgt is the switch itself)
        pointed at the linked account, before anything is reserved; why not, otherwise."""
        if tx.creditor_agent_bic != self.state.config.bic:
            return None
        return self.state.directory.resolve(tx)

    async def _resent(self, debtor_bic: str, message: CreditTransferMessage,
                      body_sha256: bytes) -> Submission | None:
        """A MsgId the debtor used before: the known outcomes for the very same bytes, the
        whole message refused DU01 for anything else; None for a MsgId never seen."""
        digest = await self.state.store.message_digest(debtor_bic, message.msg_id)
        if digest is None:
            return None
        if digest != body_sha256:
            return Submission(group_reason=reasons.DUPLICATE_MESSAGE_ID)
        statuses = await self._duplicate_statuses(
            message.transactions, message.msg_id, debtor_bic,
            await self._owners(self.state.book.owners_wanted(message.transactions)))
        self.state.events.refused.fire(debtor_bic=debtor_bic, statuses=statuses)
        return Submission(refused=statuses)

    async def _owners(self, end_to_end_ids: list[str]) -> dict[str, str]:
        """The debtor of each of these known ids, from the journal (issue #22: an id is
        keyed by its debtor when another used it first)."""
        if not end_to_end_ids:
            return {}
        return {e2e: t.debtor_bic for e2e, t in (await self.state.store.lookup(
            end_to_end_ids)).items()}

    async def _duplicate_statuses(
        self, duplicates: list[CreditTransfer], msg_id: str, debtor_bic: str,
        owners: dict[str, str]
    ) -> list[TransactionStatus]:
        """A re-sent message (same MsgId, same debtor) gets the known outcome; any other reuse
        of an end-to-end id by the same debtor is refused DUPL and leaves the original
        untouched (another debtor's use of the id is none of this one's business)."""
        if not duplicates:
            return []
        book = self.state.book
        taking = book.taking
        keys = [book.key_for(debtor_bic, tx.end_to_end_id, owners) for tx in duplicates]
        known = await lookup(self.state, [key for key in keys if key not in taking])
        statuses = []
        for tx, key in zip(duplicates, keys, strict=True):
            original = taking.get(key) or known.get(key)
            if original is not None and original.msg_id == msg_id and (
                original.debtor_bic == debtor_bic
            ):
                statuses.append(original.status())
                continue
            statuses.append(refusal(tx.end_to_end_id, tx.tx_id, reasons.DUPLICATE,
                                    self.state.config.bic, msg_id))
        return statuses

    async def clear_instant(self, debtor_bic: str, message: CreditTransferMessage,
                            body_sha256: bytes) -> TransactionStatus:
        """One transfer to its final status, bounded by the creditor deadline plus a margin;
        PDNG when it is not final by then (the debtor asks later with pacs.028)."""
        submission = await self.submit(debtor_bic, message, False, body_sha256)
        if submission.group_reason is not None:
            (tx,) = message.transactions
            return refusal(tx.end_to_end_id, tx.tx_id, submission.group_reason,
                           self.state.config.bic, message.msg_id)
        if submission.refused:
            return submission.refused[0]
        transfer = submission.journaled[0]
        if transfer.outcome is not None:
            try:
                await asyncio.wait_for(transfer.outcome, self.state.config.creditor_timeout_s
                                       + ANSWER_MARGIN_S)
            except TimeoutError:
                log.warning("instant transfer %s not final in time", transfer.end_to_end_id)
        return transfer.status()
