"""How a mock participant misbehaves: latency, errors, outages, lost, late and duplicate
replies, and the protocol bug of crediting before the switch confirms.

Set at start and changeable at run time over the bank's admin API, so a scenario can open an
outage window at the minute it names. All randomness comes from one seeded Random: the same
seed gives the same faults on the same transfers.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field, fields
from typing import Any

MAX_DELAY_S = 120.0


@dataclass
class Behaviour:
    latency_ms_median: float = 0.0
    latency_ms_p99: float = 0.0
    error_rate: float = 0.0  # HTTP 500 instead of an answer
    offline: bool = False  # HTTP 503 to everything the switch sends
    outages_s: list[tuple[float, float]] = field(default_factory=list)  # since start
    answer_mode: str = "sync"  # "sync": in the HTTP response; "async": 202, then POST
    lost_reply_rate: float = 0.0  # async: the answer is never sent
    duplicate_reply_rate: float = 0.0  # async: the answer is sent twice
    late_reply_rate: float = 0.0  # async: the answer comes after late_by_s
    late_by_s: float = 10.0
    credit_before_confirmation: bool = False  # the protocol bug: credit on ACCP
    return_deceased_after_s: float | None = None  # return credits to dies_after_payment
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("error_rate", "lost_reply_rate", "duplicate_reply_rate", "late_reply_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.answer_mode not in ("sync", "async"):
            raise ValueError("answer_mode must be 'sync' or 'async'")
        if self.latency_ms_p99 and self.latency_ms_p99 < self.latency_ms_median:
            raise ValueError("latency_ms_p99 must be at least latency_ms_median")
        self.late_by_s = min(self.late_by_s, MAX_DELAY_S)
        self.outages_s = [(float(a), float(b)) for a, b in self.outages_s]
        self.rng = random.Random(self.seed)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Behaviour:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown behaviour settings: {', '.join(sorted(unknown))}")
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def latency_s(self) -> float:
        """A lognormal delay with the configured median and 99th percentile."""
        if self.latency_ms_median <= 0:
            return 0.0
        sigma = (math.log(self.latency_ms_p99 / self.latency_ms_median) / 2.326
                 if self.latency_ms_p99 > self.latency_ms_median else 0.0)
        delay_ms = self.latency_ms_median * math.exp(sigma * self.rng.gauss(0.0, 1.0))
        return min(delay_ms / 1000.0, MAX_DELAY_S)

    def down(self, since_start_s: float) -> bool:
        return self.offline or any(a <= since_start_s < b for a, b in self.outages_s)

    def chance(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate
