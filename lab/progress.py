"""Progress for long commands: a bar that counts what is final and figures beside it.

One helper for every long command (demo, run, bench, load, and the payout and conformance
commands), so that they all read the same: what the bar counts is what is *done* (final
statuses, completed transfers, seconds of a bounded run), never what was merely sent, and the
figures an operator watches (settled, rejected, in flight, who is down) sit beside it.

    with Progress("payout", total=len(payments), unit="tx", enabled=not args.no_progress) as bar:
        ...
        bar.update_to(final_count)
        bar.figures(settled=1234, rejected=5, down="none")

`stage(text)` prints a line that says which step of a command has started; with the bar
disabled (CI logs) the stages still print and the bar stays silent.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TextIO

from tqdm import tqdm

MAX_FIGURES_CHARS = 200  # what fits beside a bar on a wide terminal


class Progress:
    """A bar of `total` things done (None: a counter with no end), figures beside it.

    `enabled=False` shows nothing, for CI logs; the calls are then free. Not thread-safe: call
    it from the event loop that owns it.
    """

    def __init__(self, what: str, total: float | None, unit: str = "tx", enabled: bool = True,
                 stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.done = 0.0
        self._bar = tqdm(total=total, desc=what, unit=unit, disable=not enabled,
                         file=stream or sys.stderr, dynamic_ncols=True,
                         unit_scale=unit == "tx")

    def update_to(self, done: float) -> None:
        """The count of what is done now (it may only grow; a lower count is ignored)."""
        if done > self.done:
            self._bar.update(done - self.done)
            self.done = done

    def figures(self, **figures: object) -> None:
        """Figures beside the bar, `name value` each, in the order given; numbers with
        thousands separators."""
        text = " ".join(f"{name.replace('_', ' ')} {value:,}" if isinstance(value, int)
                        else f"{name.replace('_', ' ')} {value}"
                        for name, value in figures.items())
        self._bar.set_postfix_str(text[:MAX_FIGURES_CHARS], refresh=False)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


def stage(text: str, stream: TextIO | None = None) -> None:
    """Say which step of a long command starts now (always printed, bar or not)."""
    print(text, file=stream or sys.stderr, flush=True)
