"""What the treasury keeps by row of the tables it runs (banks/final_statuses.py, `Outcomes`)
answers as the dict of final statuses and the list of outcomes it replaces."""

from __future__ import annotations

from collections import Counter

from banks.final_statuses import FinalStatuses
from banks.payment_table import Payment, PaymentTable
from banks.payout import Outcome, Outcomes, PayoutResult, PayoutStatus, shared_verdict
from protocol.messages import TxStatus


def payment(n: int) -> Payment:
    return Payment(citizen_id=f"0011900{n:05d}", full_name=f"Trần Văn Đức {n}",
                   amount_vnd=2_340_000 + n, creditor_bic="BFTVVNVX", account_id=f"0011{n:09d}",
                   programme="luong_huu", end_to_end_id=f"KBNN20261120{n:09d}")


PAID, CLOSED = shared_verdict(TxStatus.SETTLED), shared_verdict(TxStatus.REJECTED, "AC04")


def test_final_statuses_answer_as_a_dict_of_the_ids_of_the_tables_run() -> None:
    first = PaymentTable.of([payment(n) for n in range(4)])
    later = PaymentTable.of([payment(n) for n in range(2, 6)])  # rows 2 and 3 again
    final = FinalStatuses()
    final.setdefault("RESTORED-9", CLOSED)  # kept by an earlier run: no table yet
    final.add_table(first)
    assert final.keep_first(first.end_to_end_id(0), PAID)
    assert not final.keep_first(first.end_to_end_id(0), CLOSED)  # the first word stays
    assert not final.keep_first("NOT-OURS-1", PAID) and not final.knows("NOT-OURS-1")
    final.add_table(later)
    final[later.end_to_end_id(0)] = CLOSED  # row 2 of both: held once
    final[later.end_to_end_id(3)] = PAID
    expected = {payment(0).end_to_end_id: PAID, payment(2).end_to_end_id: CLOSED,
                payment(5).end_to_end_id: PAID, "RESTORED-9": CLOSED}
    assert dict(final) == expected and len(final) == 4
    assert payment(1).end_to_end_id not in final and final.get(payment(1).end_to_end_id) is None
    del final[payment(2).end_to_end_id]
    assert len(final) == 3 and payment(2).end_to_end_id not in final
    final.clear()
    assert dict(final) == {} and final.knows(payment(5).end_to_end_id)


def test_an_id_restored_before_its_table_is_held_in_its_row_once_the_table_comes() -> None:
    table = PaymentTable.of([payment(0)])
    final = FinalStatuses()
    final[payment(0).end_to_end_id] = CLOSED
    final.add_table(table)
    final.add_table(table)  # the same table again changes nothing
    assert final[payment(0).end_to_end_id] == CLOSED and len(final) == 1
    assert not final.keep_first(payment(0).end_to_end_id, PAID)


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
