"""Payout-day load shapes; each ends by itself (tick returns None), bounded in time.

Each shape reads Locust's own `-u` (peak users) and `-t` (total time) when given
(`use_common_options`), so the same shape runs for seconds in CI and an hour on a bench
machine; without them, 50 users over 60 s. The locustfile imports a shape only when
SWITCHLAB_SHAPE names it, because Locust uses any LoadTestShape it finds there.
"""

from __future__ import annotations

from locust import LoadTestShape

from loadtests.shape_names import SHAPE_NAMES

DEFAULT_SECONDS = 60.0
DEFAULT_USERS = 50
MAX_SECONDS = 3_600.0


class _Scaled(LoadTestShape):
    """A shape drawn on [0, 1) of the run and scaled to the run's users and seconds."""

    abstract = True
    use_common_options = True

    def _options(self) -> tuple[int, float]:
        options = getattr(getattr(self.runner, "environment", None), "parsed_options", None)
        users = int(getattr(options, "num_users", None) or DEFAULT_USERS)
        seconds = float(getattr(options, "run_time", None) or DEFAULT_SECONDS)
        return max(1, users), min(max(1.0, seconds), MAX_SECONDS)

    def tick(self) -> tuple[int, float] | None:
        users, seconds = self._options()
        t = self.get_run_time() / seconds
        if t >= 1:
            return None
        count, rate = self.at(t, users)
        return max(1, count), max(1.0, rate)

    def at(self, t: float, users: int) -> tuple[int, float]:
        """Users and spawn rate at fraction `t` of the run, for a peak of `users`."""
        raise NotImplementedError


class PayoutMorning(_Scaled):
    """Opening: a steep ramp to the peak in a tenth of the run, a plateau, then a tail."""

    def at(self, t: float, users: int) -> tuple[int, float]:
        if t < 0.1:
            return int(users * t / 0.1) + 1, users
        if t < 0.7:
            return users, users
        return int(users * (1 - (t - 0.7) / 0.3)) + 1, users


class Spike(_Scaled):
    """A quiet baseline (a fifth of the peak), then the whole peak at once for a fifth."""

    def at(self, t: float, users: int) -> tuple[int, float]:
        if 0.4 <= t < 0.6:
            return users, users * 2
        return users // 5, users


class StepRamp(_Scaled):
    """Ten equal steps up to the peak: read the knee off the per-step p99 and failures."""

    steps = 10

    def at(self, t: float, users: int) -> tuple[int, float]:
        return int(users * (int(t * self.steps) + 1) / self.steps), users


SHAPES: dict[str, type[LoadTestShape]] = {
    "payout_morning": PayoutMorning, "spike": Spike, "step_ramp": StepRamp,
}
if tuple(SHAPES) != SHAPE_NAMES:  # the names the CLI offers must be the shapes there are
    raise RuntimeError(f"loadtests/shape_names.py names {SHAPE_NAMES}; shapes.py has "
                       f"{tuple(SHAPES)}")
