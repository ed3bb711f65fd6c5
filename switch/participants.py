"""Who is in the scheme, and whether each can be reached right now.

A creditor that is signed off, or that has failed several calls in a row, is refused at once
(AB08) rather than letting every transfer to it wait out the full deadline; after a cool-down one
transfer is let through as a probe, and the first success closes the breaker again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import aiohttp

from protocol import reasons
from protocol.codec import CodecError
from protocol.http import Peer, Reply
from protocol.messages import Document
from protocol.signing import Credentials
from switch.config import ParticipantConfig, SwitchConfig
from switch.events import SwitchEvents

log = logging.getLogger(__name__)


class Call(Enum):
    """What the breaker grants one call to a participant."""

    REFUSED = "refused"  # open, or the one probe already under way: AB08 without sending
    ORDINARY = "ordinary"  # closed
    PROBE = "probe"  # the one call let through after the cool-down


@dataclass(slots=True)
class Breaker:
    """Consecutive transport failures open it; after `cooldown_s` one call goes through as a
    probe, and its success closes it again.

    The probe is granted only when a call begins (`begin`) and is given back when that call
    ends (`end`), whatever its outcome; `admits` only looks. So a transfer refused for another
    reason after the breaker let it in (AM04, DUPL, a refused write) holds no probe, and a
    healthy creditor cannot be cut off for good (issue #21: it got AB08 until an operator
    signed it on again). Times are the event loop's clock (monotonic), in seconds.
    """

    failures_to_open: int
    cooldown_s: float
    consecutive_failures: int = 0
    open_until_s: float = 0.0
    probing: bool = False  # the probe's call is under way

    def admits(self, now_s: float) -> bool:
        """Whether a transfer to this participant may be taken now; changes nothing."""
        if self.consecutive_failures < self.failures_to_open:
            return True
        return now_s >= self.open_until_s and not self.probing

    def begin(self, now_s: float) -> Call:
        """A call is about to be sent: closed, an ordinary call; open and cooled down with no
        probe under way, this call is the probe; otherwise refused. End it with `end`."""
        if self.consecutive_failures < self.failures_to_open:
            return Call.ORDINARY
        if now_s < self.open_until_s or self.probing:
            return Call.REFUSED
        self.probing = True
        return Call.PROBE

    def end(self, call: Call, succeeded: bool | None, now_s: float) -> None:
        """The call `begin` granted is over: it succeeded, failed, or (None) ended without a
        verdict (nothing sent, a bug). A probe is given back in every case."""
        if call is Call.PROBE:
            self.probing = False
        if call is Call.REFUSED or succeeded is None:
            return
        if succeeded:
            self.consecutive_failures = 0
            return
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.failures_to_open:
            self.open_until_s = now_s + self.cooldown_s

    def close(self) -> None:
        """The operator signed the participant on: forget its failures."""
        self.consecutive_failures = 0

    @property
    def is_open(self) -> bool:
        return self.consecutive_failures >= self.failures_to_open


class Participant:
    """One admitted participant: its settings, its channel, its health."""

    def __init__(self, config: ParticipantConfig, switch: SwitchConfig,
                 session: aiohttp.ClientSession, events: SwitchEvents,
                 credentials: Credentials) -> None:
        self.config = config
        self.bic = config.bic
        self.position_limit_vnd = config.position_limit_vnd
        self.signed_off = False
        self.breaker = Breaker(switch.breaker_failures, switch.breaker_cooldown_s)
        self.events = events
        self.peer = Peer(
            session, config.inbound_url, switch.bic, credentials, config.bic,
            timeout_s=switch.creditor_timeout_s,
        )

    def admits(self, now_s: float) -> bool:
        """Whether a transfer to it may be taken now (`now_s`: the event loop's clock): not
        signed off and its breaker admits. Takes nothing (see Breaker)."""
        return not self.signed_off and self.breaker.admits(now_s)

    async def exchange(self, document: Document, timeout_s: float,
                       answered: Callable[[Reply], bool]) -> tuple[Reply | None, str | None]:
        """Send `document` through the breaker and judge the call: (the reply, None) when
        `answered(reply)` holds; (None, AB05) when it did not answer within `timeout_s`;
        (None, AB08) when the breaker refused it, the call failed (connection, unreadable or
        unsigned answer) or the reply is not what `answered` wants. Transport failures count
        towards opening the breaker; the probe it grants is given back however this ends."""
        loop = asyncio.get_running_loop()
        call = self.breaker.begin(loop.time())
        if call is Call.REFUSED:
            return None, reasons.OFFLINE_CREDITOR_AGENT
        failure: str | None = None
        outcome: tuple[Reply | None, str | None] | None = None
        try:
            try:
                reply = await self.peer.send(document, timeout_s=timeout_s)
            except TimeoutError:
                failure = "no answer within the deadline"
                outcome = None, reasons.TIMEOUT_CREDITOR_AGENT
                return outcome
            except (aiohttp.ClientError, OSError, ValueError, CodecError) as error:
                log.info("call to %s failed: %s", self.bic, error)
                failure = f"unreachable or unreadable: {error}"
                outcome = None, reasons.OFFLINE_CREDITOR_AGENT
                return outcome
            if not answered(reply):
                log.info("%s answered HTTP %d: %s", self.bic, reply.status, reply.text[:200])
                failure = f"answered HTTP {reply.status}"
                outcome = None, reasons.OFFLINE_CREDITOR_AGENT
                return outcome
            outcome = reply, None
            return outcome
        finally:
            self._ended(call, None if outcome is None else failure is None, failure,
                        loop.time())

    def _ended(self, call: Call, succeeded: bool | None, why: str | None, now_s: float) -> None:
        was_open = self.breaker.is_open
        self.breaker.end(call, succeeded, now_s)
        if self.breaker.is_open and not was_open:
            self.events.participant_down.fire(bic=self.bic, reason=why)
        elif was_open and not self.breaker.is_open and not self.signed_off:
            self.events.participant_up.fire(bic=self.bic)

    def sign(self, on: bool) -> None:
        """The operator signs it on (its breaker closes) or off the scheme."""
        self.signed_off = not on
        if on:
            self.breaker.close()
            self.events.participant_up.fire(bic=self.bic)
        else:
            self.events.participant_down.fire(bic=self.bic, reason="signed off")

    def health(self) -> dict[str, object]:
        return {
            "bic": self.bic,
            "name": self.config.name,
            "kind": self.config.kind,
            "signed_off": self.signed_off,
            "breaker_open": self.breaker.is_open,
            "consecutive_failures": self.breaker.consecutive_failures,
            "position_limit_vnd": self.position_limit_vnd,
        }
