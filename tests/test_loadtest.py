"""A short headless Locust run against a real switch on loopback: it completes, with traffic
and without unexpected failures."""

from __future__ import annotations

import csv
from pathlib import Path

from loadtests.run import run_load


def test_short_headless_locust_run_completes_without_failures(tmp_path: Path) -> None:
    code = run_load(tmp_path, seconds=6, users=6, spawn_rate=6, shape=None, accounts=2_000)
    assert code == 0
    with (tmp_path / "locust_stats.csv").open(encoding="utf-8") as file:
        rows = {(row["Type"], row["Name"]): row for row in csv.DictReader(file)}
    assert int(rows[("POST", "pacs.008 instant")]["Request Count"]) > 0
    assert int(rows[("E2E", "instant")]["Request Count"]) > 0
    assert int(rows[("", "Aggregated")]["Failure Count"]) == 0
    assert (tmp_path / "locust.html").stat().st_size > 0
