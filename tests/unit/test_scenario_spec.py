"""Scenario files: validation with file, line and field, extends, the generated schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scenarios.spec import ScenarioError, load_scenario
from switchlab.cli import main


def test_invalid_file_names_the_line_and_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad-one\nrun:\n  mode: bulk\n  bulk_size: many\n"
                   "expect:\n  paid_share: 0.9\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as error:
        load_scenario(bad)
    message = str(error.value)
    assert f"{bad}:4: run.bulk_size: Input should be a valid integer" in message
    assert f"{bad}:6: expect.paid_share: Extra inputs are not permitted" in message


def test_invalid_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Not A Slug\n", encoding="utf-8")
    assert main(["run", str(bad)]) == 2
    assert f"{bad}:1: name: String should match pattern" in capsys.readouterr().err


def test_extends_merges_and_the_child_wins(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(
        "name: base\nseed: 1\nrun: {mode: bulk, bulk_size: 10}\n", encoding="utf-8")
    (tmp_path / "child.yaml").write_text(
        "name: child\nextends: base.yaml\nrun: {bulk_size: 20}\n", encoding="utf-8")
    scenario = load_scenario(tmp_path / "child.yaml")
    assert scenario.name == "child"
    assert (scenario.run.mode, scenario.run.bulk_size) == ("bulk", 20)
    assert scenario.run.model_fields_set == {"mode", "bulk_size"}
    assert scenario.seed == 1


@pytest.mark.parametrize(("text", "where"), [
    # An unknown participant: found in the file, not as a KeyError or a 404 mid-run.
    ("participants:\n  XXXXVNVX: {offline: true}\n",
     ":4: participants.XXXXVNVX.[key]: Value error, 'XXXXVNVX' is not one of the lab's"),
    ("timeline:\n  - {at_s: 1, action: sign_off, participant: XXXXVNVX}\n",
     ":4: timeline.0.participant: Value error, 'XXXXVNVX' is not one of the lab's"),
    ("population:\n  participants: {BFTVVNVX: 1.0}\n"
     "timeline:\n  - {at_s: 1, action: sign_off, participant: VBAAVNVX}\n",
     ":6: timeline.0.participant: VBAAVNVX takes no part in this run"),
    ("timeline:\n  - {at_s: 1, action: sign_of, participant: VBAAVNVX}\n",
     ":4: timeline.0.action: Input should be 'sign_off', 'sign_on'"),
    ("population:\n  closed: 0.6\n  blocked: 0.6\n",
     ":4: population: Value error, closed, blocked, name_mismatch, deceased, "
     "dies_after_payment and impostor_link together exceed 1"),
    ("participants:\n  BFTVVNVX:\n    latency_ms_median: 10\n    latency_ms_p99: 5\n",
     ":6: participants.BFTVVNVX.latency_ms_p99: Value error, latency_ms_p99 must be at least"),
])
def test_mistakes_are_found_before_the_run_with_file_line_and_field(
        tmp_path: Path, text: str, where: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad-one\nseed: 1\n" + text, encoding="utf-8")
    with pytest.raises(ScenarioError) as error:
        load_scenario(bad)
    assert f"{bad}{where}" in str(error.value)


def test_a_mistake_made_by_the_merge_names_the_child_file(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("name: base\npopulation: {closed: 0.6}\n",
                                        encoding="utf-8")
    child = tmp_path / "child.yaml"
    child.write_text("name: child\nextends: base.yaml\npopulation: {blocked: 0.6}\n",
                     encoding="utf-8")
    with pytest.raises(ScenarioError, match=f"{child}:3: population: .* exceed 1"):
        load_scenario(child)


def test_the_json_schema_is_generated_from_the_models(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    assert main(["scenarios", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["properties"]["run"]["$ref"] == "#/$defs/RunSection"
    behaviour = schema["$defs"]["Behaviour"]["properties"]
    assert behaviour["error_rate"]["maximum"] == 1 and "reject_reason" in behaviour
    assert "time_limit_s" in schema["$defs"]["RunSection"]["properties"]
