"""One POST route served by a lean HTTP/1.1 server (httptools), every other request by aiohttp.

aiohttp's request handler, request objects and response writer cost ~45 µs of CPU per
request, ~5 times what the same request costs through httptools' parser (llhttp, the parser
of Node.js, as uvicorn uses it) and an asyncio Protocol that writes its answer in one call;
on a switch's instant path, where every transfer is one such request, that is most of what
the HTTP layer costs. So the one route every message takes (`POST /v1/messages`) is served
here, and anything else on the same port goes to aiohttp as before.

A connection starts here. Each request's head is framed here (up to the blank line, at most
MAX_HEAD_BYTES) and must be the plain case: `POST <path> HTTP/1.1`, a Content-Length, no
Transfer-Encoding, no Expect, no Upgrade, at most MAX_HEADERS fields. Any other request (another
path, chunked, 100-continue, HTTP/1.0, a head too long or malformed) hands the connection to
aiohttp's request handler (protocol/transport.py GuardedConnection) at that request's first
byte, with its owner, for the rest of its life: those cases, and every route of the app, keep
aiohttp's behaviour exactly. A handover waits for the answers already in flight, so pipelined
answers stay in order.

The hot route keeps every bound of protocol/transport.py: the same Guard (connections in
total and per owner, the unauthenticated pool, body budgets, request ids), the head, body and
idle deadlines, the app's middlewares (run in the same order around the same handler), and
after a refusal that leaves a body unread, at most MAX_LINGERING_S of reading it into nothing
before the close, so that the client reads the answer rather than a reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

import httptools
from aiohttp import web
from aiohttp.tcp_helpers import tcp_nodelay
from multidict import CIMultiDict, CIMultiDictProxy

from protocol.transport import (
    MAX_LINGERING_S,
    Guard,
    GuardedRunner,
    OwnedConnection,
    moved_timer,
)

MAX_HEAD_BYTES = 8_190  # aiohttp's max_line_size: a longer head goes to aiohttp, which judges it
MAX_HEADERS = 128  # aiohttp's max_headers
# Body bytes received and not yet read by the handler past which the socket stops being read.
BODY_HIGH_WATER_BYTES = 64 * 1024
PIPELINED_HIGH_WATER_BYTES = 64 * 1024  # bytes of later requests waiting for their turn
SHUTDOWN_TIMEOUT_S = 10.0  # answers in flight at a stop are waited for this long
_UNUSUAL_FIELDS = (b"transfer-encoding", b"expect", b"upgrade")
_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


@dataclass(frozen=True, slots=True)
class HotRoute:
    """The route served on the lean path: `POST path`, answered by `handler` (an aiohttp
    handler taking a HotRequest as it would a web.Request; the app's middlewares wrap it)."""

    path: str
    handler: Callable[[Any], Awaitable[web.StreamResponse]]


HOT_ROUTE = web.AppKey("hot_route", HotRoute)


class HotBody:
    """A request's body as it arrives, read as aiohttp's `request.content.readany()`."""

    __slots__ = ("_chunks", "_connection", "_eof", "_error", "_waiter", "buffered_bytes")

    def __init__(self, connection: HotConnection) -> None:
        self._connection = connection
        self._chunks: deque[bytes] = deque()
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.buffered_bytes = 0

    def feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self.buffered_bytes += len(chunk)
        self._wake()

    def end(self, error: BaseException | None = None) -> None:
        self._eof = True
        self._error = error
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def readany(self) -> bytes:
        """The next bytes received, b"" once the body is whole; ConnectionResetError when
        the connection closed first (its deadline, or the client gone)."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._eof:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunk = self._chunks.popleft()
        self.buffered_bytes -= len(chunk)
        self._connection.body_drained()
        return chunk

    async def read(self) -> bytes:
        chunks = []
        while chunk := await self.readany():
            chunks.append(chunk)
        return b"".join(chunks)


class HotRequest(MutableMapping[str, Any]):
    """What the hot route's handler and the app's middlewares read of a request: the subset of
    web.Request that protocol/http.py `read_signed` and the switch's middlewares use."""

    __slots__ = ("_state", "app", "content", "content_length", "headers", "protocol")
    method = "POST"

    def __init__(self, app: web.Application, connection: HotConnection,
                 headers: CIMultiDictProxy[str], content_length: int) -> None:
        self.app = app
        self.protocol = connection
        self.headers = headers
        self.content_length = content_length
        self.content = HotBody(connection)
        self._state: dict[Any, Any] = {}

    @property
    def config_dict(self) -> web.Application:
        return self.app

    @property
    def path(self) -> str:
        return self.protocol.route.path

    raw_path = path

    @property
    def transport(self) -> asyncio.Transport | None:
        return self.protocol.transport

    async def read(self) -> bytes:
        return await self.content.read()

    def __getitem__(self, key: Any) -> Any:
        return self._state[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._state[key] = value

    def __delitem__(self, key: Any) -> None:
        del self._state[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._state)

    def __len__(self) -> int:
        return len(self._state)


class HotConnection(OwnedConnection, asyncio.Protocol):
    """One client connection: hot-route requests served here, one at a time and in order;
    the connection handed to aiohttp at the first request of another kind (module docstring).
    Quacks as protocol/transport.py GuardedConnection for protocol/http.py: guard, owner,
    take, peer_address, body_time_left_s, force_close."""

    def __init__(self, site: HotSite) -> None:
        self._site = site
        self.guard: Guard = site.guard
        self.route: HotRoute = site.route
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.owner: str | None = None
        self._buffer = bytearray()
        self._parser = httptools.HttpRequestParser(self)
        self._fields: list[tuple[str, str]] = []
        self._body: HotBody | None = None  # the request in flight's, until its body is whole
        self._body_left = 0
        self._task: asyncio.Task[None] | None = None  # the request in flight's handler
        self._due_s: float | None = None  # the one deadline running (head, body or idle)
        self._body_due_s: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False
        self._closing = False  # no more requests: close once the answer in flight is out
        self._lingering = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        tcp_nodelay(transport, True)
        self._site.connections.add(self)
        guard = self.guard
        guard.connections += 1
        if guard.connections > guard.limits.max_connections:
            self.force_close()
            return
        now_s = self._loop.time()
        self._arm(now_s + self._head_timeout_s())
        guard.admit(self, now_s)  # type: ignore[arg-type]  # quacks as GuardedConnection

    def connection_lost(self, exc: BaseException | None) -> None:
        self._leave_guard()
        self._site.connections.discard(self)
        self.transport = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._body is not None:
            self._body.end(ConnectionResetError("the connection closed before the body was "
                                                "whole"))
            self._body = None

    def data_received(self, data: bytes) -> None:
        if self._lingering:  # the refused body, read into nothing
            self._body_left = max(0, self._body_left - len(data))
            if not self._body_left:
                self.force_close()
            return
        self._buffer += data
        self._advance()

    def eof_received(self) -> bool | None:
        if self._body is not None:
            self._body.end(ConnectionResetError("the client closed before the body was whole"))
            self._body = None
        if self._task is None:
            self.force_close()
        else:
            self._closing = True
        # half-open until the answer in flight is written; TLS has no half-close (asyncio
        # warns when asked), so there the answer is lost with the connection, as on aiohttp's
        tls = self.transport is not None and self.transport.get_extra_info("sslcontext")
        return None if tls else True

    def pause_writing(self) -> None:
        """Answers are small; a client that reads none of them is held by the deadlines."""

    def resume_writing(self) -> None:
        pass

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def on_body(self, body: bytes) -> None:
        if self._body is not None:
            self._body.feed(body)

    def on_message_complete(self) -> None:
        if self._body is not None:
            self._body.end()
            self._body = None
        self._body_due_s = None

    # the connection's bounds, as GuardedConnection's

    def force_close(self) -> None:
        self._closing = True
        if self.transport is not None:
            self.transport.close()

    def body_time_left_s(self) -> float:
        if self._body_due_s is None:
            return self.guard.limits.body_timeout_s
        return max(0.0, self._body_due_s - self._loop.time())

    def body_drained(self) -> None:
        if self._paused and self._body is not None and (
                self._body.buffered_bytes < BODY_HIGH_WATER_BYTES):
            self._resume()

    # framing

    def _advance(self) -> None:
        """Feed the body in flight, or frame the next request once none is in flight."""
        if self._body_left:
            self._feed_body()
        if self._task is not None or self._closing or self._lingering:
            if len(self._buffer) > PIPELINED_HIGH_WATER_BYTES or (
                    self._body is not None
                    and self._body.buffered_bytes >= BODY_HIGH_WATER_BYTES):
                self._pause()
            return
        if not self._buffer:
            return
        if self._due_s is None or self._idle:  # the first byte of a new request
            self._idle = False
            self._arm(self._loop.time() + self._head_timeout_s())
        end = self._buffer.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES)
        prefix = self._site.request_line
        if end < 0:
            if len(self._buffer) >= MAX_HEAD_BYTES or not prefix.startswith(
                    bytes(self._buffer[:len(prefix)])):
                self._hand_over()
            return
        if not self._buffer.startswith(prefix) or not self._start_request(end + 4):
            self._hand_over()

    _idle = False

    def _start_request(self, head_bytes: int) -> bool:
        """Parse the framed head; False (nothing taken) unless it is the plain case."""
        self._fields = []
        try:
            self._parser.feed_data(bytes(self._buffer[:head_bytes]))
        except httptools.HttpParserError:
            return False
        fields = self._fields
        lowered = [name.lower() for name, _ in fields]
        if (len(fields) > MAX_HEADERS or "content-length" not in lowered
                or any(name.encode() in _UNUSUAL_FIELDS for name in lowered)):
            return False
        headers = CIMultiDictProxy(CIMultiDict(fields))
        try:
            length = int(headers["Content-Length"])
        except ValueError:
            return False
        del self._buffer[:head_bytes]
        if not self._parser.should_keep_alive():
            self._closing = True
        request = HotRequest(self._site.app, self, headers, length)
        self._body_left = length
        if length:
            self._body = request.content
            self._body_due_s = self._loop.time() + self.guard.limits.body_timeout_s
            self._arm(self._body_due_s)
        else:
            request.content.end()
            self._due_s = None
        self._task = self._loop.create_task(self._serve(request))
        if self._buffer:
            self._advance()
        return True

    def _feed_body(self) -> None:
        size = min(self._body_left, len(self._buffer))
        if not size:
            return
        chunk = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._body_left -= size
        try:
            self._parser.feed_data(chunk)
        except httptools.HttpParserError:  # a Content-Length frame holds no syntax to break
            self.force_close()

    async def _serve(self, request: HotRequest) -> None:
        try:
            response = await self._site.handler(request)
        except web.HTTPException as refusal:
            response = refusal
        except Exception as error:  # the server's own defect: aiohttp's 500, logged bounded
            self.guard.failures.defect(self.peer_address(), "Error handling request", error)
            response = web.HTTPInternalServerError(
                text="500 Internal Server Error\n\nServer got itself in trouble")
            response.force_close()
        self._task = None
        self._write(response)

    def _write(self, response: web.StreamResponse) -> None:
        keep_alive = response.keep_alive is not False and not self._closing
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        body = response.body if isinstance(response, web.Response) else None
        body = body if isinstance(body, bytes) else b""
        headers = response.headers
        if "Content-Type" not in headers:
            headers["Content-Type"] = response.content_type
        lines = [b"HTTP/1.1 %d %s\r\n" % (response.status, _REASONS.get(response.status, b""))]
        lines += [f"{name}: {value}\r\n".encode("utf-8", "surrogateescape")
                  for name, value in headers.items()
                  if name not in ("Content-Length", "Connection")]
        lines.append(b"Content-Length: %d\r\nDate: %s\r\nServer: switchlab\r\n%s\r\n" % (
            len(body), self._site.date(),
            b"" if keep_alive else b"Connection: close\r\n"))
        lines.append(body)
        transport.write(b"".join(lines))
        if not keep_alive:
            self._end_after_answer()
            return
        if self._body_left or self._body is not None:  # an unread body on a kept connection
            self._body = None  # read into nothing, then the next request
        self._idle = True
        self._arm(self._loop.time() + self.guard.limits.idle_timeout_s)
        self._resume()
        self._advance()

    def _end_after_answer(self) -> None:
        """Close now, or, when the body is still arriving, read it into nothing for at most
        MAX_LINGERING_S first (aiohttp's lingering)."""
        self._closing = True
        if self._body_left == 0 or self.transport is None:
            self.force_close()
            return
        self._lingering = True
        self._body = None
        self._resume()
        self._arm(self._loop.time() + min(MAX_LINGERING_S, self.guard.limits.head_timeout_s))

    # handing over to aiohttp

    def _hand_over(self) -> None:
        """The rest of this connection is aiohttp's, from the request at the buffer's start."""
        transport = self.transport
        if transport is None:
            return
        handler = self._site.aiohttp_connection()
        owner = self.owner
        self._leave_guard()
        self._site.connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.transport = None
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if owner is not None:
            handler.take(owner)
        if self._paused:
            transport.resume_reading()
        data, self._buffer = bytes(self._buffer), bytearray()
        handler.data_received(data)

    def _leave_guard(self) -> None:
        if self.transport is not None:  # not left yet
            self.guard.leave(self, self.owner)
            self.owner = None

    # deadlines and flow

    def _arm(self, due_s: float) -> None:
        """The one deadline running from now: past it the connection closes."""
        self._due_s = due_s
        self._timer = moved_timer(self._timer, due_s, self._loop, self._check_deadline)

    def _check_deadline(self) -> None:
        self._timer = None
        due_s = self._due_s
        if self._task is not None and self._body is None and not self._lingering:
            return  # the handler holds the request: its own bounds apply, not the socket's
        if due_s is None:
            return
        if due_s <= self._loop.time():
            self._due_s = None
            self.force_close()
            return
        self._timer = self._loop.call_at(due_s, self._check_deadline)

    def _pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def _resume(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()


class HotSite(web.SockSite):
    """An aiohttp site whose connections start as HotConnections (module docstring)."""

    def __init__(self, runner: GuardedRunner, sock: Any, route: HotRoute,
                 **kwargs: Any) -> None:
        super().__init__(runner, sock, **kwargs)
        self.route = route
        self.request_line = f"POST {route.path} HTTP/1.1\r\n".encode()
        self.guard = runner.guard
        self.app = runner.app
        self.connections: set[HotConnection] = set()
        self.handler: Callable[[Any], Awaitable[web.StreamResponse]] = route.handler
        self._date = (0, b"")

    def date(self) -> bytes:
        """The Date header's value, made once a second."""
        now_s = int(time.time())
        if now_s != self._date[0]:
            self._date = (now_s, formatdate(usegmt=True).encode())
        return self._date[1]

    def aiohttp_connection(self) -> Any:
        server = self._runner.server
        assert server is not None
        return server()

    async def start(self) -> None:
        handler = self.route.handler
        for middleware in reversed(self.app.middlewares):  # as aiohttp chains them
            handler = functools.partial(middleware, handler=handler)
        self.handler = handler
        await web.BaseSite.start(self)  # registered with the runner; our protocol factory
        self._server = await asyncio.get_running_loop().create_server(
            lambda: HotConnection(self), sock=self._sock, ssl=self._ssl_context,
            backlog=self._backlog)

    async def stop(self) -> None:
        """No new connection; idle ones closed; answers in flight written (bounded wait)."""
        if self._server is not None:
            self._server.close()
        tasks = []
        for connection in list(self.connections):
            if connection._task is None:
                connection.force_close()
            else:
                connection._closing = True
                tasks.append(connection._task)
        if tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True),
                                       SHUTDOWN_TIMEOUT_S)
        for connection in list(self.connections):
            connection.force_close()
        await super().stop()
