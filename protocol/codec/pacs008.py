"""pacs.008.001.08 FIToFICstmrCdtTrf: the credit transfer, single or bulk (the hot path)."""

from __future__ import annotations

import contextlib
from decimal import Decimal, InvalidOperation

from protocol.codec.base import (
    MAX_NAME_CHARS,
    MessageCodec,
    agent,
    esc,
    escaped,
    number,
    parse_timestamp,
    register,
    timestamp,
    whole,
)
from protocol.messages import CreditTransfer, CreditTransferMessage, MessageType

_ACCOUNT, _END_ACCOUNT = "<Id><Othr><Id>", "</Id></Othr></Id>"
_END_CITIZEN_ID = "</Id><SchmeNm><Cd>NIDN</Cd></SchmeNm></Othr></PrvtId></Id>"  # national id


def _control_sum(transactions: list[CreditTransfer]) -> str:
    """CtrlSum of the amounts as they will be written (amount_text, when set, is sent as is:
    tests use it to send amounts such as "1.5"); text that is no number adds nothing."""
    total: int | Decimal = 0
    for tx in transactions:
        if not tx.amount_text:
            total += tx.amount_vnd
            continue
        try:
            total += int(tx.amount_text)
        except ValueError:
            with contextlib.suppress(InvalidOperation):
                total += Decimal(tx.amount_text)
    return str(total) if isinstance(total, int) else format(total, "f")


@register
class CreditTransferV08(MessageCodec[CreditTransferMessage]):
    msg_def_id = MessageType.CREDIT_TRANSFER.value
    document_type = CreditTransferMessage
    root = "FIToFICstmrCdtTrf"
    group_fields = (
        "!GrpHdr/MsgId", "!GrpHdr/CreDtTm", "!GrpHdr/NbOfTxs", "GrpHdr/CtrlSum",
        "GrpHdr/InstgAgt/FinInstnId/BICFI", "GrpHdr/InstdAgt/FinInstnId/BICFI",
    )
    items = "CdtTrfTxInf"
    min_items = 1
    item_fields = (
        "!PmtId/EndToEndId", "PmtId/TxId", "!IntrBkSttlmAmt", "!IntrBkSttlmAmt/@Ccy", "Dbtr/Nm",
        "DbtrAcct/Id/Othr/Id", "!DbtrAgt/FinInstnId/BICFI", "!CdtrAgt/FinInstnId/BICFI",
        "Cdtr/Nm", "Cdtr/Id/PrvtId/Othr[SchmeNm/Cd='NIDN']/Id", "CdtrAcct/Id/Othr/Id",
        "RmtInf/Ustrd",
    )

    def body(self, document: CreditTransferMessage) -> str:
        transactions = document.transactions
        parts = [
            f"<GrpHdr><MsgId>{esc(document.msg_id)}</MsgId><CreDtTm>"
            f"{timestamp(document.created_at)}</CreDtTm><NbOfTxs>{len(transactions)}</NbOfTxs>"
            f"<CtrlSum>{_control_sum(transactions)}</CtrlSum>"
            "<SttlmInf><SttlmMtd>CLRG</SttlmMtd></SttlmInf>"
            f"{agent('InstgAgt', document.instructing_agent_bic)}"
            f"{agent('InstdAgt', document.instructed_agent_bic)}</GrpHdr>"
        ]
        append = parts.append
        for tx in transactions:
            # Every text escaped in one pass, then the optional parts, then one f-string: one
            # string built per transaction.
            (e2e, tx_id, currency, amount, debtor_name, debtor_account, debtor_agent,
             creditor_agent, creditor_name, citizen_id, creditor_account, remittance) = escaped((
                tx.end_to_end_id, tx.tx_id, tx.currency, tx.amount_text or str(tx.amount_vnd),
                tx.debtor_name[:MAX_NAME_CHARS], tx.debtor_account, tx.debtor_agent_bic,
                tx.creditor_agent_bic, tx.creditor_name[:MAX_NAME_CHARS],
                tx.creditor_citizen_id or "", tx.creditor_account,
                (tx.remittance_info or "")[:MAX_NAME_CHARS]))
            tx_id = f"<TxId>{tx_id}</TxId>" if tx_id else ""
            debtor = f"<Nm>{debtor_name}</Nm>" if debtor_name else ""
            debtor_account = (f"<DbtrAcct>{_ACCOUNT}{debtor_account}{_END_ACCOUNT}</DbtrAcct>"
                              if debtor_account else "")
            creditor = f"<Nm>{creditor_name}</Nm>" if creditor_name else ""
            citizen_id = (f"<Id><PrvtId><Othr><Id>{citizen_id}{_END_CITIZEN_ID}"
                          if citizen_id else "")
            creditor_account = (f"<CdtrAcct>{_ACCOUNT}{creditor_account}{_END_ACCOUNT}"
                                "</CdtrAcct>" if creditor_account else "")
            remittance = (f"<RmtInf><Ustrd>{remittance}</Ustrd></RmtInf>" if remittance
                          else "")
            append(
                f"<CdtTrfTxInf><PmtId><EndToEndId>{e2e}</EndToEndId>{tx_id}"
                f'</PmtId><IntrBkSttlmAmt Ccy="{currency}">{amount}</IntrBkSttlmAmt>'
                f"<ChrgBr>SLEV</ChrgBr><Dbtr>{debtor}</Dbtr>{debtor_account}<DbtrAgt><FinInstnId>"
                f"<BICFI>{debtor_agent}</BICFI></FinInstnId></DbtrAgt><CdtrAgt>"
                f"<FinInstnId><BICFI>{creditor_agent}</BICFI></FinInstnId></CdtrAgt>"
                f"<Cdtr>{creditor}{citizen_id}</Cdtr>{creditor_account}{remittance}</CdtTrfTxInf>"
            )
        return "".join(parts)

    def make(self, group: list[str], items: list[list[str]]) -> CreditTransferMessage:
        """Counts, sums, amounts and currencies are kept as sent: the switch judges them per
        transaction with their own reason codes. A missing TxId reads as the EndToEndId."""
        msg_id, created_at, count, control_sum, instructing, instructed = group
        transactions = []
        append = transactions.append
        for (e2e, tx_id, amount, currency, debtor_name, debtor_account, debtor_agent,
             creditor_agent, creditor_name, citizen_id, creditor_account, remittance) in items:
            amount = amount.strip()
            append(CreditTransfer(  # by position: a bulk file makes 100,000 of them
                e2e, tx_id or e2e, whole(amount), debtor_name, debtor_account, debtor_agent,
                creditor_name, creditor_account, creditor_agent, citizen_id or None,
                remittance or None, currency, amount))  # Ccy as sent: [A-Z]{3}, no blanks
        return CreditTransferMessage(
            msg_id=msg_id, created_at=parse_timestamp(created_at, "GrpHdr/CreDtTm"),
            instructing_agent_bic=instructing, instructed_agent_bic=instructed,
            transactions=transactions,
            declared_count=number(count, "GrpHdr/NbOfTxs"),
            declared_control_sum=control_sum.strip() or None,
        )
