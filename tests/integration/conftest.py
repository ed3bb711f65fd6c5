"""Fixtures of the integration tests: real servers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness import SwitchLab


@pytest.fixture(params=["sqlite", "postgresql"])
async def lab(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SwitchLab]:
    """A switch and its scripted participants, stopped after the test: once on the embedded
    SQLite journal, once on a PostgreSQL journal (skipped, saying why, without one)."""
    journal = ({} if request.param == "sqlite"
               else {"journal_url": request.getfixturevalue("postgres_url")})
    lab = await SwitchLab(tmp_path / "switch.sqlite", **journal).start()
    yield lab
    await lab.stop()
