"""Several switch processes on one port: `python -m switch --config switch.yaml --processes N`.

Each worker is a `python -m switch --reuse-port` of its own, on the same port (SO_REUSEPORT:
the kernel spreads connections among them), all on the configuration's PostgreSQL journal,
which they share (switch/cluster.py). The supervisor holds the port, starts the workers,
restarts one that dies (a SIGKILL, a crash: a survivor or the restarted worker takes over what
it left), and stops them all on SIGTERM or SIGINT. On several machines, run one switch (or one
supervisor) per machine on the same journal, behind the operator's load balancer.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from protocol.runtime import bind, start_process, stop_on_signals, stop_process
from switch.config import SwitchConfig

log = logging.getLogger(__name__)

MAX_PROCESSES = 64
START_TIMEOUT_S = 60.0
RESTART_DELAY_S = 1.0
MAX_RESTARTS = 100  # per supervisor run: a worker that cannot stay up is a fault to look at


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


async def _restart_until(stop: asyncio.Event, workers: list[asyncio.subprocess.Process],
                         command: list[str], here: Path) -> None:
    """Restart any worker that dies (at most MAX_RESTARTS in all) until `stop` is set."""
    restarts = 0
    while not stop.is_set():
        ended = [asyncio.ensure_future(w.wait()) for w in workers]
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait([*ended, stopping], return_when=asyncio.FIRST_COMPLETED)
        for future in [*ended, stopping]:
            future.cancel()
        if stop.is_set():
            break
        for index, worker in enumerate(workers):
            if worker.returncode is None:
                continue
            restarts += 1
            if restarts > MAX_RESTARTS:
                log.error("switch workers died %d times; giving up", restarts)
                return
            log.warning("switch worker %d (pid %d) ended with %s; restarting", index,
                        worker.pid, worker.returncode)
            await asyncio.sleep(RESTART_DELAY_S)
            workers[index], _ = await start_process(*command, cwd=here,
                                                    start_timeout_s=START_TIMEOUT_S)
            print(f"switch worker {index} restarted: pid {workers[index].pid}", flush=True)
