"""pacs.028.001.03 FIToFIPmtStsReq: a participant asks for transfers' current status."""

from __future__ import annotations

from protocol.codec.base import (
    MessageCodec,
    esc,
    original_group,
    parse_timestamp,
    register,
    timestamp,
)
from protocol.messages import MessageType, StatusRequest, StatusRequestItem


@register
class StatusRequestV03(MessageCodec[StatusRequest]):
    msg_def_id = MessageType.STATUS_REQUEST.value
    document_type = StatusRequest
    root = "FIToFIPmtStsReq"
    group_fields = ("!GrpHdr/MsgId", "!GrpHdr/CreDtTm")
    items = "TxInf"
    item_fields = ("OrgnlGrpInf/OrgnlMsgId", "!OrgnlEndToEndId", "OrgnlTxId")

    def body(self, document: StatusRequest) -> str:
        credit_transfer = MessageType.CREDIT_TRANSFER.value
        parts = [f"<GrpHdr><MsgId>{esc(document.msg_id)}</MsgId><CreDtTm>"
                 f"{timestamp(document.created_at)}</CreDtTm></GrpHdr>"]
        parts.extend(
            f"<TxInf>{original_group(item.original_msg_id, credit_transfer)}"
            f"<OrgnlEndToEndId>{esc(item.original_end_to_end_id)}</OrgnlEndToEndId>"
            + (f"<OrgnlTxId>{esc(item.original_tx_id)}</OrgnlTxId>" if item.original_tx_id else "")
            + "</TxInf>"
            for item in document.items
        )
        return "".join(parts)

    def make(self, group: list[str], items: list[list[str]]) -> StatusRequest:
        msg_id, created_at = group
        return StatusRequest(
            msg_id=msg_id, created_at=parse_timestamp(created_at, "GrpHdr/CreDtTm"),
            items=[StatusRequestItem(original_end_to_end_id=e2e, original_tx_id=tx_id or None,
                                     original_msg_id=original or None)
                   for original, e2e, tx_id in items],
        )
