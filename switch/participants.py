"""Who is in the scheme, and whether each can be reached right now.

A creditor that is signed off, or that has failed several calls in a row, is refused at once
(AB08) rather than letting every transfer to it wait out the full deadline; after a cool-down one
transfer is let through as a probe, and the first success closes the breaker again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from protocol.http import Reply
from protocol.messages import Document
from switch.config import ParticipantConfig


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


class Channel(Protocol):
    """How the switch sends a participant a message: signed HTTP (protocol.http.Peer), or
    the simulator's network (sim/)."""

    async def send(self, document: Document, timeout_s: float | None = None) -> Reply: ...


class Participant:
    """One admitted participant: its settings and its channel. Its limit and sign-off are
    changed by the book alone (switch/book.py), which also keeps its breaker."""

    def __init__(self, config: ParticipantConfig, peer: Channel) -> None:
        self.config = config
        self.bic = config.bic
        self.position_limit_vnd = config.position_limit_vnd
        self.signed_off = False
        self.peer = peer
