"""Every party's server, bounded: deadlines per connection, connections per peer and in total,
and the bytes of bodies being read at once.

aiohttp's server has no deadline for reading a request's head or body (its keep-alive timer,
armed at accept since 3.14, closes only connections idle between requests), so a client that
sends one byte a second holds a connection and a task for as long as it likes. Here each
connection carries its own deadlines:

- head: a request's head must be whole within `head_timeout_s` of its first byte (of the
  accept, for a new connection);
- body: once the head is in, the body must be whole within `body_timeout_s`, waiting for room
  in the body budget included;
- idle: between requests a keep-alive connection waits `idle_timeout_s` (aiohttp's own
  keepalive_timeout) for the next one, so keep-alive is untouched.

A connection past a deadline is closed. One timer per connection serves every deadline, moved
rather than re-created, so a request costs two attribute writes, not a timer. The bounds on
connections and on bodies are checked by `protocol.http.read_signed`, which knows who claims
to send; the total bound is checked here at accept.

Every request is authenticated from its head (protocol/http.py `authenticate`, RFC 9421)
before a byte of its body is read, so only an authenticated participant's bodies are charged.
Until a connection carries an authenticated request it is in the unauthenticated pool:
at most `max_unauthenticated_connections` of them, the oldest closed when a new one comes
(if it has had a second to authenticate; the new one otherwise), each head due within
`unauthenticated_timeout_s`. Nothing an unauthenticated client
does holds more than that pool, so it cannot delay a participant's connection, request or body.

Bodies being read hold bytes of three budgets (`BodyBudgets`): the server's, shared by all;
each sender's share of it, so that one participant's slow bodies cannot take the whole
budget from the others (33 slow 8 MiB bodies of one bank once made the treasury's 3 KB
payment wait out its 60 s body deadline); and a small lane for small bodies, so that large
reservations never hold up an instant payment.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from pydantic import BaseModel, ConfigDict, Field

from protocol.codec import MAX_MESSAGE_BYTES
from protocol.peerlog import FailureLog
from protocol.replay import RequestIds

MIB = 1024 * 1024
# A bank's largest message either way is 1,000 items (a forward of forward_batch_size, its
# answers, a pacs.004, its own transfers; statements are paged): 1.3 MB with every text at its
# schema maximum. 8 MiB leaves a wide margin, keeps a forged body claiming a bank to a
# sixteenth of what the treasury may send the switch, and is what a bank takes from the switch
# (docs/participants.md, "What the switch posts to you": more is 413, read no further).
BANK_MAX_BODY_BYTES = 8 * MIB
# The small lane: bodies up to SMALL_BODY_BYTES (an instant pacs.008 is ~3 KB, a pacs.028 of
# 100 ids ~10 KB) on a connection already authenticated as their sender, at most
# SMALL_LANE_PER_PEER_BYTES of them per sender, SMALL_LANE_BYTES in all, on top of the budget.
SMALL_BODY_BYTES = 64 * 1024
SMALL_LANE_BYTES = 16 * MIB
SMALL_LANE_PER_PEER_BYTES = MIB
# After an answer that left a body unread, aiohttp reads and drops what is in flight (so the
# client sees the answer, not a reset) even once the client has gone: this long at most.
MAX_LINGERING_S = 1.0
# A connection in a full unauthenticated pool is closed for a newer one only once it has had
# this long to send an authenticated head.
MIN_UNAUTHENTICATED_AGE_S = 1.0
# What a client causes: a head or body aiohttp cannot parse or decode, a connection dropped.
CLIENT_ERRORS = (HttpProcessingError, RequestPayloadError, ConnectionError,
                 asyncio.IncompleteReadError)


class ServerLimits(BaseModel):
    """Deadlines and bounds of one party's server (the switch's `transport:` settings).

    Defaults: until a connection has carried an authenticated request, its head is due within
    10 s (lower it to shorten what a silent client holds; an honest one sends its head at
    once, but a loaded receiver may read it late) and 1,024 such connections may wait;
    a head is a few hundred bytes, sent at once by any honest client (Go servers are
    commonly given 2-10 s); 60 s for a body reads the largest message (128 MiB) at 2.2 MB/s;
    75 s of idle keep-alive outlives aiohttp clients' own 15 s, so the client closes first;
    the body budget holds two of the largest messages, and one sender may hold a quarter of
    it (eight of a bank's largest messages), or its own largest message if that is more.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    head_timeout_s: float = Field(10.0, gt=0, le=300)
    body_timeout_s: float = Field(60.0, gt=0, le=3_600)
    idle_timeout_s: float = Field(75.0, gt=0, le=3_600)
    max_connections: int = Field(4_096, ge=1, le=1_000_000)
    max_connections_per_peer: int = Field(1_024, ge=1, le=1_000_000)
    max_body_bytes_reading: int = Field(2 * MAX_MESSAGE_BYTES, ge=MIB, le=64 * 1024 * MIB)
    max_body_bytes_reading_per_peer: int = Field(MAX_MESSAGE_BYTES // 2, ge=MIB,
                                                 le=64 * 1024 * MIB)
    max_unauthenticated_connections: int = Field(1_024, ge=1, le=1_000_000)
    unauthenticated_timeout_s: float = Field(10.0, gt=0, le=300)


SERVER_LIMITS = web.AppKey("server_limits", ServerLimits)
# A server that authenticates nobody (the bench's bare floor): every connection stays in the
# unauthenticated pool, so the pool is as large as the server.
UNAUTHENTICATED_SERVER_LIMITS = ServerLimits(
    max_unauthenticated_connections=ServerLimits().max_connections)


class ByteBudget:
    """A weighted semaphore over bytes, first come first served: a large body waiting cannot
    be overtaken forever by small ones."""

    def __init__(self, total_bytes: int) -> None:
        self.total_bytes = total_bytes
        self.free_bytes = total_bytes
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    def try_acquire(self, size: int) -> bool:
        if self._waiting or size > self.free_bytes:
            return False
        self.free_bytes -= size
        return True

    async def acquire(self, size: int) -> None:
        """Wait for `size` bytes (at most the total); cancel to give up waiting."""
        if self.try_acquire(size):
            return
        entry = (size, asyncio.get_running_loop().create_future())
        self._waiting.append(entry)
        try:
            await entry[1]
        except BaseException:
            if entry[1].done() and not entry[1].cancelled():
                self.release(size)  # granted just as the waiter gave up
            else:
                with contextlib.suppress(ValueError):
                    self._waiting.remove(entry)
                self._grant()
            raise

    def release(self, size: int) -> None:
        self.free_bytes += size
        self._grant()

    def _grant(self) -> None:
        while self._waiting and self._waiting[0][0] <= self.free_bytes:
            size, future = self._waiting.popleft()
            if not future.done():
                self.free_bytes -= size
                future.set_result(None)


class BodyBudgets:
    """Bytes of bodies being read at once: the server's budget, each sender's share of it,
    and the small lane (the module's docstring says why)."""

    def __init__(self, limits: ServerLimits) -> None:
        self.limits = limits
        self.shared = ByteBudget(limits.max_body_bytes_reading)
        self.small_lane = ByteBudget(SMALL_LANE_BYTES)
        self._shares: dict[str, ByteBudget] = {}  # by claimed sender: as many as senders
        self._in_lane: Counter[str] = Counter()

    def share_of(self, peer: str, largest_body_bytes: int) -> ByteBudget:
        """`peer`'s share: max_body_bytes_reading_per_peer, or its own largest body if that
        is more (the treasury's file), never more than the whole budget."""
        share = self._shares.get(peer)
        if share is None:
            share = self._shares[peer] = ByteBudget(min(self.shared.total_bytes, max(
                self.limits.max_body_bytes_reading_per_peer, largest_body_bytes)))
        return share

    @contextlib.asynccontextmanager
    async def reserve(self, peer: str, size: int, largest_body_bytes: int,
                      timeout_s: float) -> AsyncIterator[None]:
        """Hold `size` bytes (at most `largest_body_bytes` and the budget) while one body from
        the authenticated `peer` is read: from the small lane when it is small and the lane has
        room; otherwise from `peer`'s share and then the server's budget, waiting for room at
        most `timeout_s` (TimeoutError)."""
        if self._take_lane(peer, size):
            try:
                yield
            finally:
                self._in_lane[peer] -= size
                if not self._in_lane[peer]:
                    del self._in_lane[peer]
                self.small_lane.release(size)
            return
        share = self.share_of(peer, largest_body_bytes)
        async with asyncio.timeout(timeout_s):
            await share.acquire(size)
            try:
                await self.shared.acquire(size)
            except BaseException:
                share.release(size)
                raise
        try:
            yield
        finally:
            self.shared.release(size)
            share.release(size)

    def held_by(self, peer: str) -> int:
        """Bytes `peer`'s bodies hold now, in its share and in the lane."""
        share = self._shares.get(peer)
        return (0 if share is None else share.total_bytes - share.free_bytes) + (
            self._in_lane[peer])

    def _take_lane(self, peer: str, size: int) -> bool:
        if (size > SMALL_BODY_BYTES or self._in_lane[peer] + size > SMALL_LANE_PER_PEER_BYTES
                or not self.small_lane.try_acquire(size)):
            return False
        self._in_lane[peer] += size
        return True


class Guard:
    """One server's shared bounds: its limits, connections by owner, the unauthenticated
    pool (oldest first), the body budgets, the request ids taken in the replay window."""

    def __init__(self, limits: ServerLimits) -> None:
        self.limits = limits
        self.bodies = BodyBudgets(limits)
        self.connections = 0
        self.by_owner: Counter[str] = Counter()
        self.unauthenticated: dict[GuardedConnection, float] = {}  # -> accepted at (loop s)
        self.request_ids = RequestIds()
        self.failures = FailureLog()

    def admit(self, connection: GuardedConnection, now_s: float) -> None:
        """A new connection joins the unauthenticated pool. When the pool is full the oldest
        leaves it, closed, if it has had MIN_UNAUTHENTICATED_AGE_S to authenticate (an honest
        client sends its head at once); otherwise the new one is closed: a burst of honest
        new connections is never cut short by a burst of newer ones."""
        pool = self.unauthenticated
        if len(pool) >= self.limits.max_unauthenticated_connections:
            oldest, admitted_s = next(iter(pool.items()))
            if now_s - admitted_s < MIN_UNAUTHENTICATED_AGE_S:
                connection.force_close()
                return
            del pool[oldest]
            oldest.force_close()
        pool[connection] = now_s

    def head_timeout_s(self, owner: str | None) -> float:
        """A head's deadline: the short unauthenticated one until the connection has carried
        an authenticated request (its owner)."""
        if owner is None:
            return min(self.limits.head_timeout_s, self.limits.unauthenticated_timeout_s)
        return self.limits.head_timeout_s

    def claim(self, connection: Any, peer: str) -> bool:
        """Count an unowned connection as `peer`'s, out of the unauthenticated pool; False
        when `peer` already holds max_connections_per_peer others."""
        if self.by_owner[peer] >= self.limits.max_connections_per_peer:
            return False
        self.by_owner[peer] += 1
        self.unauthenticated.pop(connection, None)
        return True

    def leave(self, connection: Any, owner: str | None) -> None:
        """A connection closed (or handed to another handler): uncounted everywhere."""
        self.connections -= 1
        self.unauthenticated.pop(connection, None)
        if owner is not None:
            self.by_owner[owner] -= 1
            if not self.by_owner[owner]:
                del self.by_owner[owner]


def moved_timer(timer: asyncio.TimerHandle | None, due_s: float,
                loop: asyncio.AbstractEventLoop, check: Callable[[], None]
                ) -> asyncio.TimerHandle:
    """A connection's one timer, brought forward to `due_s` when it would fire later; one
    that fires first is kept (it moves itself on)."""
    if timer is not None and timer.when() <= due_s:
        return timer
    if timer is not None:
        timer.cancel()
    return loop.call_at(due_s, check)


class OwnedConnection:
    """What a server's connection shares, whichever handler reads it (this module's
    GuardedConnection, protocol/hotroute.py's HotConnection): its Guard and its owner."""

    __slots__ = ()
    guard: Guard
    owner: str | None
    transport: Any

    def take(self, peer: str) -> bool:
        """Count this connection as `peer`'s if it is nobody's yet; False when `peer` already
        holds max_connections_per_peer others."""
        if self.owner is not None:
            return True
        if not self.guard.claim(self, peer):
            return False
        self.owner = peer
        return True

    def peer_address(self) -> str:
        """The client's address, for the log."""
        peername = self.transport.get_extra_info("peername") if self.transport else None
        return str(peername[0]) if peername else "unknown"

    def _head_timeout_s(self) -> float:
        return self.guard.head_timeout_s(self.owner)


class GuardedConnection(OwnedConnection, RequestHandler):
    """aiohttp's request handler with head and body deadlines and an owner: the peer whose
    authenticated request it first carried (checked against max_connections_per_peer)."""

    __slots__ = ("_body_due_s", "_busy", "_guard_loop", "_head_due_s", "_timer", "guard",
                 "owner")

    def __init__(self, manager: web.Server, guard: Guard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.guard = guard
        self.owner: str | None = None
        self._busy = False
        self._head_due_s: float | None = None
        self._body_due_s: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._guard_loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.guard.connections += 1
        if self.guard.connections > self.guard.limits.max_connections:
            self.force_close()
            return
        now_s = self._guard_loop.time()
        self._head_due_s = now_s + self._head_timeout_s()
        self._schedule(self._head_due_s)
        self.guard.admit(self, now_s)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.guard.leave(self, self.owner)
        self.owner = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._busy and self._head_due_s is None:  # the first byte of a new request
            self._head_due_s = self._guard_loop.time() + self._head_timeout_s()
            self._schedule(self._head_due_s)
        super().data_received(data)

    def head_received(self, payload: StreamReader) -> None:
        """The head is whole and the request goes to its handler; the body's clock starts."""
        self._busy = True
        self._head_due_s = None
        if not payload.is_eof():
            self._body_due_s = self._guard_loop.time() + self.guard.limits.body_timeout_s
            self._schedule(self._body_due_s)
            payload.on_eof(self._body_done)

    def _body_done(self) -> None:
        self._body_due_s = None

    def body_time_left_s(self) -> float:
        """Seconds until the body deadline (the full timeout when it is not running)."""
        if self._body_due_s is None:
            return self.guard.limits.body_timeout_s
        return max(0.0, self._body_due_s - self._guard_loop.time())

    def log_access(self, request: web.BaseRequest, response: web.StreamResponse,
                   time: float | None) -> None:
        """Called by aiohttp once each response is written: the connection is idle again."""
        self._busy = False
        super().log_access(request, response, time)

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's report of an exception while serving this connection: one line when the
        client caused it (a head or body it cannot parse or decode, a dropped connection),
        a traceback when it is the server's own; both bounded (protocol/peerlog.py)."""
        error = kw.get("exc_info")
        what = (args[0] % args[1:]) if args and len(args) > 1 else (args[0] if args else "")
        if isinstance(error, CLIENT_ERRORS):
            self.guard.failures.client(self.peer_address(), f"{type(error).__name__}: {error}")
        elif isinstance(error, BaseException):
            self.guard.failures.defect(self.peer_address(), str(what), error)
        else:
            self.guard.failures.client(self.peer_address(), str(what))

    def _schedule(self, due_s: float) -> None:
        self._timer = moved_timer(self._timer, due_s, self._guard_loop, self._check_deadlines)

    def _check_deadlines(self) -> None:
        self._timer = None
        due = [d for d in (self._head_due_s, self._body_due_s) if d is not None]
        if not due:
            return
        if min(due) <= self._guard_loop.time():
            self._head_due_s = self._body_due_s = None
            self.force_close()
            return
        self._timer = self._guard_loop.call_at(min(due), self._check_deadlines)


class _GuardedServer(web.Server):
    """aiohttp's low-level server making GuardedConnections, told when each head is in."""

    def __init__(self, plain: web.Server, guard: Guard, **handler_kwargs: Any) -> None:
        super().__init__(plain.request_handler, request_factory=plain.request_factory,
                         handler_cancellation=plain.handler_cancellation, **handler_kwargs)
        self._make_plain_request = plain.request_factory
        self.request_factory = self._request_for
        self._guard = guard
        self._handler_kwargs = handler_kwargs

    def _request_for(self, message: RawRequestMessage, payload: StreamReader,
                     protocol: RequestHandler, writer: AbstractStreamWriter,
                     task: asyncio.Task[None]) -> web.BaseRequest:
        assert isinstance(protocol, GuardedConnection)
        protocol.head_received(payload)
        return self._make_plain_request(message, payload, protocol, writer, task)

    def __call__(self) -> GuardedConnection:
        return GuardedConnection(self, self._guard, loop=asyncio.get_running_loop(),
                                 **self._handler_kwargs)


class GuardedRunner(web.AppRunner):
    """An AppRunner whose connections are GuardedConnections under the app's SERVER_LIMITS
    (the defaults when the app sets none)."""

    def __init__(self, app: web.Application) -> None:
        limits = app.get(SERVER_LIMITS) or ServerLimits()
        self._handler_kwargs: dict[str, Any] = {
            "keepalive_timeout": limits.idle_timeout_s, "access_log": None,
            "lingering_time": min(limits.head_timeout_s, MAX_LINGERING_S)}
        super().__init__(app, handle_signals=False, **self._handler_kwargs)
        self.guard = Guard(limits)

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts the application
        return _GuardedServer(plain, self.guard, **self._handler_kwargs)
