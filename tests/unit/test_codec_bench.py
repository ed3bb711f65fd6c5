"""Codec hot paths under pytest-benchmark:
`pytest tests/unit/test_codec_bench.py --benchmark-enable`.

Without --benchmark-enable each runs once, as a plain test of its result; timings are figures
to read, never assertions. The bare lxml parse of the same bytes is the floor the codec's
decode is compared with (target: within 3x).
"""

from __future__ import annotations

from lxml import etree

from protocol.codec import decode, encode
from tests.factories import (
    SWITCH,
    TREASURY,
    as_received,
    credit_transfers,
    message,
    status_report,
)

TRANSFERS = message(credit_transfers(1_000))
BULK = encode(TRANSFERS)
STATUSES = message(status_report(1_000), SWITCH, TREASURY)
REPORT = encode(STATUSES)


def test_floor_bare_lxml_parse_of_a_1000_transaction_pacs008(benchmark) -> None:
    root = benchmark(etree.fromstring, BULK)
    assert len(root[1][0]) == 1_001  # the group header and 1,000 transactions


def test_decode_1000_transaction_pacs008(benchmark) -> None:
    received = benchmark(decode, BULK)
    assert len(received.document.transactions) == 1_000
    assert received.document.transactions[-1].end_to_end_id == "KBNN20261120000000999"


def test_encode_1000_transaction_pacs008(benchmark) -> None:
    assert benchmark(encode, TRANSFERS) == BULK


def test_decode_1000_status_pacs002(benchmark) -> None:
    received = benchmark(decode, REPORT)
    assert received.document == STATUSES.document


def test_encode_1000_status_pacs002(benchmark) -> None:
    assert benchmark(encode, STATUSES) == REPORT


INSTANT = message(credit_transfers(1))
INSTANT_BODY = encode(INSTANT)
ANSWER = message(status_report(1), SWITCH, TREASURY)
ANSWER_BODY = encode(ANSWER)


def test_floor_bare_lxml_parse_of_a_1_transaction_pacs008(benchmark) -> None:
    root = benchmark(etree.fromstring, INSTANT_BODY)
    assert len(root[1][0]) == 2  # the group header and the transaction


def test_decode_1_transaction_pacs008(benchmark) -> None:
    """The instant path (issue #28): read by the walk planned for its shape."""
    assert benchmark(decode, INSTANT_BODY).document == as_received(INSTANT).document


def test_decode_1_status_pacs002(benchmark) -> None:
    assert benchmark(decode, ANSWER_BODY).document == ANSWER.document
