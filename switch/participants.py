"""Who is in the scheme, and whether each can be reached right now.

A creditor that is signed off, or that has failed several calls in a row, is refused at once
(AB08) rather than letting every transfer to it wait out the full deadline; after a cool-down one
transfer is let through as a probe, and the first success closes the breaker again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiohttp

from protocol.http import Peer
from protocol.signing import Credentials
from switch.config import ParticipantConfig, SwitchConfig
from switch.events import SwitchEvents


@dataclass(slots=True)
class Breaker:
    failures_to_open: int
    cooldown_s: float
    consecutive_failures: int = 0
    open_until_s: float = 0.0  # monotonic time
    probing: bool = False

    def allows(self, now_s: float) -> bool:
        if self.consecutive_failures < self.failures_to_open:
            return True
        if now_s < self.open_until_s or self.probing:
            return False
        self.probing = True
        return True

    def succeeded(self) -> None:
        self.consecutive_failures = 0
        self.probing = False

    def failed(self, now_s: float) -> None:
        self.consecutive_failures += 1
        self.probing = False
        if self.consecutive_failures >= self.failures_to_open:
            self.open_until_s = now_s + self.cooldown_s

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

    def reachable(self) -> bool:
        return not self.signed_off and self.breaker.allows(time.monotonic())

    def failed(self, now_s: float, why: str) -> None:
        """A call to it failed; `now_s` is monotonic time. Opens the breaker after enough."""
        was_open = self.breaker.is_open
        self.breaker.failed(now_s)
        if self.breaker.is_open and not was_open:
            self.events.participant_down.fire(bic=self.bic, reason=why)

    def succeeded(self) -> None:
        was_open = self.breaker.is_open
        self.breaker.succeeded()
        if was_open and not self.signed_off:
            self.events.participant_up.fire(bic=self.bic)

    def sign(self, on: bool) -> None:
        """The operator signs it on (its breaker closes) or off the scheme."""
        self.signed_off = not on
        if on:
            self.breaker.succeeded()
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
