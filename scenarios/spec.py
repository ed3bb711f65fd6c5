"""Scenario files: YAML checked by pydantic models built from the models the code itself uses,
with `extends` for composition.

The population section is a `Mix`, each participant's faults a `Behaviour`, the run section
the treasury's own `TreasurySettings`, the timeline's actions and the expectations come from
their registries: a scenario file and the code cannot disagree on a name or a limit. Errors
name the file, the line and the field (`bad.yaml:4: run.bulk_size: ...`), because a scenario
is reviewed and fixed in a pull request, not in a debugger. The JSON Schema for editors is
generated from the same models: `switchlab scenarios --schema`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from pydantic_core import InitErrorDetails, PydanticCustomError
from typing_extensions import TypedDict

from banks.behaviour import Behaviour, Seed
from banks.config_types import LabParticipantBic
from banks.payment_table import MAX_TABLE_ROWS
from banks.population import Mix
from banks.treasury import RunTimeS, TreasurySettings
from protocol.keys import Signing
from protocol.settings import SettingsError, describe, field_names, line_of, read_yaml
from scenarios.expectations import Expect
from scenarios.timeline import Event

LIBRARY = Path(__file__).resolve().with_name("library")  # the shipped scenarios
MAX_EXTENDS_DEPTH = 8
MAX_TIMELINE_EVENTS = 1_000
MAX_CI_SIZE = 200_000
MAX_TEXT_CHARS = 10_000
DEFAULT_SEED = 2026
DEFAULT_SIZE = 10_000
DEFAULT_CI_SIZE = 2_000


class ScenarioError(SettingsError):
    """The scenario file is invalid; the message names file, line and field."""


class PopulationSection(Mix):
    """Who is paid: the population's mix, and how many people at full and at CI size."""

    size: int = Field(DEFAULT_SIZE, ge=1, le=MAX_TABLE_ROWS)
    ci_size: int = Field(DEFAULT_CI_SIZE, ge=1, le=MAX_CI_SIZE)


class SwitchSection(TypedDict, total=False):
    """Switch settings for the run, handed to the switch's configuration as they are."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    creditor_timeout_s: Annotated[float, Field(gt=0, le=60)]
    breaker_failures: Annotated[int, Field(ge=1, le=10_000)]
    breaker_cooldown_s: Annotated[float, Field(gt=0, le=3_600)]
    settlement_cycle_s: Annotated[float, Field(gt=0, le=86_400)]
    forward_batch_size: Annotated[int, Field(ge=1, le=100_000)]
    signing: Signing  # the scheme's signing mode; the lab provisions the keys it needs
    process: StrictBool  # run the switch as its own process, so that it can be killed
    # Several switch processes on one port, sharing a PostgreSQL journal (needs `process`
    # and `journal: postgresql`); a timeline event may name one (`switch_process`).
    processes: Annotated[int, Field(ge=1, le=8)]
    # postgresql: a throwaway PostgreSQL server is started for the run (the Debian package).
    journal: Literal["sqlite", "postgresql"]


class RunSection(TreasurySettings):
    """The treasury's settings for the run (its own names and limits), and the scenario's."""

    # The treasury's final_timeout_s, as scenario files have always named it.
    final_timeout_s: RunTimeS = Field(TreasurySettings.model_fields["final_timeout_s"].default,
                                      alias="time_limit_s")
    resubmit_whole_file: StrictBool = False  # an operator sends the whole file again
    returns_wait_s: float = Field(10.0, ge=0, le=600)  # for late returns after the run
    # The labour ministry checks its list (the table and those paid in cash) against the
    # population register before the treasury pays (banks/ministry.py).
    check_register: StrictBool = False

    def treasury(self) -> TreasurySettings:
        return TreasurySettings.model_validate(
            self.model_dump(include=set(TreasurySettings.model_fields)))


class Scenario(BaseModel):
    """A payout day: who is paid, how the participants misbehave, what happens when, and
    what must hold at the end."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=100)
    description: str = Field("", max_length=MAX_TEXT_CHARS)
    # A file beside this one, or a shipped scenario by name (with or without .yaml).
    extends: str | None = Field(None, max_length=1_000)
    seed: Seed = DEFAULT_SEED
    population: PopulationSection = PopulationSection()
    participants: dict[LabParticipantBic, Behaviour] = Field(default_factory=dict)
    switch: SwitchSection = Field(default_factory=lambda: SwitchSection())
    run: RunSection = RunSection()
    timeline: list[Event] = Field(default_factory=list, max_length=MAX_TIMELINE_EVENTS)
    expect: Expect = Field(default_factory=Expect)  # type: ignore[valid-type]

    def behaviour_of(self, bic: str) -> Behaviour:
        """The participant's faults, seeded from the scenario unless it names its own seed."""
        override = self.participants.get(bic, Behaviour())
        return Behaviour.model_validate(
            {"seed": self.seed} | override.model_dump(exclude_unset=True))

    @pydantic.model_validator(mode="after")
    def _processes_share_a_journal(self) -> Scenario:
        if self.switch.get("processes", 1) > 1 and not (
                self.switch.get("process") and self.switch.get("journal") == "postgresql"):
            raise ValueError("switch.processes above 1 needs process: true and journal: "
                             "postgresql (the SQLite journal is for one process)")
        return self

    def switch_settings(self) -> dict[str, Any]:
        """The switch's configuration overrides, without the runner's own keys."""
        return {key: value for key, value in self.switch.items()
                if key not in ("process", "processes", "journal")}


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _validate(path: Path, node: yaml.Node | None, data: dict[str, Any],
              whole: bool = True) -> Scenario:
    """The scenario `data`; with `whole` (all it extends merged in), the rules that span
    sections too, which a file that extends another may meet only with its parent's help."""
    try:
        scenario = Scenario.model_validate(data)
    except pydantic.ValidationError as error:
        raise ScenarioError(describe(path, node, error, known=SCENARIO_KEYS)) from None
    problems = _run_rules(scenario) if whole else []
    if problems:
        raise ScenarioError(describe(path, node, pydantic.ValidationError.from_exception_data(
            "Scenario", [InitErrorDetails(
                type=PydanticCustomError("scenario_rule", message), loc=loc, input=None)
                for loc, message in problems])))
    return scenario


def _run_rules(scenario: Scenario) -> list[tuple[tuple[str | int, ...], str]]:
    """Mistakes that span sections, found before the run rather than as a failure mid-run:
    (where, what) for each."""
    present = set(scenario.population.participants) | set(scenario.participants)
    problems: list[tuple[tuple[str | int, ...], str]] = []

    def absent(bic: str) -> str:
        return (f"{bic} takes no part in this run (not in population.participants nor in "
                "participants)")

    processes = scenario.switch.get("processes", 1)
    up = [True] * processes  # each switch process
    last_at_s = 0.0
    for index, event in enumerate(scenario.timeline):
        where = ("timeline", index)
        if event.participant is not None and event.participant not in present:
            problems.append(((*where, "participant"), absent(event.participant)))
        if (event.action in ("stop_journal", "start_journal")
                and scenario.switch.get("journal") != "postgresql"):
            problems.append(((*where, "action"), f"{event.action} needs journal: postgresql (a"
                             " throwaway server the run can stop and start)"))
        if event.action in ("kill_switch", "restart_switch"):
            target = event.switch_process
            if not scenario.switch.get("process", False):
                problems.append(((*where, "action"), f"{event.action} needs the switch in a "
                                 "process of its own (switch: {process: true})"))
            elif target is not None and target >= processes:
                problems.append(((*where, "switch_process"), f"switch process {target} of "
                                 f"{processes} (they are numbered from 0)"))
            else:
                chosen = range(processes) if target is None else [target]
                killing = event.action == "kill_switch"
                if all(up[i] != killing for i in chosen):
                    problems.append(((*where, "action"), f"{event.action} when the switch is "
                                     f"already {'down' if killing else 'up'}"))
                for i in chosen:
                    up[i] = not killing
        if event.at_s is not None:
            if event.at_s < last_at_s:
                problems.append(((*where, "at_s"), f"{event.at_s:g} s comes before an earlier "
                                 f"event's {last_at_s:g} s; events happen in the order written"))
            last_at_s = max(last_at_s, event.at_s)
            if event.at_s + event.delay_s > scenario.run.final_timeout_s:
                problems.append(((*where, "at_s"), f"{event.at_s + event.delay_s:g} s is past "
                                 f"the run's time limit (run.time_limit_s "
                                 f"{scenario.run.final_timeout_s:g})"))
    if not any(up):
        problems.append((("timeline",), "the switch is killed and never restarted"))
    for index, bug in enumerate(scenario.expect.bugs_found or []):  # type: ignore[attr-defined]
        if bug.participant not in present:
            problems.append((("expect", "bugs_found", index, "participant"),
                             absent(bug.participant)))
    return problems


def _resolve(path: Path, depth: int) -> tuple[dict[str, Any], yaml.Node | None]:
    """The file's data with what it extends merged under it (this file wins), each file
    checked alone first so that an error names the file and line it is on."""
    if depth > MAX_EXTENDS_DEPTH:
        raise ScenarioError(f"{path}: extends is nested more than {MAX_EXTENDS_DEPTH} deep")
    try:
        data, node = read_yaml(path)
    except SettingsError as error:
        raise ScenarioError(str(error)) from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}:1: a scenario is a mapping with at least a name")
    _validate(path, node, data, whole=False)
    parent = data.pop("extends", None)
    if parent is None:
        return data, node
    beside = path.parent / parent
    found = beside if beside.exists() else shipped(parent)
    if found is None:
        names = ", ".join(sorted(p.stem for p in LIBRARY.glob("*.yaml")))
        raise ScenarioError(f"{path}:{line_of(node, ('extends',))}: extends: {parent!r} is "
                            f"neither a file beside it nor a shipped scenario (one of {names})")
    base, _ = _resolve(found.resolve(), depth + 1)
    return _merge(base, data), node


def shipped(name: str) -> Path | None:
    """The shipped scenario called `name` (with or without .yaml), or None: a name only, not
    a path, so that `extends: ../x` never reaches into the library."""
    if not name or Path(name).name != name:
        return None
    path = LIBRARY / (name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
    return path if path.is_file() else None


SCENARIO_KEYS = frozenset(field_names(Scenario))  # what a misspelt key is matched against


def load_scenario(path: Path) -> Scenario:
    """Read, resolve `extends` (deep merge, this file wins; at most MAX_EXTENDS_DEPTH deep)
    and validate a scenario; raises ScenarioError naming file, line and field."""
    data, node = _resolve(path, 0)
    return _validate(path, node, data)


def json_schema() -> dict[str, Any]:
    """The scenario language as JSON Schema, for editors and other tools."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema"} | (
        Scenario.model_json_schema() | {"title": "switchlab payout-day scenario"})

