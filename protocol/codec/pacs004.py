"""pacs.004.001.09 PmtRtr: the creditor agent returns the funds of settled transfers."""

from __future__ import annotations

from protocol.codec.base import (
    MessageCodec,
    agent,
    esc,
    original_group,
    parse_timestamp,
    reason,
    register,
    timestamp,
    whole,
)
from protocol.messages import MessageType, PaymentReturn, PaymentReturnItem


@register
class PaymentReturnV09(MessageCodec[PaymentReturn]):
    msg_def_id = MessageType.PAYMENT_RETURN.value
    document_type = PaymentReturn
    root = "PmtRtr"
    group_fields = ("!GrpHdr/MsgId", "!GrpHdr/CreDtTm", "GrpHdr/InstgAgt/FinInstnId/BICFI",
                    "GrpHdr/InstdAgt/FinInstnId/BICFI")
    items = "TxInf"
    min_items = 1
    item_fields = ("!RtrId", "OrgnlGrpInf/OrgnlMsgId", "!OrgnlEndToEndId", "OrgnlTxId",
                   "!RtrdIntrBkSttlmAmt", "!RtrRsnInf/Rsn/Cd", "!RtrdIntrBkSttlmAmt/@Ccy")

    def body(self, document: PaymentReturn) -> str:
        credit_transfer = MessageType.CREDIT_TRANSFER.value
        parts = [
            f"<GrpHdr><MsgId>{esc(document.msg_id)}</MsgId><CreDtTm>"
            f"{timestamp(document.created_at)}</CreDtTm><NbOfTxs>{len(document.items)}</NbOfTxs>"
            "<SttlmInf><SttlmMtd>CLRG</SttlmMtd></SttlmInf>"
            f"{agent('InstgAgt', document.instructing_agent_bic)}"
            f"{agent('InstdAgt', document.instructed_agent_bic)}</GrpHdr>"
        ]
        parts.extend(
            f"<TxInf><RtrId>{esc(item.return_id)}</RtrId>"
            f"{original_group(item.original_msg_id, credit_transfer)}"
            f"<OrgnlEndToEndId>{esc(item.original_end_to_end_id)}</OrgnlEndToEndId>"
            + (f"<OrgnlTxId>{esc(item.original_tx_id)}</OrgnlTxId>" if item.original_tx_id else "")
            + f'<RtrdIntrBkSttlmAmt Ccy="{esc(item.currency)}">'
            f"{esc(item.amount_text) if item.amount_text else item.returned_amount_vnd}"
            f"</RtrdIntrBkSttlmAmt>{reason('RtrRsnInf', item.reason_code, None)}</TxInf>"
            for item in document.items
        )
        return "".join(parts)

    def make(self, group: list[str], items: list[list[str]]) -> PaymentReturn:
        """Amounts are kept as written, for the switch to judge (as in pacs.008)."""
        msg_id, created_at, instructing, instructed = group
        returns = []
        for return_id, original, e2e, tx_id, amount, reason_code, currency in items:
            amount = amount.strip()
            returns.append(PaymentReturnItem(
                return_id=return_id, original_end_to_end_id=e2e, original_tx_id=tx_id,
                returned_amount_vnd=whole(amount), reason_code=reason_code.strip(),
                original_msg_id=original or None, amount_text=amount,
                currency=currency.strip(),
            ))
        return PaymentReturn(
            msg_id=msg_id, created_at=parse_timestamp(created_at, "GrpHdr/CreDtTm"),
            instructing_agent_bic=instructing, instructed_agent_bic=instructed, items=returns,
        )
