"""How a mock participant misbehaves: latency, errors, outages, random rejections, lost, late
and duplicate replies, the protocol bug of crediting before the switch confirms, and the
defects a conformance run must catch (docs/conformance.md, "The faulty banks").

Set at start and replaced at run time over the bank's admin API (PUT /admin/behaviour), so a
scenario can open an outage window at the second it names. All randomness comes from one
Random seeded with `seed`: the same seed and the same traffic give the same faults. Every
delay is bounded, so a misconfigured fault cannot hang a run.
"""

from __future__ import annotations

import math
import random
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    ValidationInfo,
    field_validator,
)

from protocol import reasons

SYNC, ASYNC = "sync", "async"
MAX_DELAY_S = 120.0
MAX_OUTAGES = 100
Z_99 = 2.326  # the standard normal's 99th percentile
# Strict: a rate of true or "0.5" is a mistake in the file, not a number.
Rate = Annotated[float, Field(ge=0, le=1, strict=True)]
DelayS = Annotated[float, Field(ge=0, le=MAX_DELAY_S, strict=True)]
DelayMs = Annotated[float, Field(ge=0, le=MAX_DELAY_S * 1000, strict=True)]
SinceStartS = Annotated[float, Field(ge=0, strict=True)]
Seed = Annotated[int, Field(strict=True, ge=-(2**63), lt=2**63)]  # of a random.Random
ReasonCode = Annotated[str, Field(pattern=r"^[A-Z0-9]{4}$")]  # ISO 20022 ExternalStatusReason
MAX_REMAPPED_CODES = 50
# What a message fault does to one answer, and which answers it hits: one kind of message, so
# that a conformance run shows the one case that covers it.
MessageFault = Literal["malformed", "unsigned", "bad_signature", "wrong_sender",
                       "wrong_receiver"]
FaultyAnswers = Literal["bulk_answer", "instant_answer", "verification_answer"]


class Behaviour(BaseModel):
    """A participant's faults. Rates are probabilities per inbound message, 0 to 1; delays
    are at most MAX_DELAY_S. Validating raises pydantic.ValidationError (a ValueError) naming
    the setting; unknown settings are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")

    latency_ms_median: DelayMs = 0.0  # lognormal processing delay before each answer
    latency_ms_p99: DelayMs = 0.0
    error_rate: Rate = 0.0  # HTTP 500 instead of handling the message
    offline: StrictBool = False  # HTTP 503 to everything the switch sends
    outages_s: list[tuple[SinceStartS, SinceStartS]] = Field(  # [from, to) since start
        default_factory=list, max_length=MAX_OUTAGES)
    # sync: pacs.002 in the HTTP response; async: 202, then POST it
    answer_mode: Literal["sync", "async"] = SYNC
    reject_rate: Rate = 0.0  # refuse a transfer that passes every ledger check
    reject_reason: ReasonCode = reasons.NOT_SPECIFIED
    lost_reply_rate: Rate = 0.0  # async: the answer is never sent
    duplicate_reply_rate: Rate = 0.0  # async: the answer is sent twice
    late_reply_rate: Rate = 0.0  # the answer comes late_by_s later, past the switch's deadline
    late_by_s: DelayS = 10.0
    credit_before_confirmation: StrictBool = False  # the protocol bug: credit on ACCP, not ACSC
    return_deceased_after_s: DelayS | None = None  # return credits to dies_after_payment accounts
    # Defects for the conformance suite's proof. Answer the second code where the ledger says
    # the first ({"AC04": "AC01"}: a closed account reported as unknown).
    wrong_reason_codes: dict[ReasonCode, ReasonCode] = Field(
        default_factory=dict, max_length=MAX_REMAPPED_CODES)
    double_credit_on_redelivery: StrictBool = False  # a pacs.008 delivered twice: two credits
    serial_answers: StrictBool = False  # one pacs.008 at a time, as a core with one session
    message_fault: MessageFault | None = None  # done to every answer of `message_fault_on`
    message_fault_on: FaultyAnswers = "bulk_answer"  # bulk: a pacs.008 of several transfers
    return_wrong_original: StrictBool = False  # a return names an end-to-end id never paid
    seed: Seed = 0
    _rng: random.Random = PrivateAttr()

    # Checks across settings are made on the later one, so that an error names its line.
    @field_validator("outages_s")
    @classmethod
    def _windows_open_before_they_close(cls, windows: list[tuple[float, float]]
                                        ) -> list[tuple[float, float]]:
        for start_s, end_s in windows:
            if not start_s < end_s:
                raise ValueError(f"outage window {[start_s, end_s]} must be [from, to) with "
                                 "0 <= from < to seconds since start")
        return windows

    @field_validator("latency_ms_p99")
    @classmethod
    def _p99_not_below_median(cls, p99_ms: float, info: ValidationInfo) -> float:
        if p99_ms and p99_ms < info.data.get("latency_ms_median", 0.0):
            raise ValueError("latency_ms_p99 must be at least latency_ms_median")
        return p99_ms

    @field_validator("lost_reply_rate", "duplicate_reply_rate")
    @classmethod
    def _only_async_answers_go_astray(cls, rate: float, info: ValidationInfo) -> float:
        if rate and info.data.get("answer_mode") == SYNC:
            raise ValueError("lost_reply_rate and duplicate_reply_rate need answer_mode 'async'")
        return rate

    def model_post_init(self, context: Any, /) -> None:
        self._rng = random.Random(self.seed)

    def latency_s(self) -> float:
        """A lognormal delay with the configured median and 99th percentile."""
        if self.latency_ms_median <= 0:
            return 0.0
        sigma = (math.log(self.latency_ms_p99 / self.latency_ms_median) / Z_99
                 if self.latency_ms_p99 > self.latency_ms_median else 0.0)
        delay_ms = self.latency_ms_median * math.exp(sigma * self._rng.gauss(0.0, 1.0))
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
        return rate > 0 and self._rng.random() < rate

