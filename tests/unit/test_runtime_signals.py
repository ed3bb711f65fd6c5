"""Servers end on a stop signal through `protocol.runtime`, and leave the signal as it was."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import pytest

from protocol.runtime import ready_until_stopped, stop_on_signals, until_stopped


async def test_a_signal_ends_the_wait_and_its_handler_is_removed_after() -> None:
    loop = asyncio.get_running_loop()
    loop.call_later(0.01, os.kill, os.getpid(), signal.SIGTERM)
    await until_stopped()  # returns instead of the process ending
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None)


async def test_without_a_signal_the_wait_ends_at_its_time_limit() -> None:
    with stop_on_signals((signal.SIGUSR1,)) as stop:
        await until_stopped(0.01, (signal.SIGUSR2,))
        assert not stop.is_set()
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.wait_for(stop.wait(), 5)
    assert stop.is_set()


async def test_issue_26_the_ready_line_comes_after_the_stop_handler(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Friction 1 of issue #26: a supervisor that sends SIGTERM as soon as it reads "listening
    on" must get a clean stop; the line used to come before the handler, and the default
    action ended the process without cleanup (-15)."""
    handler_at_ready_line = []

    def supervisor_reads(line: str, **_: object) -> None:
        installed = signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)
        handler_at_ready_line.append(installed)
        if installed:  # the supervisor's stop, at once; without a handler it would end pytest
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr("builtins.print", supervisor_reads)
    with contextlib.suppress(TimeoutError):  # the stop never came: no handler (below)
        await asyncio.wait_for(ready_until_stopped("switch X listening on http://h:1"), 5)
    assert handler_at_ready_line == [True]
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None)
