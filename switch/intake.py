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
    TxStatus,
)
from switch.forwarding import Forwarding
from switch.inquiry import lookup
from switch.state import SwitchState
from switch.states import TransferState
from switch.store import Decided, WriteRefused
from switch.transfer import Transfer

log = logging.getLogger(__name__)

# The scheme's cap on any one transaction, whatever the mode (AM02 above it): ten trillion
# dong, far above any single social payment. An amount of more than 18 digits is no
# ActiveCurrencyAndAmount at all (totalDigits 18): AM12.
MAX_AMOUNT_VND = 10**13
MAX_AMOUNT_DIGITS = 18
ANSWER_MARGIN_S = 2.0  # beyond the creditor deadline, for two journal writes and the reply
# An xs:decimal as ISO 20022 amounts write it, bounded (totalDigits 18, fractionDigits 5) so
# that no text can cost more than a few microseconds of arithmetic.
_DECIMAL = re.compile(r"-?\d{1,18}(?:\.\d{1,5})?")
MAX_SUM_DIGITS = 24  # 100,000 amounts of 18 digits add up to at most 23
# An amount as the control sum counts it: whole digits up to MAX_SUM_DIGITS, so that a sum
# agreeing with amounts too long for the schema is not mistaken for a wrong sum (their
# transactions are refused AM12 each, the message is not refused AM10).
_SUM_TERM = re.compile(rf"\d{{1,{MAX_SUM_DIGITS}}}")


@dataclass(slots=True)
class Submission:
    """What the switch made of one pacs.008: the journaled transfers and immediate refusals,
    or a reason to refuse the whole message (nothing of it taken)."""

    accepted: list[Transfer] = field(default_factory=list)
    refused: list[TransactionStatus] = field(default_factory=list)  # resent ids, not journaled
    group_reason: str | None = None


def _whole_dong(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts "١٢" and other scripts' digits."""
    return text.isascii() and text.isdigit()


class Intake:
    def __init__(self, state: SwitchState, forwarding: Forwarding) -> None:
        self.state = state
        self.forwarding = forwarding

    def has_room_for(self, transactions: int) -> bool:
        """Whether taking this many more transfers keeps the in-flight set within its limit."""
        return len(self.state.in_flight) + transactions <= (
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

    def _check_transaction(self, tx: CreditTransfer, max_amount_vnd: int | None) -> str | None:
        if tx.currency != "VND":
            return reasons.NOT_ALLOWED_CURRENCY
        if (not _whole_dong(tx.amount_text) or len(tx.amount_text) > MAX_AMOUNT_DIGITS
                or tx.amount_vnd <= 0):
            return reasons.INVALID_AMOUNT
        if tx.amount_vnd > min(MAX_AMOUNT_VND, max_amount_vnd or MAX_AMOUNT_VND):
            return reasons.NOT_ALLOWED_AMOUNT
        creditor = self.state.participants.get(tx.creditor_agent_bic)
        if creditor is None or creditor.config.kind == "treasury":
            return reasons.WRONG_BIC
        if tx.creditor_agent_bic == tx.debtor_agent_bic:  # on-us: nothing to clear (AG03)
            return reasons.NOT_SUPPORTED
        if not creditor.reachable():
            return reasons.OFFLINE_CREDITOR_AGENT
        return None

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
        if any(tx.end_to_end_id in state.known_ids for tx in message.transactions):
            resent = await self._resent(debtor_bic, message, body_sha256)
            if resent is not None:
                return resent
        accepted, duplicates = self._take(debtor_bic, message, bulk)
        if accepted:
            taking = state.taking
            taking.update((t.end_to_end_id, t) for t in accepted)
            try:
                decided = await state.store.record_new(debtor_bic, message.msg_id, body_sha256,
                                                       accepted, accepted[0].received_at)
            except WriteRefused:
                self._untake(accepted)
                resent = await self._resent(debtor_bic, message, body_sha256)
                if resent is None:
                    raise
                return resent
            except Exception:
                self._untake(accepted)
                raise
            finally:
                for transfer in accepted:
                    taking.pop(transfer.end_to_end_id, None)
            if decided:
                accepted = self._as_journal_decided(accepted, duplicates, decided)
        refused = await self._duplicate_statuses(duplicates, message.msg_id, debtor_bic)
        pending = [t for t in accepted if t.state is TransferState.PENDING]
        for transfer in pending:
            state.in_flight[transfer.end_to_end_id] = transfer
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

    def _take(self, debtor_bic: str, message: CreditTransferMessage, bulk: bool
              ) -> tuple[list[Transfer], list[CreditTransfer]]:
        """Each new id checked and its amount reserved, in one synchronous step (no await):
        the new transfers, and the transactions whose id is known already."""
        state = self.state
        positions = state.positions
        known_ids = state.known_ids
        config = state.config
        limit_vnd = state.participants[debtor_bic].position_limit_vnd
        max_amount_vnd = config.max_bulk_amount_vnd if bulk else config.max_instant_amount_vnd
        loop = asyncio.get_running_loop()
        now_s = time.time()
        accepted: list[Transfer] = []
        duplicates: list[CreditTransfer] = []
        for tx in message.transactions:
            if tx.end_to_end_id in known_ids:
                duplicates.append(tx)
                continue
            known_ids.add(tx.end_to_end_id)
            refusal = self._resolve(tx)
            transfer = Transfer(
                end_to_end_id=tx.end_to_end_id, tx_id=tx.tx_id, msg_id=message.msg_id,
                debtor_bic=debtor_bic, creditor_bic=tx.creditor_agent_bic,
                amount_vnd=tx.amount_vnd, bulk=bulk, received_at=now_s, source=tx,
            )
            reason = refusal or self._check_transaction(tx, max_amount_vnd)
            if reason is None and not positions.reserve(debtor_bic, tx.amount_vnd, limit_vnd):
                reason = reasons.INSUFFICIENT_FUNDS
            if reason is None:
                transfer.advance(TransferState.PENDING)
                if not bulk:
                    transfer.outcome = loop.create_future()
            else:
                transfer.advance(TransferState.REJECTED, reason, config.bic)
            accepted.append(transfer)
        return accepted, duplicates

    def _resolve(self, tx: CreditTransfer) -> str | None:
        """A transfer naming its creditor by citizen id alone (CdtrAgt is the switch itself)
        pointed at the linked account, before anything is reserved; why not, otherwise."""
        if tx.creditor_agent_bic != self.state.config.bic:
            return None
        return self.state.directory.resolve(tx)

    def _as_journal_decided(self, accepted: list[Transfer], duplicates: list[CreditTransfer],
                            decided: dict[str, Decided]) -> list[Transfer]:
        """A journal shared by several switch processes decided otherwise for some: an id
        another process took first is a duplicate (added to `duplicates`, not journaled
        here); a debtor's cap that the other processes' holds left too small is AM04."""
        kept = []
        for transfer in accepted:
            word = decided.get(transfer.end_to_end_id)
            if word is not None and word.reason == reasons.DUPLICATE:
                assert transfer.source is not None
                duplicates.append(transfer.source)
                continue
            if word is not None:
                transfer.advance(TransferState.REJECTED, word.reason, self.state.config.bic)
                transfer.outcome = None
            kept.append(transfer)
        return kept

    async def _resent(self, debtor_bic: str, message: CreditTransferMessage,
                      body_sha256: bytes) -> Submission | None:
        """A MsgId the debtor used before: the known outcomes for the very same bytes, the
        whole message refused DU01 for anything else; None for a MsgId never seen."""
        digest = await self.state.store.message_digest(debtor_bic, message.msg_id)
        if digest is None:
            return None
        if digest != body_sha256:
            return Submission(group_reason=reasons.DUPLICATE_MESSAGE_ID)
        statuses = await self._duplicate_statuses(message.transactions, message.msg_id,
                                                  debtor_bic)
        self.state.events.refused.fire(debtor_bic=debtor_bic, statuses=statuses)
        return Submission(refused=statuses)

    def _untake(self, transfers: list[Transfer]) -> None:
        """The journal did not take them: forget them (a resend's outcome is then the
        journal's, never theirs), give back what they held."""
        for transfer in transfers:
            self.state.known_ids.discard(transfer.end_to_end_id)
            self.state.taking.pop(transfer.end_to_end_id, None)
            if transfer.state is TransferState.PENDING:
                self.state.positions.release(transfer.debtor_bic, transfer.amount_vnd)

    async def _duplicate_statuses(
        self, duplicates: list[CreditTransfer], msg_id: str, debtor_bic: str
    ) -> list[TransactionStatus]:
        """A re-sent message (same MsgId, same debtor) gets the known outcome; any other reuse
        of an end-to-end id is refused DUPL and leaves the original untouched."""
        if not duplicates:
            return []
        taking = self.state.taking
        known = await lookup(self.state, [tx.end_to_end_id for tx in duplicates
                                          if tx.end_to_end_id not in taking])
        statuses = []
        for tx in duplicates:
            original = taking.get(tx.end_to_end_id) or known.get(tx.end_to_end_id)
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
                reason_originator_bic=self.state.config.bic,
            ))
        return statuses

    async def clear_instant(self, debtor_bic: str, message: CreditTransferMessage,
                            body_sha256: bytes) -> TransactionStatus:
        """One transfer to its final status, bounded by the creditor deadline plus a margin;
        PDNG when it is not final by then (the debtor asks later with pacs.028)."""
        submission = await self.submit(debtor_bic, message, False, body_sha256)
        if submission.group_reason is not None:
            (tx,) = message.transactions
            return TransactionStatus(
                original_end_to_end_id=tx.end_to_end_id, original_tx_id=tx.tx_id,
                status=TxStatus.REJECTED, reason_code=submission.group_reason,
                reason_text=reasons.DESCRIPTIONS[submission.group_reason],
                original_msg_id=message.msg_id, reason_originator_bic=self.state.config.bic)
        if submission.refused:
            return submission.refused[0]
        transfer = submission.accepted[0]
        if transfer.outcome is not None:
            try:
                await asyncio.wait_for(transfer.outcome, self.state.config.creditor_timeout_s
                                       + ANSWER_MARGIN_S)
            except TimeoutError:
                log.warning("instant transfer %s not final in time", transfer.end_to_end_id)
        return transfer.status()
