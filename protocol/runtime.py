"""How every party's process runs: binding, serving and the event loop, for the switch, the
banks and the lab alike.

Shared here rather than in `switchlab/` so that the switch and the mock banks, which only speak
to each other over HTTP, need nothing from the tool that starts them. Sockets are bound before
any application starts, so that every party can be told every other party's URL without fixed
ports that collide between parallel runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
import ssl
import sys
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from protocol.hotroute import HOT_ROUTE, HotSite
from protocol.transport import GuardedRunner

T = TypeVar("T")
LOOPBACK = "127.0.0.1"
LISTEN_BACKLOG = 1024
# The folder the project's packages are imported from: a child started anywhere finds them
# there, however switchlab was installed.
CODE_ROOT = Path(__file__).resolve().parents[1]


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


def bind(host: str = LOOPBACK, port: int = 0, reuse_port: bool = False,
         listen: bool = True) -> BoundSocket:
    """A listening TCP socket on `host`; port 0 lets the OS choose a free one. With
    `reuse_port`, several processes may listen on the same port (SO_REUSEPORT, Linux and the
    BSDs): the kernel spreads new connections among them. `listen=False` only holds the port
    (a supervisor's, for its workers to listen on).

    Raises OSError when the address cannot be bound (in use, not this machine's), or
    `reuse_port` is asked where the system has no SO_REUSEPORT."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            if not hasattr(socket, "SO_REUSEPORT"):
                raise OSError("this system has no SO_REUSEPORT: one process per port")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if listen:
            sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return BoundSocket(sock)


async def serve(app: web.Application, bound: BoundSocket,
                ssl_context: ssl.SSLContext | None = None) -> GuardedRunner:
    """Start `app` on an already bound socket, under its SERVER_LIMITS (protocol/transport.py),
    over TLS when given a context (protocol/tls.py), its HOT_ROUTE (if it names one) on the
    lean server of protocol/hotroute.py; the caller cleans the runner up."""
    runner = GuardedRunner(app)
    await runner.setup()
    route = app.get(HOT_ROUTE)
    if route is None:
        await web.SockSite(runner, bound.sock, backlog=LISTEN_BACKLOG,
                           ssl_context=ssl_context).start()
    else:  # its one hot route on httptools, the rest handed to aiohttp (protocol/hotroute.py)
        await HotSite(runner, bound.sock, route, backlog=LISTEN_BACKLOG,
                      ssl_context=ssl_context).start()
    return runner


# A server allocates and frees many small objects per request, almost none in reference cycles:
# collecting the youngest generation every 700 allocations (CPython's default) costs CPU and,
# once millions of objects are alive, pauses of milliseconds that show in p99.
GC_THRESHOLDS = (50_000, 20, 20)


def settle_heap() -> None:
    """Once a server is up: collect, move what start-up made out of the collector's way
    (gc.freeze), and collect young objects less often (GC_THRESHOLDS)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


# During a timed stretch (`settled_heap`): the oldest generation is never collected (its
# threshold out of reach); the young ones are, as before.
NO_FULL_COLLECTION = 2**31 - 1


@contextlib.contextmanager
def settled_heap() -> Iterator[None]:
    """No full collection during a stretch of work, and what the process made before it out
    of the collector's way (gc.collect, gc.freeze; all given back after). The bench's load
    generator holds every message and answer of its run, and a full collection paused it,
    and every transfer in flight, for 300-520 ms under load (130 ms with the heap frozen but
    the collections left to come), which the p99 at half rate charged to the switch
    (docs/performance.md, issue #28); timeit, for the same reason, runs with the collector
    off. The young generations are still collected (aiohttp's reference cycles), with short
    pauses: the servers' GC_THRESHOLDS would make ~100 ms ones on a loaded machine."""
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(thresholds[0], thresholds[1], NO_FULL_COLLECTION)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)  # a supervisor's stop, and Ctrl-C


@contextlib.contextmanager
def stop_on_signals(signals: tuple[signal.Signals, ...] = STOP_SIGNALS
                    ) -> Iterator[asyncio.Event]:
    """An event the first of `signals` sets, for a server to end cleanly on it; the handlers
    are removed on leaving. Where the loop takes no handlers (Windows), only its owner sets it."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed = []
    for sig in signals:
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield stop
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def until_stopped(timeout_s: float | None = None,
                        signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> None:
    """Return at the first of `signals`, or after `timeout_s` (None: no time limit)."""
    with stop_on_signals(signals) as stop, contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout_s)


async def ready_until_stopped(ready_line: str,
                              signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> None:
    """Print `ready_line` ("... listening on URL", flushed) once the stop handlers are in
    place, then wait for the first of `signals`: a supervisor that stops the process as soon as
    it reads the line gets a clean stop, not the default action that ends it without cleanup."""
    with stop_on_signals(signals) as stop:
        print(ready_line, flush=True)
        await stop.wait()


def spawn(tasks: set[asyncio.Task[Any]], coroutine: Coroutine[Any, Any, Any]
          ) -> asyncio.Task[Any]:
    """Run `coroutine` in the background, held in `tasks` until it ends: the event loop keeps
    only a weak reference to a task, so one nobody holds may vanish mid-way."""
    task = asyncio.get_running_loop().create_task(coroutine)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop where it exists (not on Windows): the servers and the load
    generator spend most of their time in the event loop and aiohttp's transport."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def child_environment() -> dict[str, str]:
    """This process's environment with the project's code first on PYTHONPATH, so that a
    child started in any folder imports the same code as its parent."""
    paths = [str(CODE_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return os.environ | {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


async def start_process(*args: str, cwd: Path, start_timeout_s: float = 30.0
                        ) -> tuple[asyncio.subprocess.Process, str]:
    """Start `python args...` in the folder `cwd` (where anything it writes by a relative path
    lands: give it paths that are absolute) and wait for its first line, which must say
    "... listening on URL"; returns the process and that URL. Raises RuntimeError if it does
    not start within `start_timeout_s`."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, stdout=asyncio.subprocess.PIPE, cwd=cwd,
        env=child_environment())
    assert process.stdout is not None
    command = " ".join(args)
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), start_timeout_s)).decode()
    except TimeoutError:
        _kill(process)
        raise RuntimeError(f"{command} did not start in {start_timeout_s} s") from None
    if " listening on " not in line:
        _kill(process)
        code = await asyncio.wait_for(process.wait(), start_timeout_s)
        said = f": {line.strip()!r}" if line else ""  # nothing: it said why on its stderr
        raise RuntimeError(f"{command} did not start (exit status {code}; "
                           f"its errors are above){said}")
    return process, line.split(" listening on ", 1)[1].split()[0].strip()


def _kill(process: asyncio.subprocess.Process) -> None:
    """SIGKILL, unless it has already gone (killing a dead child raises)."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()


async def stop_process(process: asyncio.subprocess.Process, timeout_s: float = 30.0) -> None:
    """SIGTERM, wait, and SIGKILL if it will not go."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        _kill(process)
        await process.wait()
