"""The `switchlab` command line: bad arguments and bad tables get a readable error before
anything starts (exit status 2, never a traceback)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from switchlab.cli import build_parser, main
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


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("table", "argv", "says"), [
    (None, [], "No such file or directory"),
    ("a,b\n1,2\n", [], "header lacks citizen_id, full_name, amount_vnd, programme"),
    ("citizen_id,full_name,amount_vnd,programme\n12,A,1,p\n", [], "no row can be paid"),
    (b"citizen_id,full_name,amount_vnd,programme\n001190012345,L\xea,1,p\n", [],
     "not UTF-8"),
    ("citizen_id,full_name,amount_vnd,programme\n001190012345,A,1,p\n",
     ["--switch", "http://127.0.0.1:9"], "--switch needs --inbound-port"),
    ("citizen_id,full_name,amount_vnd,programme\n001190012345,A,1,p\n",
     ["--switch", "http://127.0.0.1:9", "--inbound-port", "8100"], "--switch needs --key-file"),
    ("citizen_id,full_name,amount_vnd,programme\n001190012345,A,1,p\n",
     ["--rate", "-5"], "rate_per_s"),
])
def test_payout_refuses_a_bad_table_or_arguments_with_a_reason_and_no_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        table: str | bytes | None, argv: list[str], says: str) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "table.csv"
    if isinstance(table, bytes):
        path.write_bytes(table)
    elif table is not None:
        path.write_text(table, encoding="utf-8")
    code, out, err = run_cli(["payout", str(path), "--no-progress", *argv], capsys)
    assert code == 2
    assert says in err and "Traceback" not in err + out
    assert not (tmp_path / "payout-table" / "lab").exists()  # nothing was started
