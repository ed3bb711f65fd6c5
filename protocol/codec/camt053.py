"""camt.053.001.08 BkToCstmrStmt: a participant's settlement-account statement for a cycle."""

from __future__ import annotations

from datetime import datetime

from protocol.codec.base import (
    CodecError,
    MessageCodec,
    agent,
    esc,
    number,
    parse_timestamp,
    register,
    timestamp,
)
from protocol.messages import SCHEME_CURRENCY, MessageType, Statement, StatementEntry

# Bank transaction codes (ISO external code set, domain PMNT): family RCDT received or ICDT
# issued credit transfer; sub-family DMCT domestic credit transfer or RRTN payment return.
# The sub-family carries StatementEntry.kind.
_SUB_FAMILY = {"transfer": "DMCT", "return": "RRTN"}
_KIND = {code: kind for kind, code in _SUB_FAMILY.items()}


def _balance(code: str, amount_vnd: int, at: datetime) -> str:
    sign = "CRDT" if amount_vnd >= 0 else "DBIT"
    return (f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>"
            f'<Amt Ccy="VND">{abs(amount_vnd)}</Amt><CdtDbtInd>{sign}</CdtDbtInd>'
            f"<Dt><DtTm>{timestamp(at)}</DtTm></Dt></Bal>")


def _entry(entry: StatementEntry) -> str:
    # The counterparty is the debtor's agent of a credit, the creditor's agent of a debit.
    sign, family, role = (("CRDT", "RCDT", "DbtrAgt") if entry.credit
                          else ("DBIT", "ICDT", "CdtrAgt"))
    return (
        f"<Ntry><NtryRef>{esc(entry.entry_ref)}</NtryRef>"
        f'<Amt Ccy="VND">{entry.amount_vnd}</Amt><CdtDbtInd>{sign}</CdtDbtInd>'
        f"<Sts><Cd>BOOK</Cd></Sts><BookgDt><DtTm>{timestamp(entry.booked_at)}</DtTm></BookgDt>"
        f"<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>{family}</Cd>"
        f"<SubFmlyCd>{_SUB_FAMILY[entry.kind]}</SubFmlyCd></Fmly></Domn></BkTxCd>"
        f"<NtryDtls><TxDtls><Refs><EndToEndId>{esc(entry.entry_ref)}</EndToEndId></Refs>"
        f"<RltdAgts>{agent(role, entry.counterparty_bic)}</RltdAgts></TxDtls></NtryDtls></Ntry>"
    )


def _amount(text: str, sign: str, where: str) -> int:
    """A signed whole-dong amount: statements come from the switch, so anything else is a
    format error, not a business one."""
    value = number(text, f"{where}/Amt")
    if sign not in ("CRDT", "DBIT"):
        raise CodecError(f"{where}/CdtDbtInd is neither CRDT nor DBIT: {sign!r}")
    return value if sign == "CRDT" else -value


def _in_vnd(where: str, currencies: list[str]) -> None:
    """A statement's amounts are the switch's positions, in the scheme's currency only."""
    for currency in currencies:
        if currency.strip() != SCHEME_CURRENCY:
            raise CodecError(f"{where} is {currency.strip()[:8]!r}: a statement of the scheme "
                             f"is in {SCHEME_CURRENCY}")


@register
class StatementV08(MessageCodec[Statement]):
    msg_def_id = MessageType.STATEMENT.value
    document_type = Statement
    root = "BkToCstmrStmt"
    group_fields = (
        "!GrpHdr/MsgId", "!GrpHdr/CreDtTm", "Stmt/StmtPgntn/PgNb", "Stmt/StmtPgntn/LastPgInd",
        "!Stmt/ElctrncSeqNb", "!Stmt/FrToDt/FrDtTm",
        "!Stmt/FrToDt/ToDtTm", "!Stmt/Acct/Id/Othr/Id",
        "!Stmt/Bal[Tp/CdOrPrtry/Cd='OPBD']/Amt", "!Stmt/Bal[Tp/CdOrPrtry/Cd='OPBD']/CdtDbtInd",
        "!Stmt/Bal[Tp/CdOrPrtry/Cd='CLBD']/Amt", "!Stmt/Bal[Tp/CdOrPrtry/Cd='CLBD']/CdtDbtInd",
        "Stmt/Acct/Ccy", "!Stmt/Bal[Tp/CdOrPrtry/Cd='OPBD']/Amt/@Ccy",
        "!Stmt/Bal[Tp/CdOrPrtry/Cd='CLBD']/Amt/@Ccy",
    )
    items = "Stmt/Ntry"
    item_fields = (
        "!NtryRef", "!Amt", "!CdtDbtInd", "!BookgDt/DtTm", "BkTxCd/Domn/Fmly/SubFmlyCd",
        "NtryDtls/TxDtls/RltdAgts/DbtrAgt/FinInstnId/BICFI",
        "NtryDtls/TxDtls/RltdAgts/CdtrAgt/FinInstnId/BICFI", "!Amt/@Ccy",
    )

    def body(self, document: Statement) -> str:
        parts = [
            f"<GrpHdr><MsgId>{esc(document.msg_id)}</MsgId><CreDtTm>"
            f"{timestamp(document.created_at)}</CreDtTm></GrpHdr><Stmt><Id>"
            f"{esc(document.participant_bic)}-{document.cycle_id}</Id><StmtPgntn><PgNb>"
            f"{document.page_number}</PgNb><LastPgInd>{str(document.last_page).lower()}"
            "</LastPgInd></StmtPgntn><ElctrncSeqNb>"
            f"{document.cycle_id}</ElctrncSeqNb><CreDtTm>{timestamp(document.created_at)}"
            f"</CreDtTm><FrToDt><FrDtTm>{timestamp(document.opened_at)}</FrDtTm><ToDtTm>"
            f"{timestamp(document.closed_at)}</ToDtTm></FrToDt><Acct><Id><Othr><Id>"
            f"{esc(document.participant_bic)}</Id></Othr></Id><Ccy>VND</Ccy></Acct>"
            f"{_balance('OPBD', document.opening_balance_vnd, document.opened_at)}"
            f"{_balance('CLBD', document.closing_balance_vnd, document.closed_at)}"
        ]
        parts.extend(_entry(entry) for entry in document.entries)
        parts.append("</Stmt>")
        return "".join(parts)

    def make(self, group: list[str], items: list[list[str]]) -> Statement:
        (msg_id, created_at, page, last_page, sequence, opened_at, closed_at, account, opening,
         opening_sign, closing, closing_sign, *currencies) = group
        _in_vnd("Stmt/Acct/Ccy and Stmt/Bal/Amt/@Ccy", [c for c in currencies if c.strip()])
        if last_page.strip() not in ("", "true", "false", "1", "0"):
            raise CodecError(f"Stmt/StmtPgntn/LastPgInd is not a boolean: {last_page[:20]!r}")
        entries = []
        for n, (ref, amount, sign, booked_at, sub_family, debtor_agent, creditor_agent,
                currency) in enumerate(items, start=1):
            where = f"Stmt/Ntry[{n}]"
            _in_vnd(f"{where}/Amt/@Ccy", [currency])
            sign = sign.strip()
            entries.append(StatementEntry(
                entry_ref=ref, amount_vnd=abs(_amount(amount, sign, where)), credit=sign == "CRDT",
                booked_at=parse_timestamp(booked_at, f"{where}/BookgDt/DtTm"),
                counterparty_bic=debtor_agent or creditor_agent,
                kind=_KIND.get(sub_family.strip(), "transfer"),
            ))
        return Statement(
            msg_id=msg_id, created_at=parse_timestamp(created_at, "GrpHdr/CreDtTm"),
            participant_bic=account, cycle_id=number(sequence, "Stmt/ElctrncSeqNb"),
            opened_at=parse_timestamp(opened_at, "Stmt/FrToDt/FrDtTm"),
            closed_at=parse_timestamp(closed_at, "Stmt/FrToDt/ToDtTm"),
            opening_balance_vnd=_amount(opening, opening_sign.strip(), "Stmt/Bal[OPBD]"),
            closing_balance_vnd=_amount(closing, closing_sign.strip(), "Stmt/Bal[CLBD]"),
            entries=entries,
            page_number=number(page, "Stmt/StmtPgntn/PgNb") if page.strip() else 1,
            last_page=last_page.strip() in ("", "true", "1"),
        )
