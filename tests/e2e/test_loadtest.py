"""A short headless Locust run against a real switch on loopback: it completes, carries
traffic, and the scheme fails nothing (Locust's own statistics, as CI would read them)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # whole runs: `pytest -m "not slow"` leaves them out

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("workers", [0, 2], ids=["one process", "master and two workers"])
def test_short_headless_locust_run_completes_without_failures(tmp_path: Path,
                                                              workers: int) -> None:
    """One Locust process, or Locust distributed: the master runs no users itself and waits
    for both workers (it gives up, failing, if one does not connect), so traffic means the
    workers sent it."""
    out = tmp_path / "load"
    done = subprocess.run(
        [sys.executable, "-m", "loadtests.run", "--seconds", "5", "--users", "6",
         "--spawn-rate", "6", "--accounts", "2000", "--out", str(out),
         "--workers", str(workers)],
        cwd=REPO, capture_output=True, text=True, timeout=100, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with (out / "locust_stats.csv").open(encoding="utf-8") as file:
        rows = {(row["Type"], row["Name"]): row for row in csv.DictReader(file)}
    assert int(rows[("POST", "pacs.008 instant")]["Request Count"]) > 0
    assert int(rows[("E2E", "instant")]["Request Count"]) > 0
    assert int(rows[("", "Aggregated")]["Failure Count"]) == 0
    assert (out / "locust.html").stat().st_size > 0


def test_the_runner_names_the_shapes_the_locustfile_can_load() -> None:
    """The CLI and run.py name the shapes without importing locust (gevent would patch them)."""
    code = ("import sys, switchlab.cli, loadtests.run; assert 'locust' not in sys.modules; "
            "from loadtests.shape_names import SHAPE_NAMES as names; "
            "from loadtests.shapes import SHAPES; "
            "assert tuple(SHAPES) == names, (names, tuple(SHAPES))")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=30)
