"""What a hostile peer sends the bank's endpoint, signed or not: the bank must refuse what
the switch refuses (docs/participants.md, "What is refused, and when"), and nothing may come
of it: a valid ACSC for the same end-to-end id afterwards credits nothing.

Each case sends one spoiled pacs.008 through the suite's relay. A refusal is a 4xx, or for
what the switch itself answers per transaction (amounts, currency, creditor agent) a pacs.002
that rejects it; an ACCP is never one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from http import HTTPStatus

from banks.accounts_file import OPEN
from banks.registry import SWITCH_BIC
from conformance.context import CaseFailed, Context
from conformance.plan import case, other_bank
from protocol import codec
from protocol.http import wrap
from protocol.messages import CreditTransfer, CreditTransferMessage, PaymentStatusReport, TxStatus
from protocol.transport import BANK_MAX_BODY_BYTES, MIB
from protocol.wording import count

SETTLE_PAUSE_S = 0.5


@dataclass(frozen=True, slots=True)
class Sent:
    """What the case sends: the body, its headers (None: signed as the switch), its
    Content-Type."""

    body: bytes
    headers: dict[str, str] | None = None
    content_type: str = "application/xml"


Spoil = Callable[[Context, CreditTransfer, CreditTransferMessage], Sent]


def _path(ctx: Context) -> str:
    return ctx.lab.bank_path.split("?", 1)[0]


def _hostile(name: str, title: str, what: str, refusal: str, spoil: Spoil, catches: str,
             per_transaction: bool = False) -> None:
    """A case: a pacs.008 `what`, which the bank must refuse with `refusal` (a 4xx; or, when
    `per_transaction`, a pacs.002 RJCT too), and must never credit."""

    @case(f"security.{name}", title, ("security", "hostile", "scheme"),
          f"""A pacs.008 {what} is refused ({refusal}), as the switch refuses it, and nothing
          comes of it: a valid ACSC for its end-to-end id afterwards credits nothing.""",
          catches=catches)
    async def hostile(ctx: Context) -> None:
        account = ctx.accounts.need(OPEN)
        before = await ctx.balance(account)
        tx, message = ctx.transfer(account, 280_000)
        sent = spoil(ctx, tx, message)
        answer = await ctx.lab.post_to_bank(sent.body, sent.headers, sent.content_type)
        verdict = answer.document
        rejected = (per_transaction and answer.status == 200
                    and isinstance(verdict, PaymentStatusReport) and bool(verdict.transactions)
                    and all(i.status is TxStatus.REJECTED for i in verdict.transactions))
        accepted = isinstance(verdict, PaymentStatusReport) and any(
            i.status is TxStatus.ACCEPTED for i in verdict.transactions)
        said = f"HTTP {answer.status}" + (" and ACCP" if accepted else "")
        ctx.note(f"as the switch, sent a pacs.008 {what}: the bank answered {said}")
        if not (400 <= answer.status < 500 or rejected):
            raise CaseFailed(f"the bank answered a pacs.008 {what} with {said}, not "
                             f"{refusal}: the switch refuses it, and so must the bank")
        await ctx.confirm(tx, message, TxStatus.SETTLED)
        await asyncio.sleep(SETTLE_PAUSE_S)
        await ctx.expect_not_credited(account, tx.end_to_end_id, before,
                                      f"for a pacs.008 {what}")


def _encoded(ctx: Context, message: CreditTransferMessage, from_bic: str = SWITCH_BIC) -> bytes:
    return codec.encode(wrap(from_bic, ctx.lab.bic, message))


def _one(message: CreditTransferMessage, **changes: object) -> CreditTransferMessage:
    """The message with its one transaction changed."""
    return replace(message, transactions=[replace(message.transactions[0], **changes)])


_hostile("wrong-sender", "head.001 Fr another bank: refused",
         "signed by the switch whose head.001 Fr names another bank", "403 or 400",
         lambda ctx, tx, m: Sent(_encoded(ctx, m, other_bank(ctx.lab.bic))),
         "a bank that takes a message whose head.001 sender is not its signer")
_hostile("wrong-signer", "A valid signature under another signer's BIC: refused",
         "whose signature is the switch's key's but names another participant as signer",
         "401",
         lambda ctx, tx, m: Sent(body := ctx.lab.encode(m), ctx.lab.signed_headers(
             _path(ctx), body, signer_bic=other_bank(ctx.lab.bic))),
         "a bank that checks the MAC but not whose BIC it is under")
_hostile("replay-other-path", "A signature made for another path: refused",
         "signed over another path than the bank's inbound URL", "401",
         lambda ctx, tx, m: Sent(body := ctx.lab.encode(m), ctx.lab.signed_headers(
             "/v1/messages", body)),
         "a bank that does not check the path the signature covers")
_hostile("dtd", "A DTD with an entity: refused",
         "with a DOCTYPE declaring an entity", "400 FF01",
         lambda ctx, tx, m: Sent(b'<?xml version="1.0"?>\n<!DOCTYPE Envelope [<!ENTITY x '
                                 b'"expanded">]>\n' + ctx.lab.encode(m).split(b"?>", 1)[-1]),
         "a bank whose XML parser reads DTDs and expands entities")
_hostile("content-type", "Content-Type text/plain: refused", "sent as text/plain", "415",
         lambda ctx, tx, m: Sent(ctx.lab.encode(m), content_type="text/plain"),
         "a bank that reads a body the switch would refuse 415")
_hostile("malformed", "A truncated pacs.008: refused", "cut off halfway", "400 FF01",
         lambda ctx, tx, m: Sent((body := ctx.lab.encode(m))[:len(body) // 2]),
         "a bank that answers 200 or 5xx to a body that is no XML")
_hostile("amount-am12", "An amount that is no whole dong: refused",
         "for 1.5 VND", "RJCT AM12 or 400",
         lambda ctx, tx, m: Sent(_encoded(ctx, _one(m, amount_text="1.5", amount_vnd=0))),
         "a bank that accepts an amount the switch refuses AM12", per_transaction=True)
_hostile("amount-am03", "Another currency than VND: refused", "in USD", "RJCT AM03 or 400",
         lambda ctx, tx, m: Sent(_encoded(ctx, _one(m, currency="USD"))),
         "a bank that accepts a currency the switch refuses AM03", per_transaction=True)
_hostile("not-creditor-agent", "A transfer for another creditor agent: refused",
         "whose CdtrAgt is another bank", "RJCT or 4xx",
         lambda ctx, tx, m: Sent(_encoded(ctx, _one(m, creditor_agent_bic=other_bank(
             ctx.lab.bic)))),
         "a bank that credits a transfer meant for another bank", per_transaction=True)


@case("security.replay", "A signed request replayed within the window books once",
      ("security", "hostile", "duplicates", "scheme"), """A pacs.008 the bank accepted is
      replayed byte for byte with its very signature headers, within the 300 s window: the
      bank answers it as before (ACCP) or refuses it (4xx), never takes it as a second
      transfer: after the ACSC the account is credited once.""",
      catches="a bank that books a replayed request as a new transfer")
async def replay(ctx: Context) -> None:
    account = ctx.accounts.need(OPEN)
    before = await ctx.balance(account)
    tx, message = ctx.transfer(account, 290_000)
    body = ctx.lab.encode(message)
    headers = ctx.lab.signed_headers(_path(ctx), body)
    tx, message, _ = await ctx.accepted(account, 290_000, body, headers, (tx, message))
    again = await ctx.lab.post_to_bank(body, headers)
    verdict = again.document
    accepted = isinstance(verdict, PaymentStatusReport) and all(
        i.status is TxStatus.ACCEPTED for i in verdict.transactions)
    ctx.note(f"replayed the same request, headers and all: the bank answered HTTP "
             f"{again.status}{' ACCP' if accepted else ''}")
    if not (accepted or 400 <= again.status < 500):
        raise CaseFailed(f"the bank answered the replayed pacs.008 with HTTP {again.status}, "
                         "neither its first answer (ACCP) nor a 4xx refusal")
    await ctx.confirm(tx, message, TxStatus.SETTLED)
    await ctx.expect_credited_once(account, tx.end_to_end_id, before, 290_000)


OVERSIZED_BYTES = BANK_MAX_BODY_BYTES + MIB  # over a bank's limit, under the relay's


@case("security.oversized-body", "A body over a bank's 8 MiB limit: 413, and the bank stays up",
      ("security", "hostile", "scheme"), f"""A signed pacs.008 of {OVERSIZED_BYTES:,} bytes,
      over the {BANK_MAX_BODY_BYTES:,} bytes a bank takes from the switch (docs/participants.md:
      the scheme's largest message to a bank is a forward of 1,000 items, ~1.3 MB), is refused
      413 without being read whole, and the bank still takes a valid transfer right after.""",
      catches="a bank with no inbound body limit, which reads whatever it is sent")
async def oversized_body(ctx: Context) -> None:
    account = ctx.accounts.need(OPEN)
    before = await ctx.balance(account)
    tx, message = ctx.transfer(account, 310_000)
    encoded = ctx.lab.encode(message)  # padded after the root: well-formed, and too large
    body = encoded + b"<!--" + b"x" * (OVERSIZED_BYTES - len(encoded) - 7) + b"-->"
    answer = await ctx.lab.post_to_bank(body)
    ctx.note(f"as the switch, sent a signed pacs.008 of {count(len(body), 'byte')}: the bank "
             f"answered "
             f"HTTP {answer.status}")
    if answer.status != HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
        raise CaseFailed(f"the bank answered a body of {count(len(body), 'byte')} with HTTP "
                         f"{answer.status}, not 413: a bank takes at most "
                         f"{BANK_MAX_BODY_BYTES:,} bytes from the switch and reads no more")
    tx, message, _ = await ctx.accepted(account, 310_000)  # still up, and takes the next
    await ctx.confirm(tx, message, TxStatus.SETTLED)
    await ctx.expect_credited_once(account, tx.end_to_end_id, before, 310_000)
