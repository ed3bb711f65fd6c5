"""The request ids (RFC 9421 `nonce`) a server has taken, remembered for as long as a signature
can be accepted, so that a captured request replayed within that window is refused.

Each id is kept until the signature it came in can no longer be accepted: signing.MAX_AGE_S
after its `created`, which is at most signing.FUTURE_SKEW_S ahead of our clock. Ids are
forgotten in the order they were taken (one deque), so remembering and forgetting cost O(1).
The memory is a process's own and starts empty, so a server remembers nothing from before it
started: a request signed before then (`created` earlier than the second it started) is
refused, since an earlier run of the server may have taken its id; honest clients sign every
attempt anew, so only a replay across a restart is refused.
An id counts as taken only once the whole request verified (its body matches the signed
Content-Digest): the head alone is checked with `seen`, which takes nothing, so that a signed
head captured on the way and sent first with another body cannot use up the sender's id
(issue #22's gap). Two requests with one id racing each other both pass `seen`; `take`, one
step of the event loop, lets exactly one of them through.
The memory is bounded: at `max_ids` ids in the window, a new request is refused (503) rather
than the oldest forgotten, since forgetting it early would let it be replayed. Measured: ~190
bytes an id besides its nonce (~250 MB at the bound of a million, which holds 3,300 requests a
second for the whole window) and ~7 µs a take on this loaded 2-core VM.
"""

from __future__ import annotations

import time
from collections import deque

from protocol.signing import FUTURE_SKEW_S, MAX_AGE_S
from protocol.wording import count

DEFAULT_MAX_IDS = 1_000_000


class ReplayWindowFull(Exception):
    """More requests in the acceptance window than the server remembers ids for."""


class RequestIds:
    """Ids taken, by signer, within the acceptance window."""

    def __init__(self, max_ids: int = DEFAULT_MAX_IDS, since_s: float | None = None) -> None:
        self.max_ids = max_ids
        # The whole second this memory started in (unix s): `created` is whole seconds.
        self.since_s = int(time.time() if since_s is None else since_s)
        self._taken: set[tuple[str, str]] = set()
        self._by_expiry: deque[tuple[float, tuple[str, str]]] = deque()

    def predates(self, created_s: int) -> bool:
        """Whether a signature `created_s` (unix s) comes from before this memory started: its
        request id may have been taken by an earlier run of the server (issue #22, a replay
        across a restart)."""
        return created_s < self.since_s

    def seen(self, signer: str, nonce: str, now_s: float | None = None) -> bool:
        """Whether `signer`'s request id was taken within the window; takes nothing. Raises
        ReplayWindowFull when `max_ids` are remembered (a new id could not be taken)."""
        self._forget(time.time() if now_s is None else now_s)
        if (signer, nonce) in self._taken:
            return True
        self._check_room()
        return False

    def take(self, signer: str, nonce: str, now_s: float | None = None) -> bool:
        """Remember `signer`'s request id; False when it was already taken within the window.
        Raises ReplayWindowFull when `max_ids` are remembered."""
        now = time.time() if now_s is None else now_s
        self._forget(now)
        key = (signer, nonce)
        if key in self._taken:
            return False
        self._check_room()
        self._taken.add(key)
        self._by_expiry.append((now + MAX_AGE_S + FUTURE_SKEW_S, key))
        return True

    def _check_room(self) -> None:
        if len(self._taken) >= self.max_ids:
            raise ReplayWindowFull(f"{count(len(self._taken), 'request id')} in the last "
                                   f"{MAX_AGE_S} s, the most remembered")

    def __len__(self) -> int:
        return len(self._taken)

    def _forget(self, now: float) -> None:
        while self._by_expiry and self._by_expiry[0][0] <= now:
            self._taken.discard(self._by_expiry.popleft()[1])
