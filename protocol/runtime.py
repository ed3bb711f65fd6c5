"""How every party's process runs: binding, serving and the event loop, for the switch, the
banks and the lab alike.

Shared here rather than in `switchlab/` so that the switch and the mock banks, which only speak
to each other over HTTP, need nothing from the tool that starts them. Sockets are bound before
any application starts, so that every party can be told every other party's URL without fixed
ports that collide between parallel runs.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from protocol.transport import GuardedRunner

T = TypeVar("T")
LOOPBACK = "127.0.0.1"
LISTEN_BACKLOG = 1024


@dataclass(slots=True)
class BoundSocket:
    sock: socket.socket

    @property
    def host(self) -> str:
        return str(self.sock.getsockname()[0])

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def base_url(self) -> str:
        host = self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def hand_over(self) -> int:
        """Close the socket and return its port, for a child process to bind: the port was
        held only so that every party could be told it before anything started."""
        port = self.port
        self.sock.close()
        return port


def bind(host: str = LOOPBACK, port: int = 0) -> BoundSocket:
    """A listening TCP socket on `host`; port 0 lets the OS choose a free one.

    Raises OSError when the address cannot be bound (in use, not this machine's)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return BoundSocket(sock)


async def serve(app: web.Application, bound: BoundSocket) -> GuardedRunner:
    """Start `app` on an already bound socket, under its SERVER_LIMITS (protocol/transport.py);
    the caller cleans the runner up."""
    runner = GuardedRunner(app)
    await runner.setup()
    await web.SockSite(runner, bound.sock, backlog=LISTEN_BACKLOG).start()
    return runner


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop where it exists (not on Windows): the servers and the load
    generator spend most of their time in the event loop and aiohttp's transport."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
