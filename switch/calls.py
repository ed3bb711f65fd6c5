"""A call to a participant through its breaker: sent, judged (AB05, AB08), and the book told.

Forwarding (pacs.008) and verification (acmt.023) call participants the same way; this is
that way, once. The probe the breaker grants after its cool-down is taken only here, at the
moment of sending, and given back however the call ends (issue #21).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp

from protocol import reasons
from protocol.codec import CodecError
from protocol.http import Reply
from protocol.messages import Document
from switch.book import Book
from switch.participants import Call, Participant

log = logging.getLogger(__name__)


async def exchange(book: Book, participant: Participant, document: Document, timeout_s: float,
                   answered: Callable[[Reply], bool]) -> tuple[Reply | None, str | None]:
    """Send `document` through the participant's breaker and judge the call: (the reply,
    None) when `answered(reply)` holds; (None, AB05) when it did not answer within
    `timeout_s`; (None, AB08) when the breaker refused it, the call failed (connection,
    unreadable or unsigned answer) or the reply is not what `answered` wants. Transport
    failures count towards opening the breaker."""
    loop = asyncio.get_running_loop()
    bic = participant.bic
    call = book.begin_call(bic, loop.time())
    if call is Call.REFUSED:
        return None, reasons.OFFLINE_CREDITOR_AGENT
    failure: str | None = None
    outcome: tuple[Reply | None, str | None] | None = None
    try:
        try:
            reply = await participant.peer.send(document, timeout_s=timeout_s)
        except TimeoutError:
            failure = "no answer within the deadline"
            outcome = None, reasons.TIMEOUT_CREDITOR_AGENT
            return outcome
        except (aiohttp.ClientError, OSError, ValueError, CodecError) as error:
            log.info("call to %s failed: %s", bic, error)
            failure = f"unreachable or unreadable: {error}"
            outcome = None, reasons.OFFLINE_CREDITOR_AGENT
            return outcome
        if not answered(reply):
            log.info("%s answered HTTP %d: %s", bic, reply.status, reply.text[:200])
            failure = f"answered HTTP {reply.status}"
            outcome = None, reasons.OFFLINE_CREDITOR_AGENT
            return outcome
        outcome = reply, None
        return outcome
    finally:  # no outcome: cancelled, or a bug; the probe is given back all the same
        book.end_call(bic, call, None if outcome is None else failure is None, failure,
                      loop.time())
