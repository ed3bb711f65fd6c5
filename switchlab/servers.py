"""Starting aiohttp applications on loopback sockets chosen by the OS.

Sockets are bound before any application starts, so that every party can be told every other
party's URL (the switch needs the banks' inbound URLs, the banks need the switch's) without
fixed ports that collide between parallel runs.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from aiohttp import web

LOOPBACK = "127.0.0.1"


@dataclass(slots=True)
class BoundSocket:
    sock: socket.socket

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


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
