"""Starting aiohttp applications on loopback sockets chosen by the OS.

Sockets are bound before any application starts, so that every party can be told every other
party's URL (the switch needs the banks' inbound URLs, the banks need the switch's) without
fixed ports that collide between parallel runs.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

LOOPBACK = "127.0.0.1"
PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(slots=True)
class BoundSocket:
    sock: socket.socket

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def hand_over(self) -> int:
        """Close the socket and return its port, for a child process to bind: the port was
        held only so that every party could be told it before anything started."""
        port = self.port
        self.sock.close()
        return port


def bind_loopback(port: int = 0) -> BoundSocket:
    """A listening TCP socket on 127.0.0.1; port 0 lets the OS choose a free one."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, port))
    sock.listen(1024)
    sock.setblocking(False)
    return BoundSocket(sock)


async def serve(app: web.Application, bound: BoundSocket) -> web.AppRunner:
    """Start `app` on an already bound socket; the caller cleans the runner up."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, bound.sock, backlog=1024).start()
    return runner


async def start_process(*args: str, start_timeout_s: float = 30.0
                        ) -> tuple[asyncio.subprocess.Process, str]:
    """Start `python args...` from the project root and wait for its first line, which must
    say "... listening on URL"; returns the process and that URL."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, stdout=asyncio.subprocess.PIPE, cwd=PROJECT_ROOT)
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), start_timeout_s)).decode()
    except TimeoutError:
        process.kill()
        raise RuntimeError(f"{' '.join(args)} did not start in {start_timeout_s} s") from None
    if " listening on " not in line:
        process.kill()
        raise RuntimeError(f"{' '.join(args)} did not start: {line!r}")
    return process, line.rsplit(" ", 1)[1].strip()


async def stop_process(process: asyncio.subprocess.Process, timeout_s: float = 30.0) -> None:
    """SIGTERM, wait, and SIGKILL if it will not go."""
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
