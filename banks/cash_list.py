"""The post office's files: who it pays in cash, grouped as its offices are (province, district,
commune), as a spreadsheet (XLSX), a page per commune to print (HTML), and a CSV in the
table's own delimiter; and the ministry's list of the deceased in the same shapes.

The spreadsheet is written with openpyxl (a real Office Open XML file, not a CSV renamed):
citizen ids are text cells, so 040160012309 keeps its zero; amounts are numbers with a
thousands format; each commune's rows are numbered from 1, with a total per programme and
for the commune, and a column for the recipient's signature.
"""

from __future__ import annotations

import csv
import html
import itertools
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.worksheet.pagebreak import Break
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.worksheet.worksheet import Worksheet

from banks.payment_table import EXCEL_ENCODING, excel_cell
from banks.payout_trace import reason_text

# What the ministry's programme codes are called on paper. A code not here is shown as is.
PROGRAMME_NAMES_VI = {
    "luong_huu": "Lương hưu",
    "tro_cap_xa_hoi": "Trợ cấp xã hội",
    "nguoi_co_cong": "Trợ cấp người có công",
    "bhxh_mot_lan": "Bảo hiểm xã hội một lần",
    "tro_cap_that_nghiep": "Trợ cấp thất nghiệp",
}
UNKNOWN_PLACE = "(chưa ghi)"
LIST_COLUMNS = ("line", "province", "district", "commune", "citizen_id", "full_name", "address",
                "programme", "programme_vi", "period", "arrears", "amount_vnd", "status",
                "reason_code", "reason_vi", "reason_en", "end_to_end_id")
# The printed sheet, in Vietnamese: (heading, field of a list row, column width in characters)
SHEET_COLUMNS = (("STT", "number", 5), ("Họ và tên", "full_name", 26),
                 ("Số CCCD", "citizen_id", 14), ("Địa chỉ", "address", 26),
                 ("Chương trình", "programme_vi", 20), ("Kỳ", "period", 9),
                 ("Truy lĩnh", "arrears", 18), ("Số tiền (đồng)", "amount_vnd", 14),
                 ("Lý do chi tiền mặt", "reason_vi", 34), ("Dòng bảng", "line", 8),
                 ("Ký nhận", "signature", 18))
AMOUNT_FORMAT = "#,##0"
ROW_HEIGHT_PT = 30
MAX_SHEET_TITLE_CHARS = 31  # Excel's limit for a sheet's name


def programme_vi(code: str) -> str:
    return PROGRAMME_NAMES_VI.get(code.casefold(), code)


def list_row(traced: Mapping[str, Any]) -> dict[str, Any]:
    """A traced row (banks/payout_trace.py) as a row of a list for people: what is owed in
    cash (for a return, the amount that came back), and why, in both languages."""
    code = traced["reason_code"] or ""
    return {column: traced.get(column, "") for column in LIST_COLUMNS} | {
        "amount_vnd": traced["returned_vnd"] or traced["amount_vnd"],
        "programme_vi": programme_vi(traced["programme"]),
        "reason_vi": reason_text(code, vietnamese=True) if code else "",
        "reason_en": reason_text(code) if code else ""}


def place(row: Mapping[str, Any]) -> tuple[str, str, str]:
    """(province, district, commune), a blank shown as not given."""
    return (row["province"] or UNKNOWN_PLACE, row["district"] or UNKNOWN_PLACE,
            row["commune"] or UNKNOWN_PLACE)


def vietnamese_order(text: str) -> tuple[str, str]:
    """A sort key for Vietnamese words: letters before their marks (Đ with D, not after Z),
    then the marks, as a dictionary orders them."""
    plain = "".join(c for c in unicodedata.normalize("NFD", text.casefold())
                    if not unicodedata.combining(c)).replace("đ", "d")
    return plain, text


def name_order(full_name: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """By given name (the last word), then the whole name: how Vietnamese lists are read."""
    return vietnamese_order(full_name.split()[-1] if full_name.split() else ""), (
        vietnamese_order(full_name))


def in_order(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """By province, district and commune, then programme, given name and table line: the
    order a commune's office pays in."""
    return sorted(rows, key=lambda r: (*map(vietnamese_order, place(r)),
                                       vietnamese_order(r["programme_vi"]),
                                       name_order(r["full_name"]), r["line"]))


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]], delimiter: str) -> None:
    """The list as CSV in the table's delimiter, for Excel (BOM; formulas shown as text)."""
    with path.open("w", newline="", encoding=EXCEL_ENCODING) as file:
        writer = csv.DictWriter(file, fieldnames=LIST_COLUMNS, delimiter=delimiter,
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows({column: excel_cell(value) for column, value in row.items()}
                         for row in rows)


def communes(rows: Sequence[Mapping[str, Any]]
             ) -> Iterable[tuple[tuple[str, str, str], list[Mapping[str, Any]]]]:
    """Rows `in_order`, by commune."""
    for where, group in itertools.groupby(rows, key=place):
        yield where, list(group)


def totals(rows: Iterable[Mapping[str, Any]]) -> list[tuple[str, int, int]]:
    """(programme in Vietnamese, people, VND) per programme, in name order."""
    people: Counter[str] = Counter()
    amounts: Counter[str] = Counter()
    for row in rows:
        people[row["programme_vi"]] += 1
        amounts[row["programme_vi"]] += row["amount_vnd"]
    return [(name, people[name], amounts[name]) for name in sorted(people)]


def write_xlsx(path: Path, rows: Sequence[Mapping[str, Any]], title: str) -> None:
    """The list as a workbook: one sheet, grouped by commune (rows `in_order`), each with its
    heading, numbered rows, a total per programme and one for the commune, and a page break
    after it; the list's totals at the end. A4 landscape, one page wide. Written streaming
    (openpyxl's write-only mode): a cash list may have a million rows."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title[:MAX_SHEET_TITLE_CHARS])
    for letter, (_, _, width) in zip(COLUMN_LETTERS, SHEET_COLUMNS, strict=False):
        sheet.column_dimensions[letter].width = width
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = "9"  # A4, in the ECMA-376 numbering
    sheet.page_setup.fitToWidth, sheet.page_setup.fitToHeight = 1, 0
    sheet.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    sheet.oddFooter.center.text = "Trang &P / &N"
    # every row tall enough to sign in and for a reason on two lines (a height a row would
    # cost an object a row, and a list may have a million)
    sheet.sheet_format.defaultRowHeight, sheet.sheet_format.customHeight = ROW_HEIGHT_PT, True
    writer = _Rows(sheet)
    writer.heading(title, Font(bold=True, size=14))
    for (province, district, commune), group in communes(rows):
        writer.heading(f"{commune} — {district} — {province}", Font(bold=True, size=12))
        writer.add([_cell(sheet, heading, BOLD, border=True) for heading, _, _ in SHEET_COLUMNS])
        for number, row in enumerate(group, 1):
            writer.add([_value(sheet, field, row, number) for _, field, _ in SHEET_COLUMNS])
        for name, people, amount_vnd in totals(group):
            writer.add(_total_row(sheet, f"Cộng {name}: {people:,} người", amount_vnd))
        writer.add(_total_row(sheet, f"Cộng {commune}: {len(group):,} người",
                              sum(r["amount_vnd"] for r in group), BOLD))
        writer.add([None, _cell(sheet, "Người lập danh sách"), None, None, None, None, None,
                    None, _cell(sheet, "Thủ trưởng đơn vị")])
        sheet.row_breaks.append(Break(id=writer.row))
    writer.heading("Tổng hợp", Font(bold=True, size=12))
    for name, people, amount_vnd in totals(rows):
        writer.add(_total_row(sheet, f"Tổng {name}: {people:,} người", amount_vnd, BOLD))
    writer.add(_total_row(sheet, f"Tổng cộng: {len(rows):,} người",
                          sum(r["amount_vnd"] for r in rows), BOLD))
    book.save(path)


COLUMN_LETTERS = "ABCDEFGHIJKLMNOP"
AMOUNT_COLUMN = next(i for i, (_, field, _) in enumerate(SHEET_COLUMNS) if field == "amount_vnd")
BOLD = Font(bold=True)
THIN = Side(style="thin")
BOX = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
WRAPPED = Alignment(wrap_text=True, vertical="top")


class _Rows:
    """A write-only sheet's rows, counted (for page breaks and merged headings)."""

    def __init__(self, sheet: Worksheet) -> None:
        self.sheet, self.row = sheet, 0

    def add(self, cells: list[WriteOnlyCell | None]) -> None:
        self.sheet.append(cells)
        self.row += 1

    def heading(self, text: str, font: Font) -> None:
        """A line across the table's width, after a blank one."""
        if self.row:
            self.add([])
        self.add([_cell(self.sheet, text, font)])
        self.sheet.merged_cells.ranges.add(
            f"A{self.row}:{COLUMN_LETTERS[len(SHEET_COLUMNS) - 1]}{self.row}")


def _cell(sheet: Worksheet, value: object, font: Font | None = None,
          number_format: str | None = None, border: bool = False) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=value)
    if font is not None:
        cell.font = font
    if number_format is not None:
        cell.number_format = number_format
    if border:
        cell.border = BOX
        cell.alignment = WRAPPED
    return cell


def _value(sheet: Worksheet, field: str, row: Mapping[str, Any], number: int) -> WriteOnlyCell:
    if field == "number":
        return _cell(sheet, number, border=True)
    if field == "signature":
        return _cell(sheet, "", border=True)
    if field == "amount_vnd":
        return _cell(sheet, row["amount_vnd"], number_format=AMOUNT_FORMAT, border=True)
    cell = _cell(sheet, row[field] if isinstance(row[field], int) else str(row[field]),
                 border=True)
    if field == "citizen_id":  # text, so that a leading zero stays (and Excel says so)
        cell.number_format = "@"
    if isinstance(cell.value, str) and cell.value.startswith(("=", "+", "-", "@")):
        cell.data_type = "s"  # a name like =HYPERLINK(…) stays text, never a formula
    return cell


def _total_row(sheet: Worksheet, label: str, amount_vnd: int, font: Font | None = None
               ) -> list[WriteOnlyCell | None]:
    cells: list[WriteOnlyCell | None] = [None] * len(SHEET_COLUMNS)
    cells[1] = _cell(sheet, label, font)
    cells[AMOUNT_COLUMN] = _cell(sheet, amount_vnd, font, AMOUNT_FORMAT)
    return cells


PAGE_STYLE = """
body { font-family: "Times New Roman", serif; font-size: 11pt; margin: 1cm; }
section { break-after: page; }
section:last-of-type { break-after: auto; }
h1 { font-size: 14pt; text-align: center; margin: 0 0 4pt; }
p.where { text-align: center; margin: 0 0 10pt; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #000; padding: 3pt 4pt; vertical-align: top; }
th { background: #eee; }
td.n { text-align: right; white-space: nowrap; }
td.sign { width: 3.5cm; height: 1.1cm; }
tr.total td { font-weight: bold; }
footer { margin-top: 18pt; display: flex; justify-content: space-around; }
@page { size: A4 landscape; margin: 1cm; }
"""
HTML_HEADINGS = ("STT", "Họ và tên", "Số CCCD", "Địa chỉ", "Chương trình", "Kỳ", "Truy lĩnh",
                 "Số tiền (đồng)", "Lý do", "Dòng", "Ký nhận")


def write_html(path: Path, rows: Sequence[Mapping[str, Any]], title: str) -> None:
    """A page per commune (rows `in_order`) for the browser's print: numbered rows, totals
    per programme and for the commune, a box for each recipient's signature, and lines for
    the clerk's and the head's signatures. Self-contained: no script, nothing fetched."""
    e = html.escape
    parts = ["<!doctype html><html lang='vi'><head><meta charset='utf-8'>",
             f"<title>{e(title)}</title><style>{PAGE_STYLE}</style></head><body>"]
    for (province, district, commune), group in communes(rows):
        parts.append(f"<section><h1>{e(title)}</h1><p class='where'>{e(commune)} — "
                     f"{e(district)} — {e(province)}</p><table><thead><tr>"
                     + "".join(f"<th>{e(h)}</th>" for h in HTML_HEADINGS) + "</tr></thead><tbody>")
        for number, row in enumerate(group, 1):
            cells = (number, row["full_name"], row["citizen_id"], row["address"],
                     row["programme_vi"], row["period"], row["arrears"])
            parts.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in cells)
                         + f"<td class='n'>{row['amount_vnd']:,}</td><td>{e(row['reason_vi'])}"
                         f"</td><td class='n'>{row['line']}</td><td class='sign'></td></tr>")
        for name, people, amount_vnd in totals(group):
            parts.append(_html_total(f"Cộng {name}: {people:,} người", amount_vnd))
        parts.append(_html_total(f"Cộng {commune}: {len(group):,} người",
                                 sum(r["amount_vnd"] for r in group)))
        parts.append("</tbody></table><footer><span>Người lập danh sách</span>"
                     "<span>Thủ trưởng đơn vị</span></footer></section>")
    if not rows:
        parts.append(f"<h1>{e(title)}</h1><p class='where'>Không có ai.</p>")
    parts.append("</body></html>")
    path.write_text("".join(parts), encoding="utf-8")


def _html_total(label: str, amount_vnd: int) -> str:
    return (f"<tr class='total'><td></td><td colspan='6'>{html.escape(label)}</td>"
            f"<td class='n'>{amount_vnd:,}</td><td colspan='3'></td></tr>")


def write_list(folder: Path, stem: str, rows: Iterable[Mapping[str, Any]], title: str,
               delimiter: str) -> dict[str, Path]:
    """A list for people in its three shapes (stem.csv, stem.xlsx, stem.html); their paths."""
    ordered = in_order(rows)
    paths = {f"{stem}.{ext}": folder / f"{stem}.{ext}" for ext in ("csv", "xlsx", "html")}
    write_csv(paths[f"{stem}.csv"], ordered, delimiter)
    write_xlsx(paths[f"{stem}.xlsx"], ordered, title)
    write_html(paths[f"{stem}.html"], ordered, title)
    return paths
