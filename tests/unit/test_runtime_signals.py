"""Servers end on a stop signal through `protocol.runtime`, and leave the signal as it was."""

from __future__ import annotations

import asyncio
import os
import signal

from protocol.runtime import stop_on_signals, until_stopped


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
