"""How a mock participant misbehaves: latency, errors, outages, random rejections, lost, late
and duplicate replies, and the protocol bug of crediting before the switch confirms.

Set at start and replaced at run time over the bank's admin API (PUT /admin/behaviour), so a
scenario can open an outage window at the second it names. All randomness comes from one
Random seeded with `seed`: the same seed and the same traffic give the same faults. Every
delay is bounded, so a misconfigured fault cannot hang a run.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from protocol import reasons

SYNC, ASYNC = "sync", "async"
MAX_DELAY_S = 120.0
Z_99 = 2.326  # the standard normal's 99th percentile
RATES = ("error_rate", "reject_rate", "lost_reply_rate", "duplicate_reply_rate",
         "late_reply_rate")
FLAGS = ("offline", "credit_before_confirmation")
REASON_CODE = re.compile(r"[A-Z0-9]{4}")


@dataclass
class Behaviour:
    """A participant's faults. Rates are probabilities per inbound message, 0 to 1."""

    latency_ms_median: float = 0.0  # lognormal processing delay before each answer
    latency_ms_p99: float = 0.0
    error_rate: float = 0.0  # HTTP 500 instead of handling the message
    offline: bool = False  # HTTP 503 to everything the switch sends
    outages_s: list[tuple[float, float]] = field(default_factory=list)  # [from, to) since start
    answer_mode: str = SYNC  # sync: pacs.002 in the HTTP response; async: 202, then POST it
    reject_rate: float = 0.0  # refuse a transfer that passes every ledger check
    reject_reason: str = reasons.NOT_SPECIFIED
    lost_reply_rate: float = 0.0  # async: the answer is never sent
    duplicate_reply_rate: float = 0.0  # async: the answer is sent twice
    late_reply_rate: float = 0.0  # the answer comes late_by_s later, past the switch's deadline
    late_by_s: float = 10.0
    credit_before_confirmation: bool = False  # the protocol bug: credit on ACCP, not on ACSC
    return_deceased_after_s: float | None = None  # return credits to dies_after_payment accounts
    seed: int = 0

    def __post_init__(self) -> None:
        for name in RATES:
            rate = getattr(self, name)
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
                raise ValueError(f"{name} must be a number from 0 to 1, not {rate!r}")
        for name in FLAGS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false")
        if self.answer_mode not in (SYNC, ASYNC):
            raise ValueError(f"answer_mode must be {SYNC!r} or {ASYNC!r}")
        if self.answer_mode == SYNC and (self.lost_reply_rate or self.duplicate_reply_rate):
            raise ValueError("lost_reply_rate and duplicate_reply_rate need answer_mode 'async'")
        if not REASON_CODE.fullmatch(str(self.reject_reason)):
            raise ValueError(f"reject_reason must be an ISO 20022 code such as "
                             f"{reasons.NOT_SPECIFIED}, not {self.reject_reason!r}")
        _check_delay_s("late_by_s", self.late_by_s)
        _check_delay_s("latency_ms_median", self.latency_ms_median, per_s=1000)
        _check_delay_s("latency_ms_p99", self.latency_ms_p99, per_s=1000)
        if self.latency_ms_p99 and self.latency_ms_p99 < self.latency_ms_median:
            raise ValueError("latency_ms_p99 must be at least latency_ms_median")
        if self.return_deceased_after_s is not None:
            _check_delay_s("return_deceased_after_s", self.return_deceased_after_s)
        windows = []
        for window in self.outages_s:
            start_s, end_s = (float(edge) for edge in window)
            if not 0 <= start_s < end_s:
                raise ValueError(f"outage window {list(window)} must be [from, to) with "
                                 "0 <= from < to seconds since start")
            windows.append((start_s, end_s))
        self.outages_s = windows
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError("seed must be an integer")
        self.rng = random.Random(self.seed)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Behaviour:
        """From JSON or YAML; unknown settings are refused, not ignored."""
        if not isinstance(data, dict):
            raise ValueError("behaviour must be a JSON object")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown behaviour settings: {', '.join(sorted(unknown))}")
        try:
            return cls(**data)
        except TypeError as error:  # a number where a list belongs, and the like
            raise ValueError(str(error)) from None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def latency_s(self) -> float:
        """A lognormal delay with the configured median and 99th percentile."""
        if self.latency_ms_median <= 0:
            return 0.0
        sigma = (math.log(self.latency_ms_p99 / self.latency_ms_median) / Z_99
                 if self.latency_ms_p99 > self.latency_ms_median else 0.0)
        delay_ms = self.latency_ms_median * math.exp(sigma * self.rng.gauss(0.0, 1.0))
        return min(delay_ms / 1000.0, MAX_DELAY_S)

    def answer_delay_s(self) -> float:
        """How long until the answer to one pacs.008 goes out: latency, and now and then
        late_by_s more."""
        late_s = self.late_by_s if self.chance(self.late_reply_rate) else 0.0
        return min(self.latency_s() + late_s, MAX_DELAY_S)

    def down(self, since_start_s: float) -> bool:
        return self.offline or any(a <= since_start_s < b for a, b in self.outages_s)

    def chance(self, rate: float) -> bool:
        """True with probability `rate`; a rate of 0 draws nothing from the seeded Random."""
        return rate > 0 and self.rng.random() < rate


def _check_delay_s(name: str, delay: object, per_s: int = 1) -> None:
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not (
        0 <= delay <= MAX_DELAY_S * per_s
    ):
        raise ValueError(f"{name} must be a number from 0 to {MAX_DELAY_S * per_s:.0f}")
