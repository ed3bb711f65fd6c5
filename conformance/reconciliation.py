"""The case that ends every run: the bank's books, read through its hooks, against what the
scheme decided. Every transfer of this run the bank credited must be one the switch (or the
suite as the scheme) settled, every one settled must be credited, none may still be held once
decided, and each account's balance must have moved by exactly the settled credits, less the
returns the switch settled, plus the returns of the bank's own transfers, less those
transfers. Each difference is named with its end-to-end id and amount.
"""

from __future__ import annotations

from banks.accounts_file import OPEN, TestAccount
from conformance.context import RUN_TOKEN, CaseFailed, Context
from conformance.plan import case
from protocol.messages import (
    CreditTransferMessage,
    PaymentReturn,
    PaymentStatusReport,
    TxStatus,
)
from protocol.wording import count

MAX_NAMED = 5  # differences named per kind in the sentence; the steps list them all
OPENING = "opening balances"  # the lab's note of each account's balance before the cases


async def take_opening_balances(ctx: Context) -> None:
    """Each test account's balance before the first case (the reconciliation's start)."""
    for account in ctx.accounts.by_status.values():
        ctx.lab.opening_balances[account.account_id] = (await ctx.balance(account)).balance_vnd


def _of_this_run(e2e: str) -> bool:
    return e2e.startswith(f"CNF{RUN_TOKEN}")


def _bank_returns(ctx: Context) -> dict[str, int]:
    """End-to-end id -> amount of each return the bank posted and the switch settled."""
    settled: dict[str, int] = {}
    for exchange in ctx.lab.bank_said(lambda e: e.sender == "bank"):
        message, reply = ctx.message_of(exchange), ctx.message_of(exchange, answer=True)
        if (message is None or not isinstance(message.document, PaymentReturn)
                or reply is None or not isinstance(reply.document, PaymentStatusReport)):
            continue
        ok = {i.original_end_to_end_id for i in reply.document.transactions
              if i.status is TxStatus.SETTLED}
        settled.update((i.original_end_to_end_id, i.returned_amount_vnd)
                       for i in message.document.items if i.original_end_to_end_id in ok)
    return settled


async def _bank_transfers(ctx: Context) -> dict[str, int]:
    """End-to-end id -> amount of each transfer the bank sent as debtor that the switch's
    journal holds settled (or settled and returned)."""
    sent: dict[str, int] = {}
    for exchange in ctx.lab.bank_said(lambda e: e.sender == "bank"):
        message = ctx.message_of(exchange)
        if message is not None and isinstance(message.document, CreditTransferMessage):
            sent.update((t.end_to_end_id, t.amount_vnd) for t in message.document.transactions)
    settled = {}
    for e2e, amount_vnd in sent.items():
        journal = await ctx.lab.admin_or_none("GET", f"/v1/admin/transfers/{e2e}")
        if journal is not None and journal.get("state") in ("SETTLED", "RETURNED"):
            settled[e2e] = amount_vnd
    return settled


@case("reconciliation.books", "The bank's books agree with the switch's", ("reconciliation",),
      """At the end of the run, through the balance hook: every transfer of this run the bank
      credited was settled (by the switch, or by the suite as the scheme); every settled one
      is credited; nothing decided is still held; and each account's balance moved by exactly
      its settled credits, less the returns the switch settled, plus the returns of the bank's
      own transfers, less those transfers. Every difference is named.""", role="any",
      catches="credits of transfers the switch rejected (a late answer, then a credit "
      "anyway); a hold never released; a return booked twice or not at all")
async def reconcile(ctx: Context) -> None:
    lab = ctx.lab
    decided = {e2e: status for e2e, status in lab.outcomes().items()} | lab.scheme_outcomes
    returned = _bank_returns(ctx)
    own_sent = await _bank_transfers(ctx)
    differences: list[str] = []
    for account in ctx.accounts.by_status.values():
        differences += await _account(ctx, account, decided, returned, own_sent)
    ctx.note(f"reconciled {count(len(decided), 'transfer')} the scheme decided, "
             f"{count(len(returned), 'return')} the switch settled and "
             f"{count(len(own_sent), 'transfer')} the bank sent")
    if differences:
        for difference in differences:
            ctx.note(difference)
        shown = "; ".join(differences[:MAX_NAMED])
        more = f" (and {len(differences) - MAX_NAMED} more, in the steps)" if len(
            differences) > MAX_NAMED else ""
        raise CaseFailed(f"the bank's books differ from the scheme's in "
                         f"{count(len(differences), 'way')}: {shown}{more}")


async def _account(ctx: Context, account: TestAccount, decided: dict[str, TxStatus],
                   returned: dict[str, int], own_sent: dict[str, int]) -> list[str]:
    lab = ctx.lab
    balance = await ctx.balance(account)
    mine = {e2e: amount for e2e, (account_id, amount) in lab.paid.items()
            if account_id == account.account_id}
    mine |= {e2e: amount for e2e, (account_id, amount) in lab.scheme_paid.items()
             if account_id == account.account_id}
    credited = [e2e for e2e in balance.credited if _of_this_run(e2e)]
    found = []
    for e2e in credited:
        status = decided.get(e2e)
        if status is not TxStatus.SETTLED:
            said = "rejected it" if status is TxStatus.REJECTED else "never settled it"
            found.append(f"{account.account_id} credited {e2e} ({mine.get(e2e, 0):,} VND) "
                         f"but the scheme {said}")
    for e2e, amount_vnd in mine.items():
        if decided.get(e2e) is TxStatus.SETTLED and e2e not in balance.credited:
            found.append(f"{e2e} ({amount_vnd:,} VND to {account.account_id}) was settled but "
                         "the bank does not list it as credited")
    for e2e in balance.held or []:
        if _of_this_run(e2e) and e2e in decided:
            found.append(f"{account.account_id} still holds {e2e} which the scheme "
                         f"{'settled' if decided[e2e] is TxStatus.SETTLED else 'rejected'}")
    opening = lab.opening_balances.get(account.account_id)
    if opening is not None:
        due = (opening + sum(a for e, a in mine.items() if decided.get(e) is TxStatus.SETTLED)
               - sum(a for e, a in returned.items() if e in mine))
        if account == ctx.accounts.by_status.get(OPEN):  # the debtor cases pay from it alone
            due += (sum(lab.returns_to_bank.get(e, 0) for e in own_sent)
                    - sum(own_sent.values()))
        if balance.balance_vnd != due:
            found.append(f"{account.account_id}'s balance is {balance.balance_vnd:,} VND; the "
                         f"scheme's books say {due:,} ({balance.balance_vnd - due:+,} VND)")
    return found
