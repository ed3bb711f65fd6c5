"""The `switchlab` command line: bad arguments and bad tables get a readable error before
anything starts (exit status 2, never a traceback)."""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from scenarios.report import CRASH_EXIT_STATUS
from switchlab import cli
from switchlab.cli import LIBRARY, OUTPUT_CLOSED, build_parser, main
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


@pytest.mark.parametrize("command", ["demo", "run", "scenarios", "bench", "load", "switch",
                                     "payout"])
def test_every_option_is_described_with_its_default(
        command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    assert sub.description, f"{command} has no description"
    for action in sub._actions:
        if action.dest == "help":
            continue
        assert action.help, f"{command} {action.option_strings} has no description"
        if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings:
            assert f"(default: {action.default})" in " ".join(text.split()), (
                f"{command} {action.option_strings[0]} does not show its default")


def test_scenarios_lists_the_shipped_library_one_line_each(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios"]) == 0
    lines = capsys.readouterr().out.splitlines()
    shipped = sorted(p.stem for p in LIBRARY.glob("*.yaml"))  # `switchlab run <name>`
    listed = [line.split()[0] for line in lines[1:]]
    assert listed == shipped
    assert all(len(line.split()) > 3 for line in lines[1:]), "a scenario without its summary"


def test_a_bad_argument_exits_2_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["load", "--seconds", "0"]) == 2
    assert "argument --seconds: 0 is not from 1 to 3,600" in capsys.readouterr().err


def test_a_run_that_crashes_writes_junit_with_the_error_and_exits_3(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("-m switch did not start: ''")

    monkeypatch.setattr(cli, "run_scenario", broken)
    code = main(["run", str(LIBRARY / "normal-payout-day.yaml"), "--output", str(tmp_path)])
    assert code == CRASH_EXIT_STATUS == 3
    suite = etree.parse(str(tmp_path / "junit.xml")).getroot()
    assert (suite.get("tests"), suite.get("errors")) == ("1", "1")
    error = suite.find("testcase/error")
    assert error is not None and "did not start" in error.get("message")
    assert json.loads((tmp_path / "result.json").read_text(encoding="utf-8"))["passed"] is False
    assert "CRASHED" in capsys.readouterr().err


def test_run_names_a_scenario_it_cannot_find(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "no-such-scenario", "--ci"]) == 2
    assert "no shipped scenario of that name" in capsys.readouterr().err


def test_a_table_with_no_payable_row_still_gives_the_ministry_its_errors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every row bad: exit 2 and the reasons on the terminal, but no table_errors.csv was
    written, the file the ministry corrects from."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "table.csv"
    path.write_text("citizen_id,full_name,amount_vnd,programme\n12,A,1,p\n001190012345,B,-1,p\n",
                    encoding="utf-8")
    code, out, err = run_cli(["payout", str(path), "--no-progress", "--output", "out"], capsys)
    assert code == 2 and "Traceback" not in err + out
    with (tmp_path / "out" / "table_errors.csv").open(encoding="utf-8-sig") as file:
        assert [row["line"] for row in csv.DictReader(file)] == ["2", "3"]
    assert not (tmp_path / "out" / "lab").exists()  # nothing was started


@pytest.mark.parametrize("command", [["demo"], ["run", "timeout-storm", "--ci"]])
def test_issue_26_prometheus_asked_where_it_is_not_installed_is_one_line_before_the_day(
        command: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("lab.prometheus.shutil.which", lambda name: None)
    status, _, err = run_cli([*command, "--prometheus", "--output", str(tmp_path / "o")],
                             capsys)
    assert status == 2
    assert err.strip().endswith("(Debian: apt-get install prometheus)")
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()  # nothing started


def test_a_reader_closing_the_output_is_no_failure_of_the_command() -> None:
    """`switchlab payout … | head -1` exited 1 with no message: a closed stdout read as "the
    books do not reconcile". It is status 141 (as a shell reports SIGPIPE), said on stderr,
    without the interpreter's second complaint at exit."""
    command = subprocess.Popen(
        [sys.executable, "-c", "import sys; from switchlab.cli import main; "
         "sys.exit(main(['conformance', '--plan']))"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert command.stdout is not None
    command.stdout.close()  # the reader is gone before the first line is written
    _, said = command.communicate(timeout=60)
    assert command.returncode == OUTPUT_CLOSED == 141
    assert said.decode().strip().splitlines() == [
        "switchlab conformance: standard output closed by its reader (| head?); stopped "
        "writing (exit status 141)"]
