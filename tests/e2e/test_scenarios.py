"""Scenario files, the runner and its reports; every shipped scenario at CI size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree

from lab import postgres
from scenarios.runner import run_scenario
from scenarios.spec import load_scenario
from switchlab.cli import main

pytestmark = pytest.mark.slow  # whole runs: `pytest -m "not slow"` leaves them out

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios" / "library"


async def test_same_seed_gives_the_same_outcome(tmp_path: Path) -> None:
    scenario = load_scenario(LIBRARY / "name-mismatch-fraud.yaml")
    scenario = scenario.model_copy(update={
        "population": scenario.population.model_copy(update={"ci_size": 400})})
    first = await run_scenario(scenario, tmp_path / "a", ci=True, progress=False, live_port=None)
    second = await run_scenario(scenario, tmp_path / "b", ci=True, progress=False,
                                live_port=None)
    assert first.result.by_reason == second.result.by_reason
    assert first.result.by_status == second.result.by_status
    assert first.result.by_reason["BE01"] > 0


@pytest.mark.parametrize("path", sorted(LIBRARY.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_scenario_holds_in_ci(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CI loop over the library: each exits 0, with its reports whole."""
    if load_scenario(path).switch.get("journal") == "postgresql":
        why = postgres.unavailable()
        if why is not None:
            pytest.skip(f"needs PostgreSQL: {why}")
    code = main(["run", str(path), "--ci", "--no-progress", "--no-live", "--output",
                 str(tmp_path)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    result = json.loads((tmp_path / "result.json").read_text(encoding="utf-8"))
    suite = etree.parse(str(tmp_path / "junit.xml")).getroot()
    assert int(suite.get("tests")) == len(result["checks"])
    assert int(suite.get("failures")) == 0
    assert (tmp_path / "report.html").read_text(encoding="utf-8").startswith("<!doctype html>")
    if path.stem in PROVES:
        PROVES[path.stem](result, printed)


def _finds_the_bank_that_credits_early(result: dict, printed: str) -> None:
    assert "bug found: credit_before_confirmation at ICBVVNVX" in printed
    bank = next(t for t in result["bank_totals"] if t["bic"] == "ICBVVNVX")
    assert bank["credited_before_confirmation"] > 0


def _crashes_mid_run(result: dict, printed: str) -> None:
    """Killed once half the table had settled, and transfers settled after the restart."""
    kill, restart = result["faults"]
    total = result["result"]["transfers"]
    before = [s["settled"] for s in result["samples"] if s["t_s"] <= kill["at_s"]]
    after = [s["settled"] for s in result["samples"] if s["t_s"] > restart["at_s"]]
    assert before[-1] >= total / 2
    assert after[-1] > before[-1]
    assert result["result"]["rejected_by_reason"].get("AB06", 0) > 0


def _sends_one_file_of_100k(result: dict, printed: str) -> None:
    assert result["result"]["transfers"] >= 100_000
    assert result["result"]["submissions"] <= 3  # the file of 100,000 and what is left over
    assert result["result"]["by_status"].get("unresolved", 0) == 0


def _two_processes_share_the_work(result: dict, printed: str) -> None:
    """A new user's finding 3: nothing showed that two processes shared the work. Each
    process's own count (its /metrics) is in result.json and judged."""
    made = result["final_by_process"]
    assert len(made) == 2 and all(n > 0 for n in made.values()), made
    judged = [c for c in result["checks"] if c["name"].startswith("share made final by ")]
    assert len(judged) == 2 and all(c["passed"] for c in judged)
    assert "Made final by each switch process: " in printed


PROVES = {
    "credit-before-confirmation": _finds_the_bank_that_credits_early,
    "switch-crash-mid-run": _crashes_mid_run,
    "bulk-100k-one-file": _sends_one_file_of_100k,
    "two-switch-processes": _two_processes_share_the_work,
}
