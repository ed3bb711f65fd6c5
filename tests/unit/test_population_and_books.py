"""The generated population and the books: shares, seeds, table errors by line, and
reconciliation to the dong."""

from __future__ import annotations

from pathlib import Path

import pytest

from banks.payment_table import PaymentTableError, read_payment_table
from banks.population import Mix, generate_population
from banks.reconcile import SwitchTotals, reconcile


def test_same_seed_same_population_other_seed_differs() -> None:
    first, again, other = (generate_population(500, seed) for seed in (7, 7, 8))
    assert first.payment_rows() == again.payment_rows()
    assert first.payment_rows() != other.payment_rows()


def test_population_shares_are_respected() -> None:
    mix = Mix(no_account=0.1, closed=0.1, blocked=0.0, name_mismatch=0.0, deceased=0.0,
              dies_after_payment=0.0, participants={"BFTVVNVX": 0.5, "EWLAVNV1": 0.5})
    people = generate_population(4_000, 1, mix).beneficiaries
    without = sum(p.participant_bic is None for p in people)
    closed = sum(p.status == "closed" for p in people)
    assert 320 < without < 480 and 280 < closed < 440
    assert {p.participant_bic for p in people} == {None, "BFTVVNVX", "EWLAVNV1"}
    assert all(len(p.citizen_id) == 12 and p.citizen_id.isdigit() for p in people)
    assert len({p.citizen_id for p in people}) == len(people)


def test_payment_table_errors_name_the_line(tmp_path: Path) -> None:
    table = tmp_path / "table.csv"
    generate_population(3, 1).write_payment_table(table)
    lines = table.read_text(encoding="utf-8").splitlines()
    fields = lines[2].split(",")
    fields[2] = "1.5"
    lines[2] = ",".join(fields)
    lines.append(lines[1])
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(PaymentTableError) as error:
        read_payment_table(table)
    message = str(error.value)
    assert "line 3: amount_vnd '1.5'" in message and "paid 2 times in programme" in message


def test_reconcile_finds_a_one_dong_difference() -> None:
    class Result:
        settled_vnd, returned_vnd = 1_000_000, 0  # what the treasury was debited, and got back

    stats = {"by_state": {"SETTLED": {"amount_vnd": 1_000_000}}, "returns": {"amount_vnd": 0}}
    banks = [{"bic": "BFTVVNVX", "credited_vnd": 999_999, "returned_vnd": 0,
              "credited_before_confirmation": 0}]
    problems = reconcile(Result(), SwitchTotals.from_stats(stats), banks)  # type: ignore[arg-type]
    assert problems == ["switch settlements vs bank credits: 1,000,000 VND ≠ 999,999 VND "
                        "(off by +1)"]
