"""Starting the lab's parties as child processes and stopping them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

# The folder the project's packages are imported from: a child started anywhere finds them
# there, however switchlab was installed.
CODE_ROOT = Path(__file__).resolve().parents[1]


def child_environment() -> dict[str, str]:
    """This process's environment with the project's code first on PYTHONPATH, so that a
    child started in any folder imports the same code as its parent."""
    paths = [str(CODE_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return os.environ | {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


async def start_process(*args: str, cwd: Path, start_timeout_s: float = 30.0
                        ) -> tuple[asyncio.subprocess.Process, str]:
    """Start `python args...` in the folder `cwd` (where anything it writes by a relative path
    lands: give it paths that are absolute) and wait for its first line, which must say
    "... listening on URL"; returns the process and that URL. Raises RuntimeError if it does
    not start within `start_timeout_s`."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, stdout=asyncio.subprocess.PIPE, cwd=cwd,
        env=child_environment())
    assert process.stdout is not None
    command = " ".join(args)
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), start_timeout_s)).decode()
    except TimeoutError:
        _kill(process)
        raise RuntimeError(f"{command} did not start in {start_timeout_s} s") from None
    if " listening on " not in line:
        _kill(process)
        code = await asyncio.wait_for(process.wait(), start_timeout_s)
        raise RuntimeError(f"{command} did not start (exit status {code}; "
                           f"its errors are above): {line.strip()!r}")
    return process, line.rsplit(" ", 1)[1].strip()


def _kill(process: asyncio.subprocess.Process) -> None:
    """SIGKILL, unless it has already gone (killing a dead child raises)."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()


async def stop_process(process: asyncio.subprocess.Process, timeout_s: float = 30.0) -> None:
    """SIGTERM, wait, and SIGKILL if it will not go."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        _kill(process)
        await process.wait()
