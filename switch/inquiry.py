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
from switch.transfer import Transfer, key_named, refusal, scoped_key


async def lookup(state: SwitchState, end_to_end_ids: Sequence[str]) -> dict[str, Transfer]:
    """Where transfers stand: from memory while in flight, else from the journal."""
    in_flight = state.book.in_flight
    found = {e2e: in_flight[e2e] for e2e in end_to_end_ids if e2e in in_flight}
    missing = [e2e for e2e in end_to_end_ids if e2e not in found]
    if missing:
        found.update(await state.store.lookup(missing))
    return found


def candidates(participants: Iterable[str], party_bic: str, end_to_end_id: str,
               tx_id: str | None) -> list[str]:
    """The keys a party may mean by an end-to-end id (and the TxId it names): its own
    transfer under that id as debtor first, then the one forwarded under that TxId, then the
    id's first user's (issue #22: ids belong to their sender, so two debtors' transfers may
    share an id)."""
    keys = [scoped_key(end_to_end_id, party_bic), key_named(end_to_end_id, tx_id, participants),
            end_to_end_id]
    return list(dict.fromkeys(keys))


def party_to(found: Mapping[str, Transfer], keys: Sequence[str], party_bic: str
             ) -> Transfer | None:
    """The first of these keys' transfers `party_bic` is debtor or creditor of."""
    for key in keys:
        transfer = found.get(key)
        if transfer is not None and party_bic in (transfer.debtor_bic, transfer.creditor_bic):
            return transfer
    return None


async def status_report(state: SwitchState, requester_bic: str, request: StatusRequest
                        ) -> PaymentStatusReport:
    """Each asked transfer's status, for a party to it; AG09 (never received) otherwise,
    whether or not the id exists for someone else, so that no participant learns of another's
    transfers."""
    keys = [candidates(state.participants, requester_bic, item.original_end_to_end_id,
                       item.original_tx_id) for item in request.items]
    known = await lookup(state, list(dict.fromkeys(key for each in keys for key in each)))
    statuses = []
    for item, item_keys in zip(request.items, keys, strict=True):
        transfer = party_to(known, item_keys, requester_bic)
        if transfer is None:
            statuses.append(refusal(item.original_end_to_end_id,
                                    item.original_tx_id or "NOTPROVIDED",
                                    reasons.PAYMENT_NOT_RECEIVED, state.config.bic))
        else:
            statuses.append(transfer.status(to_creditor=transfer.creditor_bic == requester_bic))
    return PaymentStatusReport(
        msg_id=new_id("SWS"), created_at=datetime.now(UTC), original_msg_id=request.msg_id,
        original_msg_type=MessageType.STATUS_REQUEST, transactions=statuses,
    )
