"""What the treasury keeps by row of the tables it runs (`Outcomes`) answers as the list of
outcomes it replaces."""

from __future__ import annotations

from collections import Counter

from banks.payment_table import Payment, PaymentTable
from banks.payout import Outcome, Outcomes, PayoutResult, PayoutStatus


def payment(n: int) -> Payment:
    return Payment(citizen_id=f"0011900{n:05d}", full_name=f"Trần Văn Đức {n}",
                   amount_vnd=2_340_000 + n, creditor_bic="BFTVVNVX", account_id=f"0011{n:09d}",
                   programme="luong_huu", end_to_end_id=f"KBNN20261120{n:09d}")


def test_outcomes_by_row_give_the_figures_of_the_outcomes_as_objects() -> None:
    table = PaymentTable.of([payment(n) for n in range(6)])
    kinds = [(PayoutStatus.PAID, None, 0), (PayoutStatus.RETURNED, "MD07", 600_000),
             (PayoutStatus.REJECTED, "AC04", 0), (PayoutStatus.STOPPED, "BE01", 0),
             (PayoutStatus.UNRESOLVED, None, 0), (PayoutStatus.PAID, None, 0)]
    outcomes = Outcomes(table)
    for kind in kinds:
        outcomes.append(*kind)
    as_objects = [Outcome(p, *kind) for p, kind in zip(table, kinds, strict=True)]
    assert list(outcomes) == as_objects and outcomes[1:3] == as_objects[1:3]
    by_row, by_object = PayoutResult(outcomes, 1.0), PayoutResult(as_objects, 1.0)
    assert by_row.as_dict() == by_object.as_dict()
    assert by_row.cash_list_rows() == by_object.cash_list_rows()
    assert by_row.deceased_rows() == by_object.deceased_rows()
    amounts = [p.amount_vnd for p in table]
    assert by_row.paid_vnd == amounts[0] + amounts[5] + amounts[1] - 600_000
    assert by_row.returned_vnd == 600_000 and by_row.rejected_vnd == amounts[2]
    assert by_row.unresolved_vnd == amounts[4] and by_row.submitted_vnd == sum(amounts)
    assert by_row.reasons_for(PayoutStatus.STOPPED) == Counter({"BE01": 1})
