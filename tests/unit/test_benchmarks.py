"""Hot paths beside the codec (tests/unit/test_codec_bench.py has the codec and its lxml floor):
`pytest tests/unit/test_benchmarks.py tests/unit/test_codec_bench.py --benchmark-enable`.

In the ordinary suite each runs once, as a plain test of its result; timings are figures to
read, never assertions.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from protocol import signing
from protocol.codec import encode
from protocol.http import wrap
from protocol.signing import Credentials, Ed25519SigningKey
from register.citizens import Citizen, Register
from switch.events import SwitchEvents
from switch.metrics import SwitchMetrics
from switch.states import TransferState
from switch.store import INSERT_TRANSFER, SqliteJournal
from switch.transfer import Transfer
from tests.factories import credit_transfers

MESSAGES = {size: encode(wrap("TRSYVNV1", "SWLBVNVX", credit_transfers(size)))
            for size in (1, 1_000)}


def credentials(mode: str, secret: bytes = b"a-32-byte-secret-of-the-treasury") -> Credentials:
    """The treasury's keys towards the switch, as each mode provisions them."""
    if mode == "hmac":
        return Credentials.shared(secret)
    key = Ed25519SigningKey.generate()
    return Credentials(key, key.verify_key())


@pytest.mark.parametrize("mode", ["hmac", "ed25519"])
@pytest.mark.parametrize("transactions", [1, 1_000])
def test_sign_and_verify_a_message(benchmark, mode: str, transactions: int) -> None:
    """What signing costs each side per message: the sender signs, the receiver verifies."""
    keys, body = credentials(mode), MESSAGES[transactions]

    def sign_and_verify() -> str:
        headers = signing.sign("TRSYVNV1", keys.own, "/v1/messages", body)
        return signing.verify("POST", "/v1/messages", headers, body, {"TRSYVNV1": keys.peer})

    assert benchmark(sign_and_verify) == "TRSYVNV1"
    forged = signing.sign("TRSYVNV1", credentials(mode, b"someone else's").own, "/v1/messages",
                          body)
    with pytest.raises(signing.SignatureError):
        signing.verify("POST", "/v1/messages", forged, body, {"TRSYVNV1": keys.peer})


@pytest.mark.parametrize("mode", ["hmac", "ed25519"])
def test_sign_and_verify_a_message_before_issue22(benchmark, mode: str) -> None:
    """The signature of before issue #22 (X-Switchlab-* headers over a short text with the
    body's SHA-256 in hex), for comparison with test_sign_and_verify_a_message[1]: the same
    primitives, so the difference is the RFC 9421 profile's own cost."""
    keys, body = credentials(mode), MESSAGES[1]

    def text() -> bytes:
        return "\n".join(("switchlab/1 request", "TRSYVNV1", str(int(time.time())),
                          "/v1/messages", hashlib.sha256(body).hexdigest())).encode()

    def sign_and_verify() -> bool:
        signature = keys.own.sign(text()).hex()
        return keys.peer.verify(text(), bytes.fromhex(signature))

    assert benchmark(sign_and_verify)


def test_journal_write_of_1000_transfers(benchmark, tmp_path: Path) -> None:
    """Group commit: one durable write of 1,000 new transfers (per-transfer cost = /1000)."""
    batches = iter(range(10**6))

    async def write_batch(journal: SqliteJournal) -> None:
        batch = next(batches)
        rows = [(f"E{batch}-{n}", f"T{n}", "M", "TRSYVNV1", "BFTVVNVX", 1_000, "PENDING", None,
                 None, 1, 0.0, None, None, 0, 0) for n in range(1_000)]
        await journal.write([(INSERT_TRANSFER, rows)])

    loop = asyncio.new_event_loop()
    journal = SqliteJournal(tmp_path / "journal.sqlite")

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


def _metrics_round(size: int, observed: bool) -> tuple[SwitchMetrics, Callable[[], None]]:
    """The events a batch of `size` instant transfers fires on its way, with the metrics
    listening or (the floor) not: what the hot path pays for being observed."""
    events = SwitchEvents()
    metrics = SwitchMetrics(SwitchEvents() if not observed else events,
                            ["TRSYVNV1", "BFTVVNVX"])
    events.recovered.fire(cycle_id=1, net_vnd={}, in_flight=[])
    transfers = [Transfer(end_to_end_id="E", tx_id="T", msg_id="M", debtor_bic="TRSYVNV1",
                          creditor_bic="BFTVVNVX", amount_vnd=1_000, bulk=False,
                          received_at=0.0, state=TransferState.PENDING) for _ in range(size)]

    def one_round() -> None:
        events.received.fire(debtor_bic="TRSYVNV1", transfers=transfers, bulk=False)
        events.forwarded.fire(creditor_bic="BFTVVNVX", transfers=transfers)
        events.answered.fire(creditor_bic="BFTVVNVX", taken=size, refused=0)
        events.settled.fire(transfers=transfers, now_s=1.0, cycle_id=1)
        events.notice_delivered.fire(bic="BFTVVNVX", items=size)

    return metrics, one_round


@pytest.mark.parametrize("observed", [False, True], ids=["floor", "metrics"])
@pytest.mark.parametrize("size", [1, 1_000])
def test_metrics_of_a_batch(benchmark, size: int, observed: bool) -> None:
    """Five events of a batch: one transfer (nothing coalesced) or 1,000 (a forward, a bulk
    file): per transfer, divide by the size; the floor is the events with no listener."""
    metrics, one_round = _metrics_round(size, observed)
    benchmark(one_round)
    settled = metrics.registry.get_sample_value("switchlab_settled_vnd_total")
    assert settled is not None and (settled > 0) == observed and settled % (size * 1_000) == 0


def test_the_population_register_checks_10000_rows(benchmark) -> None:
    """One check request's worth (protocol/population.py MAX_CHECK_ROWS) against a register:
    a dict lookup and the scheme's name rule a row (2 to 3 µs a row here: 23 ms best of 5)."""
    register = Register(Citizen(f"0011900{n:05d}", f"Nguyễn Thị Rà {n}", date(1990, 3, 14),
                                f"HK{n}", f"0011900{n:05d}", "Láng Hạ", "Đống Đa", "Hà Nội",
                                date(2026, 10, 1) if n % 50 == 0 else None)
                        for n in range(10_000))
    rows = [(f"0011900{n:05d}", f"Nguyen Thi Ra {n}", None) for n in range(10_000)]
    findings = benchmark(register.check, rows)
    assert sum(1 for f in findings if f.code == "MD07") == 200
    assert sum(1 for f in findings if f.code) == 200  # the rest alive, by the name rule
