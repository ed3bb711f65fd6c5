"""The treasury's side of verification: asking, with acmt.023, whether each payment's account
belongs to the person with the row's citizen id and name, before paying.

Asking again is always safe (a verification moves no money), so a lost answer is simply asked
again, with capped backoff; so is an answer saying the holder's participant did not answer
(AB05, AB06, AB08). What is still unanswered after the retries is not a mismatch: it is
reported unresolved, and a later run asks again.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Final

import aiohttp

from banks.payment_table import Payment
from protocol import reasons
from protocol.codec import CodecError, new_id
from protocol.http import AnswerNotAuthentic, Peer, Reply
from protocol.messages import (
    VerificationItem,
    VerificationReport,
    VerificationRequest,
    VerificationResult,
)
from protocol.retry import with_backoff
from protocol.wording import count

MAX_ITEMS_PER_REQUEST: Final = 1_000  # the switch's limit for one acmt.023
# Answers that say nothing about the account: its participant could not be asked.
UNANSWERED: Final = frozenset({reasons.TIMEOUT_CREDITOR_AGENT,
                               reasons.TIMEOUT_INSTRUCTED_AGENT,
                               reasons.OFFLINE_CREDITOR_AGENT})
MAX_BACKOFF_S: Final = 5.0


class SwitchNotReached(Exception):
    """The switch itself could not be asked: it refuses the treasury (HTTP 401/403: a wrong
    key or BIC, which no retry heals), or could not be reached (refused connection, timeout,
    5xx, an unreadable answer) after every try. The treasury's own failure, not the creditor
    agent's (AB08 is the switch's word that the creditor's participant is offline)."""


def http_answer(reply: Reply) -> str:
    """'HTTP 401: <the body>' (its first 300 characters), the status said once."""
    text = reply.text.strip()[:300]
    text = text.removeprefix(str(reply.status)).strip()
    return f"HTTP {reply.status}: {text}" if text else f"HTTP {reply.status}"


def answered(result: VerificationResult | None) -> bool:
    """Whether a verification result is the holder's participant's word (yes or no)."""
    return result is not None and (result.verified or result.reason_code not in UNANSWERED)


def question(payment: Payment) -> VerificationItem:
    """The acmt.023 question for a payment: by account when the row names one, else by
    citizen id alone (the switch resolves it through its directory)."""
    return VerificationItem(
        verification_id=payment.end_to_end_id, name=payment.full_name,
        citizen_id=payment.citizen_id, account_id=payment.account_id or None,
        agent_bic=payment.creditor_bic or None)


async def verify_payments(peer: Peer, payments: Sequence[Payment], *, concurrency: int,
                          attempts: int, first_backoff_s: float
                          ) -> dict[str, VerificationResult]:
    """Ask the switch about each payment (acmt.023, MAX_ITEMS_PER_REQUEST at a time, at most
    `concurrency` requests at once); returns a result per end-to-end id. Payments whose
    holder's participant the switch could not ask after `attempts` tries carry its AB05/AB08
    (see `answered`). Raises SwitchNotReached at once for a 401/403, and when the switch
    itself gave no answer to a request after `attempts` tries."""
    results: dict[str, VerificationResult] = {}
    failures: dict[str, str] = {}  # a chunk (its first id) -> why the switch gave no answer
    chunks: Iterator[list[Payment]] = (payments[i:i + MAX_ITEMS_PER_REQUEST]
                                       for i in range(0, len(payments), MAX_ITEMS_PER_REQUEST))

    async def ask(chunk: list[Payment]) -> bool:
        key = chunk[0].end_to_end_id
        failures.pop(key, None)
        pending = [p for p in chunk if not answered(results.get(p.end_to_end_id))]
        request = VerificationRequest(
            msg_id=new_id("KBV"), created_at=datetime.now(UTC), assigner_bic=peer.own_bic,
            assignee_bic=peer.peer_bic, items=[question(p) for p in pending])
        try:
            reply = await peer.send(request)
        except AnswerNotAuthentic as error:  # e.g. a --switch-bic that is not the switch's
            failures[key] = (f"at {peer.url} gave no answer signed as --switch-bic "
                             f"{peer.peer_bic} ({error.message})")
            return False
        except (aiohttp.ClientError, OSError, TimeoutError, CodecError) as error:
            failures[key] = (f"could not be reached at {peer.url} "
                             f"({str(error) or type(error).__name__})")
            return False
        if reply.status in (401, 403):
            raise SwitchNotReached(f"the switch at {peer.url} refuses the treasury "
                                   f"{peer.own_bic} (its key, or --switch-bic "
                                   f"{peer.peer_bic}): {http_answer(reply)}")
        report = reply.message.document if reply.message is not None else None
        if reply.status != 200 or not isinstance(report, VerificationReport):
            failures[key] = f"at {peer.url} answered {http_answer(reply)}"
            return False
        asked = {p.end_to_end_id for p in pending}
        results.update((r.original_id, r) for r in report.results if r.original_id in asked)
        return all(answered(results.get(e2e)) for e2e in asked)

    async def work() -> None:
        for chunk in chunks:  # shared: each worker takes the next chunk
            await with_backoff(functools.partial(ask, chunk), attempts=attempts,
                               first_backoff_s=first_backoff_s, max_backoff_s=MAX_BACKOFF_S,
                               done=bool)

    await asyncio.gather(*(work() for _ in range(max(1, min(concurrency, len(payments))))))
    if failures:
        raise SwitchNotReached(f"the switch {next(iter(failures.values()))}, "
                               f"after {count(attempts, 'try', 'tries')}")
    return {p.end_to_end_id: results.get(p.end_to_end_id) or VerificationResult(
        p.end_to_end_id, False, reasons.OFFLINE_CREDITOR_AGENT) for p in payments}
