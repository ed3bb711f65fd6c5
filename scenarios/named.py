"""A table of handlers by name, each name registered once: how the scenario language grows
(timeline actions, expectations), like the codec's registry of message versions."""

from __future__ import annotations

from typing import TypeVar

E = TypeVar("E")


class Registry(dict[str, E]):
    """Entries by the name a scenario file uses; `what` says what they are, for errors."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def add(self, name: str, entry: E) -> None:
        """Raises ValueError if `name` is taken: a second handler must not replace the first."""
        if name in self:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self[name] = entry
