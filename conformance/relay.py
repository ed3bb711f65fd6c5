"""The recording relay: stands between the switch (or the suite) and the bank under test, and
between the bank and the switch, passes every request on byte for byte and records each
exchange as it was sent, so that a case's evidence is exactly what went over the wire.

One relay forwards to one target (the bank's base URL, or the switch's); it may listen on
several sockets, each naming who sends through it ("switch", "suite", "bank"), so the record
says who spoke without touching a byte. Hop-by-hop headers are not passed on; everything the
signatures cover (path, body, status) is.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from protocol import signing
from protocol.runtime import BoundSocket

MAX_BODY_BYTES = 16 * 1024 * 1024  # a bank's largest message is 8 MiB, a forward ~1.3 MB
UPSTREAM_TIMEOUT_S = 60.0  # longer than the switch's deadlines, so that the switch times out first
MAX_DELAY_S = 30.0  # the longest a case may hold a request back
MAX_EXCHANGES = 100_000  # kept in memory: a whole run with a 1,000-transaction bulk and bursts
HOP_BY_HOP = frozenset({"host", "content-length", "transfer-encoding", "connection",
                        "keep-alive", "upgrade", "te", "trailer", "proxy-connection"})
NO_AUTO_HEADERS = ("Content-Type", "User-Agent", "Accept-Encoding")


@dataclass(slots=True, eq=False)
class Exchange:
    """One HTTP request and its answer as they passed the relay; times are unix seconds."""

    seq: int
    sender: str  # switch, suite or bank
    receiver: str  # bank or switch
    method: str
    path: str  # with its query string
    request_headers: list[tuple[str, str]]
    request_body: bytes
    started_s: float
    case: str | None
    status: int | None = None
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: bytes = b""
    ended_s: float | None = None
    error: str | None = None  # why no answer came back (the relay's own 502)
    # what the relay did to the answer on the suite's order (a case about a lost or forged
    # answer): the record keeps the answer as the target gave it, this says what was passed on
    tampered: str | None = None

    def header(self, name: str, response: bool = False) -> str | None:
        wanted = name.lower()
        for key, value in self.response_headers if response else self.request_headers:
            if key.lower() == wanted:
                return value
        return None

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_s is None else self.ended_s - self.started_s


# A case's order to a relay about one answer, once the target has given it: None passes it on;
# UNSIGNED strips its signature headers, FORGED spoils its signature, LOST closes the
# connection without any answer, REFUSED passes on the relay's own unsigned 502 instead.
Tamper = Callable[[Exchange], str | None]
UNSIGNED, FORGED, LOST, REFUSED = "unsigned", "forged", "lost", "refused"
SIGNATURE_HEADERS = (signing.SIGNATURE_INPUT_HEADER.lower(), signing.SIGNATURE_HEADER.lower())


class Relay:
    """Forwards to `target` (scheme://host:port) and records every exchange in `exchanges`,
    tagged with the case running when it started (`case`); `tamper`, when a case sets it,
    decides what becomes of each answer on its way back."""

    def __init__(self, target: str, receiver: str, session: aiohttp.ClientSession) -> None:
        self.target = target.rstrip("/")
        self.receiver = receiver
        self.exchanges: list[Exchange] = []
        self.case: str | None = None
        self.tamper: Tamper | None = None
        # seconds to hold a request before passing it on (a case making an answer late)
        self.delay: Callable[[Exchange], float] | None = None
        self._session = session
        self._runners: list[web.AppRunner] = []
        self._in_flight = 0
        self._last_activity_s = time.monotonic()
        self._changed = asyncio.Event()

    async def listen(self, sender: str, bound: BoundSocket) -> str:
        """Serve on `bound` for requests from `sender`; returns the socket's base URL."""
        app = web.Application(client_max_size=MAX_BODY_BYTES)

        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._forward(sender, request)

        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, bound.sock).start()
        self._runners.append(runner)
        return bound.base_url

    async def close(self) -> None:
        for runner in self._runners:
            await runner.cleanup()

    def _touch(self, delta: int) -> None:
        self._in_flight += delta
        self._last_activity_s = time.monotonic()
        self._changed.set()

    async def _forward(self, sender: str, request: web.Request) -> web.StreamResponse:
        body = await _read_all(request.content)
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        exchange = Exchange(len(self.exchanges) + 1, sender, self.receiver, request.method,
                            request.raw_path, headers, body, time.time(), self.case)
        if len(self.exchanges) < MAX_EXCHANGES:
            self.exchanges.append(exchange)
        if len(body) > MAX_BODY_BYTES:
            return self._failed(exchange, f"the body is over the relay's {MAX_BODY_BYTES:,} "
                                "bytes", status=413)
        self._touch(+1)
        try:
            if self.delay is not None and (held_s := min(self.delay(exchange), MAX_DELAY_S)) > 0:
                await asyncio.sleep(held_s)
            async with self._session.request(
                    request.method, self.target + request.raw_path, data=body, headers=headers,
                    skip_auto_headers=NO_AUTO_HEADERS, allow_redirects=False,
                    auto_decompress=False,
                    timeout=aiohttp.ClientTimeout(total=UPSTREAM_TIMEOUT_S)) as answer:
                answer_body = await _read_all(answer.content)
                exchange.status = answer.status
                exchange.response_headers = [(k, v) for k, v in answer.headers.items()
                                             if k.lower() not in HOP_BY_HOP]
                exchange.response_body = answer_body
                exchange.ended_s = time.time()
                order = self.tamper(exchange) if self.tamper is not None else None
                return self._passed_on(request, exchange, order)
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            return self._failed(exchange, f"{type(error).__name__}: {error}".rstrip(": "))
        finally:
            self._touch(-1)

    def _passed_on(self, request: web.Request, exchange: Exchange, order: str | None
                   ) -> web.Response:
        """The target's answer as the case ordered it passed on (recorded in `tampered`)."""
        exchange.tampered = order
        headers = exchange.response_headers
        if order == LOST:
            if request.transport is not None:
                request.transport.close()  # no status line: the sender sees the connection drop
            return web.Response(status=502)
        if order == REFUSED:
            return web.Response(status=502, text="502: the conformance relay refused this\n")
        if order == UNSIGNED:
            headers = [(k, v) for k, v in headers if k.lower() not in SIGNATURE_HEADERS]
        elif order == FORGED:
            headers = [(k, signing.spoiled(v) if k.lower() == "signature" else v)
                       for k, v in headers]
        return web.Response(status=exchange.status or 502, body=exchange.response_body,
                            headers=headers)

    def _failed(self, exchange: Exchange, why: str, status: int = 502) -> web.Response:
        """No answer from the target: recorded, and a 502 (unsigned, so no party takes it for
        the target's word)."""
        exchange.error = f"no answer from the {self.receiver} ({why})"
        exchange.ended_s = time.time()
        return web.Response(status=status, text=f"{status}: the conformance relay got "
                            f"{exchange.error}\n")

    async def quiet(self, quiet_s: float = 0.3, timeout_s: float = 15.0) -> bool:
        """Wait until nothing has passed for `quiet_s` and nothing is in flight; False when
        that did not happen within `timeout_s`."""
        deadline_s = time.monotonic() + timeout_s
        while True:
            now_s = time.monotonic()
            idle_s = now_s - self._last_activity_s
            if self._in_flight == 0 and idle_s >= quiet_s:
                return True
            if now_s >= deadline_s:
                return False
            self._changed.clear()
            wait_s = min(deadline_s - now_s, quiet_s - idle_s if self._in_flight == 0 else 0.1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(wait_s, 0.01))

    async def wait_for(self, found: Callable[[Exchange], bool], timeout_s: float,
                       started: bool = False) -> Exchange | None:
        """The first recorded exchange, finished (or only `started`), for which
        `found(exchange)` is true, waiting up to `timeout_s` for it."""
        deadline_s = time.monotonic() + timeout_s
        while True:
            for exchange in self.exchanges:
                if (started or exchange.ended_s is not None) and found(exchange):
                    return exchange
            remaining_s = deadline_s - time.monotonic()
            if remaining_s <= 0:
                return None
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining_s, 0.2))


async def _read_all(stream: aiohttp.StreamReader) -> bytes:
    """The whole body, or its first MAX_BODY_BYTES + 1 bytes when it is longer (the caller
    refuses it then)."""
    chunks, size = [], 0
    while size <= MAX_BODY_BYTES and (chunk := await stream.readany()):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
