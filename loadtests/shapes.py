"""Payout-day load shapes; each ends by itself (tick returns None), bounded in time.

Durations are scaled by SWITCHLAB_SHAPE_SECONDS (default 60) and users by
SWITCHLAB_SHAPE_USERS (default 50), so the same shape runs for seconds in CI and an hour on a
bench machine.
"""

from __future__ import annotations

import os

from locust import LoadTestShape

SECONDS = float(os.environ.get("SWITCHLAB_SHAPE_SECONDS", "60"))
USERS = int(os.environ.get("SWITCHLAB_SHAPE_USERS", "50"))


class PayoutMorning(LoadTestShape):
    """Opening: a steep ramp to the peak, a long plateau, then a tail as the day winds down."""

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time() / SECONDS
        if t >= 1:
            return None
        if t < 0.1:
            return max(1, int(USERS * t / 0.1)), USERS
        if t < 0.7:
            return USERS, USERS
        return max(1, int(USERS * (1 - (t - 0.7) / 0.3))), USERS


class Spike(LoadTestShape):
    """A quiet baseline, then five times the users at once for a fifth of the run."""

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time() / SECONDS
        if t >= 1:
            return None
        baseline = max(1, USERS // 5)
        return (USERS, USERS * 2) if 0.4 <= t < 0.6 else (baseline, USERS)


class StepRamp(LoadTestShape):
    """Ten equal steps up to USERS: read the knee off the per-step p99 and failure rate."""

    steps = 10

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time() / SECONDS
        if t >= 1:
            return None
        return max(1, int(USERS * (int(t * self.steps) + 1) / self.steps)), USERS


SHAPES = {"payout_morning": PayoutMorning, "spike": Spike, "step_ramp": StepRamp}
