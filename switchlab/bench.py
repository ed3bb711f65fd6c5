"""`switchlab bench`: whole-run figures on this machine, each against a floor measured in the
same run, so that the ratios mean something on any machine.

- floor: a bare aiohttp forwarder moving the same bytes over the same hops (load generator →
  forwarder → creditor and back), with no parsing, no signature and no journal; and bare lxml
  parsing and serialising the same pacs.008 bytes;
- instant: signed one-transfer pacs.008s through the real switch (durable journal) to a real
  mock bank, closed loop at a fixed concurrency; then open loop at half that rate for p99;
- bulk: a whole payout of N beneficiaries from the treasury, with peak memory;
- codec: our decode + encode per transaction against bare lxml parse + serialise.

Everything runs in one process and one event loop, load generator included, so floor and
switch share the same handicap; see docs/performance.md for what that leaves on the table.
"""

from __future__ import annotations

import asyncio
import gc
import resource
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
from aiohttp import web
from lxml import etree

from banks.behaviour import Behaviour
from banks.ledger import Account
from banks.population import Mix, Population, generate_population
from banks.treasury import Payment, Treasury, TreasuryConfig, read_payment_table
from protocol.codec import decode, encode
from protocol.http import wrap
from protocol.messages import (
    CreditTransferMessage,
    MessageType,
    PaymentStatusReport,
    TransactionStatus,
    TxStatus,
)
from switchlab.demo import DEMO_PARTICIPANTS
from switchlab.servers import bind_loopback, serve
from switchlab.world import SWITCH_BIC, World, WorldSettings

INSTANT_BANK = "BFTVVNVX"


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    value: float
    unit: str
    floor: float | None = None

    def row(self) -> str:
        ratio = f"{self.value / self.floor:6.2f}" if self.floor else "      "
        floor = f"{self.floor:>12,.1f}" if self.floor else " " * 12
        return f"  {self.name:<44} {self.value:>12,.1f} {self.unit:<12} {floor} {ratio}"


@dataclass(frozen=True, slots=True)
class LoopResult:
    transfers: int
    elapsed_s: float
    latencies_ms: list[float]

    @property
    def per_s(self) -> float:
        return self.transfers / self.elapsed_s

    def percentile_ms(self, q: int) -> float:
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[q - 1]


async def closed_loop(send: Callable[[int], Awaitable[None]], count: int, concurrency: int
                      ) -> LoopResult:
    """`concurrency` workers each sending the next transfer as soon as theirs is answered."""
    latencies: list[float] = []
    numbers = iter(range(count))

    async def worker() -> None:
        for number in numbers:
            started = time.perf_counter()
            await send(number)
            latencies.append((time.perf_counter() - started) * 1000)

    started_s = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return LoopResult(count, time.perf_counter() - started_s, latencies)


async def open_loop(send: Callable[[int], Awaitable[None]], count: int, rate_per_s: float,
                    first: int) -> LoopResult:
    """Send at a fixed rate whatever the answers, so latency is not hidden by back-pressure."""
    latencies: list[float] = []

    async def one(number: int) -> None:
        started = time.perf_counter()
        await send(number)
        latencies.append((time.perf_counter() - started) * 1000)

    started_s = time.perf_counter()
    tasks = []
    for n in range(count):
        await asyncio.sleep(max(0.0, started_s + n / rate_per_s - time.perf_counter()))
        tasks.append(asyncio.ensure_future(one(first + n)))
    await asyncio.gather(*tasks)
    return LoopResult(count, time.perf_counter() - started_s, latencies)


async def floor_forwarder(body: bytes, answer: bytes, count: int, concurrency: int
                          ) -> LoopResult:
    """The same bytes over the same hops with nothing in between: the most aiohttp can do."""
    async def creditor(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=answer, content_type="application/xml")

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    creditor_app, forwarder_app = web.Application(), web.Application()
    creditor_app.router.add_post("/iso20022", creditor)
    creditor_socket, forwarder_socket = bind_loopback(), bind_loopback()
    creditor_url = f"{creditor_socket.base_url}/iso20022"

    async def forward(request: web.Request) -> web.Response:
        async with session.post(creditor_url, data=await request.read()) as reply:
            return web.Response(body=await reply.read(), content_type="application/xml")

    forwarder_app.router.add_post("/v1/messages", forward)
    runners = [await serve(creditor_app, creditor_socket),
               await serve(forwarder_app, forwarder_socket)]
    url = f"{forwarder_socket.base_url}/v1/messages"

    async def send(_: int) -> None:
        async with session.post(url, data=body) as reply:
            await reply.read()

    try:
        return await closed_loop(send, count, concurrency)
    finally:
        await session.close()
        for runner in runners:
            await runner.cleanup()


async def instant_switch(count: int, concurrency: int, run_dir: Path
                         ) -> tuple[LoopResult, LoopResult]:
    """Signed instant transfers through the real switch and bank: throughput, then p99 at
    half that rate."""
    population = generate_population(int(count * 1.6) + 10, 1, Mix(
        participants={INSTANT_BANK: 1.0}, no_account=0, closed=0, blocked=0, name_mismatch=0,
        deceased=0, dies_after_payment=0))
    population.write_payment_table(run_dir / "instant.csv")
    payments = read_payment_table(run_dir / "instant.csv")
    world = World(WorldSettings(run_dir, {INSTANT_BANK: Behaviour()}))
    await world.start(population)
    treasury = world.treasury
    treasury.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    peer = treasury.switch

    async def send(number: int) -> None:
        reply = await peer.send(treasury.message([payments[number]]))
        assert reply.status == 200, reply.text

    try:
        full = await closed_loop(send, count, concurrency)
        half = await open_loop(send, int(count * 0.5), full.per_s / 2, first=count)
        stats = await world.switch_admin("GET", "/v1/admin/stats")
        assert stats["in_flight"] == 0
        assert stats["by_state"]["SETTLED"]["count"] == full.transfers + half.transfers
    finally:
        await treasury.session.close()
        await world.stop()
    return full, half


async def bulk_payout(beneficiaries: int, run_dir: Path) -> tuple[float, float, int]:
    """A whole payout from the treasury in bulk files; returns (s, transfers/s, transfers)."""
    population = generate_population(beneficiaries, 2026, Mix(participants=DEMO_PARTICIPANTS))
    population.write_payment_table(run_dir / "bulk.csv")
    payments = read_payment_table(run_dir / "bulk.csv")
    del population
    gc.collect()
    world = World(WorldSettings(run_dir, {bic: Behaviour() for bic in DEMO_PARTICIPANTS},
                                treasury={"bulk_size": 10_000, "files_in_flight": 4,
                                          "final_timeout_s": 1_800}))
    await world.start(Population(seed=0, beneficiaries=[]))
    try:
        for bic, bank in world.banks.items():
            bank.ledger.open_accounts(_accounts(payments, bic))
        result = await world.treasury.run(payments)
    finally:
        await world.stop()
    assert result.by_status["unresolved"] == 0
    return result.elapsed_s, result.transfers_per_s, len(payments)


def _accounts(payments: list[Payment], bic: str) -> list[Account]:
    return [Account(p.account_id, p.full_name, p.citizen_id) for p in payments
            if p.creditor_bic == bic]


def codec_per_transaction(message: CreditTransferMessage) -> tuple[float, float]:
    """(our decode + encode, bare lxml parse + serialise), µs per transaction, best of 3."""
    body = encode(wrap("TRSYVNV1", SWITCH_BIC, message))
    count = len(message.transactions)
    ours = bare = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        decoded = decode(body)
        encode(decoded)
        ours = min(ours, (time.perf_counter() - started) / count * 1e6)
        started = time.perf_counter()
        etree.tostring(etree.fromstring(body))
        bare = min(bare, (time.perf_counter() - started) / count * 1e6)
    return ours, bare


def peak_memory_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _treasury_for_messages() -> Treasury:
    return Treasury(TreasuryConfig(bic="TRSYVNV1", secret=b"-", switch_url="http://127.0.0.1",
                                   switch_bic=SWITCH_BIC, switch_secret=b"-"))


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
    return (bulk, encode(wrap("TRSYVNV1", SWITCH_BIC, one)),
            encode(wrap(SWITCH_BIC, "TRSYVNV1", answer)))


async def run_bench(instant_transfers: int, concurrency: int, bulk_beneficiaries: int,
                    run_dir: Path, progress: Callable[[str], None] = print) -> list[Figure]:
    """Measure everything in order, reporting each stage as it starts."""
    run_dir.mkdir(parents=True, exist_ok=True)
    bulk_message, one_body, one_answer = _samples(10_000, run_dir)
    progress("codec: decode + encode of a 10,000-transaction pacs.008 …")
    ours_us, bare_us = codec_per_transaction(bulk_message)
    progress(f"floor: bare forwarder, {instant_transfers:,} transfers at {concurrency} in flight …")
    floor = await floor_forwarder(one_body, one_answer, instant_transfers, concurrency)
    progress(f"instant: {instant_transfers:,} transfers through the switch …")
    full, half = await instant_switch(instant_transfers, concurrency, run_dir)
    figures = [
        Figure("codec µs per transaction (decode+encode)", ours_us, "µs/tx", bare_us),
        Figure("floor: bare forwarder", floor.per_s, "transfers/s"),
        Figure("floor: bare forwarder p99", floor.percentile_ms(99), "ms"),
        Figure("instant: end to end, durable journal", full.per_s, "transfers/s", floor.per_s),
        Figure("instant: p50 at full load", full.percentile_ms(50), "ms",
               floor.percentile_ms(50)),
        Figure("instant: p99 at full load", full.percentile_ms(99), "ms",
               floor.percentile_ms(99)),
        Figure(f"instant: p99 at half rate ({full.per_s / 2:,.0f}/s)", half.percentile_ms(99),
               "ms"),
    ]
    if bulk_beneficiaries:
        progress(f"bulk: payout of {bulk_beneficiaries:,} beneficiaries …")
        elapsed_s, per_s, transfers = await bulk_payout(bulk_beneficiaries, run_dir)
        figures += [
            Figure(f"bulk: {transfers:,} transfers end to end", per_s, "transfers/s",
                   floor.per_s),
            Figure("bulk: time for the whole payout", elapsed_s, "s"),
        ]
    figures.append(Figure("peak memory of the whole run", peak_memory_mib(), "MiB"))
    return figures


def table(figures: list[Figure]) -> str:
    header = f"  {'measure':<44} {'value':>12} {'unit':<12} {'floor':>12} {'ratio':>6}"
    return "\n".join([header, "  " + "-" * (len(header) - 2)] + [f.row() for f in figures])
