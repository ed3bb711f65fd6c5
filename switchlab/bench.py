"""`switchlab bench`: whole-run figures on this machine, each against a floor measured in the
same run, so that the ratios mean something on any machine.

- floor: a bare forwarder on the switch's HTTP stack moving the same bytes over the same hops
  (load generator → forwarder → creditor and back), with no parsing, no signature and no
  journal; and bare lxml parsing and serialising the same pacs.008 bytes;
- instant: signed one-transfer pacs.008s through the real switch (durable journal) to a real
  mock bank, closed loop at a fixed concurrency; then open loop at half that rate for p99;
- bulk: a whole payout of N beneficiaries from the treasury, with peak memory;
- codec: our decode + encode per transaction against bare lxml parse + serialise;
- signing: what signing and checking one message costs in each signing mode (hmac and
  ed25519), the instant runs themselves using the mode `signing` chooses;
- the machine itself this hour (lab/machine.py), since absolute figures move with it.

Topology, the same for floor and switch: the forwarder or the switch is a process of its own;
in the instant runs the load generator and the creditor bank share a second one; in the bulk
payout each participant is a process of its own and the treasury stays in this one. Throughput and
latency come from the steady middle of each run (warm-up and drain trimmed, as Mojaloop's
performance reports do), and a run counts only if every transfer reached a final state.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import resource
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from lxml import etree

from banks.behaviour import Behaviour
from banks.ledger import Ledger
from banks.payment_table import read_payment_table
from banks.population import Mix, Population, generate_population
from banks.registry import DEFAULT_SHARES, SWITCH_BIC, TREASURY_BIC
from banks.treasury import Treasury, TreasuryConfig, TreasurySettings
from lab import pgstats, postgres
from lab.machine import busy_cpu_s, probe
from lab.progress import Progress, stage
from lab.world import World, WorldSettings
from protocol import signing
from protocol.codec import decode, encode
from protocol.http import wrap
from protocol.keys import Signing
from protocol.messages import (
    CreditTransferMessage,
    MessageType,
    PaymentStatusReport,
    TransactionStatus,
    TxStatus,
)
from protocol.runtime import bind, serve, settled_heap, start_process, stop_process
from protocol.transport import SERVER_LIMITS, UNAUTHENTICATED_SERVER_LIMITS

INSTANT_BANK = max(DEFAULT_SHARES, key=DEFAULT_SHARES.__getitem__)  # the largest: Vietcombank
# The mock participants stand in for other banks' machines: on a 2-core box they yield the CPU
# to the switch under test (measured at 200k: 5,238/s without, 5,893/s with).
PARTICIPANT_NICENESS = 10


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    value: float
    unit: str
    floor: float | None = None

    def row(self) -> str:
        ratio = f"{self.value / self.floor:6.2f}" if self.floor else "      "
        floor = f"{self.floor:>12,.1f}" if self.floor else " " * 12
        return f"  {self.name:<48} {self.value:>12,.1f} {self.unit:<12} {floor} {ratio}"


LOCK_FIGURES_WAIT_S = 1.5  # longer than a beat (a lease of 5 s / 5): the sums are current
WARM_UP_AND_DRAIN = 0.1  # the share of completions trimmed at each end (Mojaloop's method)


@dataclass(frozen=True, slots=True)
class LoopResult:
    """A run's completions in order: (time done in s, latency in ms). Figures come from the
    steady middle only: the first and last tenth (warm-up, drain) are trimmed."""

    completions: list[tuple[float, float]]

    @property
    def transfers(self) -> int:
        return len(self.completions)

    def _steady(self) -> list[tuple[float, float]]:
        done = sorted(self.completions)
        trim = int(len(done) * WARM_UP_AND_DRAIN)
        return done[trim:len(done) - trim] if len(done) > 2 * trim + 1 else done

    @property
    def per_s(self) -> float:
        steady = self._steady()
        return (len(steady) - 1) / (steady[-1][0] - steady[0][0])

    def percentile_ms(self, q: int) -> float:
        latencies = [latency_ms for _, latency_ms in self._steady()]
        return statistics.quantiles(latencies, n=100, method="inclusive")[q - 1]


PROGRESS_EVERY_S = 0.5


@contextlib.asynccontextmanager
async def _counting(bar: Progress | None, completions: list[tuple[float, float]]
                    ) -> AsyncIterator[None]:
    """Show the completions on `bar` every PROGRESS_EVERY_S, from outside the timed loop so
    that the bar costs the measured transfers nothing."""
    if bar is None:
        yield
        return

    async def watch() -> None:
        while True:
            bar.update_to(len(completions))
            await asyncio.sleep(PROGRESS_EVERY_S)

    watcher = asyncio.ensure_future(watch())
    try:
        yield
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        bar.update_to(len(completions))
        bar.close()


async def _timed(send: Callable[[int], Awaitable[None]], number: int,
                 completions: list[tuple[float, float]]) -> None:
    started = time.perf_counter()
    await send(number)
    done = time.perf_counter()
    completions.append((done, (done - started) * 1000))


async def closed_loop(send: Callable[[int], Awaitable[None]], count: int, concurrency: int,
                      bar: Progress | None = None) -> LoopResult:
    """`concurrency` workers each sending the next transfer as soon as theirs is answered;
    `bar` counts the answered ones."""
    completions: list[tuple[float, float]] = []
    numbers = iter(range(count))

    async def worker() -> None:
        for number in numbers:
            await _timed(send, number, completions)

    async with _counting(bar, completions):
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return LoopResult(completions)


async def open_loop(send: Callable[[int], Awaitable[None]], count: int, rate_per_s: float,
                    first: int, bar: Progress | None = None) -> LoopResult:
    """Send at a fixed rate whatever the answers, so latency is not hidden by back-pressure;
    `bar` counts the answered ones."""
    completions: list[tuple[float, float]] = []
    started_s = time.perf_counter()
    tasks = []
    async with _counting(bar, completions):
        for n in range(count):
            await asyncio.sleep(max(0.0, started_s + n / rate_per_s - time.perf_counter()))
            tasks.append(asyncio.ensure_future(_timed(send, first + n, completions)))
        await asyncio.gather(*tasks)
    return LoopResult(completions)


async def floor_forwarder(body: bytes, answer: bytes, count: int, concurrency: int,
                          run_dir: Path, show_progress: bool = False
                          ) -> tuple[LoopResult, float | None]:
    """The same bytes over the same hops with nothing in between: the most the switch's HTTP
    stack can do (lab/forwarder.py).
    The forwarder is a process of its own, as the switch is; the creditor shares this one."""
    async def creditor(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=answer, content_type="application/xml")

    creditor_app = web.Application()
    creditor_app[SERVER_LIMITS] = UNAUTHENTICATED_SERVER_LIMITS  # it checks no signature
    creditor_app.router.add_post("/iso20022", creditor)
    creditor_socket = bind()
    runner = await serve(creditor_app, creditor_socket)
    forwarder, url = await start_process(
        "-m", "lab.forwarder", "--target", f"{creditor_socket.base_url}/iso20022",
        cwd=run_dir)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def send(_: int) -> None:
        async with session.post(url, data=body) as reply:
            await reply.read()

    try:
        with settled_heap():
            return await cpu_us_per_transfer([forwarder.pid], closed_loop(
                send, count, concurrency, _bar("floor", count, show_progress)))
    finally:
        await session.close()
        await stop_process(forwarder)
        await runner.cleanup()


@dataclass(slots=True)
class ClusterRun:
    """The bench's runs on a PostgreSQL journal: `processes` switch processes on one port,
    each run on a database of its own made on the server `url` reaches (dropped after), and
    that server's CPU when it runs here (`server`, a throwaway one the bench started)."""

    url: str
    processes: int
    server: postgres.Server | None = None
    databases: list[str] = field(default_factory=list)
    # One durable one-row commit on that server (the probe's), s; and why the last database
    # made cannot be measured from the server's statistics (lab/pgstats.py), or None.
    commit_s: float = 0.0
    unmeasured: str | None = None

    async def world_settings(self, name: str, switch_settings: dict[str, Any]
                             ) -> dict[str, Any]:
        """WorldSettings' arguments for the run `name`: on a new database of its own, made
        ready to be measured where the server allows (`unmeasured` says why not)."""
        database = f"switchlab_bench_{os.getpid()}_{name}_{self.processes}"
        url = await postgres.create_database(self.url, database)
        self.databases.append(database)
        self.unmeasured = await pgstats.prepare(url)
        return {"switch_processes": self.processes,
                "switch_settings": switch_settings | {"journal_url": url}}

    def server_pids(self) -> list[int]:
        main = None if self.server is None else postgres.postmaster_pid(self.server)
        return [] if main is None else children_of(main)

    async def drop(self) -> None:
        for database in self.databases:
            await postgres.drop_database(self.url, database)
        self.databases.clear()


@dataclass(frozen=True, slots=True)
class InstantResult:
    """The closed loop, the half-rate open loop, and CPU per transfer (µs) during the closed
    loop: the switch's processes, the PostgreSQL server's (when it runs here), and the whole
    machine's (None where /proc cannot say)."""

    full: LoopResult
    half: LoopResult
    switch_cpu_us: float | None
    server_cpu_us: float | None
    machine_cpu_us: float | None
    # With several switch processes: transfers each made final, the most first (the journal's
    # `owner`), showing how SO_REUSEPORT and bounded keep-alive spread the load.
    per_process: tuple[int, ...] = ()
    # On PostgreSQL, per transfer of the closed loop, in µs: the serialised section of write
    # transactions (the flush-and-COMMIT of the batches that locked a shared positions row:
    # a refill, a revocation, a return, a close; the others lock only their own process's
    # escrow slices, issue #24), lock waits in.
    locked_us: float | None = None
    # On PostgreSQL: the share of each hot table's updates that were HOT (no index touched),
    # per cent, over the whole run (pg_stat_user_tables).
    hot_updates_pct: dict[str, float] = field(default_factory=dict)
    # On PostgreSQL: write transactions (commits) per transfer of the closed loop.
    batches_per_transfer: float | None = None
    # On PostgreSQL: the serialised time and the rest, from the server's own statistics
    # during the closed loop (lab/pgstats.py); None where the server cannot say.
    database: pgstats.Serialised | None = None


async def instant_switch(count: int, concurrency: int, run_dir: Path, mode: Signing = "hmac",
                         show_progress: bool = False, cluster: ClusterRun | None = None
                         ) -> InstantResult:
    """Signed instant transfers through the real switch (its own process) and bank: throughput
    and the switch's CPU per transfer (and the PostgreSQL server's, for a cluster run on a
    server the bench started), then p99 at half that rate. A transfer's time ends at its
    final status (the pacs.002 in the answer), and the run counts only if every answer is a
    settlement (ACSC) and the switch's journal holds each transfer settled.

    The load generator does no more than the floor's: messages are built before the clock
    starts and answers decoded after it stops, so their cost is not charged to the switch.
    """
    half_count = count // 2
    population = generate_population(count + half_count, 1, Mix(
        participants={INSTANT_BANK: 1.0}, no_account=0, closed=0, blocked=0, name_mismatch=0,
        deceased=0, dies_after_payment=0))
    population.write_payment_table(run_dir / "instant.csv")
    payments = read_payment_table(run_dir / "instant.csv")
    world = World(WorldSettings(run_dir, {INSTANT_BANK: Behaviour()}, switch_process=True,
                                **await _switch_settings(cluster, "instant", {"signing": mode})))
    await world.start(population)
    treasury = world.treasury
    treasury.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    peer = treasury.switch
    bodies = [encode(wrap(treasury.config.bic, SWITCH_BIC, treasury.message([payment])))
              for payment in payments]
    answers: list[bytes] = [b""] * len(bodies)

    async def send(number: int) -> None:
        status, _, answers[number] = await peer.exchange(bodies[number])
        assert status == 200, answers[number]

    server_pids = cluster.server_pids() if cluster else []
    try:
        with settled_heap():  # the messages made above, out of this process's collector
            server_before_s = cpu_s(server_pids) if server_pids else None
            journal_url = (None if cluster is None
                           else world.settings.switch_settings["journal_url"])
            locks_before, batches_before = await _lock_seconds(journal_url)
            waits = pgstats.Waits()
            async with _database_window(cluster, journal_url, waits) as snapshots:
                machine_before_s = busy_cpu_s()
                full, cpu_us = await cpu_us_per_transfer(switch_pids(world), closed_loop(
                    send, count, concurrency, _bar("instant", count, show_progress)))
                machine_after_s = busy_cpu_s()
            locks_after, batches_after = await _lock_seconds(journal_url)
            server_after_s = cpu_s(server_pids) if server_pids else None
            half = await open_loop(send, half_count, full.per_s / 2, first=count,
                                   bar=_bar("instant, half rate", half_count, show_progress))
        stats = await world.switch_admin("GET", "/v1/admin/stats")
        per_process = () if cluster is None else tuple(count for _, count in await postgres.fetch(
            world.settings.switch_settings["journal_url"],
            "SELECT owner, count(*) FROM transfers GROUP BY owner ORDER BY 2 DESC"))
    finally:
        await treasury.session.close()
        await world.stop()
    hot = {} if journal_url is None else await _hot_updates_pct(journal_url)
    assert stats["in_flight"] == 0
    assert stats["by_state"]["SETTLED"]["count"] == full.transfers + half.transfers
    for answer in answers:
        (final,) = decode(answer).document.transactions  # type: ignore[union-attr]
        assert final.status is TxStatus.SETTLED, final
    return InstantResult(full, half, cpu_us, _per_transfer_us(server_before_s, server_after_s,
                                                              full.transfers),
                         _per_transfer_us(machine_before_s, machine_after_s, full.transfers),
                         per_process, _per_transfer_us(locks_before, locks_after,
                                                       full.transfers), hot,
                         None if batches_after is None or batches_before is None else
                         (batches_after - batches_before) / full.transfers,
                         None if len(snapshots) < 2 or cluster is None else pgstats.serialised(
                             *snapshots, waits, full.transfers, cluster.commit_s))


@contextlib.asynccontextmanager
async def _database_window(cluster: ClusterRun | None, journal_url: str | None,
                           waits: pgstats.Waits) -> AsyncIterator[list[pgstats.Snapshot]]:
    """The server's statistics at both ends of a window (lab/pgstats.py), where the cluster's
    database can be measured; else no snapshot."""
    if cluster is None or journal_url is None or cluster.unmeasured is not None:
        yield []
        return
    async with pgstats.window(journal_url, waits) as snapshots:
        yield snapshots


HOT_TABLES = ("transfers", "positions", "position_slices")


async def _hot_updates_pct(journal_url: str) -> dict[str, float]:
    """Per table, the per cent of its updates that were HOT, read once the switch processes
    closed their connections (a session flushes its statistics as it ends); a partitioned
    table's are its partitions' together."""
    names = ", ".join(f"'{name}'" for name in HOT_TABLES)
    rows = await postgres.fetch(
        journal_url, "SELECT name, sum(n_tup_upd)::bigint, sum(n_tup_hot_upd)::bigint FROM (SELECT"
        " coalesce(i.inhparent::regclass::text, s.relname) AS name, s.n_tup_upd,"
        " s.n_tup_hot_upd FROM pg_stat_user_tables s LEFT JOIN pg_inherits i"
        f" ON i.inhrelid = s.relid) AS tables WHERE name IN ({names}) GROUP BY name")
    return {name: 100.0 * hot / updated for name, updated, hot in rows if updated}


async def _lock_seconds(journal_url: str | None) -> tuple[float | None, int | None]:
    """Seconds the switch processes' write transactions spent in their serialised section,
    and their count, so far (each process writes its sums with its beat: a beat's wait
    first)."""
    if journal_url is None:
        return None, None
    await asyncio.sleep(LOCK_FIGURES_WAIT_S)
    ((locked_s, batches),) = await postgres.fetch(
        journal_url, "SELECT sum(locked_s), sum(batches) FROM switch_processes")
    return locked_s, batches


def _per_transfer_us(before_s: float | None, after_s: float | None, transfers: int
                     ) -> float | None:
    return None if before_s is None or after_s is None else (
        (after_s - before_s) / transfers * 1e6)


@dataclass(frozen=True, slots=True)
class BulkResult:
    elapsed_s: float
    transfers_per_s: float
    transfers: int
    switch_peak_mib: float | None  # the switch process's own peak resident memory
    participant_peak_mib: float | None  # the largest participant process's
    # CPU (/proc) each side used during the run, µs per transfer: a measure that moves much
    # less than the rate on a shared machine; None where /proc is missing
    switch_cpu_us: float | None = None
    participants_cpu_us: float | None = None  # the participant processes together
    treasury_cpu_us: float | None = None  # the treasury: this process


def _write_bulk_table(beneficiaries: int, path: str) -> int:
    """In a child process, so that a million generated beneficiaries never share the run's
    memory: the payment table, and each participant's ledger file with its accounts open."""
    population = generate_population(beneficiaries, 2026, Mix(participants=DEFAULT_SHARES))
    ledgers = Path(path).parent / "ledgers"
    ledgers.mkdir(exist_ok=True)
    for bic in DEFAULT_SHARES:
        for old in ledgers.glob(f"{bic}.sqlite*"):
            old.unlink()
        ledger = Ledger(ledgers / f"{bic}.sqlite")
        ledger.open_accounts(population.accounts_for(bic))
        ledger.close()
    return population.write_payment_table(Path(path))


async def _switch_settings(cluster: ClusterRun | None, name: str,
                           switch_settings: dict[str, Any]) -> dict[str, Any]:
    """WorldSettings' arguments of the switch for the run `name`: on the SQLite journal, or
    on a PostgreSQL database of its own with the cluster's processes."""
    if cluster is None:
        return {"switch_settings": switch_settings}
    return await cluster.world_settings(name, switch_settings)


def _bar(what: str, total: int, enabled: bool) -> Progress | None:
    return Progress(what, total) if enabled else None


async def bulk_payout(beneficiaries: int, run_dir: Path, show_progress: bool = False,
                      cluster: ClusterRun | None = None                      ) -> BulkResult:
    """A whole payout from the treasury in bulk files; the switch and each participant in a
    process of its own, the participants on durable ledgers. The bar counts the statuses
    final at the treasury, from its own callback: polling the switch would tax what is
    measured."""
    table = run_dir / "bulk.csv"
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        await asyncio.get_running_loop().run_in_executor(
            pool, _write_bulk_table, beneficiaries, str(table))
    payments = read_payment_table(table)
    world = World(WorldSettings(run_dir, {bic: Behaviour() for bic in DEFAULT_SHARES},
                                treasury=TreasurySettings(bulk_size=1_000, files_in_flight=8,
                                                           final_timeout_s=1_800),
                                switch_process=True, bank_ledgers=run_dir / "ledgers",
                                **await _switch_settings(cluster, "bulk", {})))
    await world.start(Population(seed=0, beneficiaries=[]))
    if hasattr(os, "setpriority"):  # not on Windows
        for process in world.bank_processes.values():
            os.setpriority(os.PRIO_PROCESS, process.pid, PARTICIPANT_NICENESS)
    bar = Progress("bulk", len(payments), enabled=show_progress)
    sides = (switch_pids(world), [p.pid for p in world.bank_processes.values()], [os.getpid()])
    try:
        cpu_before_s = [cpu_s(pids) for pids in sides]
        result = await world.treasury.run(payments, lambda done, _: bar.update_to(done))
        cpu_us = [_per_transfer_us(before_s, cpu_s(pids), len(payments))
                  for before_s, pids in zip(cpu_before_s, sides, strict=True)]
        bar.close()
        switch_peak_mib = max((m for m in map(peak_memory_of_mib, switch_pids(world))
                               if m is not None), default=None)
        participant_peaks_mib = [peak_memory_of_mib(p.pid) for p in world.bank_processes.values()]
    finally:
        await world.stop()
    assert result.by_status["unresolved"] == 0
    participant_peak_mib = max((m for m in participant_peaks_mib if m is not None), default=None)
    return BulkResult(result.elapsed_s, result.transfers_per_s, len(payments), switch_peak_mib,
                      participant_peak_mib, *cpu_us)


CODEC_ROUNDS = 5


def codec_per_transaction(message: CreditTransferMessage) -> tuple[float, float]:
    """(our decode + encode, bare lxml parse + serialise), µs of this process's CPU per
    transaction, best of CODEC_ROUNDS alternated rounds. CPU time, not the wall clock: a round
    the scheduler pauses for another process (two cores, the machine's other work) would
    charge the pause to whichever side it fell in."""
    body = encode(wrap(TREASURY_BIC, SWITCH_BIC, message))
    count = len(message.transactions)
    ours = bare = float("inf")
    for _ in range(CODEC_ROUNDS):
        started = time.process_time()
        decoded = decode(body)
        encode(decoded)
        ours = min(ours, (time.process_time() - started) / count * 1e6)
        started = time.process_time()
        etree.tostring(etree.fromstring(body))
        bare = min(bare, (time.process_time() - started) / count * 1e6)
    return ours, bare


SIGNING_ROUNDS, SIGNINGS_PER_ROUND = 5, 200


def signing_us(body: bytes) -> dict[Signing, float]:
    """µs to sign one message and check it (what a sender and its receiver each spend, added
    up), per mode, best of SIGNING_ROUNDS rounds: a micro-measure, as the switch does this
    for every message in and every answer and forward out."""
    key = signing.Ed25519SigningKey.generate()
    keys = {"hmac": signing.Credentials.shared(b"a-32-byte-secret-for-the-bench.."),
            "ed25519": signing.Credentials(key, key.verify_key())}
    costs: dict[Signing, float] = {}
    for mode, credentials in keys.items():
        best_s = float("inf")
        for _ in range(SIGNING_ROUNDS):
            started = time.perf_counter()
            for _ in range(SIGNINGS_PER_ROUND):
                headers = signing.sign(TREASURY_BIC, credentials.own, "/v1/messages", body)
                signing.verify("POST", "/v1/messages", headers, body,
                               {TREASURY_BIC: credentials.peer})
            best_s = min(best_s, time.perf_counter() - started)
        costs[mode] = best_s / SIGNINGS_PER_ROUND * 1e6  # type: ignore[index]
    return costs


def cpu_s(pids: Iterable[int]) -> float | None:
    """User + system CPU live processes have used so far, from /proc (Linux); None
    elsewhere."""
    total_s = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total_s += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total_s


def children_of(pid: int) -> list[int]:
    """A process and its children (a PostgreSQL server's sessions), from /proc."""
    found = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def switch_pids(world: World) -> list[int]:
    return [process.pid for process in world.switch_workers if process is not None]


async def cpu_us_per_transfer(pids: list[int], run: Awaitable[LoopResult]
                              ) -> tuple[LoopResult, float | None]:
    """Run a loop and charge the CPU processes `pids` used meanwhile to each transfer."""
    before = cpu_s(pids)
    result = await run
    after = cpu_s(pids)
    if before is None or after is None:
        return result, None
    return result, (after - before) / result.transfers * 1e6


def peak_memory_of_mib(pid: int) -> float | None:
    """A live process's peak resident memory (VmHWM, Linux); None elsewhere."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    kib = next((line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")),
               None)
    return None if kib is None else int(kib) / 1024


def peak_memory_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _treasury_for_messages() -> Treasury:
    return Treasury(TreasuryConfig(bic=TREASURY_BIC, secret=b"-", switch_url="http://127.0.0.1",
                                   switch_bic=SWITCH_BIC))


def _samples(count: int, run_dir: Path) -> tuple[CreditTransferMessage, bytes, bytes]:
    """A bulk pacs.008 for the codec, and one instant transfer and its answer as bytes."""
    population = generate_population(count, 7, Mix(participants={INSTANT_BANK: 1.0}))
    population.write_payment_table(run_dir / "codec.csv")
    treasury = _treasury_for_messages()
    bulk = treasury.message(read_payment_table(run_dir / "codec.csv"))
    one = replace(bulk, transactions=bulk.transactions[:1])
    answer = PaymentStatusReport(
        msg_id="SWI-1", created_at=one.created_at, original_msg_id=one.msg_id,
        original_msg_type=MessageType.CREDIT_TRANSFER, transactions=[TransactionStatus(
            one.transactions[0].end_to_end_id, one.transactions[0].tx_id, TxStatus.SETTLED)])
    return (bulk, encode(wrap(TREASURY_BIC, SWITCH_BIC, one)),
            encode(wrap(SWITCH_BIC, TREASURY_BIC, answer)))


async def run_bench(instant_transfers: int, concurrency: int, bulk_beneficiaries: int,
                    run_dir: Path, progress: Callable[[str], None] = stage,
                    show_progress: bool = False, mode: Signing = "hmac",
                    journal: str | None = None, switch_processes: int = 2) -> list[Figure]:
    """Measure everything in order, reporting each stage as it starts (`progress`) and, with
    `show_progress`, a bar of the transfers done in each and the figures as they come; the
    instant runs sign in `mode`. With `journal` (a postgresql:// URL whose user may create
    databases, or "local" for a throwaway server started here), the instant and bulk runs
    again on PostgreSQL with `switch_processes` switch processes, each figure beside the
    single-process SQLite one of this run."""
    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    progress("machine: CPython, loopback between processes, durable commits …")
    machine = probe(run_dir)
    progress(f"  machine: loop {machine.python_loop_us:,.1f} µs, round trip "
             f"{machine.round_trip_us_p50:,.0f} µs, {machine.durable_commits_per_s:,.0f} "
             "durable commits/s")
    bulk_message, one_body, one_answer = _samples(10_000, run_dir)
    progress("codec: decode + encode of a 10,000-transaction pacs.008 …")
    ours_us, bare_us = codec_per_transaction(bulk_message)
    progress(f"  codec: {ours_us:,.2f} µs a transaction, bare lxml {bare_us:,.2f} µs")
    progress("signing: sign + check one instant pacs.008, hmac and ed25519 …")
    signing_cost_us = signing_us(one_body)
    progress(f"floor: bare forwarder, {instant_transfers:,} transfers at {concurrency} in flight …")
    floor, floor_cpu_us = await floor_forwarder(one_body, one_answer, instant_transfers,
                                                concurrency, run_dir, show_progress)
    progress(f"  floor: {floor.per_s:,.0f} transfers/s, p99 {floor.percentile_ms(99):,.1f} ms")
    progress(f"instant: {instant_transfers:,} transfers through the switch ({mode}) …")
    instant = await instant_switch(instant_transfers, concurrency, run_dir, mode, show_progress)
    full, half, cpu_us = instant.full, instant.half, instant.switch_cpu_us
    progress(f"  instant: {full.per_s:,.0f} transfers/s, p99 {full.percentile_ms(99):,.1f} ms"
             f"; at half rate p99 {half.percentile_ms(99):,.1f} ms")
    figures = [
        Figure("machine: CPython loop, sum(range(1000))", machine.python_loop_us, "µs"),
        Figure("machine: loopback round trip, two processes", machine.round_trip_us_p50, "µs"),
        Figure("machine: SQLite commits (WAL, full sync)", machine.durable_commits_per_s,
               "commits/s"),
        Figure("codec µs per transaction (decode+encode)", ours_us, "µs/tx", bare_us),
        Figure("signing: hmac, sign + check one message", signing_cost_us["hmac"], "µs"),
        Figure("signing: ed25519, sign + check one message", signing_cost_us["ed25519"], "µs",
               signing_cost_us["hmac"]),
        Figure("floor: bare forwarder", floor.per_s, "transfers/s"),
        Figure("floor: bare forwarder p99", floor.percentile_ms(99), "ms"),
        Figure("instant: end to end, durable journal" + ("" if mode == "hmac" else f", {mode}"),
               full.per_s, "transfers/s", floor.per_s),
        Figure("instant: p50 at full load", full.percentile_ms(50), "ms",
               floor.percentile_ms(50)),
        Figure("instant: p99 at full load", full.percentile_ms(99), "ms",
               floor.percentile_ms(99)),
        Figure(f"instant: p99 at half rate ({full.per_s / 2:,.0f}/s)", half.percentile_ms(99),
               "ms"),
    ]
    if cpu_us is not None and floor_cpu_us is not None:
        figures.append(Figure("instant: switch process CPU per transfer", cpu_us, "µs",
                              floor_cpu_us))
    if instant.machine_cpu_us is not None:
        figures.append(Figure("instant: whole machine CPU per transfer",
                              instant.machine_cpu_us, "µs"))
    bulk = None
    if bulk_beneficiaries:
        progress(f"bulk: payout of {bulk_beneficiaries:,} beneficiaries …")
        bulk = await bulk_payout(bulk_beneficiaries, run_dir, show_progress)
        progress(f"  bulk: {bulk.transfers_per_s:,.0f} transfers/s, {bulk.elapsed_s:,.1f} s")
        figures += [
            Figure(f"bulk: {bulk.transfers:,} transfers end to end", bulk.transfers_per_s,
                   "transfers/s", floor.per_s),
            Figure("bulk: time for the whole payout", bulk.elapsed_s, "s"),
        ]
        figures += [Figure(f"bulk: {side} CPU per transfer", cpu_us, "µs")
                    for side, cpu_us in (("switch", bulk.switch_cpu_us),
                                         ("participants'", bulk.participants_cpu_us),
                                         ("treasury", bulk.treasury_cpu_us))
                    if cpu_us is not None]
        if bulk.switch_peak_mib is not None:
            figures.append(Figure("bulk: peak memory of the switch process",
                                  bulk.switch_peak_mib, "MiB"))
        if bulk.participant_peak_mib is not None:
            figures.append(Figure("bulk: peak memory, largest participant process",
                                  bulk.participant_peak_mib, "MiB"))
    if journal is not None:
        server = postgres.start(statement_stats=True) if journal == "local" else None
        cluster = ClusterRun(journal if server is None else server.url, switch_processes,
                             server)
        try:
            figures += await cluster_figures(cluster, instant_transfers, concurrency,
                                             bulk_beneficiaries, run_dir, progress, mode,
                                             instant, bulk)
        finally:
            await cluster.drop()
            if server is not None:
                postgres.stop(server)
    figures.append(Figure("peak memory of the treasury and load generator", peak_memory_mib(),
                          "MiB"))
    return figures


async def cluster_figures(cluster: ClusterRun, instant_transfers: int, concurrency: int,
                          bulk_beneficiaries: int, run_dir: Path,
                          progress: Callable[[str], None], mode: Signing,
                          single: InstantResult, bulk: BulkResult | None) -> list[Figure]:
    """The instant and bulk runs on the PostgreSQL journal with several switch processes,
    each beside the single-process SQLite figure of the same run (in the floor column)."""
    full = single.full
    processes = cluster.processes
    commits_per_s = await postgres.commits_per_s(cluster.url)
    cluster.commit_s = 1 / commits_per_s
    figures = [Figure("machine: PostgreSQL commits (one row, synchronous)", commits_per_s,
                      "commits/s")]
    progress(f"cluster: {instant_transfers:,} instant transfers, PostgreSQL journal,"
             f" {processes} switch processes …")
    shared = await instant_switch(instant_transfers, concurrency, run_dir, mode,
                                  cluster=cluster)
    c_full, c_half = shared.full, shared.half
    figures += [
        Figure(f"cluster: instant, {processes} processes, PostgreSQL", c_full.per_s,
               "transfers/s", full.per_s),
        Figure("cluster: instant p99 at full load", c_full.percentile_ms(99), "ms",
               full.percentile_ms(99)),
        Figure(f"cluster: instant p99 at half rate ({c_full.per_s / 2:,.0f}/s)",
               c_half.percentile_ms(99), "ms"),
    ]
    figures += [Figure(f"cluster: instant transfers made final by process {rank}, full and"
                       " half rate", count, "transfers")  # both runs: new user 3's finding 4
                for rank, count in enumerate(shared.per_process, 1)]
    figures += _scale_figures(shared, "", progress, cluster.unmeasured)
    figures += [Figure(f"cluster: HOT updates of {name}", pct, "%")
                for name, pct in shared.hot_updates_pct.items()]
    if processes > 1:
        progress(f"cluster: {instant_transfers:,} instant transfers, PostgreSQL journal,"
                 " 1 switch process …")
        one = await instant_switch(instant_transfers, concurrency, run_dir, mode,
                                   cluster=replace(cluster, processes=1))
        figures += [Figure("cluster: instant, 1 process, PostgreSQL", one.full.per_s,
                           "transfers/s", full.per_s),
                    Figure(f"cluster: instant, {processes} processes against 1", c_full.per_s,
                           "transfers/s", one.full.per_s)]
        figures += _scale_figures(one, ", 1 process", progress, cluster.unmeasured)
        if one.switch_cpu_us is not None:
            figures.append(Figure("cluster: CPU per transfer, 1 switch process",
                                  one.switch_cpu_us, "µs", single.switch_cpu_us))
        if one.server_cpu_us is not None:
            figures.append(Figure("cluster: CPU per transfer, server, 1 process",
                                  one.server_cpu_us, "µs"))
    if shared.switch_cpu_us is not None:
        figures.append(Figure(f"cluster: CPU per transfer, {processes} switch processes",
                              shared.switch_cpu_us, "µs", single.switch_cpu_us))
    if shared.server_cpu_us is not None:
        figures.append(Figure("cluster: CPU per transfer, PostgreSQL server",
                              shared.server_cpu_us, "µs"))
    if shared.machine_cpu_us is not None:
        figures.append(Figure("cluster: whole machine CPU per transfer",
                              shared.machine_cpu_us, "µs", single.machine_cpu_us))
    if bulk_beneficiaries and bulk is not None:
        progress(f"cluster: bulk payout of {bulk_beneficiaries:,} beneficiaries …")
        c_bulk = await bulk_payout(bulk_beneficiaries, run_dir, cluster=cluster)
        figures.append(Figure(f"cluster: bulk, {processes} processes, PostgreSQL",
                              c_bulk.transfers_per_s, "transfers/s", bulk.transfers_per_s))
        if c_bulk.switch_peak_mib is not None:
            figures.append(Figure("cluster: bulk peak memory, largest switch process",
                                  c_bulk.switch_peak_mib, "MiB", bulk.switch_peak_mib))
    return figures


def _scale_figures(run: InstantResult, suffix: str, progress: Callable[[str], None],
                   unmeasured: str | None) -> list[Figure]:
    """What limits scale in one cluster run (`suffix` names it): the serialised time in the
    database and the ceiling it implies, the lock waits seen, the statements and server time
    per transfer, the batches; as the switch timed it too. Says why when the server cannot."""
    figures = []
    measured = run.database
    if measured is None:
        progress(f"  cluster{suffix}: the serialised time in the database is not measured:"
                 f" {unmeasured or 'the server statistics could not be read'}")
    else:
        figures += [
            Figure(f"cluster: serialised, in the database{suffix}",
                   measured.serialised_us, "µs/transfer"),
            Figure(f"cluster: ceiling it implies{suffix}", measured.ceiling_per_s,
                   "transfers/s"),
            Figure(f"cluster: shared-row locked sections{suffix}", measured.locks,
                   "transactions"),
            Figure(f"cluster: write lock waits, pg_locks{suffix}",
                   measured.write_waits_us, "µs/transfer"),
            Figure(f"cluster: statements per transfer{suffix}",
                   measured.statements_per_transfer, "statements"),
            Figure(f"cluster: server execution of writes{suffix}",
                   measured.server_exec_us, "µs/transfer"),
        ]
        progress(f"  cluster{suffix}: {measured.locks} locked sections, statements taking"
                 f" or holding shared locks {measured.lock_statements_ms:,.2f} ms in all,"
                 f" switch_flush {measured.flush_mean_ms:,.3f} ms a call, WAL flush"
                 f" {measured.wal_flush_ms:,.3f} ms ({measured.wal_flush_source});"
                 f" {measured.samples:,} pg_locks samples: the beats waited"
                 f" {measured.beat_waits_ms:,.0f} ms in all for their own process's batches,"
                 f" the batches' switch_begin {measured.begin_waits_ms:,.0f} ms for their"
                 " own process's beat")
    if run.locked_us is not None:
        figures.append(Figure(f"cluster: serialised, switch-timed{suffix}",
                              run.locked_us, "µs/transfer"))
    if run.batches_per_transfer:
        figures.append(Figure(f"cluster: transfers per commit{suffix}",
                              1 / run.batches_per_transfer, "transfers"))
    return figures


def table(figures: list[Figure]) -> str:
    header = f"  {'measure':<48} {'value':>12} {'unit':<12} {'floor':>12} {'ratio':>6}"
    lines = [header, "  " + "-" * (len(header) - 2)] + [f.row() for f in figures]
    if any(f.name.startswith("cluster:") for f in figures):
        lines.append("  cluster rows: the floor column holds the single-process SQLite figure"
                     " of this run")
    return "\n".join(lines)
