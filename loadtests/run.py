"""`python -m loadtests.run` (also `switchlab load`): one bounded, headless load run.

Starts the target (switch and mock participants) in its own process, waits for its
participants file, runs Locust headless against it for a bounded time, writing Locust's CSV
and HTML reports, stops the target, and passes on Locust's exit code (non-zero on any
failure). Two processes because Locust's gevent patching must not touch the servers.

With `--workers N`, Locust runs distributed on loopback: a master (the shape, the reports,
the exit code) and N worker processes generating the load, as on several machines with
`--master-host`.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from lab.progress import Progress
from loadtests.shape_names import SHAPE_NAMES
from loadtests.target import DEFAULT_ACCOUNTS
from protocol.runtime import LOOPBACK, bind, child_environment

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
TARGET_START_S = 60.0
TARGET_STOP_S = 30.0
STOP_TIMEOUT_S = 5  # users finish the task in hand (a bulk poll) before Locust quits
LOCUST_MARGIN_S = 60.0  # start-up, stop timeout and report writing on top of the run time
MAX_RUN_S = 3_600
MAX_WORKERS = 64
WORKERS_WAIT_S = 30  # the master waits this long for every worker to connect
PROGRESS_EVERY_S = 1.0
ADMIN_TIMEOUT_S = 2.0
MAX_STATS_BYTES = 1024 * 1024


def _wait_for_target(target: subprocess.Popen[bytes], port_file: Path) -> None:
    """Block until the target says it is ready, it dies, or TARGET_START_S pass."""
    deadline = time.monotonic() + TARGET_START_S
    while not port_file.exists():
        if target.poll() is not None:
            raise RuntimeError(f"the load target exited with {target.returncode} at start")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the load target was not ready within {TARGET_START_S:.0f} s")
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=TARGET_STOP_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=TARGET_STOP_S)


def _workers(count: int, env: dict[str, str], master_port: int, cwd: Path
             ) -> list[subprocess.Popen[bytes]]:
    """`count` Locust workers connecting to the master on 127.0.0.1."""
    return [subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
         "--master-host", LOOPBACK, "--master-port", str(master_port)],
        cwd=cwd, env=env) for _ in range(count)]


def _switch_figures(participants_file: Path) -> dict[str, object]:
    """The switch's counts from its admin API (where the target file says it is); empty if
    it does not answer within ADMIN_TIMEOUT_S."""
    try:
        target = json.loads(participants_file.read_text(encoding="utf-8"))
        request = urllib.request.Request(f"{target['switch_url']}/v1/admin/stats", headers={
            "Authorization": f"Bearer {target['admin_token']}"})
        with urllib.request.urlopen(request, timeout=ADMIN_TIMEOUT_S) as reply:
            stats = json.loads(reply.read(MAX_STATS_BYTES))
    except (OSError, ValueError, KeyError):
        return {}
    by_state = stats.get("by_state", {})
    return {"settled": by_state.get("SETTLED", {}).get("count", 0),
            "rejected": by_state.get("REJECTED", {}).get("count", 0),
            "in_flight": stats.get("in_flight", 0)}


def _watch(locust: subprocess.Popen[bytes], seconds: int, participants_file: Path,
           bar: Progress, margin_s: float) -> int:
    """Wait for Locust (at most `seconds` + `margin_s`), showing the seconds done and the
    switch's counts; its exit code, or 124 if it had to be stopped."""
    started_s = time.monotonic()
    deadline_s = started_s + seconds + margin_s
    while locust.poll() is None:
        if time.monotonic() > deadline_s:
            _stop(locust)
            print(f"locust did not finish within {seconds + margin_s:.0f} s",
                  file=sys.stderr)
            return 124
        bar.update_to(min(int(time.monotonic() - started_s), seconds))
        if bar.enabled:
            bar.figures(**_switch_figures(participants_file))
        time.sleep(PROGRESS_EVERY_S)
    bar.update_to(seconds)
    return locust.returncode


def run_load(out: Path, seconds: int, users: int, spawn_rate: float | None = None,
             shape: str | None = None, accounts: int = DEFAULT_ACCOUNTS,
             workers: int = 0, progress: bool = False) -> int:
    """Run the load for `seconds` with up to `users` users, from one Locust process or from
    a master and `workers` worker processes; Locust's (the master's) exit code. With
    `progress`, a bar of the seconds done and the switch's settled, rejected and in-flight
    counts beside it."""
    if not 0 < seconds <= MAX_RUN_S:
        raise ValueError(f"seconds must be 1 to {MAX_RUN_S}")
    if users < 1:
        raise ValueError("users must be at least 1")
    if not 0 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be 0 to {MAX_WORKERS}")
    if shape is not None and shape not in SHAPE_NAMES:
        raise ValueError(f"unknown shape {shape!r}; one of {', '.join(SHAPE_NAMES)}")
    rate = spawn_rate if spawn_rate else float(users)
    out = out.resolve()  # every child starts in it, wherever the caller is
    out.mkdir(parents=True, exist_ok=True)
    participants_file, port_file = out / "target.json", out / "target.port"
    participants_file.unlink(missing_ok=True)
    port_file.unlink(missing_ok=True)
    target = subprocess.Popen(
        [sys.executable, "-m", "loadtests.target", "--participants-file", str(participants_file),
         "--port-file", str(port_file), "--accounts", str(accounts),
         "--seconds", str(seconds + TARGET_START_S + LOCUST_MARGIN_S)],
        cwd=out, env=child_environment())
    try:
        _wait_for_target(target, port_file)
        env = child_environment() | {"SWITCHLAB_TARGET": str(participants_file)}
        env.pop("SWITCHLAB_SHAPE", None)
        if shape:
            env["SWITCHLAB_SHAPE"] = shape
        command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
                   "-u", str(users), "-r", str(rate), "-t", f"{seconds}s",
                   "--csv", str(out / "locust"), "--html", str(out / "locust.html"),
                   "--only-summary", "--stop-timeout", str(STOP_TIMEOUT_S)]
        started: list[subprocess.Popen[bytes]] = []
        if workers:
            master_port = bind().hand_over()
            command += ["--master", "--master-bind-host", LOOPBACK,
                        "--master-bind-port", str(master_port), "--expect-workers",
                        str(workers), "--expect-workers-max-wait", str(WORKERS_WAIT_S)]
            started = _workers(workers, env, master_port, out)
        try:
            with Progress("load", seconds, unit="s", enabled=progress) as bar:
                return _watch(subprocess.Popen(command, cwd=out, env=env), seconds,
                              participants_file, bar,
                              LOCUST_MARGIN_S + (WORKERS_WAIT_S if workers else 0))
        finally:
            for worker in started:  # they quit with the master; any that did not, now
                _stop(worker)
    finally:
        _stop(target)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: Locust's exit code."""
    parser = argparse.ArgumentParser(prog="python -m loadtests.run", description=__doc__)
    parser.add_argument("--shape", choices=SHAPE_NAMES,
                        help="load shape; without one, -u users at -r per second for -t")
    parser.add_argument("--seconds", type=int, default=30, help="total run time")
    parser.add_argument("--users", type=int, default=20, help="users (a shape's peak)")
    parser.add_argument("--spawn-rate", type=float, help="users started per second")
    parser.add_argument("--accounts", type=int, default=DEFAULT_ACCOUNTS)
    parser.add_argument("--workers", type=int, default=0,
                        help="Locust distributed: a master and this many worker processes")
    parser.add_argument("--out", type=Path, default=Path("runs/load"))
    parser.add_argument("--progress", action="store_true",
                        help="a bar of the seconds done, with the switch's counts")
    args = parser.parse_args(argv)
    try:
        return run_load(args.out, args.seconds, args.users, args.spawn_rate, args.shape,
                        args.accounts, args.workers, args.progress)
    except (ValueError, RuntimeError) as error:
        print(f"load run: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
