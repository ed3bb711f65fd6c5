"""Hot paths beside the codec (tests/unit/test_codec_bench.py has the codec and its lxml floor):
`pytest tests/unit/test_benchmarks.py tests/unit/test_codec_bench.py --benchmark-enable`.

In the ordinary suite each runs once, as a plain test of its result; timings are figures to
read, never assertions.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from protocol import signing
from protocol.codec import encode
from protocol.http import wrap
from switch.store import INSERT_TRANSFER, Store
from tests.factories import credit_transfers

BULK = encode(wrap("TRSYVNV1", "SWLBVNVX", credit_transfers(1_000)))


def test_signature_check_of_a_bulk(benchmark) -> None:
    headers = signing.sign("TRSYVNV1", b"secret", "/v1/messages", BULK)
    signer = benchmark(signing.verify, headers, "/v1/messages", BULK, {"TRSYVNV1": b"secret"})
    assert signer == "TRSYVNV1"


def test_journal_write_of_1000_transfers(benchmark, tmp_path: Path) -> None:
    """Group commit: one durable write of 1,000 new transfers (per-transfer cost = /1000)."""
    batches = iter(range(10**6))

    async def write_batch(journal: Store) -> None:
        batch = next(batches)
        rows = [(f"E{batch}-{n}", f"T{n}", "M", "TRSYVNV1", "BFTVVNVX", 1_000, "PENDING", None,
                 None, 1, 0.0, None, None, 0, 0) for n in range(1_000)]
        await journal.write([(INSERT_TRANSFER, rows)])

    loop = asyncio.new_event_loop()
    journal = Store(tmp_path / "journal.sqlite")

    async def start() -> None:
        await journal.start()

    loop.run_until_complete(start())
    try:
        benchmark(lambda: loop.run_until_complete(write_batch(journal)))
        count = loop.run_until_complete(journal.read("SELECT count(*) FROM transfers"))[0][0]
        assert count % 1_000 == 0 and count >= 1_000
    finally:
        loop.run_until_complete(journal.close())
        loop.close()
