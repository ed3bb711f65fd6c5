"""Issue #28, the switch's lean HTTP client (protocol/hotclient.py): what it keeps of aiohttp's
client (keep-alive, bounded connections per peer, a deadline per exchange) and what it
bounds that aiohttp does not (an answer's size). Real aiohttp servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from protocol.hotclient import LeanClient
from protocol.runtime import bind

XML = {"Content-Type": "application/xml"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def peer() -> AsyncIterator[Callable[[Handler], Awaitable[tuple[URL, list[object]]]]]:
    """Serve a handler; the URL and the connection (protocol object) of each request."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> tuple[URL, list[object]]:
        connections: list[object] = []

        async def seen(request: web.Request) -> web.StreamResponse:
            connections.append(request.protocol)
            return await handler(request)

        app = web.Application()
        app.router.add_post("/in", seen)
        runner = web.AppRunner(app)
        await runner.setup()
        bound = bind()
        await web.SockSite(runner, bound.sock).start()
        runners.append(runner)
        return URL(f"{bound.base_url}/in"), connections

    yield start
    for runner in runners:
        await runner.cleanup()


async def echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read(), content_type="application/xml")


async def test_issue28_kept_alive_connections_are_reused_until_the_peer_says_close(
        peer: Callable[[Handler], Awaitable[tuple[URL, list[object]]]]) -> None:
    closing = [False, False, True, False]

    async def answer(request: web.Request) -> web.Response:
        response = await echo(request)
        if closing.pop(0):
            response.force_close()
        return response

    url, connections = await peer(answer)
    client = LeanClient(4)
    try:
        bodies = [(await client.post(url, b"<m>%d</m>" % n, XML, 5.0)).body for n in range(4)]
    finally:
        await client.close()
    assert bodies == [b"<m>%d</m>" % n for n in range(4)]
    assert connections[0] is connections[1] is connections[2]  # kept alive
    assert connections[3] is not connections[2]  # a new one after `Connection: close`


async def test_issue28_an_answer_over_its_bound_or_late_is_no_answer(
        peer: Callable[[Handler], Awaitable[tuple[URL, list[object]]]]) -> None:
    async def large(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"x" * 100_000, content_type="application/xml")

    async def late(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return await echo(request)

    large_url, _ = await peer(large)
    late_url, _ = await peer(late)
    client = LeanClient(4, max_answer_bytes=10_000)
    try:
        with pytest.raises(aiohttp.ClientPayloadError, match="over 10,000 bytes"):
            await client.post(large_url, b"<m/>", XML, 5.0)
        with pytest.raises(TimeoutError):
            await client.post(late_url, b"<m/>", XML, 0.2)
    finally:
        await client.close()


async def test_issue28_at_most_the_limit_of_connections_to_one_peer(
        peer: Callable[[Handler], Awaitable[tuple[URL, list[object]]]]) -> None:
    """Ten exchanges at once through a limit of two: two connections, every answer right."""
    async def slow_echo(request: web.Request) -> web.Response:
        await asyncio.sleep(0.01)
        return await echo(request)

    url, connections = await peer(slow_echo)
    client = LeanClient(2)
    try:
        answers = await asyncio.gather(*(client.post(url, b"<m>%d</m>" % n, XML, 10.0)
                                         for n in range(10)))
    finally:
        await client.close()
    assert [answer.body for answer in answers] == [b"<m>%d</m>" % n for n in range(10)]
    assert len({id(connection) for connection in connections}) == 2


RawAnswer = Callable[[asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def raw_peer() -> AsyncIterator[Callable[[RawAnswer], Awaitable[tuple[URL, list[int]]]]]:
    """A raw asyncio server writing hostile answers: for each request on each connection,
    `answer(writer)` writes the bytes; the URL and the number of requests read per connection."""
    servers: list[asyncio.Server] = []

    async def start(answer: RawAnswer) -> tuple[URL, list[int]]:
        requests_per_connection: list[int] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            requests_per_connection.append(0)
            seen = len(requests_per_connection) - 1
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length:"))
                    await reader.readexactly(length)
                    requests_per_connection[seen] += 1
                    await answer(writer)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        bound = bind()
        server = await asyncio.start_server(handle, sock=bound.sock)
        servers.append(server)
        return URL(f"{bound.base_url}/in"), requests_per_connection

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def writes(data: bytes, close: bool = False) -> RawAnswer:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        if close:
            writer.close()
    return answer


ENDLESS_CAP_BYTES = 32 * 1024 * 1024  # the old client read all of it, slower and slower


@pytest.mark.parametrize(("head", "unit", "refusal"), [
    (b"HTTP/1.1 200 OK\r\nX-Pad: ", b"a" * 1024,  # one field that never ends
     "a head with a line over 8,190 bytes"),
    (b"HTTP/1.1 200 OK\r\n", b"X-Pad: " + b"a" * 1015 + b"\r\n",  # fields that never end
     "a head over 65,536 bytes"),
])
async def test_attacker3_finding1_an_endless_head_is_cut_at_its_bound(
        raw_peer: Callable[[RawAnswer], Awaitable[tuple[URL, list[int]]]],
        head: bytes, unit: bytes, refusal: str) -> None:
    """A creditor's answer whose head never ends: the client refuses it once past
    MAX_HEAD_BYTES or one line past MAX_FIELD_BYTES, before httptools builds the field (which
    costs quadratic time), so the creditor cannot send more than the sockets' buffers hold."""
    sent_bytes = [0]
    stopped = asyncio.Event()

    async def endless(writer: asyncio.StreamWriter) -> None:
        writer.write(head)
        try:
            while sent_bytes[0] < ENDLESS_CAP_BYTES:
                writer.write(unit * 64)
                await writer.drain()  # raises once the client has cut the connection
                sent_bytes[0] += len(unit) * 64
        finally:
            stopped.set()

    url, _ = await raw_peer(endless)
    client = LeanClient(4)
    try:
        with pytest.raises(aiohttp.ClientPayloadError, match=refusal):
            await client.post(url, b"<m/>", XML, 30.0)
    finally:
        await client.close()
    await asyncio.wait_for(stopped.wait(), 30.0)
    assert sent_bytes[0] < ENDLESS_CAP_BYTES // 2  # the sockets' buffers: ~4 MB on Linux


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nConnection: close\r\n\r\n<Document/>",
    b"HTTP/1.0 200 OK\r\nContent-Type: application/xml\r\n\r\n<Document/>",
])
async def test_attacker3_finding3_an_answer_ended_by_the_close_is_read_to_the_close(
        raw_peer: Callable[[RawAnswer], Awaitable[tuple[URL, list[int]]]],
        answer: bytes) -> None:
    """No Content-Length, not chunked: the body ends at the close (RFC 9112 section 6.3), as
    aiohttp's client read it; bounded by max_answer_bytes; that connection never reused."""
    url, requests_per_connection = await raw_peer(writes(answer, close=True))
    large_url, _ = await raw_peer(writes(answer + b"x" * 20_000, close=True))
    client = LeanClient(4, max_answer_bytes=10_000)
    try:
        answers = [await client.post(url, b"<m/>", XML, 5.0) for _ in range(2)]
        with pytest.raises(aiohttp.ClientPayloadError, match="over 10,000 bytes"):
            await client.post(large_url, b"<m/>", XML, 5.0)
    finally:
        await client.close()
    assert [(a.status, a.content_type, a.body) for a in answers] == [
        (200, "application/xml", b"<Document/>")] * 2
    assert requests_per_connection == [1, 1]


async def test_attacker3_finding4_interim_1xx_answers_are_skipped_and_101_refused(
        raw_peer: Callable[[RawAnswer], Awaitable[tuple[URL, list[int]]]]) -> None:
    """103 Early Hints and 100 Continue come before the final answer (RFC 9110 section 15.2),
    as aiohttp's client skips them; a 101 switches protocols, which no POST here asks."""
    interim = (b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
               b"HTTP/1.1 100 Continue\r\n\r\n")
    final = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n<Document/>"
    url, requests_per_connection = await raw_peer(writes(interim + final))
    upgrade_url, _ = await raw_peer(writes(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n"))
    client = LeanClient(4)
    try:
        answers = [await client.post(url, b"<m/>", XML, 5.0) for _ in range(2)]
        with pytest.raises(aiohttp.ClientPayloadError, match="upgrade"):
            await client.post(upgrade_url, b"<m/>", XML, 5.0)
    finally:
        await client.close()
    assert [(a.status, list(a.headers.items()), a.body) for a in answers] == [
        (200, [("Content-Length", "11")], b"<Document/>")] * 2
    assert requests_per_connection == [2]  # kept alive through the interim answers


@pytest.mark.parametrize("trailing", [
    b"HTTP/1.1 200 OK\r\nX-A: second\r\nContent-Length: 2\r\n\r\nhi",  # a whole second answer
    b"HTTP/1.1 200 OK\r\nX-A: sec",  # part of one, which would desync the next exchange
])
async def test_attacker3_finding5_bytes_after_an_answer_close_its_connection(
        raw_peer: Callable[[RawAnswer], Awaitable[tuple[URL, list[int]]]],
        trailing: bytes) -> None:
    """More than one answer to one request: the first is handed back as it was, and its
    connection is closed, not reused with the rest in its parser."""
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-A: first\r\n\r\n<Document/>"
    url, requests_per_connection = await raw_peer(writes(first + trailing))
    client = LeanClient(4)
    try:
        answers = [await client.post(url, b"<m/>", XML, 5.0) for _ in range(2)]
    finally:
        await client.close()
    assert [(list(a.headers.items()), a.body) for a in answers] == [
        ([("Content-Length", "11"), ("X-A", "first")], b"<Document/>")] * 2
    assert requests_per_connection == [1, 1]
