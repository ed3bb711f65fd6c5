"""The records the switch and its journal exchange: final states, returns, notices due, a
cycle's flows, a shared journal's decisions, directory entries and changes."""

from __future__ import annotations

from dataclasses import dataclass

from switch.states import TransferState
from switch.transfer import Transfer


@dataclass(slots=True, unsafe_hash=True)  # not frozen: one a transfer, see TransactionStatus
class Final:
    """A transfer's final state as it is to be journaled, before memory knows it."""

    transfer: Transfer
    state: TransferState
    reason_code: str | None
    reason_by: str | None  # the BIC that gave the reason: the creditor, or the switch
    cycle_id: int | None  # the cycle it settles in; None when rejected
    tell_creditor: bool  # the creditor may be holding it: confirm or reject to it


@dataclass(frozen=True, slots=True)
class SettledReturn:
    """A pacs.004 item the switch settles: funds of a settled transfer going back."""

    return_id: str
    original: Transfer
    amount_vnd: int
    reason_code: str


@dataclass(frozen=True, slots=True)
class NoticesDue:
    """What the journal says participants still have to be told, after a restart."""

    to_creditors: list[Transfer]
    to_debtors: list[Transfer]
    returns: list[SettledReturn]


@dataclass(frozen=True, slots=True)
class CycleFlows:
    """A cycle's bounds and its settled flows (payer, payee, count, VND) for reports."""

    opened_at: float
    closed_at: float | None
    transfers: list[tuple[str, str, int, int]]
    returns: list[tuple[str, str, int, int]]


@dataclass(frozen=True, slots=True)
class Decided:
    """What a journal shared by several switch processes decided otherwise than the writing
    process asked, per key (end-to-end id, or return id): `reason` is DUPL for an id another
    process took first, AM04 for a cap other processes' holds left too little of, DU05 for a
    return id taken meanwhile; `state`, `reason_code` and `reason_by` are the journal's word
    on a transfer another process made final first. `cycle_id` alone (no state, no reason):
    taken as asked, in the cycle the journal had open at its write (a transfer's settlement
    or a return), which another process's close made other than the one asked. A journal of
    one process decides nothing of the kind and returns None instead."""

    reason: str | None = None
    state: TransferState | None = None
    reason_code: str | None = None
    reason_by: str | None = None
    cycle_id: int | None = None


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """One active link: the citizen id's payout account, as the directory holds it."""

    citizen_id: str
    participant_bic: str
    account_id: str
    holder_name: str
    updated_at: float = 0.0  # unix s
    updated_by: str = ""  # the participant's BIC, or "registry" for the operator's import

    def as_dict(self) -> dict[str, object]:
        return {"citizen_id": self.citizen_id, "participant_bic": self.participant_bic,
                "account_id": self.account_id, "holder_name": self.holder_name,
                "updated_at": self.updated_at, "updated_by": self.updated_by}


@dataclass(frozen=True, slots=True)
class DirectoryChange:
    """A change to the directory as it is journaled: link, update or unlink, by whom, when."""

    action: str
    entry: DirectoryEntry
    changed_by: str
    at: float  # unix s


@dataclass(frozen=True, slots=True)
class AdminChange:
    """An operator's change through the admin API, journaled with the change it made so that
    a repeat of it (same Idempotency-Key, draft-ietf-httpapi-idempotency-key-header) answers
    the first answer and changes nothing, across restarts too."""

    key: str  # the Idempotency-Key
    request: str  # "METHOD path sha256-of-body-hex": a key reused for another request is 422
    at_s: float  # unix s


@dataclass(frozen=True, slots=True)
class AdminAnswer:
    """What the journal holds of an admin change: the request it came with and the answer
    given (None when the process stopped between the change and the answer's write)."""

    request: str
    status: int | None
    answer: str | None
