"""The `switchlab` command line: bad arguments get a readable error before anything starts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from lxml import etree

from scenarios.report import CRASH_EXIT_STATUS
from switchlab import cli
from switchlab.cli import LIBRARY, build_parser, main


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


@pytest.mark.parametrize("command", ["demo", "run", "scenarios", "bench", "load", "switch"])
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
    shipped = sorted(p.name for p in LIBRARY.glob("*.yaml"))
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
