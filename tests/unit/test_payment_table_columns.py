"""The payment table held in columns (banks/columns.py): the same payments, in the same order,
as the rows of the file; ids found again by row; repeats still refused."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from banks.columns import RowIndex, Texts
from banks.payment_table import Payment, PaymentTable, check_payment_table, read_payment_table

COLUMNS = ("citizen_id", "full_name", "amount_vnd", "creditor_bic", "account_id", "programme",
           "end_to_end_id", "period", "arrears", "commune", "address")


def payment(n: int, **changes: object) -> Payment:
    fields: dict[str, object] = {
        "citizen_id": f"0011900{n:05d}", "full_name": f"Nguyễn Thị Rà {n}",
        "amount_vnd": 1_170_000 + n, "creditor_bic": ("BFTVVNVX", "EWLAVNV1", "")[n % 3],
        "account_id": "" if n % 3 == 2 else f"0011{n:09d}", "programme": "luong_huu",
        "end_to_end_id": f"KBNN20261120{n:09d}", "period": "2026-11",
        "arrears": "truy lĩnh tháng 10" if n % 5 == 0 else "",
        "commune": ("Phường Bến Nghé", "Xã Tà Xùa")[n % 2],
        "address": f"{n} Lê Lợi, Quận 1" if n % 4 else ""}
    return Payment(**(fields | changes))  # type: ignore[arg-type]


def write(path: Path, payments: list[Payment]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(COLUMNS)
        writer.writerows([getattr(p, column) for column in COLUMNS] for p in payments)
    return path


def test_a_table_read_in_columns_is_its_rows_in_order(tmp_path: Path) -> None:
    rows = [payment(n) for n in range(50)]
    table = read_payment_table(write(tmp_path / "t.csv", rows))
    assert isinstance(table, PaymentTable) and len(table) == 50
    assert list(table) == rows and table == rows
    assert (table[0], table[-1], table[10:13]) == (rows[0], rows[-1], rows[10:13])
    with pytest.raises(IndexError):
        table[50]
    assert table != rows[::-1] and table != rows[:-1]


def test_the_refused_repeats_are_refused_and_the_rest_kept_in_order(tmp_path: Path) -> None:
    rows = [payment(n) for n in range(8)]
    rows[5] = payment(5, citizen_id=rows[1].citizen_id, arrears="",  # paid twice, no why
                      end_to_end_id="KB-OWN-5")
    rows[6] = payment(6, end_to_end_id=rows[2].end_to_end_id)  # an id given twice
    checked = check_payment_table(write(tmp_path / "t.csv", rows))
    problems = dict(checked.problems)
    assert sorted(problems) == [3, 7, 8]  # the header is line 1
    assert "paid 2 times" in problems[3] and "(lines 3, 7)" in problems[7]
    assert f"end_to_end_id {rows[2].end_to_end_id} appears twice (line 4)" == problems[8]
    assert checked.payments == [rows[n] for n in (0, 2, 3, 4, 7)]
    assert checked.payments.row_of(rows[7].end_to_end_id) == 4


@given(st.lists(st.text(max_size=12), min_size=1, max_size=5))
def test_any_text_comes_back_as_it_went_in(fields: list[str]) -> None:
    texts = Texts()
    encodable = [f.encode("utf-8", "replace").decode() for f in fields]  # no lone surrogates
    texts.append(*encodable)
    texts.append("ÿ\xff\x1f")  # U+00FF and friends: never the separator byte
    assert texts.fields(0) == encodable and texts.text(1) == "ÿ\xff\x1f"


def test_ids_are_found_by_row_and_repeats_named_by_their_first_row() -> None:
    again = payment(2, end_to_end_id=payment(0).end_to_end_id)
    table = PaymentTable.of([payment(0), payment(1), again])
    assert PaymentTable.of(table) is table
    assert table.row_of(payment(1).end_to_end_id) == 1 and table.row_of("KB-STRANGER") is None
    assert table.repeated_ids() == {0: [2]}
    assert table.end_to_end_id(2) == payment(0).end_to_end_id
    assert table.take([2, 0]) == [table[2], table[0]]


class SameHash:
    """Keys that all share one hash: only equality tells them apart."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __hash__(self) -> int:
        return 7

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SameHash) and other.name == self.name


def test_keys_that_only_share_a_hash_are_not_taken_for_each_other() -> None:
    keys = [SameHash(name) for name in ("a", "b", "a", "c")]
    index = RowIndex(keys.__getitem__, len(keys))
    assert [index.add(row) for row in range(4)] == [None, None, 0, None]
    assert index.find(SameHash("c")) == 3 and index.find(SameHash("d")) is None
    smallest = RowIndex(str, 0)  # 8 slots, at most half full: sized once, never grown
    assert [smallest.add(row) for row in range(4)] == [None] * 4
    with pytest.raises(OverflowError):
        smallest.add(4)
