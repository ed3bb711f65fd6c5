"""Issue #28, the hot route on a lower-level HTTP server: `POST /v1/messages` is served by
httptools (protocol/hotroute.py) and every other request on the same connection by aiohttp,
with HTTP/1.1's keep-alive, pipelining, `Connection: close` and `Expect: 100-continue` as
before. Raw sockets stand for the participants' clients; real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from protocol import hotroute
from switch import app as app_module
from tests.harness import TREASURY, SwitchLab
from tests.integration.test_transport import WAIT_S, head, inquiry, read_answer, signed_body


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[SwitchLab]:
    lab = await SwitchLab(tmp_path / "switch.sqlite").start()
    yield lab
    await lab.stop()


def signed_request(lab: SwitchLab, extra: dict[str, str] | None = None) -> bytes:
    body, headers = signed_body(lab, TREASURY, inquiry())
    return head(lab.port, headers | (extra or {})) + body


async def test_issue28_pipelined_messages_and_another_route_are_answered_in_order(
        lab: SwitchLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two signed messages and a health check in one write: the messages on the hot route,
    the connection handed to aiohttp for the third, the answers in the order asked."""
    handed: list[object] = []
    hand_over = hotroute.HotConnection._hand_over

    def counted(connection: hotroute.HotConnection) -> None:
        handed.append(connection)
        hand_over(connection)

    monkeypatch.setattr(hotroute.HotConnection, "_hand_over", counted)
    health = f"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:{lab.port}\r\n\r\n".encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", lab.port)
    writer.write(signed_request(lab) + signed_request(lab) + health)
    answers = [await asyncio.wait_for(read_answer(reader), WAIT_S) for _ in range(3)]
    writer.write(signed_request(lab))  # the connection stays open, now aiohttp's
    answers.append(await asyncio.wait_for(read_answer(reader), WAIT_S))
    writer.close()
    assert [status for status, _ in answers] == [200, 200, 200, 200]
    assert "pacs.002" in answers[0][1] and "pacs.002" in answers[1][1]
    assert answers[2][1] == '{"status": "ok"}' and "pacs.002" in answers[3][1]
    assert len(handed) == 1


async def test_issue28_connection_close_and_100_continue_on_the_hot_route(lab: SwitchLab
                                                                         ) -> None:
    """`Expect: 100-continue` gets its interim answer before the body is sent; `Connection:
    close` gets the answer and then the close."""
    body, headers = signed_body(lab, TREASURY, inquiry())
    reader, writer = await asyncio.open_connection("127.0.0.1", lab.port)
    writer.write(head(lab.port, headers | {"Expect": "100-continue"}))
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
    assert interim.startswith(b"HTTP/1.1 100 Continue")
    writer.write(body)
    status, text = await asyncio.wait_for(read_answer(reader), WAIT_S)
    assert status == 200 and "pacs.002" in text
    writer.write(signed_request(lab, {"Connection": "close"}))
    status, text = await asyncio.wait_for(read_answer(reader), WAIT_S)
    assert status == 200 and "pacs.002" in text
    assert await asyncio.wait_for(reader.read(), WAIT_S) == b""
    writer.close()


async def test_issue28_the_hot_route_keeps_the_bounded_keepalive(
        lab: SwitchLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer that spends a connection's request budget says `Connection: close` and the
    connection closes after it, on the hot route as on aiohttp's (issue #24)."""
    monkeypatch.setattr(app_module, "MAX_REQUESTS_PER_CONNECTION", 2)
    reader, writer = await asyncio.open_connection("127.0.0.1", lab.port)
    writer.write(signed_request(lab))
    first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
    await reader.readexactly(int(first.lower().split(b"content-length: ")[1].split(b"\r")[0]))
    writer.write(signed_request(lab))
    second = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
    assert b"connection: close" not in first.lower()
    assert b"connection: close" in second.lower()
    await reader.readexactly(int(second.lower().split(b"content-length: ")[1].split(b"\r")[0]))
    assert await asyncio.wait_for(reader.read(), WAIT_S) == b""
    writer.close()


async def test_issue28_a_head_in_small_pieces_is_framed_whole(lab: SwitchLab) -> None:
    """The hot route frames a head itself: one arriving a few bytes at a time is answered as
    one sent at once (and not handed over as if it were another route)."""
    request = signed_request(lab)
    reader, writer = await asyncio.open_connection("127.0.0.1", lab.port)
    cut = request.index(b"\r\n\r\n") + 4
    for start in range(0, cut, 7):
        writer.write(request[start:start + 7])
        await writer.drain()
        await asyncio.sleep(0.001)
    writer.write(request[cut:])
    status, text = await asyncio.wait_for(read_answer(reader), WAIT_S)
    writer.close()
    assert status == 200 and "pacs.002" in text


async def test_issue28_a_defect_on_the_hot_route_is_a_readable_500_logged_once(
        lab: SwitchLab, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
        ) -> None:
    """A bug of the switch while serving a message: the sender reads a 500 with a body and a
    closed connection, the log one traceback; the next connection is served."""
    async def broken(*_: object) -> None:
        raise KeyError("a defect")

    monkeypatch.setattr(app_module.inquiry, "status_report", broken)
    reader, writer = await asyncio.open_connection("127.0.0.1", lab.port)
    writer.write(signed_request(lab))
    status, text = await asyncio.wait_for(read_answer(reader), WAIT_S)
    assert await asyncio.wait_for(reader.read(), WAIT_S) == b""
    writer.close()
    assert status == 500 and "Internal Server Error" in text
    assert sum("KeyError: 'a defect'" in (record.exc_text or "") for record in caplog.records
               ) == 1
    monkeypatch.undo()
    reader, writer = await asyncio.open_connection("127.0.0.1", lab.port)
    writer.write(signed_request(lab))
    status, text = await asyncio.wait_for(read_answer(reader), WAIT_S)
    writer.close()
    assert status == 200 and "pacs.002" in text
