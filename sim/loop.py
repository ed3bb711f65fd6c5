"""An asyncio event loop on virtual time: when nothing is ready it jumps to the next timer
instead of waiting, so a history of minutes runs in milliseconds, and the order of everything
that happens is a function of the program alone (no sockets, no threads, no wall clock).

Built on the standard selector loop with a selector that never waits: asyncio's own timers,
sleeps, wait_for and futures work unchanged, and the switch's code runs as it does in
production. A hook runs after every step of the loop (the invariant checks).

Tasks and futures hash by their order of creation in the loop, not by their address: a set
of tasks (`asyncio.all_tasks()`, the switch's sets of running tasks) is iterated in an order
that depends on memory addresses otherwise, so that a crash cancelled tasks in an order that
changed from one run of a seed to the next (1 run in 30 took other steps).
"""

from __future__ import annotations

import asyncio
import itertools
import selectors
from collections.abc import Callable
from typing import Any


class Stalled(Exception):
    """Nothing is ready and no timer is set, yet the history waits: a deadlock."""


class _OrderedTask(asyncio.Task):  # type: ignore[type-arg]
    """A task whose hash is its number in its loop's order of creation."""

    def __init__(self, coro: Any, *, loop: VirtualLoop, **kwargs: Any) -> None:
        self._number = next(loop.numbers)  # before registering, which hashes it
        super().__init__(coro, loop=loop, **kwargs)

    def __hash__(self) -> int:
        return self._number


class _OrderedFuture(asyncio.Future):  # type: ignore[type-arg]
    """A future whose hash is its number in its loop's order of creation."""

    def __init__(self, *, loop: VirtualLoop) -> None:
        self._number = next(loop.numbers)
        super().__init__(loop=loop)

    def __hash__(self) -> int:
        return self._number


def _ordered_task(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> _OrderedTask:
    assert isinstance(loop, VirtualLoop)
    return _OrderedTask(coro, loop=loop, **kwargs)


class _VirtualSelector(selectors.SelectSelector):
    """Keeps the loop's registrations (its self-pipe) but never waits: a timeout advances the
    virtual clock instead. No I/O ever becomes ready."""

    def __init__(self, clock: list[float]) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None:
            raise Stalled("nothing ready and no timer set: the history can never go on")
        if timeout > 0:
            self._clock[0] += timeout
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    """`time()` is virtual seconds from 0; `after_step`, when set, runs after every step."""

    def __init__(self) -> None:
        self._virtual_now = [0.0]
        super().__init__(selector=_VirtualSelector(self._virtual_now))
        self.after_step: Callable[[], None] | None = None
        self.steps = 0
        self.numbers = itertools.count()  # tasks' and futures' hashes, in order of creation
        self.set_task_factory(_ordered_task)

    def create_future(self) -> asyncio.Future[Any]:
        return _OrderedFuture(loop=self)

    def time(self) -> float:
        return self._virtual_now[0]

    def _run_once(self) -> None:
        super()._run_once()  # type: ignore[misc]
        self.steps += 1
        if self.after_step is not None:
            self.after_step()
