"""Returns: a creditor's pacs.004 sends funds of settled transfers back to their debtors.

Each item is checked against its original (settled, by this creditor, not already returned, an
amount within the original's); the creditor's headroom is reserved, the accepted items are
journaled with the original now RETURNED, and only then do positions move and the debtors hear.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime

from protocol import reasons
from protocol.codec import new_id
from protocol.messages import (
    SCHEME_CURRENCY,
    MessageType,
    PaymentReturn,
    PaymentReturnItem,
    PaymentStatusReport,
    TransactionStatus,
    TxStatus,
)
from switch.context import SwitchState
from switch.inquiry import candidates, lookup, pick
from switch.records import Decided, SettledReturn
from switch.states import TransferState
from switch.transfer import Transfer, wire_id


def _status(item: PaymentReturnItem, status: TxStatus, reason: str | None,
            switch_bic: str) -> TransactionStatus:
    return TransactionStatus(
        original_end_to_end_id=item.original_end_to_end_id,
        original_tx_id=item.return_id,
        status=status,
        reason_code=reason,
        reason_text=reasons.DESCRIPTIONS.get(reason or ""),
        original_msg_id=item.original_msg_id,
        reason_originator_bic=switch_bic if reason else None,
    )


class Returns:
    def __init__(self, state: SwitchState) -> None:
        self.state = state

    def _refusal(self, item: PaymentReturnItem, original: Transfer | None,
                 not_found: str | None) -> str | None:
        """Why this item cannot be returned, None when it can; `not_found` is pick's reason
        when no original of this creditor's was found (AG09 as for an id never received, so
        that nobody learns of another's transfers: issue #22)."""
        if item.currency != SCHEME_CURRENCY:
            return reasons.NOT_ALLOWED_CURRENCY
        if original is None:
            return not_found or reasons.PAYMENT_NOT_RECEIVED
        if original.state is TransferState.RETURNED or (
                original.end_to_end_id in self.state.book.returning):
            return reasons.DUPLICATE
        if original.state is not TransferState.SETTLED:
            return reasons.TRANSACTION_FORBIDDEN
        if not (item.amount_text.isascii() and item.amount_text.isdigit()) or not (
                0 < item.returned_amount_vnd <= original.amount_vnd):
            return reasons.WRONG_AMOUNT
        return None

    async def take(self, creditor_bic: str, message: PaymentReturn) -> PaymentStatusReport:
        """Settle what can be returned, refuse the rest per item; the pacs.002 answer.

        Raises JournalFailed, JournalBusy or WriteRefused when the journal did not take the
        accepted items: then none of them was taken.
        """
        state = self.state
        book = state.book
        forward_ids = state.store.forward_ids
        keys = [candidates(state.participants, creditor_bic, item.original_end_to_end_id,
                           item.original_tx_id, forward_ids=forward_ids)
                for item in message.items]
        known = await lookup(state, list(dict.fromkeys(key for each in keys for key in each)))
        earlier = await state.store.returns_by_id(creditor_bic,
                                                  [item.return_id for item in message.items])
        statuses: list[TransactionStatus] = []
        accepted: list[SettledReturn] = []
        return_ids: set[str] = set()
        for item, item_keys in zip(message.items, keys, strict=True):
            if item.return_id in earlier or item.return_id in return_ids:
                statuses.append(self._again(item, earlier.get(item.return_id)))
                continue
            return_ids.add(item.return_id)
            original, not_found = pick(known, item_keys, creditor_bic, item.original_tx_id,
                                       as_creditor_only=True, forward_ids=forward_ids)
            reason = self._refusal(item, original, not_found)
            if reason is None and original is not None and not book.hold_return(
                    creditor_bic, original, item.returned_amount_vnd):
                reason = reasons.INSUFFICIENT_FUNDS
            if reason is not None:
                statuses.append(_status(item, TxStatus.REJECTED, reason, state.config.bic))
                continue
            assert original is not None
            accepted.append(SettledReturn(item.return_id, original, item.returned_amount_vnd,
                                          item.reason_code))
            statuses.append(_status(item, TxStatus.SETTLED, None, self.state.config.bic))
        if accepted:
            decided = await self._settle(creditor_bic, accepted)
            if decided:  # a shared journal refused some: another process was first
                statuses = [_status(item, TxStatus.REJECTED, decided[item.return_id].reason,
                                    state.config.bic)
                            if status.status is TxStatus.SETTLED and item.return_id in decided
                            else status for item, status in zip(message.items, statuses,
                                                                strict=True)]
        return PaymentStatusReport(
            msg_id=new_id("SWR"), created_at=datetime.now(UTC), original_msg_id=message.msg_id,
            original_msg_type=MessageType.PAYMENT_RETURN, transactions=statuses,
        )

    def _again(self, item: PaymentReturnItem, earlier: tuple[str, int] | None
               ) -> TransactionStatus:
        """A RtrId this creditor used before: the same return resent gets its settled status
        again; anything else under that id (or the id twice in one message) is refused DU05.
        RtrIds are unique per sender, not scheme-wide: two banks may use the same."""
        if earlier is not None and (wire_id(earlier[0]), earlier[1]) == (
                item.original_end_to_end_id, item.returned_amount_vnd):
            return _status(item, TxStatus.SETTLED, None, self.state.config.bic)
        return _status(item, TxStatus.REJECTED, reasons.DUPLICATE_INSTRUCTION_ID,
                       self.state.config.bic)

    async def _settle(self, creditor_bic: str, accepted: list[SettledReturn]
                      ) -> dict[str, Decided] | None:
        """Journal the accepted returns, then move positions and tell the debtors. Returns
        what a shared journal refused (return id -> its word), None when it took them all;
        each settles in the cycle the journal says (a shared journal's may be a newer one)."""
        state = self.state
        book = state.book
        cycle_id = book.cycle_id
        now_s = time.time()
        try:
            decided = await state.store.record_returns(accepted, creditor_bic, cycle_id, now_s)
        except Exception:
            book.returns_failed(creditor_bic, accepted)
            raise
        refused, by_cycle = book.returns_settled(creditor_bic, accepted, cycle_id, decided)
        by_debtor: dict[str, list[SettledReturn]] = defaultdict(list)
        for returned in by_cycle.values():
            for settled in returned:
                by_debtor[settled.original.debtor_bic].append(settled)
        for debtor_bic, returns in by_debtor.items():
            state.notifier.forward_returns(debtor_bic, returns)
        for settled_in, returned in by_cycle.items():
            state.events.returned.fire(returns=returned, now_s=now_s, cycle_id=settled_in)
        return refused or None
