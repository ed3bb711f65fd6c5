"""The labour ministry's payment table: who gets how much, into which account, checked row by
row before the treasury sends any of it.

Checked before anything is sent because one unencodable row would sink a whole bulk file, and
a wrong amount or id cannot be taken back once settled. Ids follow `protocol.ids`, the same
rules the switch applies. The rules, and why each exists, are in docs/payment-table.md:

- a byte-order mark (Excel's "CSV UTF-8") is read past; a header with only semicolons is
  read with semicolons (Excel where the list separator is ";"); header names are trimmed and
  read in any case; columns the table does not use are ignored and named;
- values are trimmed of surrounding spaces; an id, account, BIC or amount with a space or a
  separator inside is refused with its line, since guessing could pay someone else;
- the same citizen id twice in one programme and period is refused, every such line,
  unless a `period` or `arrears` column tells the rows apart;
- a row without account (and without creditor_bic) is paid by citizen id, through the
  switch's directory;
- each bad row is reported with its line and every reason it has (not the first only); the
  good rows go on.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import hmac
import itertools
import re
import unicodedata
from array import array
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any

from banks.columns import RowIndex, Rows, Shared, Texts
from protocol.ids import MAX_ID_CHARS, citizen_id_problem, is_bic
from protocol.messages import MAX_AMOUNT_VND, MAX_NAME_CHARS, SCHEME_CURRENCY
from protocol.wording import count

MAX_TABLE_ROWS = 10_000_000  # a national payout day is a few million rows
MAX_ACCOUNT_CHARS = 34  # ISO 20022 Max34Text
MAX_PROBLEMS_SHOWN = 20
MAX_ROWS_SHOWN = 3  # by repr
MAX_FIELD_CHARS = 131_072  # the csv module's own limit: far past any name or address
READ_CHUNK_BYTES = 1 << 20
COMMA_INSIDE_HINT = "a comma inside a value that is not in quotes?"
FIELDS_MISSING_HINT = "fields missing: keep the commas of empty ones"
MAX_TABLE_BYTES = 4 * 2**30  # MAX_TABLE_ROWS rows of ~200 bytes, twice over
# Files people open in Excel: UTF-8 with a byte-order mark, or Excel shows the diacritics of
# "Nguyễn Thị Rà" as mojibake. Read back, the mark is skipped.
EXCEL_ENCODING = "utf-8-sig"
# A cell that starts like a formula is run as one by Excel (=HYPERLINK(…) sends a click's data
# away; +cmd|… ran commands): written out with a leading apostrophe, shown as text (OWASP's
# "CSV injection" advice).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
AMOUNT = re.compile(r"[0-9]{1,14}")
REQUIRED_COLUMNS = ("citizen_id", "full_name", "amount_vnd", "programme")
OPTIONAL_COLUMNS = ("creditor_bic", "account_id", "end_to_end_id", "period", "arrears",
                    "commune", "address", "district", "province", "birth_date", "currency")
_IDS = ("citizen_id", "amount_vnd", "creditor_bic", "account_id", "end_to_end_id")
_TEXTS = ("programme", "period", "arrears", "commune", "address", "district", "province")
_NAMES_AND_TEXTS = frozenset(("full_name", *_TEXTS))
DERIVED_ID_PREFIX = "PT"  # end-to-end ids the table did not give: PT + 32 hex digits
# A row sent again after a transient rejection goes under RETRY, its attempt and a hash of its
# id (switchlab/payout.py): no table may give an id of that form, or a retry could take the
# final status of another row's transfer as its own.
RETRY_ID_PREFIX = "RETRY"


def retry_id(end_to_end_id: str, attempt: int, id_key: bytes = b"") -> str:
    """The end-to-end id of a row's `attempt`-th resend (1 to 9): stable for one `id_key`, so
    a resumed run finds it again; Max35Text; never an id a table can give (RETRY_ID_PREFIX).
    With the run's secret as `id_key` nobody else can compute it (issue #22, observation 1)."""
    assert 0 < attempt < 10, attempt
    digest = _digest(id_key, end_to_end_id)
    return f"{RETRY_ID_PREFIX}{attempt}{digest[:MAX_ID_CHARS - len(RETRY_ID_PREFIX) - 1]}"


def _digest(id_key: bytes, text: str) -> str:
    """Hex HMAC-SHA256 of `text` under the run's secret; SHA-256 without one (a table read
    outside a payout run, whose ids anyone holding the table could compute)."""
    if id_key:
        return hmac.new(id_key, text.encode(), hashlib.sha256).hexdigest()
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Payment:
    """One row of the labour ministry's payment table: who gets how much, into which account
    (none: paid by citizen id through the switch's directory)."""

    citizen_id: str
    full_name: str
    amount_vnd: int
    creditor_bic: str
    account_id: str
    programme: str
    end_to_end_id: str
    period: str = ""
    arrears: str = ""  # why a second payment in the same programme and period
    commune: str = ""  # xã/phường, for the post office
    address: str = ""
    district: str = ""  # quận/huyện, and tỉnh/thành phố: the post office's grouping
    province: str = ""
    birth_date: str = ""  # YYYY-MM-DD, checked against the population register when given


class PaymentTable(Rows[Payment]):
    """Payments in table order, held in columns (banks/columns.py): ~150 bytes a row of a
    million-row table, its id index included, where the `Payment` objects were ~440. Each
    `Payment` is made when its row is asked for; a slice is a list of them (a file to send).
    Equal to any sequence of the same payments in the same order."""

    def __init__(self) -> None:
        self._amounts_vnd = array("q")
        self._ids = Texts()
        # citizen_id, full_name, account_id, arrears, address, birth_date: one Texts row each
        self._texts = Texts()
        self._bics, self._programmes = Shared(), Shared()
        self._periods, self._communes = Shared(), Shared()
        self._districts, self._provinces = Shared(), Shared()
        self._id_index: RowIndex | None = None
        self._id_repeats: dict[int, list[int]] = {}

    @classmethod
    def of(cls, payments: Iterable[Payment]) -> PaymentTable:
        """`payments` as a table: the very one when it is a table already."""
        if isinstance(payments, PaymentTable):
            return payments
        table = cls()
        for payment in payments:
            table.append(payment)
        return table

    def append(self, payment: Payment) -> None:
        self._amounts_vnd.append(payment.amount_vnd)
        self._ids.append(payment.end_to_end_id)
        self._texts.append(payment.citizen_id, payment.full_name, payment.account_id,
                           payment.arrears, payment.address, payment.birth_date)
        self._bics.append(payment.creditor_bic)
        self._programmes.append(payment.programme)
        self._periods.append(payment.period)
        self._communes.append(payment.commune)
        self._districts.append(payment.district)
        self._provinces.append(payment.province)
        self._id_index = None  # built again, over every row, when next asked

    def take(self, rows: Iterable[int]) -> PaymentTable:
        """A new table of these rows, in the order given."""
        return PaymentTable.of(map(self._item, rows))

    def __len__(self) -> int:
        return len(self._amounts_vnd)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other,
                                                                        strict=True))

    __hash__ = None  # type: ignore[assignment]  # equal to lists, mutable like them

    def __repr__(self) -> str:
        """The first rows only: asyncio formats a finished task's result (a payout's report
        holds its table) with repr, which took 2.9 s of a 100,000-row run's 16 s."""
        more = f", … {len(self) - MAX_ROWS_SHOWN:,} more" if len(self) > MAX_ROWS_SHOWN else ""
        return f"PaymentTable({self[:MAX_ROWS_SHOWN]!r}{more})"

    def _item(self, row: int) -> Payment:
        citizen_id, full_name, account_id, arrears, address, born = self._texts.fields(row)
        return Payment(  # by position, in the order of its fields: a third faster
            citizen_id, full_name, self._amounts_vnd[row], self._bics[row], account_id,
            self._programmes[row], self._ids.text(row), self._periods[row], arrears,
            self._communes[row], address, district=self._districts[row],
            province=self._provinces[row], birth_date=born)

    def paid(self, row: int) -> tuple[str, int, str, str, str, str, str]:
        """(end-to-end id, amount in VND, full name, account id, creditor BIC, citizen id,
        programme) of a row: what a pacs.008 carries, without making the row's `Payment` (a
        treasury sends a million of them)."""
        citizen_id, full_name, account_id, _, _, _ = self._texts.fields(row)
        return (self._ids.text(row), self._amounts_vnd[row], full_name, account_id,
                self._bics[row], citizen_id, self._programmes[row])

    def end_to_end_id(self, row: int) -> str:
        return self._ids.text(row)

    def creditor_bic(self, row: int) -> str:
        return self._bics[row]

    def amount_vnd(self, row: int) -> int:
        return self._amounts_vnd[row]

    def _repeat_key(self, row: int) -> tuple[str, str, str, str]:
        """Who is paid for what, in any case (LUONG_HUU is luong_huu): the same twice is a
        repeat unless the table says why."""
        citizen_id, _, _, arrears, _, _ = self._texts.fields(row)
        return (citizen_id, self._programmes[row].casefold(), self._periods[row].casefold(),
                arrears.casefold())

    def _indexed_ids(self) -> RowIndex:
        if self._id_index is None:
            self._id_index, self._id_repeats = _index(self._ids.text, len(self))
        return self._id_index

    def row_of(self, end_to_end_id: str) -> int | None:
        """The row paying this end-to-end id (the first, if the id repeats), if any."""
        return (self._id_index or self._indexed_ids()).find(end_to_end_id)

    def repeated_ids(self) -> dict[int, list[int]]:
        """The rows whose end-to-end id an earlier row has, by that first row."""
        self._indexed_ids()
        return self._id_repeats


def _index(key_of: Callable[[int], Hashable], rows: int
           ) -> tuple[RowIndex, dict[int, list[int]]]:
    """Rows 0 to `rows` indexed by `key_of`, and the rows left out because an earlier row
    has their key, by that first row."""
    index = RowIndex(key_of, rows)
    repeats: dict[int, list[int]] = defaultdict(list)
    for row in range(rows):
        first = index.add(row)
        if first is not None:
            repeats[first].append(row)
    return index, dict(repeats)


@dataclass
class CheckedTable:
    """A table as checked: the good rows, each bad row's (line, reason), what was ignored,
    and the SHA-256 of the file's bytes (a resumed run must pay the very same table)."""

    payments: PaymentTable
    problems: list[tuple[int, str]] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    sha256: str = ""
    lines: array[int] = field(default_factory=lambda: array("L"))  # each payment's line
    delimiter: str = ","  # the table's, kept by the files written back for its readers
    # each refused line's cells as written (by column name), when its fields could be told
    # apart: results.csv shows them, so a clerk need not go back to the table
    refused_rows: dict[int, dict[str, str]] = field(default_factory=dict)


class PaymentTableError(Exception):
    """The payment table has bad rows (or cannot be read at all: line 1, nothing good).

    `problems` names every bad row as (line, what is wrong); `payments` holds the good rows,
    for an operator who decides to pay them and send the rest back for correction.
    """

    def __init__(self, path: Path, problems: list[tuple[int, str]],
                 payments: Sequence[Payment], message: str | None = None) -> None:
        if message is None:
            shown = "\n".join(f"line {line}: {problem}"
                              for line, problem in problems[:MAX_PROBLEMS_SHOWN])
            more = (f"\n… and {len(problems) - MAX_PROBLEMS_SHOWN:,} more"
                    if len(problems) > MAX_PROBLEMS_SHOWN else "")
            message = f"{path}: {count(len(problems), 'bad row')}\n{shown}{more}"
        super().__init__(message)
        self.problems = problems
        self.payments = payments

    @classmethod
    def unreadable(cls, path: Path, line: int, why: str) -> PaymentTableError:
        """The table as a whole cannot be read (encoding, header): no row is checked."""
        return cls(path, [(line, why)], [], f"{path}, line {line}: {why}; no row was read")


def excel_cell(value: object) -> object:
    """`value` as a CSV cell Excel will show as text, never evaluate (FORMULA_STARTS)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def read_payment_table(path: Path, id_key: bytes = b"") -> PaymentTable:
    """The payments of a table with no bad row; raises PaymentTableError naming each bad
    line (with the good rows), OSError when the file cannot be read. `id_key`: as for
    check_payment_table."""
    checked = check_payment_table(path, id_key)
    if checked.problems:
        raise PaymentTableError(path, checked.problems, checked.payments)
    return checked.payments


def check_payment_table(path: Path, id_key: bytes = b"") -> CheckedTable:
    """Read and check the labour ministry's CSV (at most MAX_TABLE_ROWS rows): the good rows
    (with their lines) and each bad line's reason. A row without an end-to-end id gets one
    derived from who and what is paid, under `id_key` (a payout run's secret, so that no bank
    can compute the ids a payout will use and spend them first; issue #22, observation 1).
    Raises PaymentTableError when the table as a whole cannot be read (a required column
    missing, not UTF-8, a field past MAX_FIELD_CHARS), OSError when the file cannot be opened.

    The file is read twice, streaming (its fingerprint, then its rows), never whole: a
    million-row table is ~120 MB of bytes and twice that decoded, more than its payments."""
    if path.exists() and not path.is_file():
        raise PaymentTableError.unreadable(path, 1, "not a file (a device, a pipe or a folder)")
    sha256 = _utf8_fingerprint(path)
    with path.open(encoding=EXCEL_ENCODING, newline="") as file:
        first = file.readline()
        delimiter = ";" if ";" in first and "," not in first else ","
        # strict: a quote never closed is an error at the end of the file, not a field that
        # swallows every row after it; so is text after a closing quote ("a"b).
        reader = csv.reader(itertools.chain([first], file), delimiter=delimiter, strict=True)
        checked = _checked_rows(path, reader, sha256, id_key)
        checked.delimiter = delimiter
        return checked


def _utf8_fingerprint(path: Path) -> str:
    """SHA-256 of the file's bytes (a resumed run must pay the very same table), checking on
    the way that they are UTF-8; raises PaymentTableError naming the line of the first bad
    byte."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines_before = 0
    with path.open("rb") as file:
        while True:
            chunk = file.read(READ_CHUNK_BYTES)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as error:  # error.object: bytes held over + this chunk
                line = lines_before + error.object[:error.start].count(b"\n") + 1
                raise PaymentTableError.unreadable(
                    path, line, "the file is not UTF-8: save it as \"CSV UTF-8 (comma "
                    "delimited)\"") from None
            if not chunk:
                return digest.hexdigest()
            digest.update(chunk)
            lines_before += chunk.count(b"\n")
            if file.tell() > MAX_TABLE_BYTES:
                raise PaymentTableError.unreadable(
                    path, lines_before, f"more than {MAX_TABLE_BYTES // 2**30} GiB: split the "
                    "table")


def _records(path: Path, reader: Any) -> Iterator[tuple[int, int, list[str]]]:
    """(first line, last line, fields) of each record: a quoted field may span lines, and a
    row is named by the line it starts on. Raises PaymentTableError for a file the CSV
    rules cannot read from some record on."""
    last = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            why = (f"a quote opened in the record starting here is never closed ({error})"
                   if "end of data" in str(error) else
                   f"not a readable CSV from here on ({error}); a field holds at most "
                   f"{MAX_FIELD_CHARS:,} characters, and a quoted field ends at its closing "
                   "quote")
            raise PaymentTableError.unreadable(path, last + 1, why) from None
        yield last + 1, reader.line_num, values
        last = reader.line_num


def _header(path: Path, names: list[str]) -> list[str]:
    """The header's column names, trimmed and in any case; refused when a column the table
    uses is missing or appears twice (which of two amounts to pay would be a guess)."""
    header = [name.strip().casefold() for name in names]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise PaymentTableError.unreadable(path, 1, f"header lacks {', '.join(missing)} (it "
                                           f"has: {', '.join(header) or 'nothing'})")
    twice = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if header.count(c) > 1]
    if twice:
        where = "; ".join(f"{c} in columns " + ", ".join(
            str(i) for i, name in enumerate(header, 1) if name == c) for c in twice)
        raise PaymentTableError.unreadable(path, 1, f"a column appears more than once ({where})"
                                           ": which value to pay would be a guess")
    return header


def _checked_rows(path: Path, reader: Any, sha256: str, id_key: bytes) -> CheckedTable:
    records = _records(path, reader)
    header = _header(path, next(records, (1, 1, []))[2])
    known = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
    checked = CheckedTable(payments=PaymentTable(), sha256=sha256,
                           ignored_columns=[c for c in header if c not in known])
    payments = checked.payments
    lines = array("L")  # each payment's line, beside it: a (line, payment) tuple a row is 64 B
    texts = [name for name in header if name in _NAMES_AND_TEXTS]  # once, not a set a row
    for line, last_line, values in records:
        if not any(value.strip() for value in values):
            continue  # blank lines, and the empty rows spreadsheets leave at the end
        if len(payments) + len(checked.problems) >= MAX_TABLE_ROWS:
            checked.problems.append((line, f"more than {MAX_TABLE_ROWS:,} rows"))
            break
        if last_line > line:  # a line break in a quoted field, or a stray quote's swallow
            checked.problems.append((line, f"a quoted field runs from line {line} to line "
                                     f"{last_line} (a line break in a cell, or a quote never "
                                     "closed until there): write each row on one line"))
            continue
        if len(values) != len(header):  # a shifted or cut row: which field is which is a guess
            hint = (COMMA_INSIDE_HINT if len(values) > len(header) else FIELDS_MISSING_HINT)
            fields = count(len(values), "field")
            checked.problems.append((line, f"{fields} where the header has {len(header)} "
                                     f"({hint})"))
            continue
        row = {name: value.strip() for name, value in zip(header, values, strict=True)}
        for name in texts:
            row[name] = _composed(row[name])
        problem = _row_problem(row)
        if problem:
            checked.problems.append((line, problem))
            checked.refused_rows[line] = row
            continue
        payments.append(_payment(row, id_key))
        lines.append(line)
    repeated = _repeated(payments, lines)
    if repeated:
        refused = {line for line, _ in repeated}
        kept = [row for row, line in enumerate(lines) if line not in refused]
        for row, line in enumerate(lines):
            if line in refused:
                checked.refused_rows[line] = _as_written(payments[row], id_key)
        checked.payments = payments.take(kept)
        lines = array("L", (lines[row] for row in kept))
        checked.problems += repeated
    checked.lines = lines
    checked.problems.sort()
    return checked


def _as_written(payment: Payment, id_key: bytes) -> dict[str, str]:
    """A good row refused afterwards (a repeat) as its cells were written, by column: every
    field of the payment, so that it keeps all the table gave as a row refused on its own
    does (results.csv); the end-to-end id only when the table gave it, not the derived one."""
    cells = {name.name: str(getattr(payment, name.name)) for name in fields(Payment)}
    if payment.end_to_end_id == _derived_id(cells, id_key):
        cells["end_to_end_id"] = ""
    return cells


def _derived_id(row: Mapping[str, str], id_key: bytes) -> str:
    """The end-to-end id of a row the table gives none: from who and what is paid."""
    get = row.get
    return DERIVED_ID_PREFIX + _digest(id_key, "\x1f".join(
        (row["citizen_id"], row["programme"], get("period", ""), get("arrears", ""))))[:32]


def _payment(row: dict[str, str], id_key: bytes) -> Payment:
    """A checked row as a payment; the end-to-end id derived from who and what is paid when
    the table gives none, so that the same row has the same id in every read of the table
    under one `id_key`."""
    get = row.get
    e2e = get("end_to_end_id") or _derived_id(row, id_key)
    return Payment(
        citizen_id=row["citizen_id"], full_name=row["full_name"],
        amount_vnd=int(row["amount_vnd"]), creditor_bic=get("creditor_bic", ""),
        account_id=get("account_id", ""), programme=row["programme"], end_to_end_id=e2e,
        period=get("period", ""), arrears=get("arrears", ""), commune=get("commune", ""),
        address=get("address", ""), district=get("district", ""), province=get("province", ""),
        birth_date=get("birth_date", ""))


def _composed(text: str) -> str:
    """Text in NFC: a Mac, or Excel on one, may save "Nguyễn" as letters and combining marks
    (NFD), three code points where NFC has one; Max140Text counts code points, so a 70-letter
    name was refused as 210 characters, and the bank compares names as written."""
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def _text_problem(row: dict[str, str], column: str, max_chars: int) -> str | None:
    value = row.get(column, "")
    if len(value) > max_chars:
        return f"{column} is {count(len(value), 'character')}; at most {max_chars}"
    if not value.isprintable():
        return f"{column} {value!r} has control characters"
    return None


def _citizen_id_problem(text: str) -> str | None:
    problem = citizen_id_problem(text)
    if problem is None:
        return None
    hint = ""
    if _zeros_dropped(text):
        hint = (f" (did a spreadsheet drop its leading zero? {text.zfill(12)} would be one: "
                "format the column as text)")
    elif "e+" in text.casefold():
        hint = " (a spreadsheet wrote it as a number: format the column as text)"
    return f"citizen_id {problem}{hint}"


def _zeros_dropped(text: str) -> bool:
    """Whether `text` reads as a citizen id a spreadsheet took for a number: digits with no
    leading zero left (a spreadsheet drops them all) that are a valid id with them put back."""
    return (text.isdigit() and len(text) < 12 and not text.startswith("0")
            and citizen_id_problem(text.zfill(12)) is None)


def _row_problem(row: dict[str, str]) -> str | None:
    """Every problem of the row, joined by "; " (None: it can be paid): a clerk corrects a
    row once, not once per problem."""
    return "; ".join(_row_problems(row)) or None


def _row_problems(row: dict[str, str]) -> Iterator[str]:
    spaced = {c for c in _IDS if len(row.get(c, "").split()) > 1}
    for column in _IDS:
        if column in spaced:
            yield (f"{column} {row[column]!r} has a space inside; write it without spaces "
                   "(a number split in two could be someone else's)")
    if "citizen_id" not in spaced:
        problem = _citizen_id_problem(row["citizen_id"])
        if problem:
            yield problem
    amount = row["amount_vnd"]
    if "amount_vnd" not in spaced and (
            not AMOUNT.fullmatch(amount) or not 0 < int(amount) <= MAX_AMOUNT_VND):
        hint = (" (write whole dong as digits only, without separators)"
                if re.fullmatch(r"[0-9][0-9.,]*[0-9]", amount) else
                " (a payment is more than zero)" if re.fullmatch(r"[-0]+", amount) or
                amount.startswith("-") else "")
        yield (f"amount_vnd {amount!r} is not a positive whole number of dong up to "
               f"{MAX_AMOUNT_VND:,}{hint}")
    currency = row.get("currency", "")
    if currency and currency != SCHEME_CURRENCY:
        yield (f"currency {currency[:20]!r}: the scheme pays {SCHEME_CURRENCY} only (ISO 20022 "
               f"AM03, not allowed currency); give the amount in whole dong"
               + (f" and the currency as {SCHEME_CURRENCY}" if currency.upper() ==
                  SCHEME_CURRENCY else ""))
    bic, account = row.get("creditor_bic", ""), row.get("account_id", "")
    if bic and not is_bic(bic) and "creditor_bic" not in spaced:
        hint = " (BICs are written in capitals)" if is_bic(bic.upper()) else ""
        yield f"creditor_bic {bic!r} is not a BIC{hint}"
    if bool(bic) != bool(account):
        yield ("creditor_bic and account_id go together: give both, or leave both empty to "
               "pay by citizen id")
    if not row["full_name"]:
        yield "full_name is empty"
    born = row.get("birth_date", "")
    if born and not _iso_date(born):
        yield f"birth_date {born[:20]!r} is not a date written YYYY-MM-DD"
    if row.get("end_to_end_id", "").upper().startswith(RETRY_ID_PREFIX):
        yield (f"end_to_end_id {row['end_to_end_id']!r} starts with {RETRY_ID_PREFIX}, which "
               "switchlab keeps for the ids of rows sent again")
    limits = (("full_name", MAX_NAME_CHARS), ("account_id", MAX_ACCOUNT_CHARS),
              ("end_to_end_id", MAX_ID_CHARS), *((c, MAX_NAME_CHARS) for c in _TEXTS))
    yield from filter(None, (_text_problem(row, c, high) for c, high in limits))


def _iso_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def _repeated(payments: PaymentTable, lines: Sequence[int]) -> list[tuple[int, str]]:
    """Every line of a person paid twice in one programme and period without a period or
    arrears value telling the rows apart, and every repeat of an end-to-end id.

    Found with row indexes (banks/columns.py, ~32 bytes a row) rather than sets of keys: a
    set of a million hashes is ~64 bytes a row, and each key tuple ~100 more."""
    _, key_repeats = _index(payments._repeat_key, len(payments))
    problems = []
    repeated: set[int] = set()
    for first, others in key_repeats.items():
        citizen_id, programme, period, _ = payments._repeat_key(first)
        key_lines = [lines[row] for row in (first, *others)]
        repeated.update(key_lines)
        where = f"programme {programme!r}" + (f", period {period!r}" if period else "")
        problems += [(line, f"citizen_id {citizen_id} is paid {count(len(key_lines), 'time')} in "
                      f"{where} (lines {', '.join(map(str, key_lines))}): say why in a period "
                      "or arrears column, or remove the extra rows") for line in key_lines]
    for first, others in payments.repeated_ids().items():
        problems += [(lines[row], f"end_to_end_id {payments.end_to_end_id(first)} appears "
                      f"twice (line {lines[first]})")
                     for row in others if lines[row] not in repeated]
    return problems
