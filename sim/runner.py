"""Running histories: one seed each, in a fresh virtual-time loop and a journal file of its
own; the first broken invariant stops the run and names the seed that replays it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sim.escrow import EscrowBroken, EscrowHistory
from sim.history import Broken, History
from sim.loop import Stalled, VirtualLoop

MAX_HISTORIES = 1_000_000


@dataclass(frozen=True, slots=True)
class Outcome:
    """One history: its seed, the loop's steps, a digest of its trace (equal digests, the
    same history), and the invariant it broke, if any."""

    seed: int
    steps: int
    digest: str
    broken: Broken | None
    trace: tuple[str, ...]
    tally: Counter[str]  # what it exercised: faults, refusals by reason, restarts…


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """The switch's and asyncio's logs say what a storm does (lost answers, crashes): the
    history checks what matters, and prints the broken invariant."""
    loggers = [logging.getLogger(name) for name in ("switch", "asyncio", "sim")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _scratch() -> Path:
    """A folder for the histories' journals: memory-backed where the system has one."""
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix="switchlab-sim-",
                                 dir=shm if shm.is_dir() else None))


def run_history(seed: int, folder: Path | None = None) -> Outcome:
    """Play the history of `seed` to its end or its first broken invariant."""
    own = folder is None
    folder = _scratch() if folder is None else folder
    history = History(seed, folder)
    loop = VirtualLoop()
    loop.after_step = history.check_step
    broken: Broken | None = None
    try:
        with _quiet_logs():
            loop.run_until_complete(history.run())
    except Broken as error:
        broken = history.broken or error
    except Stalled as error:
        broken = Broken("liveness", str(error))
    except AssertionError as error:  # the core's own pair assertions (switch/book.py)
        broken = Broken("the core's assertions", str(error) or repr(error))
    except Exception as error:  # the switch, or the simulator itself, failed: a finding
        broken = Broken("no crash on any input", repr(error))
    finally:
        loop.after_step = None
        with _quiet_logs(), contextlib.suppress(BaseException):
            _unwind(loop)
        loop.close()
        for path in folder.glob(f"history-{seed}.sqlite*"):
            path.unlink()
        if own:
            shutil.rmtree(folder, ignore_errors=True)
    if broken is None and history.broken is not None:
        broken = history.broken
    if broken is None:
        broken = _play_escrow(seed, history)
    return Outcome(seed, loop.steps, history.digest(), broken, tuple(history.trace),
                   history.tally)


def _play_escrow(seed: int, history: History) -> Broken | None:
    """The same seed's escrow history (issue #24, sim/escrow.py), after the switch's: its
    trace and tally join the history's."""
    escrow = EscrowHistory(seed)
    try:
        escrow.play()
    except EscrowBroken as error:
        return Broken(error.invariant, error.detail)
    except AssertionError as error:  # switch/escrow.py's own pair assertions
        return Broken("the core's assertions", str(error) or repr(error))
    finally:
        history.trace.extend(escrow.trace)
        history.tally.update(escrow.tally)
    return None


def _unwind(loop: VirtualLoop) -> None:
    """A history that ended early leaves tasks behind: cancel them and let them finish, so
    that none runs after its loop is closed."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())


@dataclass(frozen=True, slots=True)
class Run:
    histories: int
    seconds: float
    first_broken: Outcome | None
    last: Outcome | None  # the last history played (the broken one, when one broke)
    tally: Counter[str]  # what the histories exercised, summed

    @property
    def histories_per_s(self) -> float:
        return self.histories / self.seconds if self.seconds else 0.0


def run(seed: int, histories: int) -> Run:
    """Histories seed, seed + 1, …, until one breaks an invariant."""
    folder = _scratch()
    started_s = time.perf_counter()
    played = 0
    outcome: Outcome | None = None
    tally: Counter[str] = Counter()
    try:
        for n in range(histories):
            outcome = run_history(seed + n, folder)
            played += 1
            tally.update(outcome.tally)
            if outcome.broken is not None:
                return Run(played, time.perf_counter() - started_s, outcome, outcome, tally)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return Run(played, time.perf_counter() - started_s, None, outcome, tally)
