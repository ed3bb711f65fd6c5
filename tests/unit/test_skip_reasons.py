"""README's test command says why each skipped test was skipped (issue #26 friction 6: "26
skipped", with nothing saying that the ISO 20022 schemas or PostgreSQL were missing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_issue_26_readme_s_test_command_shows_each_skip_reason(tmp_path: Path) -> None:
    (tmp_path / "test_skipping.py").write_text(
        "import pytest\n\n\n@pytest.mark.skip(reason='the ISO 20022 schemas are not here')\n"
        "def test_against_the_schemas():\n    pass\n", encoding="utf-8")
    # README's `python -m pytest`, with the project's settings, on a test that skips.
    done = subprocess.run([sys.executable, "-m", "pytest", "-c", str(PYPROJECT),
                           "--rootdir", str(tmp_path), "-p", "no:cacheprovider",
                           str(tmp_path / "test_skipping.py")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SKIPPED [1] test_skipping.py:4: the ISO 20022 schemas are not here" in done.stdout
