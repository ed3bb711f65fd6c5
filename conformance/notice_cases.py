"""Notices the switch posts the bank, delivered more than once: a confirmation whose
acknowledgement was lost (the switch posts it again) and a statement posted twice. The bank
acknowledges each delivery with 2xx and books once (docs/participants.md, "Be idempotent by
end-to-end id")."""

from __future__ import annotations

import asyncio
import contextlib

from banks.accounts_file import OPEN
from conformance.cases import settled_credit
from conformance.context import (
    CONFIRMATION_WAIT_S,
    SETTLE_PAUSE_S,
    CaseFailed,
    Context,
    NotApplicable,
    status_text,
)
from conformance.plan import case
from conformance.relay import REFUSED, Exchange
from conformance.rules import decoded_or_none
from protocol import reasons
from protocol.messages import CreditTransferMessage, PaymentStatusReport, Statement, TxStatus
from protocol.wording import count

LATE_BY_S = 0.5  # past the creditor deadline, the bank's held-back pacs.002 arrives
REPOST_WATCH_S = 1.0  # after the 409, how long the suite watches for the same post again
MAX_POSTS_AFTER_409 = 2  # the late post and at most one more


def _is_status_report(ctx: Context, exchange: Exchange) -> bool:
    message = ctx.message_of(exchange)
    return message is not None and isinstance(message.document, PaymentStatusReport)


@case("creditor.confirmation-ack-lost", "A confirmation whose acknowledgement was lost books "
      "once", ("creditor", "notices", "duplicates", "switch"), """The bank's 2xx to the
      switch's ACSC is lost on its way back (the relay answers the switch 502 instead), so
      the switch posts the confirmation again: the bank acknowledges the second delivery with
      2xx and the account is credited once.""",
      catches="a bank that credits each delivery of a confirmation whose 2xx was lost")
async def confirmation_ack_lost(ctx: Context) -> None:
    assert ctx.lab.to_bank is not None
    lost: list[Exchange] = []

    def lose_first(exchange: Exchange) -> str | None:
        message = ctx.message_of(exchange)
        if (not lost and exchange.sender == "switch" and message is not None
                and isinstance(message.document, PaymentStatusReport)):
            lost.append(exchange)
            return REFUSED
        return None

    ctx.lab.to_bank.tamper = lose_first
    account = ctx.accounts.need(OPEN)
    before = await ctx.balance(account)
    e2e = await settled_credit(ctx, account, 330_000)
    again = await ctx.lab.to_bank.wait_for(
        lambda e: e.sender == "switch" and bool(lost) and e is not lost[0]
        and ctx.carries(e, e2e, PaymentStatusReport), CONFIRMATION_WAIT_S)
    if again is None:
        raise CaseFailed(f"the switch did not post the confirmation of {e2e} again within "
                         f"{CONFIRMATION_WAIT_S:g} s of the lost acknowledgement")
    if again.status is None or not 200 <= again.status < 300:
        raise CaseFailed(f"the bank answered the second delivery of the confirmation of {e2e}"
                         f" (exchange {ctx.number(again)}) with HTTP {again.status}, not 2xx")
    ctx.note(f"the switch posted the confirmation again (exchange {ctx.number(again)}): the "
             f"bank acknowledged HTTP {again.status}")
    await asyncio.sleep(SETTLE_PAUSE_S)
    moved = (await ctx.balance(account)).balance_vnd - before.balance_vnd
    if moved != 330_000:
        raise CaseFailed(f"after the confirmation of {e2e} was delivered twice (its first "
                         f"acknowledgement lost), {account.account_id} moved by {moved:+,} "
                         "VND, not +330,000: it must be credited once")
    ctx.note(f"{account.account_id} was credited once: +330,000 VND")


@case("settlement.statement-twice", "A statement posted twice is acknowledged both times",
      ("settlement", "notices", "duplicates", "scheme"), """The switch's camt.053 for a closed
      cycle, delivered a second time (the same bytes, newly signed, as after a switch
      restart), is acknowledged with 2xx again.""",
      catches="a bank that refuses a statement it already holds, so the switch retries it "
      "for hours")
async def statement_twice(ctx: Context) -> None:
    closed = await ctx.lab.admin("POST", "/v1/admin/settlement/close")
    assert ctx.lab.to_bank is not None
    posted = await ctx.lab.to_bank.wait_for(
        lambda e: e.sender == "switch" and e.case == ctx.lab.case and isinstance(
            getattr(ctx.message_of(e), "document", None), Statement), 10.0)
    if posted is None:
        raise CaseFailed(f"the switch's camt.053 of cycle {closed['cycle_id']} did not pass the "
                         "relay within 10 s")
    again = await ctx.lab.post_to_bank(posted.request_body)
    ctx.note(f"the switch posted cycle {closed['cycle_id']}'s statement (HTTP {posted.status});"
             f" as the switch, posted it again: HTTP {again.status}")
    if not 200 <= again.status < 300:
        raise CaseFailed(f"the bank answered the same camt.053 delivered again with HTTP "
                         f"{again.status}, not 2xx: the switch would post it again and again")


def answered_later(exchange: Exchange) -> bool:
    """A forward of the switch (a pacs.008) the bank answered 202: it posts the pacs.002
    later, the path creditor.late-answer tests."""
    if exchange.sender != "switch" or exchange.status != 202:
        return False
    message = decoded_or_none(exchange.request_body)
    return message is not None and isinstance(message.document, CreditTransferMessage)


@case("creditor.late-answer", "A late asynchronous answer: 409, then RJCT AB05, no credit",
      ("creditor", "async", "credit", "switch"), """For a bank that answers 202 and posts its
      pacs.002 later: the suite holds that post back past the creditor deadline, so the
      switch has rejected the transfer (AB05) when it arrives and refuses it 409. The bank
      takes the 409 as final (at most one more post of it), acknowledges the RJCT AB05,
      releases the hold and never credits. Not applicable only to a bank that answers in the
      HTTP response: one that answered any forward of the run 202 fails it when it answers
      this case's forward 200.""", version=2,
      catches="a bank that credits a late ACCP, or posts a refused answer again and again")
async def late_answer(ctx: Context) -> None:
    account = ctx.accounts.need(OPEN)
    assert ctx.lab.to_switch is not None
    before = await ctx.balance(account)
    held_s = ctx.deadline_s + LATE_BY_S
    ctx.lab.to_switch.delay = lambda e: held_s if _is_status_report(ctx, e) else 0.0
    e2e, final = await ctx.pay(account.account_id, account.holder_name, 340_000,
                               account.citizen_id)
    forward = ctx.forward_of(e2e)
    if forward is not None and forward.status == 200:
        raise NotApplicable(f"the bank answered this case's forward of {e2e} in the HTTP "
                            "response (200 with its pacs.002), and no forward of the run 202: "
                            "the late-202 path never arises", answered_later,
                            "answered a forward 202 (posting its pacs.002 later)")
    if final.status is not TxStatus.REJECTED or final.reason_code != reasons.TIMEOUT_CREDITOR_AGENT:
        raise CaseFailed(f"with the bank's pacs.002 held back {held_s:g} s, the transfer ended "
                         f"{status_text(final)}, not RJCT AB05: {ctx.diagnose(e2e, final)}")
    posted = await ctx.lab.to_switch.wait_for(
        lambda e: ctx.carries(e, e2e, PaymentStatusReport), held_s + CONFIRMATION_WAIT_S)
    if posted is None:
        raise CaseFailed(f"the bank answered 202 but posted no pacs.002 for {e2e}")
    ctx.note(f"the bank's pacs.002 for {e2e} reached the switch {held_s:g} s late: the switch "
             f"answered HTTP {posted.status}")
    await ctx.expect_released(account, e2e, "after the switch rejected it AB05")
    await asyncio.sleep(REPOST_WATCH_S)
    posts = ctx.lab.bank_said(lambda e: e.sender == "bank" and ctx.carries(
        e, e2e, PaymentStatusReport))
    if len(posts) > MAX_POSTS_AFTER_409:
        raise CaseFailed(f"the bank posted its pacs.002 for {e2e} {count(len(posts), 'time')} "
                         f"although "
                         f"the switch refused it 409 (exchange {ctx.number(posts[0])}): a 409 "
                         "is final")
    await ctx.expect_not_credited(account, e2e, before, "for a late ACCP the switch refused")


HELD_AT_CRASH_S = 2.0  # the forward held back by the relay while the switch is killed


@case("creditor.switch-restart", "The switch crashed with a transfer in flight: RJCT AB06, "
      "no credit", ("creditor", "notices", "recovery", "switch"), """The switch is killed
      (SIGKILL) while its pacs.008 is on its way to the bank, which takes it (ACCP) with no
      switch left to hear; started again on its journal, the switch rejects what was in flight
      AB06 and tells both sides. The bank acknowledges the RJCT AB06 with 2xx, releases the
      hold and never credits the transfer.""",
      catches="a bank that credits on its own ACCP, or refuses the switch's RJCT after a "
              "restart")
async def switch_restart(ctx: Context) -> None:
    account = ctx.accounts.need(OPEN)
    lab = ctx.lab
    assert lab.to_bank is not None
    before = await ctx.balance(account)
    await lab.switch_as_process()
    e2e = ctx.new_id()
    lab.to_bank.delay = lambda e: HELD_AT_CRASH_S if ctx.carries(
        e, e2e, CreditTransferMessage) else 0.0
    paying = asyncio.ensure_future(lab.pay([lab.treasury_transfer(
        e2e, account.account_id, account.holder_name, 350_000, account.citizen_id)]))
    if await lab.to_bank.wait_for(lambda e: ctx.carries(e, e2e, CreditTransferMessage),
                                  CONFIRMATION_WAIT_S, started=True) is None:
        paying.cancel()
        raise CaseFailed(f"the switch never forwarded {e2e} to the bank")
    await lab.crash_switch()
    ctx.note(f"the switch forwarded {e2e} and was killed while the suite held the pacs.008 "
             f"back {HELD_AT_CRASH_S:g} s")
    with contextlib.suppress(Exception):  # the treasury's answer died with the switch
        await paying
    forward = await lab.to_bank.wait_for(lambda e: ctx.carries(e, e2e, CreditTransferMessage),
                                         HELD_AT_CRASH_S + CONFIRMATION_WAIT_S)
    ctx.note(f"the bank answered the forward HTTP {forward.status if forward else 'nothing'}")
    await lab.start_switch()
    lab.switch_outcomes[e2e] = TxStatus.REJECTED
    told = await lab.to_bank.wait_for(
        lambda e: ctx.carries(e, e2e, PaymentStatusReport) and e.sender == "switch",
        CONFIRMATION_WAIT_S)
    if told is None:
        raise CaseFailed(f"the switch, started again, never told the bank of {e2e} (RJCT AB06)")
    said = ctx.message_of(told)
    item = next((i for i in said.document.transactions if i.original_end_to_end_id == e2e),
                None) if said is not None and isinstance(
                    said.document, PaymentStatusReport) else None
    ctx.note(f"started again, the switch posted {status_text(item) if item else 'a pacs.002'}"
             f" for {e2e}: the bank answered HTTP {told.status}")
    if not 200 <= (told.status or 0) < 300:
        raise CaseFailed(f"the bank answered the switch's RJCT AB06 for {e2e} after a restart "
                         f"with HTTP {told.status}, not 2xx: the switch will post it again")
    await ctx.expect_released(account, e2e, "after the switch rejected it AB06")
    await asyncio.sleep(SETTLE_PAUSE_S)
    await ctx.expect_not_credited(account, e2e, before, "for a transfer the switch rejected "
                                  "AB06 after a crash")
