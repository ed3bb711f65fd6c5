"""Reconciliation: the treasury's, the switch's and the banks' books must agree to the dong.

Each way the books can disagree has a stable key (`Balance`), so that a runner can pick the
checks it wants by key, never by the words of a sentence; and the switch's figures are read
once from `GET /v1/admin/stats` into `SwitchTotals`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from banks.payout import PayoutResult
from protocol.wording import count

MAX_COUNT = 10**12  # bounds on figures read from another party's JSON
MAX_TOTAL_VND = 10**20  # a total, not one transaction (that is MAX_AMOUNT_VND)


class Balance(StrEnum):
    """What a mismatch is about: two books that must agree, or money that must not be there.

    The value is how a person reads it; code compares members.
    """

    TREASURY_VS_SWITCH_SETTLED = "treasury debits vs switch settlements"
    TREASURY_VS_SWITCH_RETURNED = "treasury returns vs switch returns"
    SWITCH_VS_BANKS_SETTLED = "switch settlements vs bank credits"
    SWITCH_VS_BANKS_RETURNED = "switch returns vs bank returns"
    TREASURY_VS_BANKS_SETTLED = "treasury debits vs bank credits"
    TREASURY_VS_BANKS_RETURNED = "treasury returns vs bank returns"
    IN_FLIGHT = "in flight at the switch"
    CREDITED_EARLY = "credits before confirmation"


class Mismatch(str):
    """One way the books disagree: reads as a sentence, and keeps its figures for reports.

    `left` and `right` are the figures of the two sides `check` names, in `unit`.
    """

    check: Balance
    left: int
    right: int
    unit: str

    def __new__(cls, check: Balance, left: int, right: int, unit: str = "VND",
                sentence: str | None = None) -> Mismatch:
        text = sentence or (f"{check}: {left:,} {unit} ≠ {right:,} {unit} "
                            f"(off by {left - right:+,})")
        mismatch = super().__new__(cls, text)
        mismatch.check, mismatch.left, mismatch.right, mismatch.unit = check, left, right, unit
        return mismatch

    @property
    def difference(self) -> int:
        return self.left - self.right

    def as_dict(self) -> dict[str, object]:
        return {"check": str(self.check), "left": self.left, "right": self.right,
                "unit": self.unit, "difference": self.difference, "text": str(self)}


class StateTotals(BaseModel):
    """Transfers in one state at the switch: how many and how much. The per-reason counts
    (`count_<reason>`) the switch adds are kept but not read here."""

    model_config = ConfigDict(frozen=True, extra="allow")

    count: int = Field(0, ge=0, le=MAX_COUNT)
    amount_vnd: int = Field(0, ge=0, le=MAX_TOTAL_VND)


class SwitchTotals(BaseModel):
    """The switch's books as its admin API reports them (`GET /v1/admin/stats`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    by_state: dict[str, StateTotals] = Field(default_factory=dict)
    returns: StateTotals = StateTotals()
    in_flight: int = Field(0, ge=0, le=MAX_COUNT)

    @classmethod
    def from_stats(cls, data: Mapping[str, Any]) -> SwitchTotals:
        """From the stats JSON; raises pydantic.ValidationError (a ValueError) on a figure
        that is not a whole number in range."""
        return cls.model_validate(data)

    @classmethod
    def summed(cls, parts: Iterable[SwitchTotals]) -> SwitchTotals:
        """Totals of disjoint sets of transfers (the batches of one run's ids) as one."""
        by_state: dict[str, StateTotals] = {}
        returns, in_flight = StateTotals(), 0
        for part in parts:
            for name, totals in part.by_state.items():
                by_state[name] = _added(by_state.get(name, StateTotals()), totals)
            returns, in_flight = _added(returns, part.returns), in_flight + part.in_flight
        return cls(by_state=by_state, returns=returns, in_flight=in_flight)

    def state(self, name: str) -> StateTotals:
        return self.by_state.get(name, StateTotals())

    @property
    def settled(self) -> StateTotals:
        """Everything that settled, returned since or not: what the creditors were paid."""
        settled, returned = self.state("SETTLED"), self.state("RETURNED")
        return StateTotals(count=settled.count + returned.count,
                           amount_vnd=settled.amount_vnd + returned.amount_vnd)

    @property
    def rejected(self) -> StateTotals:
        return self.state("REJECTED")

    @property
    def pending(self) -> StateTotals:
        return self.state("PENDING")


def _added(one: StateTotals, other: StateTotals) -> StateTotals:
    return StateTotals(count=one.count + other.count,
                       amount_vnd=one.amount_vnd + other.amount_vnd)


def reconcile(result: PayoutResult, switch: SwitchTotals | None = None,
              bank_totals: Iterable[Mapping[str, Any]] | None = None) -> list[Mismatch]:
    """Money conservation to the dong; returns every mismatch (an empty list when all agree).

    Treasury debits = bank credits + in flight, and what came back = what the banks returned,
    hop by hop: treasury to switch, switch to banks (their ledger totals: bic, credited_vnd,
    returned_vnd, credited_before_confirmation); treasury to banks directly when the switch's
    figures are not given. Money still in flight at the switch is itself a mismatch: the books
    cannot close over it. Raises ValueError when given neither side to compare with.
    """
    if switch is None and bank_totals is None:
        raise ValueError("reconcile needs the switch's totals, the banks' totals, or both")
    treasury_debited_vnd = result.settled_vnd
    treasury_returned_vnd = result.returned_vnd
    pairs: list[tuple[Balance, int, int]] = []
    mismatches: list[Mismatch] = []  # those that are not a pair of figures
    if switch is not None:
        pending = switch.pending
        if pending.amount_vnd:
            mismatches.append(Mismatch(Balance.IN_FLIGHT, pending.amount_vnd, 0, sentence=(
                f"{count(pending.count, 'transfer')} ({pending.amount_vnd:,} VND) "
                "still in flight at the switch")))
        pairs += [(Balance.TREASURY_VS_SWITCH_SETTLED, treasury_debited_vnd,
                   switch.settled.amount_vnd),
                  (Balance.TREASURY_VS_SWITCH_RETURNED, treasury_returned_vnd,
                   switch.returns.amount_vnd)]
    if bank_totals is not None:
        banks = list(bank_totals)
        banks_credited_vnd = sum(t["credited_vnd"] for t in banks)
        banks_returned_vnd = sum(t["returned_vnd"] for t in banks)
        if switch is not None:
            pairs += [(Balance.SWITCH_VS_BANKS_SETTLED, switch.settled.amount_vnd,
                       banks_credited_vnd),
                      (Balance.SWITCH_VS_BANKS_RETURNED, switch.returns.amount_vnd,
                       banks_returned_vnd)]
        else:
            pairs += [(Balance.TREASURY_VS_BANKS_SETTLED, treasury_debited_vnd,
                       banks_credited_vnd),
                      (Balance.TREASURY_VS_BANKS_RETURNED, treasury_returned_vnd,
                       banks_returned_vnd)]
        early = {t["bic"]: t["credited_before_confirmation"] for t in banks
                 if t.get("credited_before_confirmation")}
        if early:
            early_count = sum(early.values())
            mismatches.append(Mismatch(
                Balance.CREDITED_EARLY, early_count, 0, unit="transfers",
                sentence=f"{count(early_count, 'credit')} made before the switch confirmed, by "
                         f"{sorted(early)}"))
    return [Mismatch(check, left, right) for check, left, right in pairs
            if left != right] + mismatches
