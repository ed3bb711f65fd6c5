"""Reading a configuration file the one way the project validates configuration: YAML (or
JSON, which is YAML) checked by a pydantic model.

A configuration is reviewed and fixed in a pull request, not in a debugger, so every error
names the file, the line and the field: `switch.yaml:7: switch.creditor_timeout_s: Input
should be greater than 0`.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from protocol.wording import count

M = TypeVar("M", bound=pydantic.BaseModel)
MAX_ERRORS_SHOWN = 10
MAX_FILE_BYTES = 4 * 1024 * 1024  # a configuration, not a data set


class SettingsError(Exception):
    """The configuration is not usable; the message names file, line and field."""


class _NoAliases(yaml.SafeLoader):
    """YAML without anchors' aliases: a few lines of `*a` can stand for billions of nodes
    ("billion laughs"), and a configuration has `extends` for sharing."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not accepted",
                                              mark)
        return super().compose_node(parent, index)  # type: ignore[arg-type]


def read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """The parsed data and its node tree (for line numbers); raises SettingsError."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise SettingsError(f"{path}: {count(path.stat().st_size, 'byte')}; a configuration is "
                                f"at most {MAX_FILE_BYTES:,}")
        text = path.read_text(encoding="utf-8-sig")
        node = yaml.compose(text, Loader=_NoAliases)
        return yaml.load(text, Loader=_NoAliases), node
    except OSError as error:
        raise SettingsError(f"{path}: cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise SettingsError(f"{path}: not UTF-8 text ({error.reason} at byte "
                            f"{error.start})") from None
    except yaml.MarkedYAMLError as error:  # one line, at the file's line and column
        mark = error.problem_mark or error.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = error.problem or "" if not error.context else f"{error.problem} ({error.context})"
        raise SettingsError(f"{where}: not valid YAML: {what}") from None
    except yaml.YAMLError as error:
        raise SettingsError(f"{path}: not valid YAML: {' '.join(str(error).split())}"
                            ) from None
    except RecursionError:
        raise SettingsError(f"{path}: nested too deep for a configuration") from None
    except ValueError as error:  # an integer of more digits than Python converts (4,300)
        raise SettingsError(f"{path}: a value is out of range: {error}") from None


def line_of(node: yaml.Node | None, location: Sequence[str | int]) -> int:
    """The 1-based line of the YAML node at `location`, or of its nearest existing parent."""
    if node is None:
        return 1
    for key in location:
        match = None
        if isinstance(node, yaml.MappingNode):
            match = next((value for k, value in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and (
                key < len(node.value)):
            match = node.value[key]
        if match is None:
            break
        node = match
    return node.start_mark.line + 1


def describe(path: Path | None, node: yaml.Node | None, error: pydantic.ValidationError,
             prefix: Sequence[str | int] = (), known: Collection[str] = ()) -> str:
    """One line per problem: `file:line: field: message` (`field: message` without a file),
    at most MAX_ERRORS_SHOWN. A key that is no field gets the closest of `known` (the
    model's `field_names`) as a suggestion: `did you mean late_reply_rate?`."""
    lines = []
    for problem in error.errors()[:MAX_ERRORS_SHOWN]:
        location = [*prefix, *problem["loc"]]
        field = ".".join(str(part) for part in location) or "(top level)"
        where = "" if path is None else f"{path}:{line_of(node, location)}: "
        message = problem["msg"]
        if problem["type"] == "extra_forbidden" and location and known:
            key = str(location[-1])
            close = difflib.get_close_matches(key, set(known) - {key}, n=1, cutoff=0.75)
            if key in known:  # spelt right, in the wrong section
                message = ("not a key of this section (it is one of another: check the"
                           " section it is in and its indentation)")
            else:
                message = f"not a known key{f' (did you mean {close[0]}?)' if close else ''}"
        lines.append(f"{where}{field}: {message}")
    more = error.error_count() - MAX_ERRORS_SHOWN
    if more > 0:
        lines.append(f"… and {more} more")
    return "\n".join(lines)


def field_names(model: type) -> set[str]:
    """Every key `model` (a pydantic model, TypedDict or dataclass) accepts, and those of
    the models its fields hold, at any depth: what a misspelt key is matched against."""
    names: set[str] = set()
    seen: set[type] = set()
    todo = [model]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if isinstance(current, type) and issubclass(current, pydantic.BaseModel):
            hints = {info.alias or name: info.annotation
                     for name, info in current.model_fields.items()}
        else:
            try:
                hints = typing.get_type_hints(current)
            except (TypeError, NameError):
                continue
        names.update(hints)
        todo += [held for hint in hints.values() for held in _classes_in(hint)]
    return names


def _classes_in(hint: Any) -> list[type]:
    """The models, TypedDicts and dataclasses a type hint names (inside unions, lists…)."""
    if isinstance(hint, type) and (issubclass(hint, pydantic.BaseModel)
                                   or typing.is_typeddict(hint)
                                   or hasattr(hint, "__dataclass_fields__")):
        return [hint]
    return [held for arg in typing.get_args(hint) for held in _classes_in(arg)]


def load(path: Path, model: type[M]) -> M:
    """Read `path` and validate it as `model`; raises SettingsError naming line and field."""
    data, node = read_yaml(path)
    try:
        return model.model_validate(data if data is not None else {})
    except pydantic.ValidationError as error:
        raise SettingsError(describe(path, node, error, known=field_names(model))) from None
