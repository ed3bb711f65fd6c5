"""Status inquiry: pacs.028 -> pacs.002 from the switch's own word on each transfer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from protocol import reasons
from protocol.codec import new_id
from protocol.messages import (
    MessageType,
    PaymentStatusReport,
    StatusRequest,
    TransactionStatus,
    TxStatus,
)
from switch.state import SwitchState
from switch.transfer import Transfer


async def lookup(state: SwitchState, end_to_end_ids: Sequence[str]) -> dict[str, Transfer]:
    """Where transfers stand: from memory while in flight, else from the journal."""
    in_flight = state.book.in_flight
    found = {e2e: in_flight[e2e] for e2e in end_to_end_ids if e2e in in_flight}
    missing = [e2e for e2e in end_to_end_ids if e2e not in found]
    if missing:
        found.update(await state.store.lookup(missing))
    return found


async def status_report(state: SwitchState, requester_bic: str, request: StatusRequest
                        ) -> PaymentStatusReport:
    """Each asked transfer's status, for a party to it; AG09 (never received) otherwise, so
    that no participant learns of another's transfers."""
    known = await lookup(state, [item.original_end_to_end_id for item in request.items])
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
                reason_originator_bic=state.config.bic,
            ))
        else:
            statuses.append(transfer.status())
    return PaymentStatusReport(
        msg_id=new_id("SWS"), created_at=datetime.now(UTC), original_msg_id=request.msg_id,
        original_msg_type=MessageType.STATUS_REQUEST, transactions=statuses,
    )
