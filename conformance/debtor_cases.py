"""The debtor's conformance cases: the bank sends transfers of its own when asked through
POST /switchlab/transfers, and must treat what comes back as a debtor agent does
(docs/participants.md, "Sending a credit transfer", "Check every answer"): an answer that is
lost or does not check is no answer (ask with pacs.028, or resend the same bytes), each
transfer is sent once, and a return booked once however often it is delivered.

The suite decides what becomes of the switch's answers on their way back to the bank (the
relay's `tamper`): passed on, stripped of their signature, forged, or lost.
"""

from __future__ import annotations

import asyncio
import time

from banks.accounts_file import OPEN, TestAccount
from conformance.context import CaseFailed, Context, NotRun, status_text
from conformance.lab import COUNTERPART_ACCOUNT, COUNTERPART_BIC, COUNTERPART_HOLDER
from conformance.plan import case
from conformance.relay import FORGED, LOST, UNSIGNED, Exchange
from protocol import reasons
from protocol.hooks import TRANSFERS_PATH
from protocol.messages import (
    CreditTransferMessage,
    PaymentReturn,
    PaymentStatusReport,
    StatusRequest,
    TransactionStatus,
    TxStatus,
)
from protocol.wording import count

DEBTOR_WAIT_S = 15.0
RESEND_WATCH_S = 2.0  # after the switch answered, how long the suite watches for a resend
INQUIRY_WAIT_S = 15.0  # for the pacs.028 after an answer the bank cannot trust
AMOUNT_VND = 50_000
BULK_ORDER = 100  # transfers in the bank's own bulk
BULK_REFUSED = 10  # of them to an account the counterpart does not hold (RJCT AC01)
BULK_AMOUNT_VND = 1_000
WHAT_BECAME = {UNSIGNED: "reached the bank without its signature headers",
               FORGED: "reached the bank with a forged signature",
               LOST: "never reached the bank (the connection closed once the switch had "
                     "taken the transfer)"}
BOOK_PAUSE_S = 0.5


async def order(ctx: Context, account: TestAccount, e2e: str,
                creditor_account: str = COUNTERPART_ACCOUNT) -> None:
    """Ask the bank to pay `creditor_account` at the counterpart as `e2e`."""
    answer = await ctx.lab.hook("POST", TRANSFERS_PATH, {
        "end_to_end_id": e2e, "amount_vnd": AMOUNT_VND, "debtor_account": account.account_id,
        "creditor_agent_bic": COUNTERPART_BIC, "creditor_account": creditor_account,
        "creditor_name": COUNTERPART_HOLDER})
    if answer.status == 404:
        raise NotRun(f"the bank exposes no POST {TRANSFERS_PATH}: a bank that declares the "
                     "debtor role must (docs/conformance.md)")
    if answer.status != 202:
        raise CaseFailed(f"POST {TRANSFERS_PATH} for {e2e} answered HTTP {answer.status}, not "
                         "202")
    ctx.note(f"asked the bank to pay {creditor_account} at {COUNTERPART_BIC} as {e2e}")


async def sent_transfer(ctx: Context, e2e: str, asked_at_s: float) -> Exchange:
    """The bank's pacs.008 carrying `e2e`, once it has its answer."""
    assert ctx.lab.to_switch is not None
    sent = await ctx.lab.to_switch.wait_for(
        lambda e: e.started_s >= asked_at_s and ctx.carries(e, e2e, CreditTransferMessage),
        DEBTOR_WAIT_S)
    if sent is None:
        raise CaseFailed(f"the bank sent no readable pacs.008 for {e2e} within "
                         f"{DEBTOR_WAIT_S:g} s of being asked")
    return sent


def switch_answer(ctx: Context, sent: Exchange, e2e: str) -> TransactionStatus | None:
    """The switch's status for `e2e` in its answer to the bank's message."""
    reply = ctx.message_of(sent, answer=True)
    items = (reply.document.transactions if reply is not None
             and isinstance(reply.document, PaymentStatusReport) else [])
    return next((i for i in items if i.original_end_to_end_id == e2e), None)


def copies_of(ctx: Context, e2e: str) -> list[Exchange]:
    """Every pacs.008 the bank sent carrying `e2e`, in order."""
    return ctx.lab.bank_said(lambda e: e.sender == "bank"
                             and ctx.carries(e, e2e, CreditTransferMessage))


def expect_sent_once(ctx: Context, e2e: str, why: str) -> None:
    """One pacs.008 of `e2e`, or copies that are byte for byte the first (a resend the
    switch recognises as one transfer)."""
    copies = copies_of(ctx, e2e)
    changed = [c for c in copies[1:] if c.request_body != copies[0].request_body]
    if changed:
        raise CaseFailed(f"the bank sent {e2e} {count(len(copies), 'time')} and exchange "
                         f"{ctx.number(changed[0])} is not the bytes of exchange "
                         f"{ctx.number(copies[0])}: {why}")


@case("debtor.transfer", "The bank's own pacs.008: well-formed, signed, settled and rejected",
      ("debtor", "hook"), f"""Asked through POST {TRANSFERS_PATH}, the bank sends the switch an
      instant pacs.008 that is schema-valid, signed, and names itself (head.001 Fr, InstgAgt,
      DbtrAgt); one to the counterpart's account settles (ACSC), one to an account the
      counterpart does not hold is rejected (RJCT AC01); the bank sends each once; the
      pacs.004 by which the counterpart then returns the settled one is acknowledged 2xx.""",
      catches="a transfer that names another bank, is unsigned, or is sent twice")
async def debtor_transfer(ctx: Context) -> None:
    account = ctx.accounts.need(OPEN)
    orders = {ctx.new_id(): (COUNTERPART_ACCOUNT, TxStatus.SETTLED, None),
              ctx.new_id(): ("CNTR9999999999", TxStatus.REJECTED, reasons.WRONG_ACCOUNT)}
    asked_at_s = time.time()
    for e2e, (creditor_account, _, _) in orders.items():
        await order(ctx, account, e2e, creditor_account)
    for e2e, (_, wanted, code) in orders.items():
        sent = await sent_transfer(ctx, e2e, asked_at_s)
        got = switch_answer(ctx, sent, e2e)
        if got is None or got.status is not wanted or got.reason_code != code:
            raise CaseFailed(f"the switch answered the bank's transfer {e2e} "
                             f"{status_text(got)} (HTTP {sent.status}), not {wanted} "
                             f"{code or ''}".rstrip())
        ctx.note(f"the bank sent {e2e}; the switch answered {status_text(got)}")
    await asyncio.sleep(RESEND_WATCH_S)
    for e2e in orders:
        copies = copies_of(ctx, e2e)
        if len(copies) > 1:
            raise CaseFailed(f"the bank sent {e2e} {count(len(copies), 'time')}: a lost answer "
                             f"is a "
                             "question for pacs.028, never a blind resend")
    await returned_to_debtor(ctx, next(iter(orders)))


async def returned_to_debtor(ctx: Context, e2e: str) -> Exchange:
    """The counterpart returns the bank's settled transfer; the switch's pacs.004 to the bank
    must be acknowledged 2xx."""
    status = await ctx.lab.counterpart_returns(e2e, AMOUNT_VND)
    ctx.note(f"the counterpart returned {e2e} (AC04): the switch answered it {status}")
    assert ctx.lab.to_bank is not None
    posted = await ctx.lab.to_bank.wait_for(
        lambda e: e.sender == "switch" and ctx.carries(e, e2e, PaymentReturn), 10.0)
    if posted is None:
        raise CaseFailed(f"the switch's pacs.004 returning {e2e} did not pass the relay within "
                         "10 s")
    if posted.status is None or not 200 <= posted.status < 300:
        raise CaseFailed(f"the bank answered the pacs.004 returning its transfer {e2e} with "
                         f"HTTP {posted.status or posted.error}, not 2xx: the switch will post "
                         "it again")
    ctx.note(f"the switch posted the bank the return; the bank acknowledged HTTP {posted.status}")
    return posted


def _untrusted(name: str, title: str, orders: tuple[str, ...], what: str, catches: str
               ) -> None:
    """A case: the switch's answers to the bank's transfers reach it as `orders` say (the
    relay's tamper, one order a transfer); for each, the bank must ask with pacs.028 (or
    resend the same bytes) and never send the transfer anew."""

    @case(f"debtor.{name}", title, ("debtor", "hook", "trust"),
          f"""The switch's answer to the bank's pacs.008 reaches it {what}. The bank treats it
          as no answer: within {INQUIRY_WAIT_S:g} s it asks the switch with a pacs.028 naming
          the end-to-end id (or resends the same bytes), and never sends the transfer with
          other bytes.""", catches=catches)
    async def untrusted(ctx: Context) -> None:
        account = ctx.accounts.need(OPEN)
        assert ctx.lab.to_switch is not None
        plan: dict[str, str] = {}

        def tamper(exchange: Exchange) -> str | None:
            for e2e, how in plan.items():
                if ctx.carries(exchange, e2e, CreditTransferMessage):
                    return how if exchange is copies_of(ctx, e2e)[0] else None
            return None

        ctx.lab.to_switch.tamper = tamper
        for how in orders:
            e2e = ctx.new_id()
            plan[e2e] = how
            asked_at_s = time.time()
            await order(ctx, account, e2e)
            sent = await sent_transfer(ctx, e2e, asked_at_s)
            ctx.note(f"the switch answered {e2e} {status_text(switch_answer(ctx, sent, e2e))}"
                     f"; the answer {WHAT_BECAME[how]}")
            asked = await ctx.lab.to_switch.wait_for(
                lambda e, e2e=e2e, since_s=sent.started_s: e.started_s >= since_s
                and _asks_about(ctx, e, e2e), INQUIRY_WAIT_S)
            expect_sent_once(ctx, e2e, "a resend must be the same message")
            if asked is None and len(copies_of(ctx, e2e)) < 2:
                raise CaseFailed(
                    f"the switch's answer to the bank's pacs.008 of {e2e} (exchange "
                    f"{ctx.number(sent)}) {WHAT_BECAME[how]}, and within "
                    f"{INQUIRY_WAIT_S:g} s the bank sent no pacs.028 about it and no resend: "
                    "it took an answer it could not trust")
            if asked is not None:
                ctx.note(f"the bank asked about {e2e} with a pacs.028 (exchange "
                         f"{ctx.number(asked)}): the switch answered "
                         f"{status_text(switch_answer(ctx, asked, e2e))}")


def _asks_about(ctx: Context, exchange: Exchange, e2e: str) -> bool:
    message = ctx.message_of(exchange)
    return message is not None and isinstance(message.document, StatusRequest) and any(
        item.original_end_to_end_id == e2e for item in message.document.items)


_untrusted("unauthentic-answer", "An unsigned or forged answer is no answer",
           (UNSIGNED, FORGED), "first without its signature headers, then with a forged "
           "signature", "a debtor that takes the switch's answers without checking their "
           "signatures")
_untrusted("lost-answer", "A lost answer: pacs.028, not a new transfer", (LOST,),
           "not at all (the connection closes after the switch took the transfer)",
           "a debtor that forgets a transfer whose answer was lost, or sends it anew")


@case("debtor.return-twice", "A return delivered twice is booked once",
      ("debtor", "hook", "notices", "duplicates"), """The switch's pacs.004 returning the
      bank's settled transfer is delivered twice (the second time by the suite as the scheme,
      the same bytes newly signed, as after a switch restart): the bank acknowledges both with
      2xx and credits its debtor's account by the returned amount once.""",
      catches="a debtor that books a redelivered pacs.004 twice")
async def return_twice(ctx: Context) -> None:
    account = ctx.accounts.need(OPEN)
    e2e = ctx.new_id()
    asked_at_s = time.time()
    await order(ctx, account, e2e)
    sent = await sent_transfer(ctx, e2e, asked_at_s)
    got = switch_answer(ctx, sent, e2e)
    if got is None or got.status is not TxStatus.SETTLED:
        raise CaseFailed(f"the switch answered the bank's transfer {e2e} {status_text(got)}, "
                         "not ACSC")
    await asyncio.sleep(BOOK_PAUSE_S)  # the bank books its debit once it has the answer
    before = await ctx.balance(account)
    posted = await returned_to_debtor(ctx, e2e)
    again = await ctx.lab.post_to_bank(posted.request_body)
    if not 200 <= again.status < 300:
        raise CaseFailed(f"the bank answered the same pacs.004 delivered again with HTTP "
                         f"{again.status}, not 2xx: the switch would post it again and again")
    ctx.note(f"as the switch, delivered the same pacs.004 again: HTTP {again.status}")
    deadline_s = time.monotonic() + 5.0
    while True:
        moved = (await ctx.balance(account)).balance_vnd - before.balance_vnd
        if moved >= AMOUNT_VND or time.monotonic() > deadline_s:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(0.5)
    moved = (await ctx.balance(account)).balance_vnd - before.balance_vnd
    if moved != AMOUNT_VND:
        raise CaseFailed(f"the return of {e2e} ({AMOUNT_VND:,} VND), delivered twice, moved "
                         f"{account.account_id} by {moved:+,} VND: it must be booked once, "
                         f"{AMOUNT_VND:+,} VND")
    ctx.note(f"{account.account_id} was credited the return once: {moved:+,} VND")


@case("debtor.rejections", "Transfers the switch rejects: final, sent once, not debited",
      ("debtor", "hook", "reasons"), """Asked to send three transfers the switch rejects, one
      reusing the end-to-end id of a settled one (RJCT DUPL), one past the bank's position
      limit (RJCT AM04: the operator lowers it to 0 for the case, in a fresh settlement
      cycle), one to a creditor that is signed off (RJCT AB08), the bank sends each once, each
      message with a MsgId of its own (a MsgId reused for other content is refused DU01), and
      takes each RJCT as final: its debtor's balance does not move.""",
      catches="a debtor that debits a rejected transfer, resends it, or reuses a MsgId")
async def rejections(ctx: Context) -> None:
    account = ctx.accounts.need(OPEN)
    lab = ctx.lab
    first = ctx.new_id()
    asked_at_s = time.time()
    await order(ctx, account, first)
    got = switch_answer(ctx, await sent_transfer(ctx, first, asked_at_s), first)
    if got is None or got.status is not TxStatus.SETTLED:
        raise CaseFailed(f"the switch answered the bank's transfer {first} {status_text(got)}, "
                         "not ACSC")
    await asyncio.sleep(BOOK_PAUSE_S)
    before = await ctx.balance(account)
    rejected: list[tuple[str, str]] = []
    for code in (reasons.DUPLICATE, reasons.INSUFFICIENT_FUNDS,
                 reasons.OFFLINE_CREDITOR_AGENT):
        e2e = first if code == reasons.DUPLICATE else ctx.new_id()
        if code == reasons.INSUFFICIENT_FUNDS:
            await lab.admin("POST", "/v1/admin/settlement/close")
            await lab.admin("PUT", f"/v1/admin/participants/{lab.bic}/limit",
                            {"position_limit_vnd": 0})
        elif code == reasons.OFFLINE_CREDITOR_AGENT:
            await lab.admin("POST", f"/v1/admin/participants/{COUNTERPART_BIC}/sign-off")
        try:
            asked_at_s = time.time()
            await order(ctx, account, e2e)
            sent = await sent_transfer(ctx, e2e, asked_at_s)
        finally:
            await lab.admin("PUT", f"/v1/admin/participants/{lab.bic}/limit",
                            {"position_limit_vnd": 10**15})
            await lab.admin("POST", f"/v1/admin/participants/{COUNTERPART_BIC}/sign-on")
        _expect_own_msg_ids(ctx)
        got = switch_answer(ctx, sent, e2e)
        if got is None or got.status is not TxStatus.REJECTED or got.reason_code != code:
            raise CaseFailed(f"the switch answered the bank's transfer {e2e} "
                             f"{status_text(got)}, not RJCT {code}: the bank's message "
                             f"(exchange {ctx.number(sent)}) was not what the case asked")
        rejected.append((e2e, code))
        ctx.note(f"the bank sent {e2e}; the switch answered RJCT {code}")
    await asyncio.sleep(RESEND_WATCH_S)
    for e2e, code in rejected:
        copies = copies_of(ctx, e2e)
        due = 2 if code == reasons.DUPLICATE else 1
        if len(copies) > due:
            raise CaseFailed(f"the bank sent {e2e} {count(len(copies), 'time')} after the switch "
                             f"rejected it {code} (exchange {ctx.number(copies[-1])}): a "
                             "rejection is final")
    await asyncio.sleep(BOOK_PAUSE_S)
    moved = (await ctx.balance(account)).balance_vnd - before.balance_vnd
    if moved:
        raise CaseFailed(f"after three transfers the switch rejected (DUPL, AM04, AB08), "
                         f"{account.account_id} moved by {moved:+,} VND: a rejected transfer "
                         "takes nothing from the debtor")
    ctx.note(f"{account.account_id} did not move for the three rejected transfers")


@case("debtor.bulk", f"The bank's own bulk of {BULK_ORDER}: one message, statuses pushed, "
      "debited once", ("debtor", "hook", "bulk"), f"""Asked through POST {TRANSFERS_PATH}
      with {BULK_ORDER} transfers at once, the bank sends them in one pacs.008 (NbOfTxs
      {BULK_ORDER}); the switch answers 202 (ACTC) and pushes the final statuses
      ({BULK_ORDER - BULK_REFUSED} ACSC, {BULK_REFUSED} RJCT AC01 from the counterpart), which
      the bank acknowledges 2xx; its debtor's balance moves by the settled ones only, once.""",
      feature="bulk", catches="a bulk sent as many messages, or its statuses booked wrong")
async def debtor_bulk(ctx: Context) -> None:
    account = ctx.accounts.need(OPEN)
    await asyncio.sleep(BOOK_PAUSE_S)
    before = await ctx.balance(account)
    ids = [ctx.new_id() for _ in range(BULK_ORDER)]
    refused = set(ids[:BULK_REFUSED])
    asked_at_s = time.time()
    answer = await ctx.lab.hook("POST", TRANSFERS_PATH, {"transfers": [{
        "end_to_end_id": e2e, "amount_vnd": BULK_AMOUNT_VND,
        "debtor_account": account.account_id, "creditor_agent_bic": COUNTERPART_BIC,
        "creditor_account": "CNTR9999999999" if e2e in refused else COUNTERPART_ACCOUNT,
        "creditor_name": COUNTERPART_HOLDER} for e2e in ids]})
    if answer.status == 404:
        raise NotRun(f"the bank exposes no POST {TRANSFERS_PATH}")
    if answer.status != 202:
        raise CaseFailed(f"POST {TRANSFERS_PATH} with {BULK_ORDER} transfers answered HTTP "
                         f"{answer.status}, not 202: {answer.body[:160].decode(errors='replace')}")
    ctx.note(f"asked the bank to send {BULK_ORDER} transfers of {BULK_AMOUNT_VND:,} VND at once")
    sent = await sent_transfer(ctx, ids[0], asked_at_s)
    message = ctx.message_of(sent)
    carried = (len(message.document.transactions) if message is not None
               and isinstance(message.document, CreditTransferMessage) else 0)
    if carried != BULK_ORDER:
        await asyncio.sleep(RESEND_WATCH_S)
        wanted = set(ids)
        messages = ctx.lab.bank_said(lambda e: e.sender == "bank" and e.case == ctx.lab.case
                                     and bool(wanted & _carried(ctx, e)))
        raise CaseFailed(f"the bank sent the {BULK_ORDER} transfers in "
                         f"{count(len(messages), 'message')} (exchange {ctx.number(sent)} "
                         f"carries {carried}), not one "
                         "pacs.008: a bulk is one message")
    ctx.note(f"the bank sent one pacs.008 of {carried} (exchange {ctx.number(sent)}): the switch "
             f"answered HTTP {sent.status}")
    assert ctx.lab.to_bank is not None
    deadline_s = time.monotonic() + DEBTOR_WAIT_S
    reported: set[str] = set()
    while time.monotonic() < deadline_s and len(reported) < BULK_ORDER:
        for exchange in ctx.lab.bank_said(lambda e: e.sender == "switch"
                                          and e.case == ctx.lab.case):
            report = ctx.message_of(exchange)
            if report is not None and isinstance(report.document, PaymentStatusReport):
                if exchange.status is not None and not 200 <= exchange.status < 300:
                    raise CaseFailed(f"the bank answered the switch's status report of its "
                                     f"bulk (exchange {ctx.number(exchange)}) with HTTP "
                                     f"{exchange.status}, not 2xx")
                reported.update(i.original_end_to_end_id for i in report.document.transactions)
        await asyncio.sleep(0.2)
    if not set(ids) <= reported:
        raise CaseFailed(f"the switch reported {len(set(ids) & reported)} of the bulk's "
                         f"{BULK_ORDER} final statuses to the bank within {DEBTOR_WAIT_S:g} s")
    ctx.note(f"the switch pushed the {BULK_ORDER} final statuses; the bank acknowledged them")
    due = -(BULK_ORDER - BULK_REFUSED) * BULK_AMOUNT_VND
    await asyncio.sleep(BOOK_PAUSE_S)
    moved = (await ctx.balance(account)).balance_vnd - before.balance_vnd
    if moved != due:
        raise CaseFailed(f"after its bulk of {BULK_ORDER} ({BULK_ORDER - BULK_REFUSED} settled, "
                         f"{BULK_REFUSED} rejected AC01), {account.account_id} moved by "
                         f"{moved:+,} VND, not {due:+,}")
    ctx.note(f"{account.account_id} moved by {moved:+,} VND: the settled ones, once")


def _carried(ctx: Context, exchange: Exchange) -> set[str]:
    """The end-to-end ids of the pacs.008 an exchange carries (none for anything else)."""
    message = ctx.message_of(exchange)
    if message is None or not isinstance(message.document, CreditTransferMessage):
        return set()
    return {tx.end_to_end_id for tx in message.document.transactions}


def _expect_own_msg_ids(ctx: Context) -> None:
    """Each pacs.008 the bank sent in this case has a MsgId of its own (GrpHdr/MsgId: the
    switch refuses one reused for other content DU01)."""
    seen: dict[str, Exchange] = {}
    for exchange in ctx.lab.bank_said(lambda e: e.sender == "bank" and e.case == ctx.lab.case):
        message = ctx.message_of(exchange)
        if message is None or not isinstance(message.document, CreditTransferMessage):
            continue
        msg_id = message.document.msg_id
        first = seen.setdefault(msg_id, exchange)
        if first is not exchange and first.request_body != exchange.request_body:
            raise CaseFailed(f"the bank used the MsgId {msg_id} for two different pacs.008 "
                             f"(exchanges {ctx.number(first)} and {ctx.number(exchange)}): "
                             "each message needs its own, the switch refuses a reused one DU01")
