"""Signed POSTs to peers over a lean HTTP/1.1 client: keep-alive connections per origin,
answers parsed by httptools, for the switch's forwards and notices.

aiohttp's client costs ~85 µs of CPU a request where an asyncio Protocol that writes the
request in one call and parses the answer with httptools costs ~20 µs (measured in issue #28:
3 KB posted, 2 KB answered, keep-alive, 16 at once). The switch posts a forward to a creditor
or a notice for every few transfers, so the HTTP client is on its hot path as much as its
server. What is kept of aiohttp's client: connections reused (HTTP/1.1 keep-alive; an idle
one closed after IDLE_S, as aiohttp's 15 s), at most `max_connections_per_origin` open to one
peer (a request waits for one within its own deadline), the whole exchange within its
timeout (TimeoutError), a connection that answered `Connection: close`, failed or timed out
never reused, and TLS with the given context, interim 1xx answers skipped (101 refused), an
answer without a length read to the connection's close (RFC 9112 section 6.3). What is
bounded here and not in aiohttp: an answer's head (MAX_HEAD_BYTES, each line MAX_FIELD_BYTES,
checked before the parser sees the bytes) and body (`max_answer_bytes`). A connection that
brought more than one answer to one request is closed. Redirects are not followed: an answer
is the peer's own, or not one (its signature would not check).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
import httptools
from aiohttp.tcp_helpers import tcp_nodelay
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from protocol import codec, signing
from protocol.http import Peer, check_answer
from protocol.wording import count

IDLE_S = 15.0  # aiohttp's client keep-alive: an idle connection older than this is closed
MAX_HEAD_BYTES = 64 * 1024  # an answer's status line and fields together
MAX_FIELD_BYTES = 8190  # one line of its head: aiohttp's client max_field_size


@dataclass(slots=True)
class Answer:
    """A peer's answer, as check_answer reads aiohttp's ClientResponse."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    request_info: aiohttp.RequestInfo
    history: tuple[()] = ()

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()


class _OverBound(Exception):
    """An answer passed one of the client's bounds, or brought a second answer to one request
    (raised before feeding the parser or in one of its callbacks)."""


def _close_delimited(fields: list[tuple[str, str]]) -> bool:
    """Whether an answer with these fields ends its body at the connection's close: neither
    Content-Length nor a chunked last transfer coding (RFC 9112 section 6.3, rule 7)."""
    lengths = [value for name, value in fields if name.lower() == "content-length"]
    codings = [value for name, value in fields if name.lower() == "transfer-encoding"]
    return not lengths and not (
        codings and codings[-1].rsplit(",", 1)[-1].strip().lower() == "chunked")


class _Connection(asyncio.Protocol):
    """One kept-alive connection to a peer: one exchange at a time.

    httptools builds a field's value itself and calls on_header only once it is whole, so the
    head is bounded here before the parser sees the bytes: at most MAX_HEAD_BYTES fed while a
    head is incomplete (the interim 1xx answers' heads included), at most MAX_FIELD_BYTES in
    one line of it."""

    def __init__(self, max_answer_bytes: int) -> None:
        self._max_answer_bytes = max_answer_bytes
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self._answer: asyncio.Future[tuple[int, list[tuple[str, str]], bytes]] | None = None
        self._fields: list[tuple[str, str]] = []
        self._chunks: list[bytes] = []
        self._head_bytes = self._line_bytes = self._body_bytes = 0
        self._in_head = True  # the exchange's answer has not finished its head yet
        self.reusable = True
        self.idle_since_s = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        tcp_nodelay(transport, True)  # type: ignore[arg-type]

    def connection_lost(self, exc: BaseException | None) -> None:
        self.reusable = False
        self.transport = None
        if exc is None and not self._in_head and _close_delimited(self._fields):
            self._complete()  # its body was delimited by this close (on_body kept it bounded)
            return
        self._fail(aiohttp.ServerDisconnectedError(
            f"the peer closed the connection before its answer was whole ({exc or 'EOF'})"))

    def data_received(self, data: bytes) -> None:
        if self._answer is None:  # nothing asked: a peer talking out of turn
            self.close()
            return
        try:
            while data:
                if self._answer.done():  # more than one answer to one request
                    self.close()
                    return
                if not self._in_head:
                    self._parser.feed_data(data)
                    return
                part, data = self._head_part(data)
                self._parser.feed_data(part)
                if self._in_head:
                    self._count_line(part)
        except _OverBound as bound:
            self._fail(aiohttp.ClientPayloadError(f"the peer's answer is {bound}"))
        except httptools.HttpParserUpgrade:
            self._fail(aiohttp.ClientPayloadError(
                "the peer answered with an upgrade (101 or CONNECT), which no POST here asks"))
        except httptools.HttpParserError as error:
            bound = error.__context__  # the bound a callback found passed, if that was it
            self._fail(aiohttp.ClientPayloadError(
                f"the peer's answer is {bound}" if isinstance(bound, _OverBound)
                else f"the peer's answer is not HTTP/1.1: {error}"))

    def _head_part(self, data: bytes) -> tuple[bytes, bytes]:
        """The part of `data` the parser may take while a head is incomplete, and the rest;
        raises _OverBound once the head is over its bound."""
        room = MAX_HEAD_BYTES - self._head_bytes
        if room <= 0:
            raise _OverBound(f"a head over {MAX_HEAD_BYTES:,} bytes")
        part = data[:room]
        self._head_bytes += len(part)
        return part, data[room:]

    def _count_line(self, part: bytes) -> None:
        """Raise _OverBound once the incomplete line the parser holds (part's end) is over
        MAX_FIELD_BYTES; so httptools never builds a field of more than that and one part."""
        line_end = part.rfind(b"\n")
        self._line_bytes = (self._line_bytes + len(part) if line_end < 0
                            else len(part) - line_end - 1)
        if self._line_bytes > MAX_FIELD_BYTES:
            raise _OverBound(f"a head with a line over {MAX_FIELD_BYTES:,} bytes")

    def on_message_begin(self) -> None:
        if self._answer is not None and self._answer.done():
            raise _OverBound("more than one answer to one request")  # _fail closes it

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) > MAX_FIELD_BYTES:
            raise _OverBound(f"a head with a line over {MAX_FIELD_BYTES:,} bytes")
        self._fields.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        self._in_head = False

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self._max_answer_bytes:
            raise _OverBound(f"over {count(self._max_answer_bytes, 'byte')}")
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # interim (RFC 9110 15.2): the final one follows; a 101 ends
            # in HttpParserUpgrade once this returns, which data_received refuses
            self._fields, self._chunks, self._in_head = [], [], True
            return
        if not self._parser.should_keep_alive():
            self.reusable = False
        self._complete()

    def _complete(self) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_result((self._parser.get_status_code(), list(self._fields),
                                     b"".join(self._chunks)))

    def _fail(self, error: BaseException) -> None:
        self.reusable = False
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)
        self.close()

    async def exchange(self, request: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """Write one request, wait for its whole answer; the caller bounds the wait."""
        assert self.transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self._fields, self._chunks, self._in_head = [], [], True
        self._head_bytes = self._line_bytes = self._body_bytes = 0
        self.transport.write(request)
        try:
            return await self._answer
        finally:
            self._answer = None

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


class _Origin:
    """The connections to one peer (scheme, host, port): idle ones last-in first-out."""

    def __init__(self, limit: int) -> None:
        self.slots = asyncio.Semaphore(limit)
        self.idle: deque[_Connection] = deque()

    def reuse(self, now_s: float) -> _Connection | None:
        while self.idle:
            connection = self.idle.pop()
            if connection.reusable and connection.transport is not None and (
                    now_s - connection.idle_since_s < IDLE_S):
                return connection
            connection.close()
        return None


class LeanClient:
    """POSTs over kept-alive HTTP/1.1 connections (module docstring); close() when done."""

    def __init__(self, max_connections_per_origin: int = 100,
                 ssl_context: ssl.SSLContext | None = None,
                 max_answer_bytes: int = codec.MAX_MESSAGE_BYTES) -> None:
        self._limit = max_connections_per_origin
        self._ssl_context = ssl_context
        self._max_answer_bytes = max_answer_bytes
        self._origins: dict[tuple[str, str, int], _Origin] = {}
        self._closed = False

    async def post(self, url: URL, body: bytes, headers: Mapping[str, str],
                   timeout_s: float) -> Answer:
        """POST `body` to `url` with `headers` (Host and Content-Length added); the whole
        exchange within `timeout_s` (TimeoutError). Raises OSError when no connection can be
        made, aiohttp.ClientError (ServerDisconnectedError, ClientPayloadError) when the
        answer is lost, not HTTP/1.1, or over its bounds."""
        if self._closed:
            raise aiohttp.ClientConnectionError("the client is closed")
        assert url.host is not None and url.port is not None
        key = (url.scheme, url.host, url.port)
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = _Origin(self._limit)
        head = "".join([f"POST {url.raw_path_qs} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n",
                        *(f"{name}: {value}\r\n" for name, value in headers.items()),
                        f"Content-Length: {len(body)}\r\n\r\n"]).encode()
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout_s), origin.slots:
            connection = origin.reuse(loop.time()) or await self._connect(loop, url)
            try:
                status, fields, answer = await connection.exchange(head + body)
            except BaseException:
                connection.close()
                raise
            if connection.reusable and not self._closed:
                connection.idle_since_s = loop.time()
                origin.idle.append(connection)
            else:
                connection.close()
        request_headers = CIMultiDictProxy(CIMultiDict(headers))
        return Answer(status, CIMultiDictProxy(CIMultiDict(fields)), answer,
                      aiohttp.RequestInfo(url, "POST", request_headers, url))

    async def _connect(self, loop: asyncio.AbstractEventLoop, url: URL) -> _Connection:
        context: ssl.SSLContext | None = None
        if url.scheme == "https":
            if self._ssl_context is None:  # the system's authorities, as aiohttp's ssl=True
                self._ssl_context = ssl.create_default_context()
            context = self._ssl_context
        _, connection = await loop.create_connection(
            lambda: _Connection(self._max_answer_bytes), url.host, url.port, ssl=context,
            server_hostname=url.host if context is not None else None)
        return connection

    async def close(self) -> None:
        """Close every idle connection; those in use close when their exchange ends."""
        self._closed = True
        for origin in self._origins.values():
            while origin.idle:
                origin.idle.pop().close()


class LeanPeer(Peer):
    """protocol/http.py's Peer over a LeanClient: the same signing and checks."""

    def __init__(self, client: LeanClient, url: str, own_bic: str,
                 credentials: signing.Credentials, peer_bic: str, timeout_s: float = 10.0,
                 ) -> None:
        super().__init__(client, url, own_bic, credentials, peer_bic,  # type: ignore[arg-type]
                         timeout_s)
        self._client = client
        self._url = URL(url)

    async def exchange(self, body: bytes, timeout_s: float | None = None
                       ) -> tuple[int, str, bytes]:
        headers = signing.sign(self.own_bic, self._credentials.own, self._path, body)
        total_s = self._timeout.total if timeout_s is None else timeout_s
        answer = await self._client.post(self._url, body, headers,
                                         total_s or float("inf"))
        check_answer(answer, answer.body, self.peer_bic,  # type: ignore[arg-type]
                     self._credentials.peer, headers)
        return answer.status, answer.content_type, answer.body


