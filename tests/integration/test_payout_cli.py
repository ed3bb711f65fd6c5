"""`switchlab payout` against real servers on 127.0.0.1: in its embedded lab, where a folder
holds the run of one table, and against a switch that is already running."""

from __future__ import annotations

import csv
import json
import sqlite3
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook

from banks.behaviour import Behaviour
from banks.population import Beneficiary, Population
from banks.reconcile import Balance, reconcile
from banks.registry import SWITCH_BIC, TREASURY_BIC
from banks.treasury import TreasurySettings
from lab.world import World, WorldSettings
from protocol.keys import SwitchKeys
from switchlab.cli import main
from switchlab.payout import PayoutSettings, RemoteSwitch, pay_table, switch_totals_of

BANK = "BFTVVNVX"


def test_payout_refuses_another_table_in_a_finished_runs_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("citizen_id,full_name,amount_vnd,programme\n001190012345,A,1,p\n",
                     encoding="utf-8")
    second.write_text("citizen_id,full_name,amount_vnd,programme\n001190012345,A,2,p\n",
                      encoding="utf-8")
    out = str(tmp_path / "out")
    assert main(["payout", str(first), "--output", out, "--no-progress"]) == 0
    assert "Cash list for the post office: 1 beneficiary " in capsys.readouterr().out
    assert main(["payout", str(second), "--output", out, "--no-progress"]) == 2
    assert "holds the run of another table" in capsys.readouterr().err


async def test_payout_against_a_running_switch_with_the_treasurys_key(tmp_path: Path) -> None:
    """--switch: the treasury pays through a switch it does not start, listening where the
    switch pushes its reports, and reconciles with the switch's books over the admin API:
    its own transfers' (issue #24), so that a second table paid through the same running
    switch reconciles too, while a real difference in the switch's books is still found."""
    holder = Beneficiary(citizen_id="001190012345", full_name="Nguyễn Thị Rà",
                         programme="luong_huu", amount_vnd=1, participant_bic=BANK,
                         account_id="0011004455667", ledger_name="Nguyễn Thị Rà",
                         end_to_end_id="unused")
    world = World(WorldSettings(tmp_path / "lab", {BANK: Behaviour()}, register=True))
    await world.start(Population(seed=0, beneficiaries=[holder]))
    try:
        await world.link_citizens([{"citizen_id": holder.citizen_id, "participant_bic": BANK,
                                    "account_id": "0011004455667"}])
        inbound = world.runners.pop()  # the lab's own treasury steps aside for ours
        port = inbound.addresses[0][1]
        await inbound.cleanup()
        remote = RemoteSwitch(
            url=world.switch_url, bic=TREASURY_BIC,
            keys=SwitchKeys(**world.keys.handed[TREASURY_BIC]), switch_bic=SWITCH_BIC,
            inbound_host="127.0.0.1", inbound_port=port, admin_token=world.admin_token)
        tables = {"first": "citizen_id,full_name,amount_vnd,programme,creditor_bic,account_id\n"
                  f"001190012345,Nguyễn Thị Rà,1170000,luong_huu,{BANK},0011004455667\n"
                  "001190012345,NGUYEN THI RA,500000,tro_cap_xa_hoi,,\n"
                  "079090054321,Trần Văn Đức,500000,tro_cap_xa_hoi,,\n",
                  "second": "citizen_id,full_name,amount_vnd,programme,creditor_bic,account_id\n"
                  f"001190012345,Nguyễn Thị Rà,2340000,tro_cap_nguoi_cao_tuoi,{BANK},"
                  "0011004455667\n"}
        reports = {}
        for name, text in tables.items():
            table = tmp_path / f"{name}.csv"
            table.write_text(text, encoding="utf-8")
            reports[name] = await pay_table(PayoutSettings(
                table=table, output=tmp_path / name, progress=False, remote=remote,
                treasury=TreasurySettings(verify=True, bulk_size=2)))
        # The switch's books now differ from the second run's by one dong.
        with sqlite3.connect(world.journal_path) as journal:
            journal.execute("UPDATE transfers SET amount_vnd = amount_vnd + 1"
                            " WHERE amount_vnd = 2340000")
        paid = reports["second"].result
        ids = [outcome.payment.end_to_end_id for outcome in paid.outcomes]
        tampered = reconcile(paid, await switch_totals_of(remote, ids))
    finally:
        await world.stop()
    first, second = reports["first"], reports["second"]
    assert first.exit_code == 0 and first.mismatches == []
    assert first.reconciled_with == "the switch's settlement"
    assert dict(first.result.by_status) == {"paid": 2, "stopped": 1}
    assert [row["reason_code"] for row in first.result.cash_list_rows()] == ["BE23"]
    assert second.exit_code == 0 and second.mismatches == []
    assert dict(second.result.by_status) == {"paid": 1}
    assert [(m.check, m.difference) for m in tampered] == [
        (Balance.TREASURY_VS_SWITCH_SETTLED, -1)]


CLERK = Path(__file__).resolve().parents[1] / "data" / "clerk"


def _outcomes(out: Path) -> list[tuple[str, str, str, str, str]]:
    """results.csv's rows: (citizen id, amount, creditor BIC, status, reason code), sorted."""
    with (out / "results.csv").open(encoding="utf-8-sig") as file:
        return sorted((r["citizen_id"], r["amount_vnd"], r["creditor_bic"], r["status"],
                       r["reason_code"]) for r in csv.DictReader(file))


def _citizens_of(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig") as file:
        return sorted(row["citizen_id"] for row in csv.DictReader(file))


def test_issue_27_the_clerks_table_shows_every_outcome_in_the_embedded_lab(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The world as files: a bank's accounts (open, closed, blocked, deceased, another
    holder's name), the population register (a death since the list, another name, another
    birth date, an unknown CCCD) and citizens' own link requests."""
    out = tmp_path / "out"
    code = main(["payout", str(CLERK / "table.csv"), "--output", str(out), "--no-progress",
                 "--accounts", str(CLERK), "--register", str(CLERK / "register.csv"),
                 "--links", str(CLERK / "links.csv")])
    said = capsys.readouterr().out
    assert code == 0, said
    assert _outcomes(out) == sorted([
        ("001190012345", "2340000", BANK, "paid", ""),
        ("079090054321", "2340000", BANK, "stopped", "AC04"),  # closed
        ("036190011111", "500000", BANK, "stopped", "AC06"),  # blocked
        ("038090022222", "2055000", BANK, "stopped", "MD07"),  # dead: the bank knows
        ("040090033333", "500000", BANK, "stopped", "BE01"),  # the bank's holder is Nam
        ("001185067347", "500000", BANK, "stopped", "MD07"),  # dead: the register knows
        ("079080012345", "2340000", BANK, "stopped", "C601"),  # Tám, registered as Tâm
        ("036190011111", "500000", "", "stopped", "C602"),  # born 1990, not 1991
        ("001190099999", "500000", "", "stopped", "BE06"),  # unknown to the register
        ("001190012345", "500000", BANK, "paid", ""),  # by CCCD, through her own link
        ("079090054321", "500000", "", "stopped", "BE23"),  # his account closed: no link
    ])
    # The dead are on neither list that pays; what the register found goes back to the
    # ministry with why; the post office gets the rest.
    assert _citizens_of(out / "cash_list.csv") == sorted(
        ["079090054321", "036190011111", "040090033333", "079090054321"])
    assert _citizens_of(out / "deceased.csv") == ["001185067347", "038090022222"]
    assert _citizens_of(out / "register_findings.csv") == [
        "001185067347", "001190099999", "036190011111", "079080012345"]
    assert "Population register: 4 rows stopped before paying" in said
    assert "Lab: 1 of 2 citizens' link requests refused" in said


@pytest.mark.parametrize("order", [1, -1])
def test_issue_27_a_name_mismatch_does_not_depend_on_row_order(
        tmp_path: Path, order: int) -> None:
    """Two rows naming one account for different people: the lab opens it for neither,
    whichever comes last (it became the holder, and the other was stopped BE01)."""
    rows = ["001190012345,Nguyễn Thị Rà,1170000,luong_huu,BFTVVNVX,0011004455667",
            "079090054321,Trần Văn Đức,1170000,tro_cap_xa_hoi,BFTVVNVX,0011004455667"]
    table = tmp_path / "t.csv"
    table.write_text("citizen_id,full_name,amount_vnd,programme,creditor_bic,account_id\n"
                     + "\n".join(rows[::order]) + "\n", encoding="utf-8")
    assert main(["payout", str(table), "--output", str(tmp_path / "out"),
                 "--no-progress"]) == 0
    assert [row[3:] for row in _outcomes(tmp_path / "out")] == [("stopped", "AC01")] * 2


def test_readmes_two_payout_examples_do_not_share_a_register(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A new user ran README's example table, then the clerk's, in one folder: both kept
    `payout-register/` there, so the clerk's run said a row was "paid or listed by another
    run" for a different person. README's clerk example pays into a folder of its own, and
    the terminal names the register (one per treasury per folder of runs)."""
    monkeypatch.chdir(tmp_path)
    example = Path(__file__).parents[2] / "docs" / "examples" / "payment-table.csv"
    assert main(["payout", str(example), "--no-progress"]) == 0
    first = capsys.readouterr().out
    assert f"Payout register (one per treasury per folder of runs; --payout-register for " \
           f"another): {tmp_path / 'payout-register' / (TREASURY_BIC + '.sqlite')}" in first
    assert main(["payout", str(CLERK / "table.csv"), "--accounts", str(CLERK), "--register",
                 str(CLERK / "register.csv"), "--links", str(CLERK / "links.csv"),
                 "--output", "clerk/payout-table", "--no-progress"]) == 0
    second = capsys.readouterr().out
    summary = json.loads((tmp_path / "clerk" / "payout-table" / "summary.json").read_text())
    assert summary["counts"]["earlier"] == 0 and "Register: " not in second
    assert str(tmp_path / "clerk" / "payout-register" / f"{TREASURY_BIC}.sqlite") in second


def test_issue_newuser3_finding5_documents_are_dated_in_vietnam_time_whatever_the_machine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a UTC machine the cash list's 'Ngày lập' and the report's time followed the
    machine's zone: a run before 07:00 in Hà Nội was dated the day before. Here the machine
    is in Los Angeles (UTC-8); the documents are in Vietnam's time and say so."""
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        example = Path(__file__).parents[2] / "docs" / "examples" / "payment-table.csv"
        assert main(["payout", str(example), "--output", str(tmp_path / "out"),
                     "--no-progress"]) == 0
    finally:
        monkeypatch.undo()
        time.tzset()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    written = datetime.fromisoformat(summary["written_at"])
    assert written.utcoffset() == timedelta(hours=7)
    heading = load_workbook(tmp_path / "out" / "cash_list.xlsx").active["A2"].value
    assert heading.endswith(f"Ngày lập: {written:%d/%m/%Y} (giờ Việt Nam)"), heading
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert f"written {written:%Y-%m-%d %H:%M:%S} (giờ Việt Nam, UTC+7)" in page
