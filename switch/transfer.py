"""A transfer as the switch holds it in memory while it is in flight, and as the store reads it
back from the journal."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from protocol import reasons
from protocol.messages import CreditTransfer, TransactionStatus, TxStatus
from switch.states import WIRE_STATUS, TransferState, check_transition


def refusal(end_to_end_id: str, tx_id: str, reason_code: str, switch_bic: str,
            msg_id: str | None = None) -> TransactionStatus:
    """A pacs.002 TxInfAndSts refusing a transaction by the switch itself (StsRsnInf/Orgtr
    is the switch): RJCT with `reason_code` and its ISO description."""
    return TransactionStatus(
        original_end_to_end_id=end_to_end_id, original_tx_id=tx_id,
        status=TxStatus.REJECTED, reason_code=reason_code,
        reason_text=reasons.DESCRIPTIONS[reason_code], original_msg_id=msg_id,
        reason_originator_bic=switch_bic)


@dataclass(slots=True, eq=False)
class Transfer:
    """One end-to-end id through the scheme: debtor, creditor, amount and state.

    `source` is the debtor's transaction, kept only until the creditor has been sent it;
    `outcome` is set, for an instant transfer, when its final state is durable.
    """

    end_to_end_id: str
    tx_id: str
    msg_id: str
    debtor_bic: str
    creditor_bic: str
    amount_vnd: int
    bulk: bool
    received_at: float  # unix time, s
    state: TransferState | None = None
    reason_code: str | None = None
    reason_by: str | None = None  # BIC of who gave the reason: the creditor or the switch
    source: CreditTransfer | None = None
    outcome: asyncio.Future[None] | None = None

    def advance(self, target: TransferState, reason_code: str | None = None,
                reason_by: str | None = None) -> None:
        """Move to `target` (the state machine of states.py decides if it may); `reason_by`
        is the BIC of whoever gave the reason code."""
        check_transition(self.state, target)
        self.state = target
        self.reason_code = reason_code
        self.reason_by = reason_by if reason_code else None

    def status(self) -> TransactionStatus:
        """The pacs.002 TxInfAndSts that tells a participant where this transfer stands."""
        assert self.state is not None
        return TransactionStatus(
            original_end_to_end_id=self.end_to_end_id,
            original_tx_id=self.tx_id,
            status=WIRE_STATUS[self.state],
            reason_code=self.reason_code,
            reason_text=reasons.DESCRIPTIONS.get(self.reason_code or ""),
            original_msg_id=self.msg_id,
            reason_originator_bic=self.reason_by,
        )
