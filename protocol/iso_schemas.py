"""The official ISO 20022 schemas switchlab ships (protocol/schemas/, source and version in
its README): where they are and each one loaded once.

They are package data, so every run and every test validates on a fresh install; nothing
looks for a folder beside the project.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from lxml import etree

SCHEMA_FOLDER = Path(__file__).resolve().parent / "schemas"
HEAD_DEFINITION = "head.001.001.02"
_DEFINITION = re.compile(r"[a-z]{4}\.\d{3}\.\d{3}\.\d{2}")


@cache
def schema(definition: str, folder: Path = SCHEMA_FOLDER) -> etree.XMLSchema | None:
    """The schema of a message definition ("pacs.008.001.08"), or None when `folder` has
    none for it (or the name is no message definition: it never reaches the file system)."""
    path = folder / f"{definition}.xsd"
    if not _DEFINITION.fullmatch(definition) or not path.is_file():
        return None
    return etree.XMLSchema(file=str(path))


def shipped() -> list[str]:
    """The message definitions whose schemas ship in the package, sorted."""
    return sorted(path.stem for path in SCHEMA_FOLDER.glob("*.xsd"))
