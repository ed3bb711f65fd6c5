"""pacs.002.001.10 FIToFIPmtStsRpt: statuses of the transfers of one original message."""

from __future__ import annotations

from protocol.codec.base import (
    CodecError,
    MessageCodec,
    esc,
    original_group,
    parse_timestamp,
    reason,
    register,
    timestamp,
)
from protocol.messages import MessageType, PaymentStatusReport, TransactionStatus, TxStatus

_STATUSES = {status.value: status for status in TxStatus}


def _status(code: str, where: str) -> TxStatus:
    status = _STATUSES.get(code.strip())
    if status is None:
        raise CodecError(f"{where} is not a status switchlab knows: {code!r}")
    return status


@register
class PaymentStatusV10(MessageCodec[PaymentStatusReport]):
    msg_def_id = MessageType.PAYMENT_STATUS.value
    document_type = PaymentStatusReport
    root = "FIToFIPmtStsRpt"
    group_fields = (
        "!GrpHdr/MsgId", "!GrpHdr/CreDtTm", "!OrgnlGrpInfAndSts/OrgnlMsgId",
        "!OrgnlGrpInfAndSts/OrgnlMsgNmId", "OrgnlGrpInfAndSts/GrpSts",
        "OrgnlGrpInfAndSts/StsRsnInf/Rsn/Cd",
    )
    items = "TxInfAndSts"
    item_fields = ("OrgnlGrpInf/OrgnlMsgId", "!OrgnlEndToEndId", "OrgnlTxId", "!TxSts",
                   "StsRsnInf/Rsn/Cd", "StsRsnInf/AddtlInf", "StsRsnInf/Orgtr/Id/OrgId/AnyBIC")

    def body(self, document: PaymentStatusReport) -> str:
        group_status = f"<GrpSts>{document.group_status}</GrpSts>" if document.group_status else ""
        parts = [
            f"<GrpHdr><MsgId>{esc(document.msg_id)}</MsgId><CreDtTm>"
            f"{timestamp(document.created_at)}</CreDtTm></GrpHdr><OrgnlGrpInfAndSts><OrgnlMsgId>"
            f"{esc(document.original_msg_id)}</OrgnlMsgId><OrgnlMsgNmId>"
            f"{esc(document.original_msg_type)}</OrgnlMsgNmId>{group_status}"
            f"{reason('StsRsnInf', document.group_reason_code, None)}</OrgnlGrpInfAndSts>"
        ]
        credit_transfer = MessageType.CREDIT_TRANSFER.value
        parts.extend(
            f"<TxInfAndSts>{original_group(item.original_msg_id, credit_transfer)}"
            f"<OrgnlEndToEndId>{esc(item.original_end_to_end_id)}</OrgnlEndToEndId>"
            + (f"<OrgnlTxId>{esc(item.original_tx_id)}</OrgnlTxId>" if item.original_tx_id else "")
            + f"<TxSts>{item.status}</TxSts>"
            + reason("StsRsnInf", item.reason_code, item.reason_text,
                     item.reason_originator_bic) + "</TxInfAndSts>"
            for item in document.transactions
        )
        return "".join(parts)

    def make(self, group: list[str], items: list[list[str]]) -> PaymentStatusReport:
        msg_id, created_at, original_msg_id, original_msg_type, group_status, group_reason = group
        statuses = _STATUSES
        transactions = []
        for number, (original, e2e, tx_id, code, reason_code, text, originator) in enumerate(
                items, 1):
            status = statuses.get(code) or _status(code, f"TxInfAndSts[{number}]/TxSts")
            transactions.append(TransactionStatus(
                original_end_to_end_id=e2e, original_tx_id=tx_id, status=status,
                reason_code=reason_code.strip() or None, reason_text=text or None,
                original_msg_id=original or None, reason_originator_bic=originator or None,
            ))
        return PaymentStatusReport(
            msg_id=msg_id, created_at=parse_timestamp(created_at, "GrpHdr/CreDtTm"),
            original_msg_id=original_msg_id, original_msg_type=original_msg_type.strip(),
            group_status=(_status(group_status, "OrgnlGrpInfAndSts/GrpSts")
                          if group_status else None),
            group_reason_code=group_reason.strip() or None,
            transactions=transactions,
        )
