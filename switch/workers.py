"""Several switch processes on one port: `python -m switch --config switch.yaml --processes N`.

Each worker is a `python -m switch --reuse-port` of its own, on the same port (SO_REUSEPORT:
the kernel spreads connections among them), all on the configuration's PostgreSQL journal,
which they share (switch/cluster.py). The supervisor holds the port, starts the workers,
restarts whatever ends (a SIGKILL, a crash, a worker taken over by another, one that could not
start while the journal was out of reach: a survivor or the restarted worker takes over what
it left), at a bounded rate, and stops them all on SIGTERM or SIGINT. On several machines,
run one switch (or one supervisor) per machine on the same journal, behind the operator's
load balancer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from protocol.runtime import bind, start_process, stop_on_signals, stop_process
from switch.config import SwitchConfig

log = logging.getLogger(__name__)

MAX_PROCESSES = 64
START_TIMEOUT_S = 60.0
# A worker that ends is started again after a delay that doubles each time it ends within
# STAYED_UP_S of its start (the journal not back yet, a fault at start), up to the longest:
# at most one start every RESTART_MAX_DELAY_S per worker, however long the fault lasts.
RESTART_FIRST_DELAY_S = 1.0
RESTART_MAX_DELAY_S = 30.0
STAYED_UP_S = 60.0


def check_processes(config: SwitchConfig, processes: int) -> str | None:
    """Why the configuration cannot run this many processes, or None."""
    if not 1 <= processes <= MAX_PROCESSES:
        return f"processes must be from 1 to {MAX_PROCESSES}"
    if processes > 1 and config.journal_url is None:
        return ("several switch processes need a shared journal: set journal_url to a "
                "PostgreSQL database (the SQLite journal is for one process)")
    return None


async def supervise(config: SwitchConfig, config_path: Path, port: int | None, processes: int,
                    log_level: str) -> None:
    """Hold the port, run `processes` workers on it until SIGTERM/SIGINT, restarting any that
    dies; prints "switch BIC listening on URL (N processes)" once all are up."""
    held = bind(config.host, config.port if port is None else port, reuse_port=True,
                listen=False)
    command = ["-m", "switch", "--config", str(config_path.resolve()), "--port",
               str(held.port), "--reuse-port", "--log-level", log_level]
    here = Path.cwd()  # the configuration's relative paths mean what they mean to the operator
    workers = [(await start_process(*command, start_timeout_s=START_TIMEOUT_S, cwd=here))[0]
               for _ in range(processes)]
    try:
        with stop_on_signals() as stop:  # before the ready line: a stop right after it is clean
            print(f"switch {config.bic} listening on {held.base_url} ({processes} processes, "
                  f"pids {' '.join(str(w.pid) for w in workers)})", flush=True)
            await _restart_until(stop, workers, command, here)
    finally:
        await asyncio.gather(*(stop_process(w, START_TIMEOUT_S) for w in workers))
        held.sock.close()


@dataclass
class _Worker:
    """One worker slot: its process (None between a failed start and the next), when it
    started (the event loop's clock), and the delay before its next start."""

    process: asyncio.subprocess.Process | None
    started_s: float
    delay_s: float = RESTART_FIRST_DELAY_S


async def _restart_until(stop: asyncio.Event, workers: list[asyncio.subprocess.Process],
                         command: list[str], here: Path) -> None:
    """Start again any worker that ends, at a bounded rate, until `stop` is set; `workers`
    is kept current (the supervisor stops them at the end)."""
    loop = asyncio.get_running_loop()
    slots = [_Worker(w, loop.time()) for w in workers]
    while not stop.is_set():
        ended = [asyncio.ensure_future(s.process.wait()) for s in slots
                 if s.process is not None and s.process.returncode is None]
        stopping = asyncio.ensure_future(stop.wait())
        waiting = [*ended, stopping]
        if any(s.process is None or s.process.returncode is not None for s in slots):
            waiting.append(asyncio.ensure_future(asyncio.sleep(0)))
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        for future in waiting:
            future.cancel()
        if stop.is_set():
            break
        for index, slot in enumerate(slots):
            if slot.process is not None and slot.process.returncode is None:
                continue
            if loop.time() - slot.started_s >= STAYED_UP_S:
                slot.delay_s = RESTART_FIRST_DELAY_S
            if slot.process is not None:
                log.warning("switch worker %d (pid %d) ended with %s; starting it again in "
                            "%.0f s", index, slot.process.pid, slot.process.returncode,
                            slot.delay_s)
            with contextlib.suppress(TimeoutError):  # a stop meanwhile ends the wait
                await asyncio.wait_for(stop.wait(), slot.delay_s)
            if stop.is_set():
                return
            slot.started_s = loop.time()
            slot.delay_s = min(2 * slot.delay_s, RESTART_MAX_DELAY_S)
            try:
                slot.process, _ = await start_process(*command, cwd=here,
                                                      start_timeout_s=START_TIMEOUT_S)
            except RuntimeError as error:  # it said why on its stderr; try again later
                log.warning("switch worker %d did not start: %s", index, error)
                slot.process = None
                continue
            workers[index] = slot.process
            print(f"switch worker {index} restarted: pid {slot.process.pid}", flush=True)

