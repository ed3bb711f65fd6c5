"""Status inquiry: pacs.028 -> pacs.002 from the switch's own word on each transfer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from protocol import reasons
from protocol.codec import new_id
from protocol.messages import (
    MessageType,
    PaymentStatusReport,
    StatusRequest,
)
from switch.context import SwitchState
from switch.transfer import ForwardIds, Transfer, refusal, scoped_key


async def lookup(state: SwitchState, end_to_end_ids: Sequence[str]) -> dict[str, Transfer]:
    """Where transfers stand: from memory while in flight, else from the journal."""
    in_flight = state.book.in_flight
    found = {e2e: in_flight[e2e] for e2e in end_to_end_ids if e2e in in_flight}
    missing = [e2e for e2e in end_to_end_ids if e2e not in found]
    if missing:
        found.update(await state.store.lookup(missing))
    return found


def candidates(participants: Iterable[str], party_bic: str, end_to_end_id: str,
               tx_id: str | None, *, forward_ids: ForwardIds) -> list[str]:
    """The keys of every transfer a party may mean by an end-to-end id (issue #22: ids belong
    to their sender, so several debtors' transfers may share one): the id's first user's, its
    own under the id as debtor, and the one forwarded to it under `tx_id`; with no TxId, every
    debtor's (a creditor names a scoped transfer only by the TxId it was forwarded under), one
    indexed key a participant, and only for a pacs.028 item without OrgnlTxId. pick chooses
    among them."""
    if tx_id is None:
        keys = [end_to_end_id, *(scoped_key(end_to_end_id, bic) for bic in participants)]
    else:
        keys = [end_to_end_id, scoped_key(end_to_end_id, party_bic),
                forward_ids.key_named(end_to_end_id, tx_id, participants)]
    return list(dict.fromkeys(keys))


def pick(found: Mapping[str, Transfer], keys: Sequence[str], party_bic: str,
         tx_id: str | None, as_creditor_only: bool = False, *, forward_ids: ForwardIds
         ) -> tuple[Transfer | None, str | None]:
    """The one transfer among these keys' that `party_bic` means: one it is party to, that
    `tx_id` (OrgnlTxId) names when given (Transfer.named_by: the TxId the party knows it by),
    and, for a pacs.004 (`as_creditor_only`), one it is creditor of. Returns (transfer, None);
    (None, AG09) when none fits, as for an id never used (no oracle, issue #22), a TxId naming
    no transfer of the party's included; (None, CH21) when several fit (OrgnlTxId then tells
    them apart: the switch never guesses)."""
    fitting = [transfer for key in keys if (transfer := found.get(key)) is not None
               and party_bic in (transfer.debtor_bic, transfer.creditor_bic)
               and transfer.named_by(party_bic, tx_id, forward_ids)
               and (not as_creditor_only or transfer.creditor_bic == party_bic)]
    if len(fitting) == 1:
        return fitting[0], None
    return None, reasons.REQUIRED_ELEMENT_MISSING if fitting else reasons.PAYMENT_NOT_RECEIVED


async def status_report(state: SwitchState, requester_bic: str, request: StatusRequest
                        ) -> PaymentStatusReport:
    """Each asked transfer's status, for a party to it (see pick); AG09 (never received) otherwise,
    whether or not the id exists for someone else, so that no participant learns of another's
    transfers."""
    forward_ids = state.store.forward_ids
    keys = [candidates(state.participants, requester_bic, item.original_end_to_end_id,
                       item.original_tx_id, forward_ids=forward_ids) for item in request.items]
    known = await lookup(state, list(dict.fromkeys(key for each in keys for key in each)))
    statuses = []
    for item, item_keys in zip(request.items, keys, strict=True):
        transfer, reason = pick(known, item_keys, requester_bic, item.original_tx_id,
                                forward_ids=forward_ids)
        if transfer is None:
            assert reason is not None
            statuses.append(refusal(item.original_end_to_end_id,
                                    item.original_tx_id or "NOTPROVIDED",
                                    reason, state.config.bic))
        else:
            statuses.append(transfer.status(
                forward_ids if transfer.creditor_bic == requester_bic else None))
    return PaymentStatusReport(
        msg_id=new_id("SWS"), created_at=datetime.now(UTC), original_msg_id=request.msg_id,
        original_msg_type=MessageType.STATUS_REQUEST, transactions=statuses,
    )
