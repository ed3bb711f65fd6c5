"""A scenario that expects a protocol bug: finding it passes, not finding it fails, and the
invariants it breaks excuse that participant for that bug only."""

from __future__ import annotations

from typing import Any

from banks.payment_table import Payment
from banks.payout import LatencyLog, Outcome, PayoutResult, PayoutStatus
from banks.reconcile import SwitchTotals
from scenarios.expectations import Bug, Observed, bugs_found, each_process_final_share_min
from scenarios.runner import invariants

EARLY = Bug(participant="ICBVVNVX", kind="credit_before_confirmation")


def _payment(n: int, bic: str) -> Payment:
    return Payment(f"00119000{n:04d}", "Nguyễn Thị Lan", 1_000_000, bic, f"0071{n:09d}",
                   "luong_huu", f"KBNN{n:09d}")


def _day(early_unsettled: int) -> tuple[PayoutResult, SwitchTotals, list[dict[str, Any]]]:
    """Two transfers to each of two banks settle; ICBVVNVX also credited `early_unsettled`
    transfers on ACCP that the switch then rejected (AB05)."""
    paid = [Outcome(_payment(n, bic), PayoutStatus.PAID)
            for n, bic in enumerate(["BFTVVNVX", "BFTVVNVX", "ICBVVNVX", "ICBVVNVX"])]
    late = [Outcome(_payment(10 + n, "ICBVVNVX"), PayoutStatus.REJECTED, "AB05")
            for n in range(early_unsettled)]
    result = PayoutResult(paid + late, elapsed_s=1.0)
    switch = SwitchTotals.from_stats({"by_state": {
        "SETTLED": {"count": 4, "amount_vnd": 4_000_000},
        "REJECTED": {"count": early_unsettled, "amount_vnd": early_unsettled * 1_000_000}}})
    banks = [
        {"bic": "BFTVVNVX", "credited": 2, "credited_vnd": 2_000_000, "returned_vnd": 0,
         "credited_before_confirmation": 0, "credited_before_confirmation_vnd": 0},
        {"bic": "ICBVVNVX", "credited": 2 + early_unsettled,
         "credited_vnd": (2 + early_unsettled) * 1_000_000, "returned_vnd": 0,
         "credited_before_confirmation": 2 + early_unsettled,
         "credited_before_confirmation_vnd": (2 + early_unsettled) * 1_000_000},
    ]
    return result, switch, banks


def _failed(checks: list[Any]) -> list[str]:
    return [c.name for c in checks if not c.passed]


def test_an_unexpected_bug_fails_the_invariants_it_breaks() -> None:
    result, switch, banks = _day(early_unsettled=3)
    assert _failed(invariants(result, switch, banks, {"net_vnd": {}})) == [
        "nothing doubled", "money conserved", "no credit before confirmation"]


def test_an_expected_bug_is_excused_in_the_invariants_and_found() -> None:
    result, switch, banks = _day(early_unsettled=3)
    checks = invariants(result, switch, banks, {"net_vnd": {}}, [EARLY])
    assert _failed(checks) == []
    excuse = next(c for c in checks if c.name == "no credit before confirmation").detail
    assert "ICBVVNVX's 5 early credits excused" in excuse and "3 never settled" in excuse
    (found,) = bugs_found([EARLY], Observed(result, LatencyLog(), 0, banks))
    assert found.passed and found.name == "bug found: credit_before_confirmation at ICBVVNVX"


def test_an_expected_bug_excuses_no_other_participant() -> None:
    result, switch, banks = _day(early_unsettled=0)
    banks[0] |= {"credited": 3, "credited_vnd": 3_000_000}  # BFTVVNVX credits one too many
    assert "nothing doubled" in _failed(invariants(result, switch, banks, {"net_vnd": {}},
                                                   [EARLY]))


def test_an_expected_bug_not_found_fails() -> None:
    result, _, banks = _day(early_unsettled=0)
    banks[1] |= {"credited_before_confirmation": 0, "credited_before_confirmation_vnd": 0}
    (found,) = bugs_found([EARLY], Observed(result, LatencyLog(), 0, banks))
    assert not found.passed
    assert "ICBVVNVX did it on 0 transfers" in found.detail


def test_issue_newuser3_finding3_each_switch_process_must_make_its_share_final() -> None:
    """two-switch-processes said 'held' with nothing showing that two processes shared the
    work: each process's own count is judged, and one that made none final, or did not
    answer, fails the run."""
    result, _, banks = _day(early_unsettled=0)

    def judged(counts: dict[str, int]) -> list[tuple[str, bool]]:
        seen = Observed(result, LatencyLog(), 0, banks, final_by_process=counts,
                        switch_processes=2)
        return [(c.name, c.passed) for c in each_process_final_share_min(0.1, seen)]

    assert all(passed for _, passed in judged({"p1": 1_530, "p2": 1_470}))
    assert all(passed for _, passed in judged({"p1": 2_800, "p2": 200}))  # ≥ 150: 5 %
    assert judged({"p1": 2_950, "p2": 50}) == [
        ("every switch process answered", True), ("share made final by p1", True),
        ("share made final by p2", False)]
    assert judged({"p1": 3_000})[0] == ("every switch process answered", False)
