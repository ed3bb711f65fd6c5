"""The state machine of a transfer, in one place: no other code changes a transfer's state.

    (new) ──checks fail──────────────────────────────► REJECTED
      │
      └─checks pass, position reserved─► PENDING ──creditor RJCT / timeout / offline──► REJECTED
                                           │
                                           └─creditor ACCP in time─► SETTLED ──pacs.004─► RETURNED

PENDING is journaled before the transfer is forwarded, so a restarted switch knows every
transfer it may have forwarded. ACCP and settlement are one journal write: there is no durable
"accepted but not settled" state, which is why a crash can never leave money half-moved.
"""

from __future__ import annotations

from enum import StrEnum

from protocol.messages import TxStatus


class TransferState(StrEnum):
    PENDING = "PENDING"
    SETTLED = "SETTLED"
    REJECTED = "REJECTED"
    RETURNED = "RETURNED"


NEW = None
ALLOWED: frozenset[tuple[TransferState | None, TransferState]] = frozenset(
    {
        (NEW, TransferState.REJECTED),
        (NEW, TransferState.PENDING),
        (TransferState.PENDING, TransferState.SETTLED),
        (TransferState.PENDING, TransferState.REJECTED),
        (TransferState.SETTLED, TransferState.RETURNED),
    }
)

# What pacs.002 says of a transfer in each state; a returned transfer was settled, and the
# return is a transfer of its own (reported with the return's id).
WIRE_STATUS: dict[TransferState, TxStatus] = {
    TransferState.PENDING: TxStatus.PENDING,
    TransferState.SETTLED: TxStatus.SETTLED,
    TransferState.REJECTED: TxStatus.REJECTED,
    TransferState.RETURNED: TxStatus.SETTLED,
}


class IllegalTransition(Exception):
    """A change of state the scheme does not allow: a bug, never a participant's error."""


def check_transition(current: TransferState | None, target: TransferState) -> None:
    """Raise unless the scheme allows moving a transfer from `current` to `target`."""
    if (current, target) not in ALLOWED:
        raise IllegalTransition(f"transfer cannot go from {current or 'new'} to {target}")
