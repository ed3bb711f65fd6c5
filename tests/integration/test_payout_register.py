"""Issue #25, end to end in the embedded lab: a corrected table run into a new folder counted
the earlier run's payments again and repeated its cash list, and a citizen on an earlier cash
list was then paid by account with no warning. Now the payout register beside the runs says
what was paid or listed: a corrected table pays only the rest, its totals are its own, nobody
is on two cash lists, and a cash entry must be cancelled (with a reason) before the same
payment goes to an account. Results join back to the table line by line, and the counts are
the same in the terminal, summary.json and the report."""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from banks.payment_table import Payment
from banks.payout_register import (
    SCHEMA,
    EntryState,
    PayoutRegister,
    RegisterError,
    register_key,
)
from switchlab.cli import main

HEADER = "citizen_id;full_name;amount_vnd;programme;period;creditor_bic;account_id;commune\n"
PAID_BY_ACCOUNT = "001190012345;Nguyễn Thị Rà;2340000;luong_huu;2026-11;BFTVVNVX;0011004455667;Phường Láng\n"  # noqa: E501
NO_ACCOUNT = "040160033333;Hoàng Thị Lan;750000;tro_cap_xa_hoi;2026-11;;;Xã Nghi Lộc\n"
BY_CITIZEN_ID = "001190012345;NGUYEN THI RA;500000;tro_cap_xa_hoi;2026-11;;;Phường Láng\n"
NOW_WITH_ACCOUNT = "040160033333;Hoàng Thị Lan;750000;tro_cap_xa_hoi;2026-11;ICBVVNVX;108001234567;Xã Nghi Lộc\n"  # noqa: E501
NEW_ROW = "079090054321;Trần Văn Đức;2808000;luong_huu;2026-11;ICBVVNVX;108009999999;Phường Bến Nghé\n"  # noqa: E501


def pay(table: Path, output: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["payout", str(table), "--output", str(output), "--no-progress"])
    return code, capsys.readouterr().out


def results(output: Path) -> list[dict[str, str]]:
    with (output / "results.csv").open(encoding="utf-8-sig", newline="") as file:
        return list(csv.DictReader(file, delimiter=";"))


def summary(output: Path) -> dict[str, Any]:
    return json.loads((output / "summary.json").read_text(encoding="utf-8"))


def shown_counts(terminal: str) -> dict[str, int]:
    """The counts as the terminal prints them, by their summary.json names."""
    labels = {"rows in the table": "rows", "refused by the check": "refused",
              "paid or listed by another run": "earlier", "stopped before sending": "stopped",
              "sent": "sent", "of which resent under a new id": "resent", "paid": "paid",
              "returned by the bank": "returned", "rejected": "rejected",
              "unresolved": "unresolved", "on the cash list": "cash",
              "on the deceased list": "deceased"}
    found = {}
    for line in terminal.splitlines():
        match = re.fullmatch(r"\s+(.+?)\s{2,}([\d,]+)(\s+[\d,]+ VND)?", line)
        if match and match.group(1) in labels:
            found[labels[match.group(1)]] = int(match.group(2).replace(",", ""))
    return found


def test_a_corrected_table_pays_the_rest_and_cash_must_be_cancelled_before_an_account(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = tmp_path / "bảng.csv"
    first.write_text(HEADER + PAID_BY_ACCOUNT + NO_ACCOUNT + BY_CITIZEN_ID, encoding="utf-8")
    code, terminal = pay(first, tmp_path / "run1", capsys)
    assert code == 0, terminal
    traced = results(tmp_path / "run1")
    assert [(r["line"], r["status"], r["reason_code"]) for r in traced] == [
        ("2", "paid", ""), ("3", "stopped", "BE23"), ("4", "paid", "")]
    # found by citizen id: the bank and account the directory links, not an empty BIC
    assert (traced[2]["paid_by"], traced[2]["creditor_bic"], traced[2]["account_id"]) == (
        "citizen_id", "BFTVVNVX", "0011004455667")
    assert traced[0]["ids_sent"] == traced[0]["end_to_end_id"]
    assert summary(tmp_path / "run1")["counts"] == shown_counts(terminal)
    assert shown_counts(terminal)["cash"] == 1
    code, terminal = pay(first, tmp_path / "run1", capsys)  # the same command again
    assert code == 0 and "Resumed: 3 rows were final already" in terminal  # stopped too
    assert summary(tmp_path / "run1")["counts"]["sent"] == 2

    corrected = tmp_path / "bảng sửa.csv"  # the ministry gives Lan an account, adds Đức
    corrected.write_text(HEADER + PAID_BY_ACCOUNT + NOW_WITH_ACCOUNT + BY_CITIZEN_ID + NEW_ROW,
                         encoding="utf-8")
    code, terminal = pay(corrected, tmp_path / "run2", capsys)
    assert code == 0, terminal
    traced = results(tmp_path / "run2")
    assert [(r["status"], r["reason_code"]) for r in traced] == [
        ("earlier", "paid"), ("earlier", "cash"), ("earlier", "paid"), ("paid", "")]
    assert "cancel that entry first" in traced[1]["reason_text"]
    figures = summary(tmp_path / "run2")
    assert figures["counts"] == shown_counts(terminal)
    assert (figures["counts"]["sent"], figures["counts"]["earlier"]) == (1, 3)
    # A new user's finding 1, for the payout: a reconciliation over some rows says so
    assert ("Reconciled to the dong with the switch's settlement and the banks' ledgers, "
            "over this run's 1 row; 3 rows of other runs are not in it (each run reconciles "
            "its own).") in terminal
    assert figures["amounts_vnd"]["sent"] == figures["settled_vnd"] == 2_808_000  # its own
    assert figures["counts"]["cash"] == 0  # Lan is not on a second cash list
    report = (tmp_path / "run2" / "report.html").read_text(encoding="utf-8")
    assert "2,808,000" in report and ">3<" in report

    register = Path(figures["register"])
    assert register.parent == tmp_path / "payout-register"  # beside the runs
    assert main(["payout-register", "cancel-cash", "--register", str(register),
                 "--citizen-id", "040160033333", "--programme", "tro_cap_xa_hoi",
                 "--period", "2026-11", "--reason", ""]) == 2  # a reason is required
    assert main(["payout-register", "cancel-cash", "--register", str(register),
                 "--citizen-id", "040160033333", "--programme", "TRO_CAP_XA_HOI",
                 "--period", "2026-11", "--reason", "Bưu điện xác nhận chưa chi",
                 "--by", "Trần Văn Kế"]) == 0
    capsys.readouterr()
    # a new user's finding 12: `show` printed [] after the cancellation: the reason "is
    # kept" but nothing showed it, nor who cancelled nor when
    assert main(["payout-register", "show", "--register", str(register),
                 "--citizen-id", "040160033333"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [(e["state"], e["programme"], e["reason"], e["cancelled_by"], e["amount_vnd"])
            for e in shown] == [("cancelled", "tro_cap_xa_hoi", "Bưu điện xác nhận chưa chi",
                                 "Trần Văn Kế", 750_000)]
    assert datetime.fromisoformat(shown[0]["cancelled_at"]).tzinfo is not None
    assert shown[0]["folder"].endswith("run1")
    code, terminal = pay(corrected, tmp_path / "run3", capsys)
    assert code == 0, terminal
    traced = results(tmp_path / "run3")
    # rows paid earlier show the account that paid them, the one found by citizen id too
    assert [(r["status"], r["creditor_bic"], r["account_id"]) for r in traced] == [
        ("earlier", "BFTVVNVX", "0011004455667"), ("paid", "ICBVVNVX", "108001234567"),
        ("earlier", "BFTVVNVX", "0011004455667"), ("earlier", "ICBVVNVX", "108009999999")]
    with sqlite3.connect(register) as db:
        assert db.execute("SELECT reason FROM cancellations").fetchall() == [
            ("Bưu điện xác nhận chưa chi",)]
        assert db.execute("SELECT state, count(*) FROM entries GROUP BY state").fetchall() == [
            ("paid", 4)]


def payment(citizen_id: str, programme: str = "luong_huu") -> Payment:
    return Payment(citizen_id, "Nguyễn Thị Rà", 1_000, "BFTVVNVX", "1", programme, "E")


def test_a_key_claimed_by_an_unfinished_run_is_not_paid_by_another(tmp_path: Path) -> None:
    """A run killed before it settled holds its keys: a corrected table started beside it
    must not pay them under other end-to-end ids; the killed run, resumed, still may."""
    rows = [(2, payment("001190012345")), (3, payment("040160033333"))]
    with PayoutRegister(tmp_path / "r.sqlite") as register:
        assert register.claim("run-a", tmp_path / "a", tmp_path / "t.csv", "sha", rows) == {}
        held = register.claim("run-b", tmp_path / "b", tmp_path / "t2.csv", "sha2",
                              [(5, payment("001190012345")), (6, payment("036145011111"))])
        assert list(held) == [5] and held[5].state == EntryState.CLAIMED
        assert "unfinished run run-a" in held[5].sentence()
        assert register.claim("run-a", tmp_path / "a", tmp_path / "t.csv", "sha", rows) == {}
        register.settle("run-a", [(register_key(rows[0][1]), EntryState.CASH, "BE23", "", "")])
        register.settle("run-b", [(register_key(rows[0][1]), EntryState.PAID, "", "B", "1")])
        held = register.claim("run-c", tmp_path / "c", tmp_path / "t3.csv", "sha3",
                              [(2, payment("001190012345")),
                               (3, payment("001190012345", "tro_cap_xa_hoi"))])
        assert list(held) == [2] and held[2].state == EntryState.CASH


def test_a_file_that_is_not_a_register_is_refused_and_left_untouched(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A --payout-register pointing at a run's run.sqlite, or at any other file, must not
    gain the register's tables, nor end in a traceback."""
    other = tmp_path / "run.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE finals (end_to_end_id TEXT)")
    garbage = tmp_path / "notes.sqlite"
    garbage.write_text("not a database\n", encoding="utf-8")
    for path in (other, garbage):
        with pytest.raises(RegisterError, match="is not a payout register"):
            PayoutRegister(path)
    with sqlite3.connect(other) as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == [("finals",)]
    table = tmp_path / "t.csv"
    table.write_text(HEADER + PAID_BY_ACCOUNT, encoding="utf-8")
    assert main(["payout", str(table), "--output", str(tmp_path / "o"), "--no-progress",
                 "--payout-register", str(garbage)]) == 2
    assert "is not a payout register" in capsys.readouterr().err
    assert main(["payout-register", "show", "--register", str(other),
                 "--citizen-id", "001190012345"]) == 2


def test_a_register_from_before_cancelled_by_is_opened_and_shows_its_cancellations(
        tmp_path: Path) -> None:
    """Registers written before cancellations said who cancelled get the column, empty."""
    path = tmp_path / "TRSYVNV1.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA.replace(",\n    cancelled_by TEXT NOT NULL DEFAULT ''", ""))
        db.execute("INSERT INTO cancellations VALUES ('001190012345', 'luong_huu', '', '', "
                   "'r1', 1000, 'old reason', '2026-11-30T01:00:00+00:00')")
    with PayoutRegister(path) as register:
        assert [(c["reason"], c["cancelled_by"], c["folder"])
                for c in register.cancellations("001190012345")] == [("old reason", "", None)]
