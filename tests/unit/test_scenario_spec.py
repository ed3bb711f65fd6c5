"""Scenario files: validation with file, line and field, extends, the generated schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scenarios.spec import LIBRARY, ScenarioError, load_scenario
from switchlab.cli import main


def test_invalid_file_names_the_line_and_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad-one\nrun:\n  mode: bulk\n  bulk_size: many\n"
                   "expect:\n  paid_share: 0.9\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as error:
        load_scenario(bad)
    message = str(error.value)
    assert f"{bad}:4: run.bulk_size: Input should be a valid integer" in message
    assert f"{bad}:6: expect.paid_share: not a known key" in message


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
    # A kill the runner could not carry out, or a switch left dead.
    ("timeline:\n  - {at_s: 1, action: kill_switch}\n  - {at_s: 2, action: restart_switch}\n",
     ":4: timeline.0.action: kill_switch needs the switch in a process of its own"),
    ("switch: {process: true}\ntimeline:\n  - {at_s: 1, action: restart_switch}\n",
     ":5: timeline.0.action: restart_switch when the switch is already up"),
    ("switch: {process: true}\ntimeline:\n  - {after_settled_pct: 50, action: kill_switch}\n",
     ":5: timeline: the switch is killed and never restarted"),
    # Triggers: one each, in the order written, within the run's time limit.
    ("timeline:\n  - {at_s: 1, after_settled_pct: 5, action: sign_off, participant: BFTVVNVX}\n",
     ":4: timeline.0: Value error, give exactly one of at_s and after_settled_pct"),
    ("timeline:\n  - {after_settled_pct: 120, action: sign_off, participant: BFTVVNVX}\n",
     ":4: timeline.0.after_settled_pct: Input should be less than or equal to 100"),
    ("timeline:\n  - {at_s: 5, action: sign_off, participant: BFTVVNVX}\n"
     "  - {at_s: 2, action: sign_on, participant: BFTVVNVX}\n",
     ":5: timeline.1.at_s: 2 s comes before an earlier event's 5 s"),
    ("run: {time_limit_s: 10}\ntimeline:\n  - {at_s: 9, delay_s: 2, action: sign_off, "
     "participant: BFTVVNVX}\n",
     ":5: timeline.0.at_s: 11 s is past the run's time limit (run.time_limit_s 10)"),
    ("timeline:\n  - {at_s: 1, action: sign_off, participant: BFTVVNVX, behaviour: {}}\n",
     ":4: timeline.0: Value error, behaviour is for set_behaviour, not sign_off"),
    # Expected bugs: a known kind, in a participant of the run.
    ("population:\n  participants: {BFTVVNVX: 1.0}\nexpect:\n  bugs_found:\n"
     "    - {participant: VBAAVNVX, kind: credit_before_confirmation}\n",
     ":7: expect.bugs_found.0.participant: VBAAVNVX takes no part in this run"),
    ("expect:\n  bugs_found:\n    - {participant: BFTVVNVX, kind: double_credit}\n",
     ":5: expect.bugs_found.0.kind: Input should be 'credit_before_confirmation'"),
])
def test_mistakes_are_found_before_the_run_with_file_line_and_field(
        tmp_path: Path, text: str, where: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad-one\nseed: 1\n" + text, encoding="utf-8")
    with pytest.raises(ScenarioError) as error:
        load_scenario(bad)
    assert f"{bad}{where}" in str(error.value)


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[2] / "scenarios"
                                         / "library").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_scenario_is_valid(path: Path) -> None:
    assert load_scenario(path).name == path.stem


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


@pytest.mark.parametrize(("text", "says"), [
    ("name: deep\nrun: " + "[" * 10_000 + "]" * 10_000 + "\n", "nested too deep"),
    ("name: huge\npopulation:\n  seed: " + "9" * 5_000 + "\n", "out of range"),
])
def test_a_file_made_to_break_the_reader_is_refused_in_one_line(
        tmp_path: Path, text: str, says: str, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")
    assert main(["run", str(bad)]) == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize("parent", ["normal-payout-day", "normal-payout-day.yaml"])
def test_issue_26_a_user_s_scenario_extends_a_shipped_one_by_name_from_any_folder(
        tmp_path: Path, parent: str) -> None:
    mine = tmp_path / "mine" / "my-day.yaml"
    mine.parent.mkdir()
    mine.write_text(f"name: my-day\nextends: {parent}\npopulation: {{ci_size: 100}}\n",
                    encoding="utf-8")
    scenario = load_scenario(mine)
    shipped = load_scenario(LIBRARY / "normal-payout-day.yaml")
    assert scenario.name == "my-day" and scenario.population.ci_size == 100
    assert scenario.description == shipped.description
    assert scenario.expect == shipped.expect


def test_issue_26_a_file_beside_wins_over_a_shipped_one_and_a_path_never_reaches_it(
        tmp_path: Path) -> None:
    (tmp_path / "timeout-storm.yaml").write_text("name: mine\nseed: 5\n", encoding="utf-8")
    (tmp_path / "child.yaml").write_text("name: child\nextends: timeout-storm.yaml\n",
                                         encoding="utf-8")
    assert load_scenario(tmp_path / "child.yaml").seed == 5
    (tmp_path / "far.yaml").write_text("name: far\nextends: sub/normal-payout-day\n",
                                       encoding="utf-8")
    with pytest.raises(ScenarioError, match="is neither a file beside it nor a shipped scenario"):
        load_scenario(tmp_path / "far.yaml")


def test_issue_26_malformed_yaml_is_one_line_naming_the_file_line_and_column(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nrun:\n  mode: bulk\n   size: 3\n", encoding="utf-8")
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:4:8: not valid YAML: mapping values are not allowed here\n" in err
    assert "<unicode string>" not in err and len(err.strip().splitlines()) == 1


def test_a_misspelt_key_gets_the_closest_valid_one_on_one_line(tmp_path: Path) -> None:
    """A new user's finding: `late_reply_rat` said only "Extra inputs are not permitted"."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad-one\nparticipants:\n  BFTVVNVX:\n    late_reply_rat: 0.1\n",
                   encoding="utf-8")
    with pytest.raises(ScenarioError) as error:
        load_scenario(bad)
    assert str(error.value) == (f"{bad}:4: participants.BFTVVNVX.late_reply_rat: not a known "
                                "key (did you mean late_reply_rate?)")


def test_a_key_of_another_section_is_not_suggested_as_itself(tmp_path: Path) -> None:
    """A new user's finding: `name_mismatch` under a participant said "not a known key (did
    you mean name_mismatch?)"; it is a key of the population section."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad-one\nparticipants:\n  ICBVVNVX:\n    name_mismatch: 0.5\n",
                   encoding="utf-8")
    with pytest.raises(ScenarioError) as error:
        load_scenario(bad)
    assert str(error.value) == (f"{bad}:4: participants.ICBVVNVX.name_mismatch: not a key of "
                                "this section (it is one of another: check the section it is"
                                " in and its indentation)")


def test_a_missing_extends_target_names_the_line_and_the_shipped_scenarios(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It said "/tmp/no-such: cannot read: No such file or directory" on a second line."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad-one\nseed: 3\nextends: normal-payout-dya\n", encoding="utf-8")
    assert main(["run", str(bad)]) == 2
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and said[0].startswith(
        f"switchlab run: invalid scenario: {bad}:3: extends: 'normal-payout-dya' is neither a "
        "file beside it nor a shipped scenario (one of ")
    assert "normal-payout-day" in said[0] and "timeout-storm" in said[0]
