"""What this machine can do this hour, printed at the top of every `switchlab bench`.

On this project's 2-core VM the same code's bare-forwarder floor has measured anywhere from
2,000 to 8,300 transfers/s on one day. Three probes, each under a second, say which kind of
hour a report comes from:

- CPython speed: a fixed loop, for everything the switch does in Python;
- a loopback round trip between two processes: every hop between the load generator, the
  switch and a bank pays it. On a VM that halts an idle virtual CPU (Firecracker here, with
  guest halt-polling off), waking a process on the other core costs ~45 µs: the round trip
  reads ~110 µs across the two cores against ~20 µs when both processes share one;
- durable SQLite commits a second (WAL, full sync): the journal's floor.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import sqlite3
import statistics
import tempfile
import time
import timeit
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from protocol.runtime import LOOPBACK, bind

PROBE_TIMEOUT_S = 10.0
PING_BYTES = b"x" * 64


@dataclass(frozen=True, slots=True)
class MachineProbe:
    python_loop_us: float  # sum(range(1000)), best of five
    round_trip_us_p50: float  # 64 bytes there and back between two processes, loopback TCP
    durable_commits_per_s: float  # one-row SQLite transactions, WAL, synchronous=FULL


def python_loop_us(repeat: int = 5, number: int = 2_000) -> float:
    return min(timeit.repeat("sum(range(1000))", repeat=repeat, number=number)) / number * 1e6


def _echo(port: int) -> None:
    """The other process of the round trip: send back whatever arrives until the end."""
    with socket.create_connection((LOOPBACK, port), timeout=PROBE_TIMEOUT_S) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while data := sock.recv(len(PING_BYTES)):
            sock.sendall(data)


def _receive_exactly(sock: socket.socket, size: int) -> None:
    received = 0
    while received < size:
        chunk = sock.recv(size - received)
        if not chunk:
            raise ConnectionError("the echo process closed the connection mid-probe")
        received += len(chunk)


def round_trip_us_p50(count: int = 2_000) -> float:
    """Median time for 64 bytes to go to another process over loopback TCP and come back."""
    assert 0 < count <= 100_000
    listener = bind().sock
    listener.settimeout(PROBE_TIMEOUT_S)
    samples_s = []
    with listener, ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        echo = pool.submit(_echo, listener.getsockname()[1])
        connection, _ = listener.accept()
        with connection:
            connection.settimeout(PROBE_TIMEOUT_S)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(count):
                started = time.perf_counter()
                connection.sendall(PING_BYTES)
                _receive_exactly(connection, len(PING_BYTES))
                samples_s.append(time.perf_counter() - started)
        echo.result(timeout=PROBE_TIMEOUT_S)
    return statistics.median(samples_s) * 1e6


def durable_commits_per_s(directory: Path, count: int = 500) -> float:
    """One-row transactions on a fresh WAL database with full sync, as the journal opens it."""
    assert 0 < count <= 100_000
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        connection = sqlite3.connect(os.path.join(scratch, "probe.sqlite"),
                                     isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("CREATE TABLE probe (n INTEGER)")
            started = time.perf_counter()
            for n in range(count):
                connection.execute("BEGIN IMMEDIATE")
                connection.execute("INSERT INTO probe VALUES (?)", (n,))
                connection.execute("COMMIT")
            elapsed_s = time.perf_counter() - started
        finally:
            connection.close()
    return count / elapsed_s


def probe(directory: Path) -> MachineProbe:
    """About a second; run before anything else starts, so nothing competes with it."""
    return MachineProbe(python_loop_us(), round_trip_us_p50(), durable_commits_per_s(directory))


def busy_cpu_s() -> float | None:
    """CPU time every core of the machine has spent busy since boot (Linux /proc/stat: all but
    idle and iowait), in seconds; None elsewhere. Over a run, divided by the run's transfers,
    it is the machine's whole CPU per transfer: switch, database, participants, load."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(value) for value in fields]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
