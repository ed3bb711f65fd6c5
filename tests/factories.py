"""Test data: switchlab messages with Vietnamese names, XML specials and fixed timestamps.

Every builder takes field overrides, so a test states only what it is about. Timestamps are
whole milliseconds, as the wire carries them, so what is built compares equal to what decodes.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from protocol.messages import (
    AppHeader,
    BusinessMessage,
    CreditTransfer,
    CreditTransferMessage,
    Document,
    MessageType,
    PaymentReturn,
    PaymentReturnItem,
    PaymentStatusReport,
    Statement,
    StatementEntry,
    StatusRequest,
    StatusRequestItem,
    TransactionStatus,
    TxStatus,
    VerificationItem,
    VerificationReport,
    VerificationRequest,
    VerificationResult,
)
from protocol.names import mask_name

AT = datetime(2026, 11, 20, 8, 30, 15, 123000, tzinfo=UTC)
TREASURY, SWITCH, BANK = "TRSYVNV1", "SWLBVNVX", "BFTVVNVX"
NAMES = ("Nguyễn Thị Hồng Nhung", "Trần Văn Đức & Con <Tèo>", 'Lê "Bé" Ánh', "Phạm Thị Ngọc Ánh")
MESSAGE_TYPES: dict[type, MessageType] = {
    CreditTransferMessage: MessageType.CREDIT_TRANSFER,
    PaymentStatusReport: MessageType.PAYMENT_STATUS,
    StatusRequest: MessageType.STATUS_REQUEST,
    PaymentReturn: MessageType.PAYMENT_RETURN,
    Statement: MessageType.STATEMENT,
    VerificationRequest: MessageType.VERIFICATION_REQUEST,
    VerificationReport: MessageType.VERIFICATION_REPORT,
}


def e2e_id(n: int) -> str:
    return f"KBNN20261120{n:09d}"


def credit_transfer(n: int = 0, **changes: Any) -> CreditTransfer:
    """The n-th transfer of a pension payout from the State Treasury to a bank customer."""
    amount = 1_170_000 + n
    tx = CreditTransfer(
        end_to_end_id=e2e_id(n), tx_id=f"TX{n:012d}", amount_vnd=amount,
        amount_text=str(amount), debtor_name="Kho bạc Nhà nước", debtor_account="KBNN-TW-0001",
        debtor_agent_bic=TREASURY, creditor_name=NAMES[n % len(NAMES)],
        creditor_account=f"0071{n:09d}", creditor_agent_bic=BANK,
        creditor_citizen_id=f"0011900{n % 100_000:05d}", remittance_info="tro_cap_xa_hoi T11",
    )
    return replace(tx, **changes)


def credit_transfers(count: int = 1, **changes: Any) -> CreditTransferMessage:
    """A pacs.008 of `count` transfers (overrides apply to the message, not its transfers)."""
    message = CreditTransferMessage(
        msg_id="KBNN-MSG-0001", created_at=AT, instructing_agent_bic=TREASURY,
        instructed_agent_bic=SWITCH, transactions=[credit_transfer(n) for n in range(count)],
    )
    return replace(message, **changes)


def status_report(count: int = 3, **changes: Any) -> PaymentStatusReport:
    """A pacs.002 mixing settled and rejected transfers, some naming their original message."""
    report = PaymentStatusReport(
        msg_id="SW-STS-1", created_at=AT, original_msg_id="KBNN-MSG-0001",
        original_msg_type=MessageType.CREDIT_TRANSFER, group_status=TxStatus.ACCEPTED_TECHNICAL,
        transactions=[TransactionStatus(
            original_end_to_end_id=e2e_id(n), original_tx_id=f"TX{n:012d}",
            status=TxStatus.SETTLED if n % 3 else TxStatus.REJECTED,
            reason_code=None if n % 3 else "AC04",
            reason_text=None if n % 3 else "closed account",
            original_msg_id="KBNN-MSG-0001" if n % 2 else None,
        ) for n in range(count)],
    )
    return replace(report, **changes)


def status_request(**changes: Any) -> StatusRequest:
    """A pacs.028 asking about one transfer by all its ids and one by end-to-end id only."""
    request = StatusRequest(msg_id="KBQ-1", created_at=AT, items=[
        StatusRequestItem(e2e_id(1), "TX000000000001", "KBNN-MSG-0001"),
        StatusRequestItem(e2e_id(2)),
    ])
    return replace(request, **changes)


def payment_return(**changes: Any) -> PaymentReturn:
    """A pacs.004 returning a pension paid to a deceased beneficiary (MD07)."""
    returned = PaymentReturn(
        msg_id="BK-RTR-1", created_at=AT, instructing_agent_bic=BANK, instructed_agent_bic=SWITCH,
        items=[PaymentReturnItem(
            return_id="RT-1", original_end_to_end_id=e2e_id(0), original_tx_id="TX000000000000",
            returned_amount_vnd=1_170_000, reason_code="MD07", original_msg_id="KBNN-MSG-0001",
            amount_text="1170000",
        )],
    )
    return replace(returned, **changes)


def statement(**changes: Any) -> Statement:
    """A camt.053 for a bank: one transfer in, one return out, a negative closing balance."""
    report = Statement(
        msg_id="SW-STM-1", created_at=AT, participant_bic=BANK, cycle_id=7, opened_at=AT,
        closed_at=AT, opening_balance_vnd=0, closing_balance_vnd=-2_000, entries=[
            StatementEntry(e2e_id(1), 1_000, True, AT, TREASURY, "transfer"),
            StatementEntry("RT-1", 3_000, False, AT, TREASURY, "return"),
        ],
    )
    return replace(report, **changes)


def message(document: Document, from_bic: str = TREASURY, to_bic: str = SWITCH
            ) -> BusinessMessage:
    """`document` under the head.001 header that announces it."""
    header = AppHeader(from_bic=from_bic, to_bic=to_bic, biz_msg_id=document.msg_id,
                       msg_def_id=MESSAGE_TYPES[type(document)], created_at=AT)
    return BusinessMessage(header=header, document=document)


def every_message() -> dict[str, BusinessMessage]:
    """Each message type switchlab emits, in the shapes it takes, as it travels."""
    return {
        "pacs.008-one": message(credit_transfers(1)),
        "pacs.008-bulk": message(credit_transfers(50)),
        "pacs.008-bare": message(credit_transfers(transactions=[credit_transfer(
            creditor_citizen_id=None, remittance_info=None, debtor_account="", tx_id="")])),
        "pacs.002": message(status_report(10), SWITCH, TREASURY),
        "pacs.002-group-rejection": message(status_report(
            0, group_status=TxStatus.REJECTED, group_reason_code="FF01"), SWITCH, TREASURY),
        "pacs.028": message(status_request(), BANK, SWITCH),
        "pacs.004": message(payment_return(), BANK, SWITCH),
        "camt.053": message(statement(), SWITCH, BANK),
        "camt.053-empty": message(statement(entries=[], closing_balance_vnd=0), SWITCH, BANK),
    }


def as_received(sent: BusinessMessage) -> BusinessMessage:
    """What decoding `sent` gives: a pacs.008 also carries its declared count and sum, and a
    transfer without TxId reads back with its end-to-end id as TxId."""
    document = sent.document
    if isinstance(document, CreditTransferMessage):
        transactions = [replace(tx, tx_id=tx.tx_id or tx.end_to_end_id)
                        for tx in document.transactions]
        document = replace(
            document, transactions=transactions, declared_count=len(transactions),
            declared_control_sum=str(sum(int(tx.amount_text or tx.amount_vnd)
                                         for tx in transactions)),
        )
    return replace(sent, document=document)


def verification_request(**changes: Any) -> VerificationRequest:
    """An acmt.023 from the treasury: one account named with its bank, one citizen id alone
    (the switch resolves it through its directory)."""
    request = VerificationRequest(
        msg_id="KBV-1", created_at=AT, assigner_bic=TREASURY, assignee_bic=SWITCH, items=[
            VerificationItem(e2e_id(1), "Nguyễn Thị Hồng Nhung", "001190000001",
                             "0071000000001", BANK),
            VerificationItem(e2e_id(2), 'Lê "Bé" Ánh & <Con>', "079090000002"),
        ])
    return replace(request, **changes)


HOLDER_OF_SECOND = "Lê Bảo Ánh"  # the holder of the account linked to 079090000002


def verification_report(**changes: Any) -> VerificationReport:
    """The acmt.024 answer: a match, and a name that does not match, shown as the holder's
    name masked by protocol/names.py (initials without their diacritics: L* B** A**)."""
    report = VerificationReport(
        msg_id="SWV-1", created_at=AT, assigner_bic=SWITCH, assignee_bic=TREASURY,
        original_msg_id="KBV-1", results=[
            VerificationResult(e2e_id(1), True),
            VerificationResult(e2e_id(2), False, "BE01", mask_name(HOLDER_OF_SECOND)),
        ])
    return replace(report, **changes)


def bank_verification_report() -> VerificationReport:
    """The holder's bank answering the switch's acmt.023 (SWQ-1, about its account
    0071000000001): Assgnr the bank, Assgne the switch, OrgnlAssgnmt/MsgId the switch's."""
    return VerificationReport(
        msg_id="BKV-1", created_at=AT, assigner_bic=BANK, assignee_bic=SWITCH,
        original_msg_id="SWQ-1", results=[VerificationResult(e2e_id(1), True)])


def verification_messages() -> dict[str, BusinessMessage]:
    """The identification-verification exchange (acmt.023 -> acmt.024) as it travels, and
    the holder's bank's own answer to the switch."""
    return {"acmt.023": message(verification_request()),
            "acmt.024": message(verification_report(), SWITCH, TREASURY),
            "acmt.024-bank": message(bank_verification_report(), BANK, SWITCH)}
