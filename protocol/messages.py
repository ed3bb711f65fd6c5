"""The switch's language as plain data: what each ISO 20022 message carries.

The codec (`protocol.codec`) turns these into XML and back. Every other module works with
these dataclasses only, so that a message version can change without touching the switch
or the participants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

# The scheme's one currency (ISO 4217): an amount in another is refused AM03, an account in
# another AC09.
SCHEME_CURRENCY = "VND"
# The scheme's cap on one transaction, in whole dong (AM02 above it; a bulk's line, a hook's
# order and a payment table's row are held to it too).
MAX_AMOUNT_VND = 10**13
MAX_NAME_CHARS = 140  # ISO 20022 Max140Text: Nm, Ustrd; a longer name is never matched


class MessageType(StrEnum):
    """Message definition identifiers (head.001 MsgDefIdr) switchlab speaks."""

    CREDIT_TRANSFER = "pacs.008.001.08"
    PAYMENT_STATUS = "pacs.002.001.10"
    PAYMENT_RETURN = "pacs.004.001.09"
    STATUS_REQUEST = "pacs.028.001.03"
    STATEMENT = "camt.053.001.08"
    VERIFICATION_REQUEST = "acmt.023.001.04"
    VERIFICATION_REPORT = "acmt.024.001.04"


class TxStatus(StrEnum):
    """ISO 20022 ExternalPaymentTransactionStatus1Code values the scheme uses."""

    ACCEPTED_TECHNICAL = "ACTC"  # passed the switch's checks, not yet final
    ACCEPTED = "ACCP"  # creditor agent accepts, awaiting settlement
    SETTLED = "ACSC"  # settled: the creditor may credit its customer
    REJECTED = "RJCT"
    # GrpSts only (ExternalPaymentGroupStatus1Code): some transactions accepted, the others
    # named in the report's items; a transaction the report does not name is accepted.
    PARTIALLY_ACCEPTED = "PART"
    PENDING = "PDNG"
    RECEIVED = "RCVD"


@dataclass(frozen=True, slots=True)
class AppHeader:
    """head.001.001.02: who sends, to whom, which message."""

    from_bic: str
    to_bic: str
    biz_msg_id: str
    msg_def_id: str
    created_at: datetime


@dataclass(slots=True)
class CreditTransfer:
    """One CdtTrfTxInf of a pacs.008: a transfer from a debtor to a creditor."""

    end_to_end_id: str
    tx_id: str
    amount_vnd: int
    debtor_name: str
    debtor_account: str
    debtor_agent_bic: str
    creditor_name: str
    creditor_account: str
    creditor_agent_bic: str
    creditor_citizen_id: str | None = None
    remittance_info: str | None = None
    currency: str = SCHEME_CURRENCY
    amount_text: str = ""  # the amount as written, to tell "1.5" from "1" on the wire


@dataclass(slots=True)
class CreditTransferMessage:
    """pacs.008.001.08: one or many credit transfers under one group header."""

    msg_id: str
    created_at: datetime
    instructing_agent_bic: str
    instructed_agent_bic: str
    transactions: list[CreditTransfer]
    declared_count: int | None = None  # NbOfTxs as received; None when building
    declared_control_sum: str | None = None  # CtrlSum as received


# Not frozen (made one or more times a transfer in every process: a frozen dataclass's
# __init__ sets each field through object.__setattr__, ~1 µs more); hashable as before, and
# nothing changes one once made.
@dataclass(slots=True, unsafe_hash=True)
class TransactionStatus:
    """One TxInfAndSts of a pacs.002: the status of one original transfer."""

    original_end_to_end_id: str
    original_tx_id: str
    status: TxStatus
    reason_code: str | None = None
    reason_text: str | None = None
    original_msg_id: str | None = None  # when a report covers several original messages
    # StsRsnInf/Orgtr: who gave the reason (the creditor agent, or the switch itself), so
    # that a switch's refusal of a resent id is never read as the transfer's final status.
    reason_originator_bic: str | None = None
    # Not on the wire: the switch's own key of the transfer, when it differs from the
    # end-to-end id (an id another debtor used first; switch/transfer.py).
    switch_key: str | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class PaymentStatusReport:
    """pacs.002.001.10: statuses of transactions of one original message."""

    msg_id: str
    created_at: datetime
    original_msg_id: str
    original_msg_type: str
    group_status: TxStatus | None = None
    group_reason_code: str | None = None
    transactions: list[TransactionStatus] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StatusRequestItem:
    """One TxInf of a pacs.028: which transfer the sender asks about."""

    original_end_to_end_id: str
    original_tx_id: str | None = None
    original_msg_id: str | None = None


@dataclass(slots=True)
class StatusRequest:
    """pacs.028.001.03: a participant asks the switch for transfers' current status."""

    msg_id: str
    created_at: datetime
    items: list[StatusRequestItem]


@dataclass(slots=True)
class PaymentReturnItem:
    """One TxInf of a pacs.004: funds of a settled transfer going back to the debtor."""

    return_id: str
    original_end_to_end_id: str
    original_tx_id: str
    returned_amount_vnd: int
    reason_code: str
    original_msg_id: str | None = None
    amount_text: str = ""
    currency: str = SCHEME_CURRENCY


@dataclass(slots=True)
class PaymentReturn:
    """pacs.004.001.09: the creditor agent returns funds of settled transfers."""

    msg_id: str
    created_at: datetime
    instructing_agent_bic: str
    instructed_agent_bic: str
    items: list[PaymentReturnItem]


@dataclass(frozen=True, slots=True)
class StatementEntry:
    """One Ntry of a camt.053: a settled movement on a participant's settlement account."""

    entry_ref: str  # end-to-end id (or return id) of the transfer
    amount_vnd: int
    credit: bool
    booked_at: datetime
    counterparty_bic: str
    kind: str  # "transfer" or "return"


@dataclass(slots=True)
class Statement:
    """camt.053.001.08: a participant's settlement-account statement for one cycle."""

    msg_id: str
    created_at: datetime
    participant_bic: str
    cycle_id: int
    opened_at: datetime
    closed_at: datetime
    opening_balance_vnd: int
    closing_balance_vnd: int
    entries: list[StatementEntry] = field(default_factory=list)
    page_number: int = 1  # Stmt/StmtPgntn: a large statement comes in pages, each balanced
    last_page: bool = True


@dataclass(frozen=True, slots=True)
class VerificationItem:
    """One Vrfctn of an acmt.023: does this account belong to the person with this citizen id
    (PrvtId/Othr, scheme NIDN) and this name? Without an account (or with the switch as its
    agent), the switch looks the citizen id up in its directory."""

    verification_id: str  # Id: unique within the request; the treasury uses the end-to-end id
    name: str
    citizen_id: str | None = None
    account_id: str | None = None
    agent_bic: str | None = None  # Agt: the participant that holds the account


@dataclass(slots=True)
class VerificationRequest:
    """acmt.023.001.04 IdVrfctnReq: the assigner asks the assignee to verify identifications."""

    msg_id: str
    created_at: datetime
    assigner_bic: str
    assignee_bic: str
    items: list[VerificationItem]


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """One Rpt of an acmt.024: match or not, why not (Rsn/Cd), and what may be shown: the
    holder's name masked (UpdtdPtyAndAcctId/Pty/Nm), only when the citizen id matched and
    the name did not."""

    original_id: str
    verified: bool
    reason_code: str | None = None
    masked_name: str | None = None


@dataclass(slots=True)
class VerificationReport:
    """acmt.024.001.04 IdVrfctnRpt: the answer to one acmt.023."""

    msg_id: str
    created_at: datetime
    assigner_bic: str
    assignee_bic: str
    original_msg_id: str
    results: list[VerificationResult] = field(default_factory=list)


Document = (
    CreditTransferMessage | PaymentStatusReport | StatusRequest | PaymentReturn | Statement
    | VerificationRequest | VerificationReport
)


@dataclass(slots=True)
class BusinessMessage:
    """What travels in one HTTP body: a head.001 header and the document it announces."""

    header: AppHeader
    document: Document


def answer_per_transaction(answer: PaymentStatusReport, message: CreditTransferMessage
                           ) -> dict[str, TransactionStatus]:
    """What a creditor's pacs.002 says of each transaction of the pacs.008 it answers, by
    end-to-end id: its TxInfAndSts items; and for a report on that message whose GrpSts is
    PART, or ACCP or RJCT with no items (ISO 20022: the group status is that of every
    transaction the items do not name), that status (ACCP for PART) for each of the
    message's other transactions."""
    stated = {item.original_end_to_end_id: item for item in answer.transactions}
    status = answer.group_status
    if answer.original_msg_id != message.msg_id or not (
            status is TxStatus.PARTIALLY_ACCEPTED or (
                status in (TxStatus.ACCEPTED, TxStatus.REJECTED) and not stated)):
        return stated
    rest = TxStatus.REJECTED if status is TxStatus.REJECTED else TxStatus.ACCEPTED
    return {tx.end_to_end_id: stated.get(tx.end_to_end_id) or TransactionStatus(
        original_end_to_end_id=tx.end_to_end_id, original_tx_id=tx.tx_id, status=rest,
        reason_code=answer.group_reason_code if rest is TxStatus.REJECTED else None)
        for tx in message.transactions}
