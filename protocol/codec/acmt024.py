"""acmt.024.001.04 IdentificationVerificationReport: the answer to an acmt.023, one Rpt per
verification: match (Vrfctn true) or not, and why not (Rsn/Cd). It never carries the holder's
name in full: UpdtdPtyAndAcctId holds at most the masked name."""

from __future__ import annotations

from protocol.codec.acmt023 import ASSIGNMENT_FIELDS, assignment, party_and_account
from protocol.codec.base import (
    CodecError,
    MessageCodec,
    esc,
    parse_timestamp,
    register,
    timestamp,
)
from protocol.messages import MessageType, VerificationReport, VerificationResult

_BOOLEAN = {"true": True, "1": True, "false": False, "0": False}  # xs:boolean's lexical space


@register
class VerificationReportV04(MessageCodec[VerificationReport]):
    msg_def_id = MessageType.VERIFICATION_REPORT.value
    document_type = VerificationReport
    root = "IdVrfctnRpt"
    group_fields = (*ASSIGNMENT_FIELDS, "OrgnlAssgnmt/MsgId")
    items = "Rpt"
    min_items = 1
    item_fields = ("!OrgnlId", "!Vrfctn", "Rsn/Cd", "UpdtdPtyAndAcctId/Pty/Nm")

    def body(self, document: VerificationReport) -> str:
        parts = [assignment(document.msg_id, timestamp(document.created_at),
                            document.assigner_bic, document.assignee_bic),
                 f"<OrgnlAssgnmt><MsgId>{esc(document.original_msg_id)}</MsgId></OrgnlAssgnmt>"]
        for result in document.results:
            reason = f"<Rsn><Cd>{esc(result.reason_code)}</Cd></Rsn>" if result.reason_code else ""
            updated = (party_and_account("UpdtdPtyAndAcctId", result.masked_name)
                       if result.masked_name else "")
            parts.append(f"<Rpt><OrgnlId>{esc(result.original_id)}</OrgnlId><Vrfctn>"
                         f"{'true' if result.verified else 'false'}</Vrfctn>{reason}{updated}"
                         "</Rpt>")
        return "".join(parts)

    def make(self, group: list[str], items: list[list[str]]) -> VerificationReport:
        msg_id, created_at, assigner, assignee, original = group
        results = []
        for n, (original_id, verified, reason, masked) in enumerate(items, start=1):
            value = _BOOLEAN.get(verified.strip())
            if value is None:
                raise CodecError(f"Rpt[{n}]/Vrfctn is not a boolean: {verified[:20]!r}")
            results.append(VerificationResult(
                original_id=original_id, verified=value, reason_code=reason.strip() or None,
                masked_name=masked or None))
        return VerificationReport(
            msg_id=msg_id, created_at=parse_timestamp(created_at, "Assgnmt/CreDtTm"),
            assigner_bic=assigner, assignee_bic=assignee, original_msg_id=original,
            results=results)
