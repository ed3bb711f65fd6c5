"""The conformance lab's parts against real servers on 127.0.0.1: the recording relay passes
every byte on and keeps it; the command says why a bank cannot be tested."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from conformance.relay import Relay
from protocol.runtime import bind
from switchlab.cli import main


async def test_the_relay_passes_every_byte_on_and_records_the_exchange() -> None:
    seen: list[tuple[str, bytes, dict[str, str]]] = []

    async def target(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append((request.path_qs, body, dict(request.headers)))
        return web.Response(status=207, body=body[::-1], headers={
            "X-Switchlab-Signature": "answer-signature", "Content-Type": "application/xml"})

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", target)
    runner = web.AppRunner(app)
    await runner.setup()
    bound = bind()
    await web.SockSite(runner, bound.sock).start()
    body = bytes(range(256)) * 10_000  # 2.5 MB: more than one chunk each way
    async with aiohttp.ClientSession() as session:
        relay = Relay(bound.base_url, "bank", session)
        relay.case = "a case"
        url = await relay.listen("switch", bind())
        try:
            async with session.post(f"{url}/iso20022?q=1", data=body, headers={
                    "X-Switchlab-Signature": "request-signature",
                    "Content-Type": "application/xml"}) as response:
                assert response.status == 207
                assert await response.read() == body[::-1]
                assert response.headers["X-Switchlab-Signature"] == "answer-signature"
        finally:
            await relay.close()
            await runner.cleanup()
    ((path, received, headers),) = seen
    assert (path, received) == ("/iso20022?q=1", body)
    assert headers["X-Switchlab-Signature"] == "request-signature"
    assert headers["Content-Type"] == "application/xml"
    (exchange,) = relay.exchanges
    assert (exchange.sender, exchange.receiver, exchange.case, exchange.path) == (
        "switch", "bank", "a case", "/iso20022?q=1")
    assert (exchange.request_body, exchange.status, exchange.response_body) == (
        body, 207, body[::-1])


async def test_the_relay_records_a_target_that_does_not_answer() -> None:
    closed = bind().hand_over()
    async with aiohttp.ClientSession() as session:
        relay = Relay(f"http://127.0.0.1:{closed}", "bank", session)
        url = await relay.listen("suite", bind())
        try:
            async with session.post(f"{url}/iso20022", data=b"<x/>") as response:
                assert response.status == 502
                assert "no answer from the bank" in await response.text()
        finally:
            await relay.close()
    (exchange,) = relay.exchanges
    assert exchange.status is None and "no answer from the bank" in (exchange.error or "")


def test_an_unreachable_bank_exits_2_saying_why(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.csv").write_text("account_id,holder_name,citizen_id,status\n"
                                    "0011,Nguyễn Thị Rà,001190012345,open\n", encoding="utf-8")
    bank_port, switch_port = bind().hand_over(), bind().hand_over()
    assert main(["conformance", "--participant-url", f"http://127.0.0.1:{bank_port}/iso20022",
                 "--bic", "BANKVNVX", "--accounts", "a.csv",
                 "--switch-port", str(switch_port)]) == 2
    shown = capsys.readouterr()
    assert "cannot reach the bank" in shown.err and "Traceback" not in shown.err
    assert "conformance-credentials/secret.txt" in shown.out  # printed for the bank's setup
    assert (tmp_path / "conformance-credentials" / "secret.txt").stat().st_mode & 0o077 == 0
