"""Scenario files: YAML checked against scenarios/schema.json, with `extends` for composition.

An error names the file, the line and the field, because a scenario is reviewed and fixed in a
pull request, not in a debugger.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA = json.loads((Path(__file__).with_name("schema.json")).read_text(encoding="utf-8"))
MAX_EXTENDS_DEPTH = 8


class ScenarioError(Exception):
    """The scenario file is invalid; the message says where and why."""


@dataclass(frozen=True)
class Scenario:
    path: Path
    data: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.data["name"])

    def section(self, key: str) -> dict[str, Any]:
        return dict(self.data.get(key, {}))


def _line_of(node: yaml.Node, path: list[str | int]) -> int:
    """The 1-based line of the YAML node at `path`, or of its nearest existing parent."""
    for key in path:
        if isinstance(node, yaml.MappingNode):
            match = next((value for k, value in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(
                node.value):
            match = node.value[key]
        else:
            match = None
        if match is None:
            break
        node = match
    return node.start_mark.line + 1


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read(path: Path) -> tuple[dict[str, Any], yaml.Node]:
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except OSError as error:
        raise ScenarioError(f"{path}: cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ScenarioError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict) or node is None:
        raise ScenarioError(f"{path}:1: a scenario is a mapping with at least a name")
    return data, node


def _validate(path: Path, data: dict[str, Any], node: yaml.Node) -> None:
    errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(data),
                    key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = []
        for error in errors[:10]:
            field = ".".join(str(p) for p in error.absolute_path) or "(top level)"
            lines.append(f"{path}:{_line_of(node, list(error.absolute_path))}: {field}: "
                         f"{error.message}")
        raise ScenarioError("\n".join(lines))


def load_scenario(path: Path, _depth: int = 0) -> Scenario:
    """Read, resolve `extends` (deep merge, this file wins) and validate a scenario."""
    if _depth > MAX_EXTENDS_DEPTH:
        raise ScenarioError(f"{path}: extends is nested more than {MAX_EXTENDS_DEPTH} deep")
    data, node = _read(path)
    _validate(path, data, node)
    parent = data.pop("extends", None)
    if parent is not None:
        base = load_scenario((path.parent / parent).resolve(), _depth + 1).data
        data = _merge(base, data)
    return Scenario(path=path, data=data)
