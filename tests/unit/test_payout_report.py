"""A new user's findings on a payout's report.html: the run was named only by an id and a
SHA-256, banks only by BIC, "stopped" said "verification said no" while the population
register's stops (MD07, BE06, C601, C602) were among them, and a clerk read English only."""

from __future__ import annotations

from pathlib import Path

from banks.payout_report import write_report
from banks.payout_trace import COUNTS

SUMMARY = {
    "counts": dict.fromkeys(COUNTS, 0) | {"rows": 3, "stopped": 2, "paid": 1, "sent": 1},
    "amounts_vnd": {name: 0 for name in COUNTS if name not in ("rows", "refused", "resent")},
    "by_reason": [{"status": "stopped", "reason_code": "C601", "reason_text": "another name",
                   "count": 1, "amount_vnd": 500_000}],
    "by_bank": {"BFTVVNVX": {"paid": 1, "paid_vnd": 100}, "ZZZZVNVX": {"stopped": 1}},
    "by_programme": {"luong_huu": {"paid": 1}},
    "settled_vnd": 100, "returned_vnd": 0, "table": "bang-chi-thang-11.csv",
    "written_at": "2026-12-07T09:30:00+07:00", "treasury": "Kho bạc Nhà nước — TRSYVNV1",
    "table_sha256": "ab" * 32, "run_id": "0123456789abcdef", "register": "/r/TRSYVNV1.sqlite",
    "reconciliation": [],
}


def test_the_report_names_the_table_the_date_the_banks_and_what_stopped_means(
        tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    write_report(path, SUMMARY)
    page = path.read_text(encoding="utf-8")
    assert "<title>Payout report: bang-chi-thang-11.csv, 2026-12-07</title>" in page
    assert "Kho bạc Nhà nước — TRSYVNV1" in page
    assert "2026-12-07 09:30:00 (giờ Việt Nam, UTC+7)" in page
    assert "Vietcombank (BFTVVNVX)" in page and "<td>ZZZZVNVX</td>" in page
    stopped = page.split("<td>stopped ")[1].split("</tr>")[0]
    assert all(code in stopped for code in ("MD07", "BE06", "C601", "C602", "acmt.024"))
    assert "Số liệu" in page and "dừng trước khi chuyển" in page and "Theo ngân hàng" in page


def test_refused_rows_show_in_by_bank_and_by_programme(tmp_path: Path) -> None:
    """A new user's finding 6: the refused column of "By bank" and "By programme" was 0."""
    path = tmp_path / "report.html"
    write_report(path, SUMMARY | {
        "by_bank": {"(none)": {"refused": 4}},
        "by_programme": {"nguoi_co_cong": {"refused": 4}}})
    page = path.read_text(encoding="utf-8")
    by_bank = page.split("Theo ngân hàng")[1].split("</table>")[0]
    by_programme = page.split("Theo chương trình")[1].split("</table>")[0]
    for table in (by_bank, by_programme):
        refused = table.split("</tr>")[1].split("<td class='n'>")[-1]  # the last column
        assert refused.startswith("4<br>"), refused
    assert "Trợ cấp người có công" in by_programme and "(none)" in by_bank


def test_the_report_names_the_ignored_columns(tmp_path: Path) -> None:
    """A new user's finding 13: the terminal and summary.json named the columns the table's
    check ignored, the report did not (the docs say it does)."""
    path = tmp_path / "report.html"
    write_report(path, SUMMARY | {"ignored_columns": ["so_tai_khoan", "<ghi chú>"]})
    page = path.read_text(encoding="utf-8")
    assert "<code>so_tai_khoan</code>, <code>&lt;ghi chú&gt;</code>" in page
    write_report(path, SUMMARY | {"ignored_columns": []})
    assert "ignored" not in path.read_text(encoding="utf-8")


def test_issue_newuser3_finding7_every_stop_code_of_the_run_is_in_the_definition(
        tmp_path: Path) -> None:
    """A row stopped RC01 (the switch's answer for a bank it does not admit) was not among
    the causes the report's definition of 'stopped' named: the definition now names every
    code this run stopped rows with, and its meaning."""
    path = tmp_path / "report.html"
    write_report(path, SUMMARY | {"by_reason": [
        {"status": "stopped", "reason_code": "RC01", "count": 4, "amount_vnd": 4_000,
         "reason_text": "unknown creditor agent BIC"},
        {"status": "stopped", "reason_code": "BE23", "count": 1, "amount_vnd": 1_000,
         "reason_text": "no payout account linked to the citizen id (NIDN)"}]})
    stopped = path.read_text(encoding="utf-8").split("<td>stopped ")[1].split("</tr>")[0]
    assert ("This run: RC01 unknown creditor agent BIC (4 rows); BE23 no payout account "
            "linked to the citizen id (NIDN) (1 row)") in stopped
