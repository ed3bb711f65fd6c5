"""The creditor's conformance cases (and the first of the debtor's), registered in the test
plan (conformance/plan.py).

A case raises CaseFailed with one sentence, NotApplicable or NotRun; besides, every message
the bank sends while it runs is checked against the schemas and the scheme's rules
(conformance/rules.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

from banks.accounts_file import DECEASED, OPEN, TestAccount
from banks.ledger import BLOCKED, CLOSED
from banks.payout import percentile
from banks.registry import SWITCH_BIC
from conformance.context import (
    OTHER_CURRENCY,
    UNKNOWN_ACCOUNT,
    CaseFailed,
    Context,
    NotApplicable,
    status_text,
)
from conformance.plan import case, other_bank
from conformance.relay import Exchange
from conformance.rules import unmasked
from protocol import reasons
from protocol.codec import new_id
from protocol.hooks import RETURNS_PATH, Balance
from protocol.http import SWITCH_MESSAGES_PATH
from protocol.messages import (
    PaymentReturn,
    PaymentReturnItem,
    PaymentStatusReport,
    Statement,
    TransactionStatus,
    TxStatus,
    VerificationItem,
    VerificationReport,
    VerificationRequest,
)
from protocol.wording import count

BULK_TRANSACTIONS = 1_000
SUSTAINED_RATE_PER_S = 20
SUSTAINED_FOR_S = 2.0
RETURN_WAIT_S = 15.0
WRONG_NAME = "Phạm Thị Khác Tên"
WRONG_CITIZEN_ID = "079301000999"


# ---- as creditor, through the switch ---------------------------------------------------------

@case("creditor.accept", "An instant transfer to an open account is accepted, confirmed, "
      "credited once", ("creditor", "instant", "switch"), """A pacs.008 for an open account,
      forwarded by the switch, is answered with a pacs.002 ACCP within the creditor deadline
      (5 s), with the right head.001 and ids, signed; the switch's ACSC confirmation is
      acknowledged with 2xx; the account is then credited once, by the amount.""",
      catches="a bank that cannot take a plain instant transfer, or credits it twice")
async def accept(ctx: Context) -> None:
    await settled_credit(ctx, ctx.accounts.need(OPEN), 100_000)


async def settled_credit(ctx: Context, account: TestAccount, amount_vnd: int) -> str:
    """Pay the account through the switch and see the transfer settled, confirmed and
    credited once; its end-to-end id."""
    before = await ctx.balance(account)
    e2e, status = await ctx.pay(account.account_id, account.holder_name, amount_vnd,
                                account.citizen_id)
    if status.status is not TxStatus.SETTLED:
        raise CaseFailed(f"the transfer to the open account {account.account_id} ended "
                         f"{status_text(status)}, not ACSC: {ctx.diagnose(e2e, status)}")
    forward = ctx.forward_of(e2e)
    if forward is not None and forward.duration_s is not None:
        ctx.note(f"the bank answered the forward in {forward.duration_s * 1000:.0f} ms")
    await ctx.confirmation(e2e)
    await ctx.expect_credited_once(account, e2e, before, amount_vnd)
    return e2e


def _rejection(name: str, what: str, code: str, status: str | None,
               holder: Callable[[TestAccount], tuple[str, str]] | None = None) -> None:
    """A case: a transfer the bank must refuse with `code`; `status` picks the account (None:
    one the bank does not hold), `holder` the name and citizen id the transfer names."""

    @case(f"creditor.reject-{name}", f"{what}: RJCT {code}", ("creditor", "reasons", "switch"),
          f"""A pacs.008 to {what.lower()}, forwarded by the switch, is answered RJCT with the
          reason code {code} ({reasons.DESCRIPTIONS[code]}), given by the bank, within the
          deadline; nothing is credited.""",
          catches=f"a wrong reason code, an ACCP, or a credit, for {what.lower()}")
    async def reject(ctx: Context) -> None:
        account = ctx.accounts.need(status) if status else None
        if account is None:
            e2e, final = await ctx.pay(UNKNOWN_ACCOUNT, WRONG_NAME, 100_000)
        else:
            before = await ctx.balance(account)
            name_, citizen_id = holder(account) if holder else (account.holder_name,
                                                                account.citizen_id)
            e2e, final = await ctx.pay(account.account_id, name_, 100_000, citizen_id)
        if final.status is not TxStatus.REJECTED or final.reason_originator_bic != ctx.lab.bic:
            raise CaseFailed(f"the transfer to {what.lower()} ended {status_text(final)}, not "
                             f"RJCT {code} from the bank: {ctx.diagnose(e2e, final)}")
        if final.reason_code != code:
            raise CaseFailed(f"the bank answered RJCT {final.reason_code} for {what.lower()}; "
                             f"the scheme's code is {code} ({reasons.DESCRIPTIONS[code]})")
        if account is not None:
            await ctx.expect_not_credited(account, e2e, before, "for a transfer it rejected")


_rejection("unknown-account", "An account the bank does not hold", reasons.WRONG_ACCOUNT, None)
_rejection("closed-account", "A closed account", reasons.CLOSED_ACCOUNT, CLOSED)
_rejection("blocked-account", "A blocked account", reasons.BLOCKED_ACCOUNT, BLOCKED)
_rejection("name-mismatch", "An open account under another holder's name",
           reasons.NAME_MISMATCH, OPEN, lambda a: (WRONG_NAME, a.citizen_id))
_rejection("deceased", "The account of a deceased holder", reasons.CREDITOR_DECEASED, DECEASED)
_rejection("other-currency", "An open account in a currency other than dong",
           reasons.INVALID_ACCOUNT_CURRENCY, OTHER_CURRENCY)


# ---- as creditor, the suite as the scheme ------------------------------------------------------

@case("creditor.no-credit-before-confirmation", "No credit on ACCP, one credit on ACSC",
      ("creditor", "credit", "scheme"), """After answering ACCP the bank only holds the
      amount: the account is not credited until the switch's ACSC confirmation, and is
      credited once after it.""",
      catches="a credit on the bank's own ACCP, before the switch's ACSC")
async def no_credit_before_confirmation(ctx: Context) -> None:
    account = ctx.accounts.need(OPEN)
    before = await ctx.balance(account)
    tx, message, _ = await ctx.accepted(account, 210_000)
    await asyncio.sleep(0.5)
    await ctx.expect_not_credited(account, tx.end_to_end_id, before,
                                  "on its own ACCP, before the switch's ACSC")
    await ctx.confirm(tx, message, TxStatus.SETTLED)
    await ctx.expect_credited_once(account, tx.end_to_end_id, before, 210_000)


@case("creditor.no-credit-after-refusal", "No credit once the switch rejected the transfer",
      ("creditor", "credit", "notices", "holds", "scheme"), """When the switch rejects a
      transfer the bank accepted (RJCT AB05: its answer came too late, and the switch refused
      it), the bank acknowledges the rejection with 2xx, releases the hold (its balance
      query's "held" lists the transfer after ACCP, and no longer after the RJCT) and never
      credits it.""", version=2,
      catches="a credit after the switch's RJCT; a hold never released after RJCT")
async def no_credit_after_refusal(ctx: Context) -> None:
    account = ctx.accounts.need(OPEN)
    tx, message, _ = await ctx.accepted(account, 220_000)
    before = await ctx.balance(account)
    if tx.end_to_end_id not in await ctx.holds(account):
        raise CaseFailed(f"after its ACCP of {tx.end_to_end_id} the bank's balance query does "
                         f"not list it as held on {account.account_id}: a hold must be "
                         "visible until the switch confirms or rejects")
    ctx.note(f"the bank holds {tx.end_to_end_id} after its ACCP")
    await ctx.confirm(tx, message, TxStatus.REJECTED, reasons.TIMEOUT_CREDITOR_AGENT)
    await ctx.expect_released(account, tx.end_to_end_id,
                              "after the switch rejected the transfer (RJCT AB05)")
    await ctx.expect_not_credited(account, tx.end_to_end_id, before,
                                  "after the switch rejected the transfer (RJCT AB05)")


@case("creditor.redelivery", "The same transfer delivered twice is credited once",
      ("creditor", "duplicates", "scheme"), """The same pacs.008, byte for byte, delivered twice
      (newly signed) is answered consistently both times (the same status for the end-to-end
      id); after the ACSC the account is credited once.""",
      catches="a redelivered pacs.008 booked twice, or answered otherwise")
async def redelivery(ctx: Context) -> None:
    account = ctx.accounts.need(OPEN)
    before = await ctx.balance(account)
    tx, message, body = await ctx.accepted(account, 230_000)
    again = await ctx.bank_verdicts(await ctx.lab.post_to_bank(body), message)
    second = again.get(tx.end_to_end_id)
    if second is None or second.status is not TxStatus.ACCEPTED:
        raise CaseFailed(f"delivered a second time, the same transfer was answered "
                         f"{status_text(second)}, not ACCP as the first time")
    ctx.note("as the switch, delivered the same pacs.008 again: the bank answered ACCP again")
    await ctx.confirm(tx, message, TxStatus.SETTLED)
    await ctx.expect_credited_once(account, tx.end_to_end_id, before, 230_000)


@case("creditor.confirmation-twice", "A confirmation posted twice books once",
      ("creditor", "notices", "duplicates", "scheme"), """The switch's ACSC confirmation
      posted twice (as after a switch restart) is acknowledged with 2xx both times, and the
      account is credited once.""",
      catches="a redelivered ACSC credited twice, or refused")
async def confirmation_twice(ctx: Context) -> None:
    account = ctx.accounts.need(OPEN)
    before = await ctx.balance(account)
    tx, message, _ = await ctx.accepted(account, 240_000)
    await ctx.confirm(tx, message, TxStatus.SETTLED)
    await ctx.confirm(tx, message, TxStatus.SETTLED)
    await ctx.expect_credited_once(account, tx.end_to_end_id, before, 240_000)


@case("creditor.verification", "acmt.023 answered with the right verdicts, no name unmasked",
      ("creditor", "acmt", "identity", "scheme"), """An acmt.023 is answered with an acmt.024,
      one Rpt per Vrfctn in order: the holder with the right name and citizen ID verified;
      another name BE01 with the holder's name masked (N***** T** R*); another citizen ID BE17;
      an unknown account AC01; a closed account AC04. The holder's full name appears nowhere
      in the answer.""",
      feature="verification", catches="a wrong verdict, a full name shown, a reordered answer")
async def verification(ctx: Context) -> None:
    account = ctx.accounts.need(OPEN)
    closed = ctx.accounts.by_status.get(CLOSED)
    bic = ctx.lab.bic
    asked = [
        (VerificationItem("V1", account.holder_name, account.citizen_id, account.account_id,
                          bic), True, None),
        (VerificationItem("V2", WRONG_NAME, account.citizen_id, account.account_id, bic),
         False, reasons.NAME_MISMATCH),
        (VerificationItem("V3", account.holder_name, WRONG_CITIZEN_ID, account.account_id,
                          bic), False, reasons.CITIZEN_ID_MISMATCH),
        (VerificationItem("V4", WRONG_NAME, WRONG_CITIZEN_ID, UNKNOWN_ACCOUNT, bic), False,
         reasons.WRONG_ACCOUNT),
    ]
    if closed is not None:
        asked.append((VerificationItem("V5", closed.holder_name, closed.citizen_id,
                                       closed.account_id, bic), False, reasons.CLOSED_ACCOUNT))
    request = VerificationRequest(msg_id=new_id("CNV"), created_at=datetime.now(UTC),
                                  assigner_bic=SWITCH_BIC, assignee_bic=bic,
                                  items=[item for item, _, _ in asked])
    answer = await ctx.lab.post_to_bank(ctx.lab.encode(request))
    ctx.note(f"as the switch, asked {count(len(asked), 'verification')}: the bank answered HTTP "
             f"{answer.status}")
    report = answer.document
    if answer.status != 200 or not isinstance(report, VerificationReport):
        raise CaseFailed(f"the bank answered the acmt.023 with HTTP {answer.status} and "
                         f"{'no acmt.024' if report is None else type(report).__name__}, "
                         "not 200 with a readable acmt.024")
    results = {result.original_id: result for result in report.results}
    for item, verified, code in asked:
        result = results.get(item.verification_id)
        if result is None:
            raise CaseFailed(f"the acmt.024 has no Rpt for Vrfctn {item.verification_id}")
        if result.verified != verified or result.reason_code != code:
            said = "true" if result.verified else f"false {result.reason_code}"
            wanted = "true" if verified else f"false {code}"
            raise CaseFailed(f"Vrfctn {item.verification_id} ({_asked(item)}) was answered "
                             f"{said}, not {wanted}")
    if unmasked(account.holder_name, answer.body.decode(errors="replace")):
        raise CaseFailed("the acmt.024 shows the holder's full name: only the masked name "
                         "may be shown, with BE01")
    if results["V2"].masked_name is None:
        raise CaseFailed("the BE01 answer does not show the holder's masked name "
                         "(UpdtdPtyAndAcctId/Pty/Nm)")
    ctx.note("every verdict as expected; the name shown for BE01 is masked: "
             f"{results['V2'].masked_name}")


def _asked(item: VerificationItem) -> str:
    return f"account {item.account_id}, {item.name}, citizen ID {item.citizen_id}"


def _refusal(name: str, what: str, expected_status: str, spoil: Callable[[Context, bytes],
             tuple[bytes, dict[str, str] | None]], accepted: Callable[[int], bool]) -> None:
    """A case: a pacs.008 the bank must refuse, then a valid ACSC for it that must not lead
    to a credit."""

    @case(f"security.{name}", f"{what}: refused", ("security", "scheme"),
          f"""A pacs.008 {what.lower()} is refused with {expected_status}, and nothing comes
          of it: a valid ACSC for its end-to-end id afterwards credits nothing.""",
          catches=f"a bank that takes a pacs.008 {what.lower()}")
    async def refuse(ctx: Context) -> None:
        account = ctx.accounts.need(OPEN)
        before = await ctx.balance(account)
        tx, message = ctx.transfer(account, 250_000)
        body, headers = spoil(ctx, ctx.lab.encode(message))
        answer = await ctx.lab.post_to_bank(body, headers)
        ctx.note(f"as the switch, sent a pacs.008 {what.lower()}: the bank answered HTTP "
                 f"{answer.status}")
        if not accepted(answer.status):
            verdict = answer.document
            accepted_it = isinstance(verdict, PaymentStatusReport) and any(
                i.status is TxStatus.ACCEPTED for i in verdict.transactions)
            raise CaseFailed(f"the bank answered a pacs.008 {what.lower()} with HTTP "
                             f"{answer.status}{' and ACCP' if accepted_it else ''}, not "
                             f"{expected_status}")
        await ctx.confirm(tx, message, TxStatus.SETTLED)
        await asyncio.sleep(0.5)
        await ctx.expect_not_credited(account, tx.end_to_end_id, before,
                                      "for a transfer it should have refused")


def _path(ctx: Context) -> str:
    return ctx.lab.bank_path.split("?", 1)[0]


_refusal("unsigned", "Without signature headers", "401",
         lambda ctx, body: (body, {}), lambda status: status == 401)
_refusal("bad-signature", "With a signature that does not match", "401",
         lambda ctx, body: (body, ctx.lab.signed_headers(_path(ctx), body, spoil=True)),
         lambda status: status == 401)
_refusal("stale-timestamp", "Signed an hour ago", "401 (timestamps at most 300 s off)",
         lambda ctx, body: (body, ctx.lab.signed_headers(_path(ctx), body, age_s=3_600)),
         lambda status: status == 401)


@case("security.wrong-receiver", "Addressed to another bank: refused", ("security", "scheme"),
      """A pacs.008 signed by the switch whose head.001 To names another bank is refused with
      a 4xx (400 FF01 as the switch does, or 403), and a valid ACSC for it afterwards credits
      nothing.""",
      catches="a bank that takes a message addressed to another bank")
async def wrong_receiver(ctx: Context) -> None:
    account = ctx.accounts.need(OPEN)
    before = await ctx.balance(account)
    tx, message = ctx.transfer(account, 260_000)
    elsewhere = other_bank(ctx.lab.bic)
    answer = await ctx.lab.post_to_bank(ctx.lab.encode(message, to_bic=elsewhere))
    ctx.note(f"as the switch, sent a pacs.008 addressed to {elsewhere}: the bank answered HTTP "
             f"{answer.status}")
    if not 400 <= answer.status < 500:
        raise CaseFailed(f"the bank answered a pacs.008 addressed to {elsewhere} with HTTP "
                         f"{answer.status}, not a 4xx refusal")
    await ctx.confirm(tx, message, TxStatus.SETTLED)
    await asyncio.sleep(0.5)
    await ctx.expect_not_credited(account, tx.end_to_end_id, before,
                                  "for a transfer addressed to another bank")


# ---- returns, inquiries, statements ------------------------------------------------------------

@case("creditor.return", "A return refers to the original", ("creditor", "returns", "hook"),
      f"""Asked through POST {RETURNS_PATH} to return a credit (MD07), the bank posts within
      15 s a pacs.004 that is well-formed, signed, and refers to the original: its end-to-end
      id and transaction id, an amount not above it, the reason asked; the switch settles it
      (ACSC).""",
      feature="returns", catches="a return that names another original, amount or reason")
async def make_return(ctx: Context) -> None:
    e2e = await settled_credit(ctx, ctx.accounts.need(OPEN), 270_000)
    posted, item = await ask_return(ctx, e2e)
    if item.original_tx_id != e2e or item.returned_amount_vnd > 270_000 or (
            item.reason_code != reasons.CREDITOR_DECEASED):
        raise CaseFailed(f"the bank's pacs.004 names OrgnlTxId {item.original_tx_id}, "
                         f"{item.returned_amount_vnd:,} VND and {item.reason_code}; the "
                         f"original is {e2e}, 270,000 VND, and MD07 was asked")
    reply = ctx.message_of(posted, answer=True)
    settled = reply is not None and isinstance(reply.document, PaymentStatusReport) and any(
        i.status is TxStatus.SETTLED for i in reply.document.transactions)
    if not settled:
        raise CaseFailed(f"the switch did not settle the bank's return: it answered HTTP "
                         f"{posted.status} {posted.response_body[:160].decode(errors='replace')}")
    ctx.note(f"the bank returned {item.returned_amount_vnd:,} VND of {e2e} ({item.return_id});"
             " the switch settled it")


async def ask_return(ctx: Context, e2e: str, amount_vnd: int | None = None,
                     reason_code: str = reasons.CREDITOR_DECEASED
                     ) -> tuple[Exchange, PaymentReturnItem]:
    """Ask the bank through the hook to return `e2e` (whole, or `amount_vnd` of it); its
    pacs.004 to the switch and the item that refers to `e2e`."""
    asked_at_s = time.time()
    order: dict[str, object] = {"end_to_end_id": e2e, "reason_code": reason_code}
    if amount_vnd is not None:
        order["amount_vnd"] = amount_vnd
    answer = await ctx.lab.hook("POST", RETURNS_PATH, order)
    if answer.status != 202:
        raise CaseFailed(f"POST {RETURNS_PATH} for {e2e} answered HTTP {answer.status}, not "
                         f"202: {answer.body[:160].decode(errors='replace').strip() or '(empty)'}")
    ctx.note(f"asked the bank to return {e2e} ({reason_code}"
             f"{f', {amount_vnd:,} VND' if amount_vnd else ''}): it answered 202")
    assert ctx.lab.to_switch is not None
    posted = await ctx.lab.to_switch.wait_for(
        lambda e: e.started_s >= asked_at_s and e.path == SWITCH_MESSAGES_PATH
        and isinstance(getattr(ctx.message_of(e), "document", None), PaymentReturn),
        RETURN_WAIT_S)
    message = None if posted is None else ctx.message_of(posted)
    if posted is None or message is None or not isinstance(message.document, PaymentReturn):
        raise CaseFailed(f"the bank posted no readable pacs.004 within {RETURN_WAIT_S:g} s of "
                         f"being asked to return {e2e}")
    items = message.document.items
    mine = [i for i in items if i.original_end_to_end_id == e2e]
    if not mine:
        raise CaseFailed(f"the bank's pacs.004 (exchange {ctx.number(posted)}) does not refer "
                         f"to the original: it names OrgnlEndToEndId "
                         f"{', '.join(i.original_end_to_end_id for i in items)}, not {e2e}")
    return posted, mine[0]


@case("creditor.status-inquiry", "pacs.028 answered", ("creditor", "pacs.028"),
      """A pacs.028 status request is answered, where the scheme sends them to participants.""",
      catches="nothing: the scheme never sends it")
async def status_inquiry(ctx: Context) -> None:
    raise NotApplicable("this scheme's switch answers pacs.028; it never sends one to a "
                        "participant, so there is nothing for the bank to answer")


@case("settlement.statement", "The cycle's camt.053 is acknowledged",
      ("settlement", "notices", "switch"), """When a settlement cycle closes the switch posts
      the bank its camt.053 statement; the bank acknowledges it with 2xx.""",
      catches="a statement refused or never acknowledged")
async def statement(ctx: Context) -> None:
    closed = await ctx.lab.admin("POST", "/v1/admin/settlement/close")
    ctx.note(f"the operator closed settlement cycle {closed['cycle_id']}")
    assert ctx.lab.to_bank is not None
    exchange = await ctx.lab.to_bank.wait_for(
        lambda e: e.sender == "switch" and isinstance(
            getattr(ctx.message_of(e), "document", None), Statement), 10.0)
    if exchange is None:
        raise CaseFailed("the switch's camt.053 did not pass the relay within 10 s")
    if exchange.status is None or not 200 <= exchange.status < 300:
        raise CaseFailed(f"the bank answered the camt.053 with HTTP {exchange.status} "
                         f"{exchange.error or ''}, not 2xx: the switch will post it again")
    ctx.note(f"the switch posted the statement; the bank acknowledged HTTP {exchange.status}")


# ---- as creditor, under load ---------------------------------------------------------------

@case("creditor.bulk", f"A bulk pacs.008 of {BULK_TRANSACTIONS:,} answered per transaction",
      ("creditor", "bulk", "switch"), f"""A bulk file of {BULK_TRANSACTIONS:,} transfers to the
      bank reaches it as one pacs.008 of {BULK_TRANSACTIONS:,} transactions; the bank answers
      every one (ACCP) within the deadline, acknowledges the confirmations, and credits each
      once.""",
      feature="bulk", catches="a transaction unanswered or answered twice, a malformed answer")
async def bulk(ctx: Context) -> None:
    account = ctx.accounts.need(OPEN)
    before = await ctx.balance(account)
    ids = [ctx.new_id() for _ in range(BULK_TRANSACTIONS)]
    report = await ctx.lab.pay([ctx.lab.treasury_transfer(
        e2e, account.account_id, account.holder_name, 1_000, account.citizen_id)
        for e2e in ids])
    ctx.note(f"the treasury sent a bulk file of {BULK_TRANSACTIONS:,} transfers of 1,000 VND: "
             f"the switch answered {report.group_status}")
    finals = await ctx.lab.finals(ids, ctx.deadline_s + 30)
    unsettled = [e for e in ids if finals.get(e) is None or finals[e].status
                 is not TxStatus.SETTLED]
    if unsettled:
        first = finals.get(unsettled[0])
        raise CaseFailed(f"{len(unsettled):,} of {BULK_TRANSACTIONS:,} transfers were not "
                         f"settled (the first {status_text(first)}): "
                         f"{ctx.diagnose(unsettled[0], first) if first else 'no final status'}")
    forward = ctx.forward_of(ids[0])
    if forward is not None and forward.duration_s is not None:
        ctx.note(f"the bank answered the {BULK_TRANSACTIONS:,}-transaction forward in "
                 f"{forward.duration_s:.2f} s")
    await ctx.confirmation(ids[-1])
    await _expect_balance(ctx, account, before, BULK_TRANSACTIONS * 1_000)


async def _expect_balance(ctx: Context, account: TestAccount, before: Balance,
                          moved_vnd: int) -> None:
    """The balance moved by `moved_vnd` (waiting up to 10 s for the bank to book)."""
    start = before.balance_vnd
    deadline_s = time.monotonic() + 10.0
    while True:
        now = await ctx.balance(account)
        if now.balance_vnd - start >= moved_vnd or time.monotonic() > deadline_s:
            break
        await asyncio.sleep(0.3)
    if now.balance_vnd - start != moved_vnd:
        raise CaseFailed(f"the balance of {account.account_id} moved by "
                         f"{now.balance_vnd - start:,} VND, not {moved_vnd:,}")
    ctx.note(f"{account.account_id} was credited {moved_vnd:,} VND in all")


@case("creditor.burst", "A burst of concurrent transfers answered within the deadline",
      ("creditor", "load", "switch"), """N instant transfers sent at once (--burst N) are each
      answered within the creditor deadline (5 s): every one settles, none times out (AB05),
      and each is credited once.""",
      catches="a bank that answers one transfer at a time, too slowly")
async def burst(ctx: Context) -> None:
    account = ctx.accounts.need(OPEN)
    before = await ctx.balance(account)
    payments = [ctx.pay(account.account_id, account.holder_name, 2_000, account.citizen_id)
                for _ in range(ctx.burst)]
    outcomes = await asyncio.gather(*payments)
    del ctx.notes[-len(outcomes):]  # one line for the burst, not one per transfer
    durations = sorted(f.duration_s or 0.0 for f in (ctx.forward_of(e) for e, _ in outcomes)
                       if f is not None)
    ctx.note(f"the treasury sent {count(ctx.burst, 'instant transfer')} of 2,000 VND at once; the "
             f"bank's answers took {percentile(durations, 50):.2f} s (median), "
             f"{max(durations, default=0.0):.2f} s (slowest)")
    late = [(e, s) for e, s in outcomes if s.status is not TxStatus.SETTLED]
    if late:
        e2e, status = late[0]
        raise CaseFailed(f"{len(late)} of {count(ctx.burst, 'concurrent transfer')} were not "
                         f"settled (the first {status_text(status)}): {ctx.diagnose(e2e, status)}")
    for e2e, _ in outcomes:
        await ctx.confirmation(e2e)
    del ctx.notes[-len(outcomes):]
    await _expect_balance(ctx, account, before, ctx.burst * 2_000)


@case("creditor.sustained", f"{SUSTAINED_RATE_PER_S} transfers a second for "
      f"{SUSTAINED_FOR_S:g} s, with the bank's p50 and p99", ("creditor", "load", "switch"),
      f"""Instant transfers sent at a steady {SUSTAINED_RATE_PER_S} a second for
      {SUSTAINED_FOR_S:g} s (not a burst): every one is answered within the creditor deadline
      and settles; the report gives the bank's answer times measured at the relay, median
      (p50) and 99th percentile (p99).""",
      catches="a bank that keeps up with a burst but falls behind a steady rate")
async def sustained(ctx: Context) -> None:
    account = ctx.accounts.need(OPEN)
    before = await ctx.balance(account)
    sent = int(SUSTAINED_RATE_PER_S * SUSTAINED_FOR_S)
    started_s = time.monotonic()

    async def one(number: int) -> tuple[str, TransactionStatus]:
        await asyncio.sleep(max(0.0, started_s + number / SUSTAINED_RATE_PER_S
                                - time.monotonic()))
        return await ctx.pay(account.account_id, account.holder_name, 3_000,
                             account.citizen_id)

    outcomes = await asyncio.gather(*(one(n) for n in range(sent)))
    del ctx.notes[-len(outcomes):]
    took_ms = sorted((f.duration_s or 0.0) * 1000 for f in (ctx.forward_of(e) for e, _ in
                                                            outcomes) if f is not None)
    p50_ms, p99_ms = percentile(took_ms, 50), percentile(took_ms, 99)
    ctx.measured.append(f"p50 {p50_ms:,.0f} ms, p99 {p99_ms:,.0f} ms")
    ctx.note(f"the treasury sent {count(sent, 'instant transfer')} of 3,000 VND at "
             f"{SUSTAINED_RATE_PER_S} a second; the bank answered in {p50_ms:,.0f}"
             f" ms (p50), {p99_ms:,.0f} ms (p99), "
             f"{max(took_ms, default=0.0):,.0f} ms (slowest)")
    late = [(e, s) for e, s in outcomes if s.status is not TxStatus.SETTLED]
    if late:
        e2e, status = late[0]
        raise CaseFailed(f"{len(late)} of {count(sent, 'transfer')} sent at "
                         f"{SUSTAINED_RATE_PER_S} a second were not settled (the first "
                         f"{status_text(status)}): "
                         f"{ctx.diagnose(e2e, status)}; p50 {p50_ms:,.0f} ms, "
                         f"p99 {p99_ms:,.0f} ms")
    await _expect_balance(ctx, account, before, sent * 3_000)
