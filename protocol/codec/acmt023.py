"""acmt.023.001.04 IdentificationVerificationRequest: does this account belong to the person
with this citizen id and name? The treasury asks the switch; the switch asks the participant
that holds the account (looking the citizen id up in its directory when no account is given).
"""

from __future__ import annotations

from protocol.codec.base import (
    MAX_NAME_CHARS,
    MessageCodec,
    agent,
    esc,
    parse_timestamp,
    register,
    timestamp,
)
from protocol.messages import MessageType, VerificationItem, VerificationRequest

NATIONAL_ID_SCHEME = "NIDN"  # ExternalPersonIdentification1Code: national identity number
# Assgnmt as both messages start: who asks whom (acmt.024's assigner is the one answering).
ASSIGNMENT_FIELDS = ("!Assgnmt/MsgId", "!Assgnmt/CreDtTm",
                     "!Assgnmt/Assgnr/Agt/FinInstnId/BICFI",
                     "!Assgnmt/Assgne/Agt/FinInstnId/BICFI")


def assignment(msg_id: str, created_at_text: str, assigner_bic: str, assignee_bic: str) -> str:
    """Assgnmt (IdentificationAssignment4): who asks whom, both as agents by BIC."""
    return (f"<Assgnmt><MsgId>{esc(msg_id)}</MsgId><CreDtTm>{created_at_text}</CreDtTm>"
            f"<Assgnr>{agent('Agt', assigner_bic)}</Assgnr>"
            f"<Assgne>{agent('Agt', assignee_bic)}</Assgne></Assgnmt>")


def party_and_account(tag: str, name: str | None, citizen_id: str | None = None,
                      account_id: str | None = None, agent_bic: str | None = None) -> str:
    """An IdentificationInformation5 (PtyAndAcctId and its kin): party by name and citizen
    id, account, and the agent holding it; each part only when given."""
    person = (f"<Id><PrvtId><Othr><Id>{esc(citizen_id)}</Id><SchmeNm><Cd>{NATIONAL_ID_SCHEME}"
              "</Cd></SchmeNm></Othr></PrvtId></Id>" if citizen_id else "")
    named = f"<Nm>{esc(name[:MAX_NAME_CHARS])}</Nm>" if name else ""
    party = f"<Pty>{named}{person}</Pty>" if named or person else ""
    account = (f"<Acct><Id><Othr><Id>{esc(account_id)}</Id></Othr></Id></Acct>"
               if account_id else "")
    return f"<{tag}>{party}{account}{agent('Agt', agent_bic or '')}</{tag}>"


@register
class VerificationRequestV04(MessageCodec[VerificationRequest]):
    msg_def_id = MessageType.VERIFICATION_REQUEST.value
    document_type = VerificationRequest
    root = "IdVrfctnReq"
    group_fields = ASSIGNMENT_FIELDS
    items = "Vrfctn"
    min_items = 1
    item_fields = (
        "!Id", "!PtyAndAcctId/Pty/Nm",
        f"PtyAndAcctId/Pty/Id/PrvtId/Othr[SchmeNm/Cd='{NATIONAL_ID_SCHEME}']/Id",
        "PtyAndAcctId/Acct/Id/Othr/Id", "PtyAndAcctId/Agt/FinInstnId/BICFI",
    )

    def body(self, document: VerificationRequest) -> str:
        parts = [assignment(document.msg_id, timestamp(document.created_at),
                            document.assigner_bic, document.assignee_bic)]
        parts.extend(
            f"<Vrfctn><Id>{esc(item.verification_id)}</Id>"
            + party_and_account("PtyAndAcctId", item.name, item.citizen_id, item.account_id,
                                item.agent_bic) + "</Vrfctn>"
            for item in document.items)
        return "".join(parts)

    def make(self, group: list[str], items: list[list[str]]) -> VerificationRequest:
        msg_id, created_at, assigner, assignee = group
        return VerificationRequest(
            msg_id=msg_id, created_at=parse_timestamp(created_at, "Assgnmt/CreDtTm"),
            assigner_bic=assigner, assignee_bic=assignee,
            items=[VerificationItem(verification_id=vid, name=name,
                                    citizen_id=citizen_id.strip() or None,
                                    account_id=account.strip() or None,
                                    agent_bic=agent_bic or None)
                   for vid, name, citizen_id, account, agent_bic in items],
        )
