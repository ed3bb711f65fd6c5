"""`switchlab load`: start the target in its own process, run Locust headless against it for a
bounded time, write Locust's CSV and HTML reports, stop the target, pass on Locust's exit code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_START_S = 60.0
MAX_RUN_S = 3_600


def run_load(out: Path, seconds: int, users: int, spawn_rate: float, shape: str | None,
             accounts: int = 20_000) -> int:
    if not 0 < seconds <= MAX_RUN_S:
        raise ValueError(f"seconds must be 1 to {MAX_RUN_S}")
    out.mkdir(parents=True, exist_ok=True)
    target_file = out / "target.json"
    target_file.unlink(missing_ok=True)
    target = subprocess.Popen(
        [sys.executable, "-m", "loadtests.target", "--target-file", str(target_file),
         "--accounts", str(accounts), "--seconds", str(seconds + TARGET_START_S)], cwd=REPO)
    try:
        deadline = time.monotonic() + TARGET_START_S
        while not target_file.exists():
            if target.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the load target did not start")
            time.sleep(0.1)
        env = os.environ | {"SWITCHLAB_TARGET": str(target_file)}
        command = [sys.executable, "-m", "locust", "-f", str(REPO / "loadtests" / "locustfile.py"),
                   "--headless", "--only-summary", "--csv", str(out / "locust"),
                   "--html", str(out / "locust.html"), "--stop-timeout", "5"]
        if shape:
            env |= {"SWITCHLAB_SHAPE": shape, "SWITCHLAB_SHAPE_SECONDS": str(seconds),
                    "SWITCHLAB_SHAPE_USERS": str(users)}
        else:
            command += ["-u", str(users), "-r", str(spawn_rate), "-t", f"{seconds}s"]
        return subprocess.run(command, cwd=REPO, env=env, timeout=seconds + 60,
                              check=False).returncode
    finally:
        target.send_signal(signal.SIGTERM)
        try:
            target.wait(timeout=30)
        except subprocess.TimeoutExpired:
            target.kill()
