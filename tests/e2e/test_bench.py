"""`switchlab bench`: how figures are taken from a run, and a small whole run end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from lab import postgres
from lab.machine import durable_commits_per_s, round_trip_us_p50
from switchlab.bench import LoopResult, run_bench

pytestmark = pytest.mark.slow  # whole runs: `pytest -m "not slow"` leaves them out


def test_throughput_and_latency_come_from_the_steady_middle() -> None:
    # 100 completions: ten slow ones while warming up (1 s apart, 900 ms each), then one every
    # 10 ms at 20 ms each, then ten stragglers of the drain.
    warm_up = [(n * 1.0, 900.0) for n in range(10)]
    steady = [(10 + n * 0.01, 20.0) for n in range(80)]
    drain = [(12 + n * 1.0, 700.0) for n in range(10)]
    result = LoopResult(drain + steady + warm_up)  # completion order does not matter
    assert result.transfers == 100
    assert result.per_s == pytest.approx(100.0)
    assert result.percentile_ms(99) == pytest.approx(20.0)


def test_a_short_run_is_kept_whole() -> None:
    result = LoopResult([(0.0, 5.0), (0.5, 7.0), (1.0, 9.0)])
    assert result.per_s == pytest.approx(2.0)


async def test_bench_measures_every_figure_beside_its_floor(tmp_path: Path) -> None:
    figures = {f.name: f for f in await run_bench(
        instant_transfers=300, concurrency=8, bulk_beneficiaries=400, run_dir=tmp_path,
        progress=lambda line: None)}
    instant = figures["instant: end to end, durable journal"]
    floor = figures["floor: bare forwarder"]
    assert instant.floor == floor.value > 0 and instant.value > 0
    bulk = next(f for name, f in figures.items() if name.startswith("bulk:") and
                f.unit == "transfers/s")
    assert bulk.name.startswith("bulk: 3") and bulk.value > 0  # ~98 % of 400 are payable
    assert figures["bulk: peak memory of the switch process"].value > 0
    assert figures["bulk: peak memory, largest participant process"].value > 0
    assert figures["codec µs per transaction (decode+encode)"].floor > 0
    assert figures["machine: loopback round trip, two processes"].value > 0
    assert figures["machine: SQLite commits (WAL, full sync)"].unit == "commits/s"


def test_the_machine_probe_measures_a_real_round_trip_and_real_commits(tmp_path: Path) -> None:
    # A round trip through another process cannot be faster than a microsecond on any machine,
    # nor an fsync'ed commit faster than a million a second; a probe that did not really
    # exchange or commit would read zero or infinity.
    assert 1 < round_trip_us_p50(count=50) < 1_000_000
    assert 0 < durable_commits_per_s(tmp_path, count=20) < 1_000_000
    assert list(tmp_path.iterdir()) == []  # the probe's database is gone


@pytest.fixture(scope="module")
def stats_server() -> Iterator[postgres.Server]:
    """A user's server that loads pg_stat_statements, as `--journal local` starts one."""
    why = postgres.unavailable()
    if why is not None:
        pytest.skip(f"needs PostgreSQL: {why}")
    server = postgres.start(durable=False, statement_stats=True)
    yield server
    postgres.stop(server)


async def test_bench_on_postgresql_prints_beside_the_sqlite_figures(
        tmp_path: Path, stats_server: postgres.Server) -> None:
    said: list[str] = []
    figures = {f.name: f for f in await run_bench(
        instant_transfers=300, concurrency=8, bulk_beneficiaries=400, run_dir=tmp_path,
        progress=said.append, journal=stats_server.url, switch_processes=2)}
    single = figures["instant: end to end, durable journal"]
    cluster = figures["cluster: instant, 2 processes, PostgreSQL"]
    assert cluster.value > 0 and cluster.floor == single.value
    bulk = figures["cluster: bulk, 2 processes, PostgreSQL"]
    assert bulk.value > 0 and bulk.floor is not None and bulk.floor > 0
    assert figures["machine: PostgreSQL commits (one row, synchronous)"].value > 0
    assert figures["cluster: CPU per transfer, 2 switch processes"].value > 0
    by_process = [f.value for name, f in figures.items()
                  if name.startswith("cluster: instant transfers made final by process")]
    assert 1 <= len(by_process) <= 2 and sum(by_process) == 300 + 150  # closed + half rate
    assert figures["cluster: instant, 1 process, PostgreSQL"].value > 0
    two_against_one = figures["cluster: instant, 2 processes against 1"]
    assert two_against_one.floor == figures["cluster: instant, 1 process, PostgreSQL"].value
    # Issue #24: what limits scale, from the server's own statistics, for 2 processes and 1.
    for suffix in ("", ", 1 process"):
        # each process's first hold on the treasury takes a shared row (an escrow refill)
        assert figures[f"cluster: shared-row locked sections{suffix}"].value >= 1
        serialised = figures[f"cluster: serialised, in the database{suffix}"].value
        assert serialised > 0
        assert figures[f"cluster: ceiling it implies{suffix}"].value == 1e6 / serialised
        assert figures[f"cluster: write lock waits, pg_locks{suffix}"].value >= 0
        # at least a take per transfer; a batch's BEGIN, flush and COMMIT over a few
        assert 1 < figures[f"cluster: statements per transfer{suffix}"].value < 10
        assert figures[f"cluster: server execution of writes{suffix}"].value > 0
        assert figures[f"cluster: serialised, switch-timed{suffix}"].value > 0
        assert figures[f"cluster: transfers per commit{suffix}"].value > 0
    assert not any("not measured" in line for line in said)
    assert not any(name.startswith("switchlab_bench") for name in await database_names(
        stats_server.url))  # the bench's databases are dropped


async def database_names(url: str) -> list[str]:
    connection = await asyncpg.connect(url)
    try:
        return [row[0] for row in await connection.fetch("SELECT datname FROM pg_database")]
    finally:
        await connection.close()
