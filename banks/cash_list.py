"""The post office's files: who it pays in cash, grouped as its offices are (province, district,
commune), as a spreadsheet (XLSX), a page per commune to print (HTML), and a CSV in the
table's own delimiter; and the ministry's list of the deceased in the same shapes.

The spreadsheet is written with openpyxl (a real Office Open XML file, not a CSV renamed):
citizen ids are text cells, so 040160012309 keeps its zero; amounts are numbers with one
thousands format (AMOUNT_FORMAT: 750.000 in a Vietnamese locale); each person's row is
tall enough to sign in (ROW_HEIGHT_PT); each commune's rows
are numbered from 1, with a total per programme and for the commune. The cash list has a
column for the recipient's signature; the deceased list has none and says it is not to be
paid (a clerk must never read it as a list to pay).
"""

from __future__ import annotations

import csv
import html
import itertools
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
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


@dataclass(frozen=True)
class ListKind:
    """What a list for people is for, on paper: its title, the line under it saying what to
    do with it, the heading of its reason column, and whether each row is signed for."""

    title: str
    purpose: str
    reason_heading: str
    signed: bool
    sheet: str = ""  # the sheet's tab, when the title's whole words would not say it

    def sheet_title(self) -> str:
        """The XLSX sheet's name: at most MAX_SHEET_TITLE_CHARS (Excel's limit), whole
        words (Excel cut "… đã qua đời" to "… đã qua đờ")."""
        return whole_words(self.sheet or self.title, MAX_SHEET_TITLE_CHARS)

    def columns(self) -> tuple[tuple[str, str, int], ...]:
        """The printed sheet, in Vietnamese: (heading, field of a list row, width in
        characters)."""
        columns = (("STT", "number", 5), ("Họ và tên", "full_name", 26),
                   ("Số CCCD", "citizen_id", 14), ("Địa chỉ", "address", 26),
                   ("Chương trình", "programme_vi", 20), ("Kỳ", "period", 9),
                   ("Truy lĩnh", "arrears", 18), ("Số tiền (đồng)", "amount_vnd", 14),
                   (self.reason_heading, "reason_vi", 34), ("Dòng bảng", "line", 8))
        return (*columns, ("Ký nhận (ký, ghi rõ họ tên)", "signature", 22)) if self.signed \
            else columns


CASH_LIST = ListKind("Danh sách chi trả tiền mặt",
                     "Bưu điện chi trả tiền mặt cho những người có tên dưới đây; người nhận "
                     "ký nhận.", "Lý do chi tiền mặt", signed=True)
DECEASED_LIST = ListKind("Danh sách người hưởng đã qua đời",
                         "KHÔNG CHI TRẢ. Gửi lại Bộ để điều chỉnh danh sách hưởng; không dùng "
                         "để chi tiền.", "Lý do", signed=False,
                         sheet="Người hưởng đã qua đời")
ROW_HEIGHT_PT = 32  # room to sign, as the HTML's 1.1 cm box
MAX_SHEET_TITLE_CHARS = 31  # Excel's limit for a sheet's name


def whole_words(text: str, max_chars: int) -> str:
    """The longest start of `text` of at most `max_chars` that cuts no word (the first
    word's start when even that one is longer)."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars + 1].rsplit(" ", 1)[0].rstrip()
    return cut if len(cut) <= max_chars else text[:max_chars]


def programme_vi(code: str) -> str:
    return PROGRAMME_NAMES_VI.get(code.casefold(), code)


def list_row(traced: Mapping[str, Any]) -> dict[str, Any]:
    """A traced row (banks/payout_trace.py), or a PayoutResult's cash or deceased row (the
    demo's), as a row of a list for people: what is owed in cash (for a return, the amount
    that came back), and why, in both languages (a row with no code keeps its own words)."""
    code = traced["reason_code"] or ""
    return {column: traced.get(column, "") for column in LIST_COLUMNS} | {
        "amount_vnd": traced.get("returned_vnd") or traced["amount_vnd"],
        "programme_vi": programme_vi(traced["programme"]),
        "reason_vi": reason_text(code, vietnamese=True) if code else traced.get("reason_vi", ""),
        "reason_en": reason_text(code) if code else traced.get("reason_en", "")}


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


@dataclass(frozen=True)
class Heading:
    """Who issues a list, for which period(s), made when: the line under its title.
    `made_on` is Vietnam's date (protocol.wording.vietnam_now), whatever the machine's zone:
    the post office signs it."""

    issuer: str
    made_on: date

    def line(self, rows: Iterable[Mapping[str, Any]]) -> str:
        periods = sorted({str(r["period"]) for r in rows if r["period"]})
        return (f"Đơn vị lập: {self.issuer} — Kỳ: {', '.join(periods) or '(không ghi)'} — "
                f"Ngày lập: {self.made_on:%d/%m/%Y} (giờ Việt Nam)")


def vnd(amount_vnd: int) -> str:
    """An amount as Vietnamese write it: dots between thousands (750.000)."""
    return f"{amount_vnd:,}".replace(",", ".")


# One format for every amount: a real thousands separator, which Excel and LibreOffice show as
# the reader's locale writes it (750.000 in a Vietnamese one, 750,000 in an English one). A
# format with literal dots (`###\.##0`) fits one size of number only: an amount edited to a
# longer one showed "1200.000".
AMOUNT_FORMAT = "#,##0"


def write_xlsx(path: Path, rows: Sequence[Mapping[str, Any]], kind: ListKind,
               heading: Heading) -> None:
    """The list as a workbook: one sheet, its title, issuer, period(s), date and purpose at
    the top with the column headings (repeated at the top of every printed page), then
    grouped by commune (rows `in_order`), each with its heading, numbered rows, a total per
    programme and one for the commune, the signature lines and a page break; the list's
    totals at the end. A4 landscape, one page wide, rows tall enough to sign. Written
    streaming (openpyxl's write-only mode): a cash list may have a million rows."""
    columns = kind.columns()
    book = Workbook(write_only=True)
    sheet = book.create_sheet(kind.sheet_title())
    for letter, (_, _, width) in zip(COLUMN_LETTERS, columns, strict=False):
        sheet.column_dimensions[letter].width = width
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = "9"  # A4, in the ECMA-376 numbering
    sheet.page_setup.fitToWidth, sheet.page_setup.fitToHeight = 1, 0
    sheet.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    sheet.oddFooter.center.text = "Trang &P / &N"
    writer = _Rows(sheet, len(columns))
    writer.heading(kind.title, Font(bold=True, size=14))
    writer.heading(heading.line(rows), Font(size=11), blank_before=False)
    writer.heading(kind.purpose, Font(bold=True, size=11), blank_before=False)
    writer.add([_cell(sheet, title, BOLD, border=True) for title, _, _ in columns])
    sheet.print_title_rows = f"1:{writer.row}"
    amount_column = next(i for i, (_, name, _) in enumerate(columns) if name == "amount_vnd")
    for (province, district, commune), group in communes(rows):
        writer.heading(f"{commune} — {district} — {province}", Font(bold=True, size=12))
        for number, row in enumerate(group, 1):
            writer.add([_value(sheet, name, row, number) for _, name, _ in columns],
                       ROW_HEIGHT_PT)
        for name, people, amount_vnd in totals(group):
            writer.add(_total_row(sheet, len(columns), amount_column,
                                  f"Cộng {name}: {people:,} người", amount_vnd))
        writer.add(_total_row(sheet, len(columns), amount_column,
                              f"Cộng {commune}: {len(group):,} người",
                              sum(r["amount_vnd"] for r in group), BOLD))
        signatures = [None] * len(columns)
        signatures[1], signatures[amount_column] = (
            _cell(sheet, f"Người lập danh sách\n{SIGN_HERE}", BOLD),
            _cell(sheet, f"Thủ trưởng đơn vị\n{SIGN_HERE}", BOLD))
        writer.add(signatures, ROW_HEIGHT_PT)
        sheet.row_breaks.append(Break(id=writer.row))
    writer.heading(SUMMARY_HEADING, Font(bold=True, size=12))
    for label, amount_vnd in list_totals(rows):
        writer.add(_total_row(sheet, len(columns), amount_column, label, amount_vnd, BOLD))
    book.save(path)


SUMMARY_HEADING = "Tổng hợp"


def list_totals(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, int]]:
    """The list's closing lines, (label, VND): a total per programme, then all of it; the
    same in the XLSX and the HTML."""
    return [*((f"Tổng {name}: {people:,} người", amount_vnd)
              for name, people, amount_vnd in totals(rows)),
            (f"Tổng cộng: {len(rows):,} người", sum(r["amount_vnd"] for r in rows))]


SIGN_HERE = "(ký, ghi rõ họ tên)"
COLUMN_LETTERS = "ABCDEFGHIJKLMNOP"
BOLD = Font(bold=True)
THIN = Side(style="thin")
BOX = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
WRAPPED = Alignment(wrap_text=True, vertical="top")


class _Rows:
    """A write-only sheet's rows, counted (for page breaks and merged headings)."""

    def __init__(self, sheet: Worksheet, width: int) -> None:
        self.sheet, self.width, self.row = sheet, width, 0

    def add(self, cells: list[WriteOnlyCell | None], height_pt: float | None = None) -> None:
        """The next row; `height_pt` its own height (a person's row, tall enough to sign in
        and for a reason on two lines: LibreOffice ignores the sheet's default height). The
        row's dimension is dropped once written, so a million rows hold no million of them."""
        self.row += 1
        if height_pt is not None:
            self.sheet.row_dimensions[self.row].height = height_pt
        self.sheet.append(cells)
        self.sheet.row_dimensions.pop(self.row, None)

    def heading(self, text: str, font: Font, blank_before: bool = True) -> None:
        """A line across the table's width, after a blank one unless told."""
        if self.row and blank_before:
            self.add([])
        self.add([_cell(self.sheet, text, font)])
        self.sheet.merged_cells.ranges.add(
            f"A{self.row}:{COLUMN_LETTERS[self.width - 1]}{self.row}")


def _cell(sheet: Worksheet, value: object, font: Font | None = None,
          number_format: str | None = None, border: bool = False) -> WriteOnlyCell:
    """Every cell of the list is written here; a text is text, never a formula (a commune,
    a name or a heading like =HYPERLINK(…) from the table must not run in the clerk's Excel)."""
    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, str):
        cell.data_type = "s"
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
    return cell


def _total_row(sheet: Worksheet, width: int, amount_column: int, label: str, amount_vnd: int,
               font: Font | None = None) -> list[WriteOnlyCell | None]:
    cells: list[WriteOnlyCell | None] = [None] * width
    cells[1] = _cell(sheet, label, font)
    cells[amount_column] = _cell(sheet, amount_vnd, font, AMOUNT_FORMAT)
    return cells


PAGE_STYLE = """
body { font-family: "Times New Roman", serif; font-size: 11pt; margin: 1cm; }
section { break-after: page; }
section:last-of-type { break-after: auto; }
h1 { font-size: 14pt; text-align: center; margin: 0 0 4pt; }
p.where { text-align: center; margin: 0 0 4pt; }
p.purpose { text-align: center; font-weight: bold; margin: 0 0 10pt; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #000; padding: 3pt 4pt; vertical-align: top; }
th { background: #eee; }
td.n { text-align: right; white-space: nowrap; }
td.sign { width: 3.5cm; height: 1.1cm; }
tr.total td { font-weight: bold; }
section.summary { margin-top: 24pt; }
section.summary table { width: auto; margin: 0 auto; }
footer { margin-top: 18pt; display: flex; justify-content: space-around; }
@page { size: A4 landscape; margin: 1cm; }
"""
def write_html(path: Path, rows: Sequence[Mapping[str, Any]], kind: ListKind,
               heading: Heading) -> None:
    """A page per commune (rows `in_order`) for the browser's print: the title, issuer,
    period(s), date and purpose, numbered rows, totals per programme and for the commune, a
    box for each recipient's signature (on a list that is signed for), and lines for the
    clerk's and the head's signatures. Self-contained: no script, nothing fetched."""
    e = html.escape
    headings = [title for title, _, _ in kind.columns()]
    top = (f"<h1>{e(kind.title)}</h1><p class='where'>{e(heading.line(rows))}</p>"
           f"<p class='purpose'>{e(kind.purpose)}</p>")
    parts = ["<!doctype html><html lang='vi'><head><meta charset='utf-8'>",
             f"<title>{e(kind.title)}</title><style>{PAGE_STYLE}</style></head><body>"]
    for (province, district, commune), group in communes(rows):
        parts.append(f"<section>{top}<p class='where'>{e(commune)} — {e(district)} — "
                     f"{e(province)}</p><table><thead><tr>"
                     + "".join(f"<th>{e(h)}</th>" for h in headings) + "</tr></thead><tbody>")
        for number, row in enumerate(group, 1):
            cells = (number, row["full_name"], row["citizen_id"], row["address"],
                     row["programme_vi"], row["period"], row["arrears"])
            parts.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in cells)
                         + f"<td class='n'>{vnd(row['amount_vnd'])}</td><td>"
                         f"{e(row['reason_vi'])}</td><td class='n'>{row['line']}</td>"
                         + ("<td class='sign'></td>" if kind.signed else "") + "</tr>")
        for name, people, amount_vnd in totals(group):
            parts.append(_html_total(f"Cộng {name}: {people:,} người", amount_vnd, kind))
        parts.append(_html_total(f"Cộng {commune}: {len(group):,} người",
                                 sum(r["amount_vnd"] for r in group), kind))
        parts.append(f"</tbody></table><footer><span>Người lập danh sách<br>{SIGN_HERE}</span>"
                     f"<span>Thủ trưởng đơn vị<br>{SIGN_HERE}</span></footer></section>")
    if not rows:
        parts.append(f"{top}<p class='where'>Không có ai.</p>")
    else:  # the list's totals, as the XLSX ends
        parts.append(f"<section class='summary'><h1>{SUMMARY_HEADING}</h1><p class='where'>"
                     f"{e(kind.title)} — {e(heading.line(rows))}</p><table><tbody>"
                     + "".join(f"<tr class='total'><td>{e(label)}</td><td class='n'>"
                               f"{vnd(amount_vnd)}</td></tr>"
                               for label, amount_vnd in list_totals(rows))
                     + "</tbody></table></section>")
    parts.append("</body></html>")
    path.write_text("".join(parts), encoding="utf-8")


def _html_total(label: str, amount_vnd: int, kind: ListKind) -> str:
    return (f"<tr class='total'><td></td><td colspan='6'>{html.escape(label)}</td>"
            f"<td class='n'>{vnd(amount_vnd)}</td>"
            f"<td colspan='{len(kind.columns()) - 8}'></td></tr>")


def write_list(folder: Path, stem: str, rows: Iterable[Mapping[str, Any]], kind: ListKind,
               heading: Heading, delimiter: str) -> dict[str, Path]:
    """A list for people in its three shapes (stem.csv, stem.xlsx, stem.html); their paths."""
    ordered = in_order(rows)
    paths = {f"{stem}.{ext}": folder / f"{stem}.{ext}" for ext in ("csv", "xlsx", "html")}
    write_csv(paths[f"{stem}.csv"], ordered, delimiter)
    write_xlsx(paths[f"{stem}.xlsx"], ordered, kind, heading)
    write_html(paths[f"{stem}.html"], ordered, kind, heading)
    return paths
