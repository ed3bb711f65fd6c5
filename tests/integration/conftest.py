"""Fixtures of the integration tests: real servers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness import SwitchLab


@pytest.fixture
async def lab(journal: dict[str, str], tmp_path: Path) -> AsyncIterator[SwitchLab]:
    """A switch and its scripted participants, stopped after the test: once on the embedded
    SQLite journal, once on a PostgreSQL journal (skipped, saying why, without one)."""
    lab = await SwitchLab(tmp_path / "switch.sqlite", **journal).start()
    yield lab
    await lab.stop()
