"""The creditor's returns beyond the first (conformance/cases.py's creditor.return): each
return with its own RtrId, a partial return, and a return the switch refuses, which must
move nothing on the bank's books."""

from __future__ import annotations

import asyncio
import time

from banks.accounts_file import OPEN, TestAccount
from conformance.cases import ask_return, settled_credit
from conformance.context import CaseFailed, Context
from conformance.plan import case
from conformance.relay import Exchange
from protocol import reasons
from protocol.hooks import RETURNS_PATH
from protocol.messages import PaymentStatusReport, TransactionStatus, TxStatus

BOOK_WAIT_S = 1.0  # after the switch's answer, for the bank to book (or not) the return


def switch_verdict(ctx: Context, posted: Exchange, e2e: str) -> TransactionStatus | None:
    """The switch's pacs.002 item for the bank's return of `e2e`, as it passed the relay."""
    reply = ctx.message_of(posted, answer=True)
    if reply is None or not isinstance(reply.document, PaymentStatusReport):
        return None
    return next((i for i in reply.document.transactions if i.original_end_to_end_id == e2e),
                None)


@case("creditor.return-ids", "Two returns, each its own RtrId; a partial return",
      ("creditor", "returns", "hook"), """Asked through the hook to return two credits, one
      whole and one in part (half of it), the bank posts pacs.004s whose RtrIds differ (a
      RtrId is unique per sender: the switch refuses a reused one DU05), the second for the
      amount asked; the switch settles both, and the account is debited by exactly what was
      returned.""", feature="returns",
      catches="one RtrId reused for every return; a partial return sent whole")
async def return_ids(ctx: Context) -> None:
    account = ctx.accounts.need(OPEN)
    first = await settled_credit(ctx, account, 300_000)
    second = await settled_credit(ctx, account, 310_000)
    before = await ctx.balance(account)
    posted_first, item_first = await ask_return(ctx, first)
    posted_second, item_second = await ask_return(ctx, second, amount_vnd=155_000)
    if item_first.return_id == item_second.return_id:
        verdict = switch_verdict(ctx, posted_second, second)
        raise CaseFailed(f"the bank's two pacs.004 (exchanges {ctx.number(posted_first)} and "
                         f"{ctx.number(posted_second)}) reuse one RtrId "
                         f"{item_first.return_id} for the returns of {first} and {second}: "
                         f"the switch answered the second "
                         f"{_said(verdict)}; each return needs its own RtrId")
    if item_second.returned_amount_vnd != 155_000:
        raise CaseFailed(f"asked to return 155,000 VND of {second}, the bank's pacs.004 "
                         f"(exchange {ctx.number(posted_second)}) returns "
                         f"{item_second.returned_amount_vnd:,} VND")
    for posted, e2e in ((posted_first, first), (posted_second, second)):
        verdict = switch_verdict(ctx, posted, e2e)
        if verdict is None or verdict.status is not TxStatus.SETTLED:
            raise CaseFailed(f"the switch answered the bank's return of {e2e} (exchange "
                             f"{ctx.number(posted)}) {_said(verdict)}, not ACSC")
    ctx.note(f"RtrIds {item_first.return_id} and {item_second.return_id}: both settled")
    await _expect_moved(ctx, account, before.balance_vnd, -(300_000 + 155_000),
                        "after returning 300,000 VND and 155,000 VND")


@case("creditor.return-refused", "A return the switch refuses moves nothing",
      ("creditor", "returns", "hook"), """Asked to return more than a credit (AM09), and
      then a credit it has already returned (DUPL), the bank either refuses the order (409)
      or posts the pacs.004, which the switch rejects; either way its books do not move: the
      account is debited once, for the one return the switch settled.""", feature="returns",
      catches="a return booked although the switch refused it (AM09, DUPL)")
async def return_refused(ctx: Context) -> None:
    account = ctx.accounts.need(OPEN)
    e2e = await settled_credit(ctx, account, 320_000)
    before = await ctx.balance(account)
    await _refused_or_rejected(ctx, e2e, 320_001, reasons.WRONG_AMOUNT)
    await _expect_moved(ctx, account, before.balance_vnd, 0,
                        "after a return of 320,001 VND of a 320,000 VND credit")
    posted, _ = await ask_return(ctx, e2e)
    verdict = switch_verdict(ctx, posted, e2e)
    if verdict is None or verdict.status is not TxStatus.SETTLED:
        raise CaseFailed(f"the switch answered the bank's return of {e2e} (exchange "
                         f"{ctx.number(posted)}) {_said(verdict)}, not ACSC")
    await _refused_or_rejected(ctx, e2e, None, reasons.DUPLICATE)
    await _expect_moved(ctx, account, before.balance_vnd, -320_000,
                        "after one settled return and one the switch refused DUPL")


async def _refused_or_rejected(ctx: Context, e2e: str, amount_vnd: int | None,
                               code: str) -> None:
    """The bank refuses the return order 409, or sends it and the switch rejects it."""
    order: dict[str, object] = {"end_to_end_id": e2e, "reason_code": reasons.CREDITOR_DECEASED}
    if amount_vnd is not None:
        order["amount_vnd"] = amount_vnd
    asked_at_s = time.time()
    answer = await ctx.lab.hook("POST", RETURNS_PATH, order)
    if answer.status == 409:
        ctx.note(f"the bank refused to return {e2e} ({code} due): HTTP 409")
        return
    if answer.status != 202:
        raise CaseFailed(f"POST {RETURNS_PATH} for {e2e} answered HTTP {answer.status}, "
                         "not 202 or 409")
    assert ctx.lab.to_switch is not None
    posted = await ctx.lab.to_switch.wait_for(
        lambda e: e.started_s >= asked_at_s and switch_verdict(ctx, e, e2e) is not None, 15.0)
    verdict = None if posted is None else switch_verdict(ctx, posted, e2e)
    if verdict is None:
        raise CaseFailed(f"the bank answered 202 to the return of {e2e} but no pacs.004 the "
                         "switch answered followed within 15 s")
    ctx.note(f"the bank sent the return of {e2e}; the switch answered {_said(verdict)}")
    await asyncio.sleep(BOOK_WAIT_S)


async def _expect_moved(ctx: Context, account: TestAccount, before_vnd: int, moved_vnd: int,
                        why: str) -> None:
    """The balance moved by `moved_vnd` since `before_vnd` (waiting up to 5 s to book)."""
    deadline_s = time.monotonic() + 5.0
    while True:
        now = await ctx.balance(account)
        if now.balance_vnd - before_vnd == moved_vnd or time.monotonic() > deadline_s:
            break
        await asyncio.sleep(0.2)
    if now.balance_vnd - before_vnd != moved_vnd:
        raise CaseFailed(f"the balance of {account.account_id} moved by "
                         f"{now.balance_vnd - before_vnd:+,} VND {why}, not {moved_vnd:+,}")
    ctx.note(f"the balance of {account.account_id} moved by {moved_vnd:+,} VND {why}")


def _said(verdict: TransactionStatus | None) -> str:
    if verdict is None:
        return "nothing readable"
    return f"{verdict.status}{' ' + verdict.reason_code if verdict.reason_code else ''}"
