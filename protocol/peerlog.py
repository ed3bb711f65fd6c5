"""Clients' failures in a server's log: one line each, never a traceback, and bounded.

What a client does wrong (a head that does not authenticate, a body that cannot be decoded, a
connection dropped mid-body) is the client's problem, not the server's: it is logged as one
line naming the peer's address. So that no client, least of all an unauthenticated one, can
fill a disk, each peer gets at most `lines_per_peer` lines an interval and all peers together
`lines_per_interval`; what is held back is counted, and when the interval ends one line per
peer (at most `lines_per_interval` of them, then one line for the rest) says how many more
failures it had, naming the signers the peer claimed to be (at most MAX_SIGNERS_NAMED), so an
operator sees whose credentials are being tried. A server's own defects (an exception in a
handler) keep their traceback, but go through the same bounds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

INTERVAL_S = 10.0
LINES_PER_PEER = 3
LINES_PER_INTERVAL = 100
MAX_PEERS_COUNTED = 10_000  # beyond, held-back failures are counted in one total
MAX_LINE_CHARS = 300
MAX_SIGNERS_NAMED = 3  # claimed signers named in a peer's summary line
MAX_SIGNER_CHARS = 40

log = logging.getLogger("protocol.peers")


class FailureLog:
    """Bounded lines about clients' failures (the module's docstring says how)."""

    def __init__(self, logger: logging.Logger = log, interval_s: float = INTERVAL_S,
                 lines_per_peer: int = LINES_PER_PEER,
                 lines_per_interval: int = LINES_PER_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._clock = clock
        self.interval_s = interval_s
        self.lines_per_peer = lines_per_peer
        self.lines_per_interval = lines_per_interval
        self._started_s = self._clock()
        self._lines = 0
        self._written: Counter[str] = Counter()
        self._held: Counter[str] = Counter()
        self._held_elsewhere = 0
        self._signers: dict[str, set[str]] = {}  # peer -> signers claimed in what is held
        self._flush: asyncio.TimerHandle | None = None

    def client(self, peer: str, what: str, claimed_signer: str | None = None) -> None:
        """One failure of the client at `peer` (an address), which claimed to be
        `claimed_signer` (a signature's keyid, as sent) when known: a line, or a count."""
        signer = None if claimed_signer is None else _signer(claimed_signer)
        said = f"client {peer[:64]}: {_one_line(what)}"
        if signer is not None and signer not in said:
            said += f" (claimed signer {signer})"
        if self._write(peer, logging.WARNING, said, None) or signer is None:
            return
        named = self._signers.setdefault(peer, set()) if peer in self._held else None
        if named is not None and len(named) < MAX_SIGNERS_NAMED:
            named.add(signer)

    def defect(self, peer: str, what: str, error: BaseException) -> None:
        """An exception of this server while serving `peer`: its traceback, within bounds."""
        self._write(peer, logging.ERROR, f"serving {peer[:64]}: {_one_line(what)}", error)

    def _write(self, peer: str, level: int, line: str, error: BaseException | None) -> bool:
        """Whether the line was written (False: counted, for the interval's summary)."""
        self._roll()
        if self._written[peer] >= self.lines_per_peer or self._lines >= self.lines_per_interval:
            if peer in self._held or len(self._held) < MAX_PEERS_COUNTED:
                self._held[peer] += 1
            else:
                self._held_elsewhere += 1
            self._arm()
            return False
        self._written[peer] += 1
        self._lines += 1
        self._log.log(level, "%s", line, exc_info=error)
        return True

    def _arm(self) -> None:
        if self._flush is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: the next failure rolls the interval over
        due_s = max(0.0, self._started_s + self.interval_s - self._clock())
        self._flush = loop.call_later(due_s, self._on_timer)

    def _on_timer(self) -> None:
        self._flush = None
        self._roll(force=True)

    def _roll(self, force: bool = False) -> None:
        """At the end of an interval: say what was held back, and start afresh."""
        if not force and self._clock() - self._started_s < self.interval_s:
            return
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        for peer, count in self._held.most_common(self.lines_per_interval):
            signers = sorted(self._signers.get(peer, ()))
            claimed = f" (claimed signer {', '.join(signers)})" if signers else ""
            self._log.warning("client %s: %d more failures in the last %.0f s%s, not logged "
                              "one by one", peer[:64], count, self.interval_s, claimed)
        rest = sum(self._held.values()) - sum(
            count for _, count in self._held.most_common(self.lines_per_interval))
        if rest or self._held_elsewhere:
            self._log.warning("%d more failures from other clients in the last %.0f s, not "
                              "logged", rest + self._held_elsewhere, self.interval_s)
        self._started_s = self._clock()
        self._lines = 0
        self._written.clear()
        self._held.clear()
        self._signers.clear()
        self._held_elsewhere = 0


def _signer(claimed: str) -> str:
    """A claimed keyid as a log may show it: printable, bounded, quoted when odd."""
    shown = "".join(c if c.isprintable() and not c.isspace() else "?" for c in claimed)
    shown = shown[:MAX_SIGNER_CHARS]
    return shown if shown.isalnum() else repr(shown)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:MAX_LINE_CHARS]
