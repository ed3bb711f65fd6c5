"""One instance of every message switchlab emits, with Vietnamese names and XML specials."""

from __future__ import annotations

from datetime import UTC, datetime

from protocol.http import wrap
from protocol.messages import (
    BusinessMessage,
    CreditTransfer,
    CreditTransferMessage,
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
)

AT = datetime(2026, 11, 20, 8, 30, 15, 123000, tzinfo=UTC)
NAMES = ["Nguyễn Thị Hồng Nhung", "Trần Văn Đức & Con <Tèo>", 'Lê "Bé" Ánh']


def credit_transfer(n: int, amount_vnd: int = 1_170_000) -> CreditTransfer:
    return CreditTransfer(
        end_to_end_id=f"KBNN20261120{n:09d}", tx_id=f"TX{n:012d}", amount_vnd=amount_vnd + n,
        amount_text=str(amount_vnd + n), debtor_name="Kho bạc Nhà nước",
        debtor_account="KBNN-TW-0001", debtor_agent_bic="TRSYVNV1",
        creditor_name=NAMES[n % len(NAMES)], creditor_account=f"0071{n:09d}",
        creditor_agent_bic="BFTVVNVX", creditor_citizen_id=f"0011900{n % 100000:05d}",
        remittance_info="tro_cap_xa_hoi",
    )


def pacs008(count: int) -> CreditTransferMessage:
    return CreditTransferMessage(
        msg_id="KBNN-MSG-0001", created_at=AT, instructing_agent_bic="TRSYVNV1",
        instructed_agent_bic="SWLBVNVX",
        transactions=[credit_transfer(n) for n in range(count)],
    )


def pacs002(count: int) -> PaymentStatusReport:
    return PaymentStatusReport(
        msg_id="SW-STS-1", created_at=AT, original_msg_id="KBNN-MSG-0001",
        original_msg_type=MessageType.CREDIT_TRANSFER, group_status=TxStatus.ACCEPTED_TECHNICAL,
        transactions=[TransactionStatus(
            original_end_to_end_id=f"KBNN20261120{n:09d}", original_tx_id=f"TX{n:012d}",
            status=TxStatus.SETTLED if n % 3 else TxStatus.REJECTED,
            reason_code=None if n % 3 else "AC04",
            reason_text=None if n % 3 else "closed account",
            original_msg_id="KBNN-MSG-0001" if n % 2 else None,
        ) for n in range(count)],
    )


def pacs028() -> StatusRequest:
    return StatusRequest(msg_id="KBQ-1", created_at=AT, items=[
        StatusRequestItem("KBNN20261120000000001", "TX000000000001", "KBNN-MSG-0001"),
        StatusRequestItem("KBNN20261120000000002"),
    ])


def pacs004() -> PaymentReturn:
    return PaymentReturn(
        msg_id="BK-RTR-1", created_at=AT, instructing_agent_bic="BFTVVNVX",
        instructed_agent_bic="SWLBVNVX", items=[PaymentReturnItem(
            return_id="RT-1", original_end_to_end_id="KBNN20261120000000001",
            original_tx_id="TX000000000001", returned_amount_vnd=1_170_001, reason_code="MD07",
            original_msg_id="KBNN-MSG-0001", amount_text="1170001",
        )],
    )


def camt053() -> Statement:
    return Statement(
        msg_id="SW-STM-1", created_at=AT, participant_bic="BFTVVNVX", cycle_id=7,
        opened_at=AT, closed_at=AT, opening_balance_vnd=0, closing_balance_vnd=-2_000,
        entries=[
            StatementEntry("KBNN20261120000000001", 1_000, True, AT, "TRSYVNV1", "transfer"),
            StatementEntry("RT-1", 3_000, False, AT, "TRSYVNV1", "return"),
        ],
    )


def every_message() -> dict[str, BusinessMessage]:
    """Each message type as it travels, under its head.001 header."""
    documents = {
        "pacs.008-one": pacs008(1), "pacs.008-bulk": pacs008(50), "pacs.002": pacs002(10),
        "pacs.028": pacs028(), "pacs.004": pacs004(), "camt.053": camt053(),
    }
    route = {"pacs.002": ("SWLBVNVX", "TRSYVNV1"), "pacs.004": ("BFTVVNVX", "SWLBVNVX"),
             "camt.053": ("SWLBVNVX", "BFTVVNVX")}
    messages = {name: wrap(*route.get(name, ("TRSYVNV1", "SWLBVNVX")), doc)
                for name, doc in documents.items()}
    for message in messages.values():
        object.__setattr__(message.header, "created_at", AT)
    return messages
