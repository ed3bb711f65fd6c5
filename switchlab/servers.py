"""Starting the lab's parties as child processes and stopping them."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


async def start_process(*args: str, start_timeout_s: float = 30.0
                        ) -> tuple[asyncio.subprocess.Process, str]:
    """Start `python args...` from the project root and wait for its first line, which must
    say "... listening on URL"; returns the process and that URL."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, stdout=asyncio.subprocess.PIPE, cwd=PROJECT_ROOT)
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), start_timeout_s)).decode()
    except TimeoutError:
        process.kill()
        raise RuntimeError(f"{' '.join(args)} did not start in {start_timeout_s} s") from None
    if " listening on " not in line:
        process.kill()
        raise RuntimeError(f"{' '.join(args)} did not start: {line!r}")
    return process, line.rsplit(" ", 1)[1].strip()


async def stop_process(process: asyncio.subprocess.Process, timeout_s: float = 30.0) -> None:
    """SIGTERM, wait, and SIGKILL if it will not go."""
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
