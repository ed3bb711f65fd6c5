"""Scenario files, the runner and its reports; every shipped scenario at CI size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree

from scenarios.runner import run_scenario
from scenarios.spec import load_scenario
from switchlab import postgres
from switchlab.cli import main

pytestmark = pytest.mark.slow  # whole runs: `pytest -m "not slow"` leaves them out

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios" / "library"
EXPECTED_TO_FAIL = {"credit-before-confirmation": "ICBVVNVX credited"}








async def test_same_seed_gives_the_same_outcome(tmp_path: Path) -> None:
    scenario = load_scenario(LIBRARY / "name-mismatch-fraud.yaml")
    scenario = scenario.model_copy(update={
        "population": scenario.population.model_copy(update={"ci_size": 400})})
    first = await run_scenario(scenario, tmp_path / "a", ci=True, progress=False)
    second = await run_scenario(scenario, tmp_path / "b", ci=True, progress=False)
    assert first.result.by_reason == second.result.by_reason
    assert first.result.by_status == second.result.by_status
    assert first.result.by_reason["BE01"] > 0


@pytest.mark.parametrize("path", sorted(LIBRARY.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_scenario_holds_or_fails_for_its_reason(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if load_scenario(path).switch.get("journal") == "postgresql":
        why = postgres.unavailable()
        if why is not None:
            pytest.skip(f"needs PostgreSQL: {why}")
    code = main(["run", str(path), "--ci", "--no-progress", "--output", str(tmp_path)])
    printed = capsys.readouterr().out
    result = json.loads((tmp_path / "result.json").read_text(encoding="utf-8"))
    suite = etree.parse(str(tmp_path / "junit.xml")).getroot()
    assert int(suite.get("tests")) == len(result["checks"])
    assert (tmp_path / "report.html").read_text(encoding="utf-8").startswith("<!doctype html>")
    if path.stem in EXPECTED_TO_FAIL:
        assert code == 1
        assert EXPECTED_TO_FAIL[path.stem] in printed
        failed = [c["name"] for c in result["checks"] if not c["passed"]]
        assert "no credit before confirmation" in failed
    else:
        assert code == 0, printed
        assert int(suite.get("failures")) == 0






