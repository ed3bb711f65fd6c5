"""The `switchlab` command line: bad arguments get a readable error before anything starts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from switchlab.cli import build_parser
from switchlab.journal import since


@pytest.mark.parametrize(("argument", "value", "error"), [
    ("--instant-transfers", "5", "5 is not from 100 to 500,000"),
    ("--concurrency", "0", "0 is not from 1 to 10,000"),
    ("--bulk-beneficiaries", "-1", "-1 is not from 0 to 10,000,000"),
    ("--bulk-beneficiaries", "many", "invalid whole_number value: 'many'"),
])
def test_bench_refuses_counts_out_of_bounds(argument: str, value: str, error: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["bench", argument, value])
    assert exit_.value.code == 2
    assert f"argument {argument}: {error}" in capsys.readouterr().err


def test_bench_takes_counts_within_bounds() -> None:
    args = build_parser().parse_args(["bench", "--instant-transfers", "500000",
                                      "--bulk-beneficiaries", "0"])
    assert (args.instant_transfers, args.bulk_beneficiaries, args.concurrency) == (500_000, 0, 64)


@pytest.mark.parametrize(("text", "seconds_before_now"), [
    ("90s", 90), ("15m", 900), ("2h", 7_200), ("1d", 86_400)])
def test_journal_since_takes_a_duration_before_now(text: str, seconds_before_now: int) -> None:
    assert since(text, now_s=1_800_000_000.0) == 1_800_000_000.0 - seconds_before_now


@pytest.mark.parametrize("text", ["2026-11-20T08:00:00Z", "2026-11-20T08:00:00",
                                  "2026-11-20T15:00:00+07:00"])
def test_journal_since_takes_an_iso_time_in_utc_unless_it_says_otherwise(text: str) -> None:
    assert since(text) == datetime(2026, 11, 20, 8, tzinfo=UTC).timestamp()
