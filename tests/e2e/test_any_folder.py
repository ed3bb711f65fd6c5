"""Every command works from a folder of the user's own, with relative paths, and writes only
under its output folder: run as a user runs them, the `switchlab` command in a new folder."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # whole runs: `pytest -m "not slow"` leaves them out

REPO = Path(__file__).resolve().parents[2]
LIBRARY = REPO / "scenarios" / "library"
SCRIPT = Path(sys.executable).with_name("switchlab")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "switchlab.cli"]


def _project_files() -> set[Path]:
    """The project folder's files, the venv and caches aside: nothing may appear there."""
    skip = {".venv", ".git", ".pytest_cache", ".ruff_cache", "__pycache__", ".benchmarks",
            ".hypothesis"}
    found = set()
    for root, folders, files in os.walk(REPO):
        folders[:] = [f for f in folders if f not in skip and not f.endswith(".egg-info")]
        found |= {Path(root, name) for name in files}
    return found


def switchlab(folder: Path, *args: str, timeout_s: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], cwd=folder, capture_output=True, text=True,
                          timeout=timeout_s, check=False)


@pytest.fixture
def own_folder(tmp_path: Path) -> Iterator[Path]:
    """A user's folder outside the project, checked to hold only `out` afterwards, with the
    project folder left as it was."""
    before = _project_files()
    folder = tmp_path / "user"
    folder.mkdir()
    yield folder
    assert sorted(p.name for p in folder.iterdir()) in ([], ["out"])
    assert _project_files() - before == set()


def test_demo(own_folder: Path) -> None:
    done = switchlab(own_folder, "demo", "--beneficiaries", "300", "--no-progress",
                     "--output", "out")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "live page http://127.0.0.1:" in done.stdout
    assert {"cash_list.csv", "results.csv", "summary.json", "switch.sqlite"} <= {
        p.name for p in (own_folder / "out").iterdir()}


def test_run_with_a_relative_path_and_the_switch_in_its_own_process(own_folder: Path) -> None:
    """The crash scenario (the switch a child process, killed and restarted) from a scenario
    file beside the user that extends the shipped one by a relative path."""
    relative = os.path.relpath(LIBRARY / "switch-crash-mid-run.yaml", own_folder / "out")
    (own_folder / "out").mkdir()
    (own_folder / "out" / "small.yaml").write_text(
        f"name: small-crash\nextends: {relative}\npopulation: {{ci_size: 800}}\n"
        "expect: {paid_by_account_min: 0.8}\n",  # 64 in flight at the kill: 8 % of 800
        encoding="utf-8")
    done = switchlab(own_folder, "run", "out/small.yaml", "--ci", "--no-progress",
                     "--output", "out/run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "admin API curl -H 'Authorization: Bearer " in done.stdout
    assert {"junit.xml", "report.html", "result.json", "switch.yaml"} <= {
        p.name for p in (own_folder / "out" / "run").iterdir()}


def test_load(own_folder: Path) -> None:
    done = switchlab(own_folder, "load", "--seconds", "3", "--users", "3", "--accounts", "500",
                     "--no-progress", "--output", "out", timeout_s=150)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert {"locust.html", "locust_stats.csv"} <= {p.name for p in (own_folder / "out").iterdir()}


def test_bench(own_folder: Path) -> None:
    done = switchlab(own_folder, "bench", "--instant-transfers", "200", "--concurrency", "4",
                     "--bulk-beneficiaries", "300", "--no-progress", "--output", "out")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "instant: end to end, durable journal" in done.stdout
    assert "bulk: time for the whole payout" in done.stdout
    assert "--check gates on them" in done.stdout  # each figure beside its target


@pytest.mark.parametrize("args", [["scenarios"], ["scenarios", "--schema"], ["switch", "--help"],
                                  ["run", "--help"], ["bench", "--help"], ["load", "--help"]])
def test_quick_commands(own_folder: Path, args: list[str]) -> None:
    done = switchlab(own_folder, *args, timeout_s=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def test_switch_serves_from_a_relative_config(own_folder: Path) -> None:
    """`switchlab switch --config out/switch.yaml` with a relative journal path: it starts,
    listens, and keeps its journal under the folder it was given."""
    (own_folder / "out").mkdir()
    (own_folder / "out" / "switch.yaml").write_text(
        "switch: {port: 0, journal_path: out/journal.sqlite, admin_token: t}\n"
        "participants:\n  - {bic: TRSYVNV1, kind: treasury, secret: s1,"
        " inbound_url: 'http://127.0.0.1:9/iso20022'}\n", encoding="utf-8")
    process = subprocess.Popen([*COMMAND, "switch", "--config", "out/switch.yaml"],
                               cwd=own_folder, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert " listening on http://127.0.0.1:" in process.stdout.readline()
        assert (own_folder / "out" / "journal.sqlite").exists()
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0
