"""The holder's participant answering acmt.023 beyond the first case (conformance/cases.py's
creditor.verification): the privacy order for closed, blocked and deceased holders' accounts,
and a question of 1,000 items answered whole, in order, within the deadline."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from banks.accounts_file import DECEASED, OPEN
from banks.ledger import BLOCKED, CLOSED
from banks.registry import SWITCH_BIC
from conformance.cases import WRONG_CITIZEN_ID, WRONG_NAME
from conformance.context import UNKNOWN_ACCOUNT, CaseFailed, Context
from conformance.plan import case
from conformance.rules import unmasked
from protocol import reasons
from protocol.codec import new_id
from protocol.messages import VerificationItem, VerificationReport, VerificationRequest
from protocol.wording import count

MANY_ITEMS = 1_000  # the scheme's most Vrfctn in one acmt.023
Asked = tuple[VerificationItem, bool, str | None]  # the item, verified?, the reason code due


async def ask(ctx: Context, asked: list[Asked], label: str) -> float:
    """Post one acmt.023 of `asked` as the switch; fail on the first Rpt not as due or out
    of order, or a full name shown. The seconds the bank took to answer."""
    request = VerificationRequest(msg_id=new_id("CNV"), created_at=datetime.now(UTC),
                                  assigner_bic=SWITCH_BIC, assignee_bic=ctx.lab.bic,
                                  items=[item for item, _, _ in asked])
    started_s = time.monotonic()
    answer = await ctx.lab.post_to_bank(ctx.lab.encode(request))
    took_s = time.monotonic() - started_s
    ctx.note(f"as the switch, asked {count(len(asked), 'verification')} ({label}): the bank "
             f"answered "
             f"HTTP {answer.status} in {took_s * 1000:,.0f} ms")
    report = answer.document
    if answer.status != 200 or not isinstance(report, VerificationReport):
        raise CaseFailed(f"the bank answered the acmt.023 of {count(len(asked), 'item')} with HTTP "
                         f"{answer.status} and "
                         f"{'no acmt.024' if report is None else type(report).__name__}, not "
                         "200 with a readable acmt.024")
    ids = [r.original_id for r in report.results]
    for position, (item, verified, code) in enumerate(asked):
        if position >= len(ids):
            raise CaseFailed(f"the acmt.024 answers {len(ids):,} of the {len(asked):,} Vrfctn "
                             f"asked: the first unanswered is {item.verification_id}")
        result = report.results[position]
        if result.original_id != item.verification_id:
            raise CaseFailed(f"Rpt {position + 1} of the acmt.024 answers "
                             f"{result.original_id}, not {item.verification_id}: one Rpt per "
                             "Vrfctn, in the order asked")
        if result.verified != verified or result.reason_code != code:
            said = "true" if result.verified else f"false {result.reason_code}"
            wanted = "true" if verified else f"false {code}"
            raise CaseFailed(f"Vrfctn {item.verification_id} (account {item.account_id}, "
                             f"{item.name}, citizen ID {item.citizen_id}) was answered {said}, "
                             f"not {wanted}{_privacy(code, result.reason_code)}")
    text = answer.body.decode(errors="replace")
    for holder in {account.holder_name for account in ctx.accounts.by_status.values()}:
        if unmasked(holder, text):
            raise CaseFailed(f"the acmt.024 shows the holder's full name {holder!r}: only the "
                             "masked name may be shown, with BE01")
    if len(ids) > len(asked):
        raise CaseFailed(f"the acmt.024 has {len(ids):,} Rpt for {len(asked):,} Vrfctn")
    return took_s


def _privacy(due: str | None, said: str | None) -> str:
    """The privacy rule a wrong code breaks (docs/participants.md, "You are the holder's
    participant")."""
    if due == reasons.CITIZEN_ID_MISMATCH and said in (
            reasons.CLOSED_ACCOUNT, reasons.BLOCKED_ACCOUNT, reasons.CREDITOR_DECEASED,
            reasons.NAME_MISMATCH):
        return (f": {said} before checking the citizen ID tells a stranger about someone "
                "else's account (check AC01, then BE17, then BE01, then the account's status)")
    if due == reasons.NAME_MISMATCH and said in (
            reasons.CLOSED_ACCOUNT, reasons.BLOCKED_ACCOUNT, reasons.CREDITOR_DECEASED):
        return f": the name is checked (BE01) before the account's status ({said})"
    return ""


@case("creditor.verification-privacy", "acmt.023 about closed, blocked and deceased "
      "holders' accounts answered in the privacy order", ("creditor", "acmt", "identity",
                                                          "scheme"),
      """For a closed, a blocked and a deceased holder's account, an acmt.023 with another
      citizen ID is answered BE17 (nothing about the account's status), one with the right
      citizen ID and another name BE01 with the masked name, and one with both right AC04,
      AC06 or MD07: the order AC01, BE17, BE01, then the account's status. A question naming
      a citizen ID alone, no account (the switch resolves those itself and never asks the
      bank), is answered AC01: the bank does not look the citizen up.""",
      feature="verification",
      catches="the account's status (AC04) answered before the citizen ID is checked (BE17)")
async def verification_privacy(ctx: Context) -> None:
    bic = ctx.lab.bic
    asked: list[Asked] = []
    for status, code in ((CLOSED, reasons.CLOSED_ACCOUNT), (BLOCKED, reasons.BLOCKED_ACCOUNT),
                         (DECEASED, reasons.CREDITOR_DECEASED)):
        account = ctx.accounts.by_status.get(status)
        if account is None:
            continue
        n = len(asked)
        asked += [
            (VerificationItem(f"P{n + 1}", account.holder_name, WRONG_CITIZEN_ID,
                              account.account_id, bic), False, reasons.CITIZEN_ID_MISMATCH),
            (VerificationItem(f"P{n + 2}", WRONG_NAME, account.citizen_id,
                              account.account_id, bic), False, reasons.NAME_MISMATCH),
            (VerificationItem(f"P{n + 3}", account.holder_name, account.citizen_id,
                              account.account_id, bic), False, code),
        ]
    if not asked:
        ctx.accounts.need(CLOSED)  # NotRun, naming the status the file lacks
    holder = ctx.accounts.need(OPEN)
    asked.append((VerificationItem(f"P{len(asked) + 1}", holder.holder_name,
                                   holder.citizen_id), False, reasons.WRONG_ACCOUNT))
    await ask(ctx, asked, "closed, blocked and deceased holders' accounts, and a citizen ID "
              "alone")


@case("creditor.verification-1000", f"An acmt.023 of {MANY_ITEMS:,} items answered whole, "
      "in order", ("creditor", "acmt", "identity", "load", "scheme"),
      f"""An acmt.023 of {MANY_ITEMS:,} Vrfctn (the scheme's most) about the open account and
      an unknown one is answered within the creditor deadline with one Rpt per Vrfctn, in the
      order asked, each with its verdict (true, BE01, BE17, AC01).""",
      feature="verification",
      catches="a large question cut short, reordered or answered past the deadline")
async def verification_many(ctx: Context) -> None:
    account = ctx.accounts.need(OPEN)
    bic = ctx.lab.bic
    kinds = [
        (account.holder_name, account.citizen_id, account.account_id, True, None),
        (WRONG_NAME, account.citizen_id, account.account_id, False, reasons.NAME_MISMATCH),
        (account.holder_name, WRONG_CITIZEN_ID, account.account_id, False,
         reasons.CITIZEN_ID_MISMATCH),
        (WRONG_NAME, WRONG_CITIZEN_ID, UNKNOWN_ACCOUNT, False, reasons.WRONG_ACCOUNT),
    ]
    asked: list[Asked] = []
    for number in range(MANY_ITEMS):
        name, citizen_id, account_id, verified, code = kinds[number % len(kinds)]
        asked.append((VerificationItem(f"M{number + 1:04d}", name, citizen_id, account_id,
                                       bic), verified, code))
    took_s = await ask(ctx, asked, f"{MANY_ITEMS:,} in one message")
    if took_s > ctx.deadline_s:
        raise CaseFailed(f"the bank answered the acmt.023 of {MANY_ITEMS:,} items in "
                         f"{took_s:.1f} s, past the {ctx.deadline_s:g} s deadline")
