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
- each bad row is reported with its line and reason; the good rows go on.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import itertools
import re
import sys
from array import array
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.codec import MAX_NAME_CHARS
from protocol.ids import MAX_ID_CHARS, citizen_id_problem, is_bic

MAX_TABLE_ROWS = 10_000_000  # a national payout day is a few million rows
MAX_AMOUNT_VND = 10**13  # far above any single social payment; also bounds int() on the input
MAX_ACCOUNT_CHARS = 34  # ISO 20022 Max34Text
MAX_PROBLEMS_SHOWN = 20
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
                    "commune", "address")
_IDS = ("citizen_id", "amount_vnd", "creditor_bic", "account_id", "end_to_end_id")
_TEXTS = ("programme", "period", "arrears", "commune", "address")
DERIVED_ID_PREFIX = "PT"  # end-to-end ids the table did not give: PT + 32 hex digits


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


@dataclass
class CheckedTable:
    """A table as checked: the good rows, each bad row's (line, reason), what was ignored,
    and the SHA-256 of the file's bytes (a resumed run must pay the very same table)."""

    payments: list[Payment]
    problems: list[tuple[int, str]] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    sha256: str = ""


class PaymentTableError(Exception):
    """The payment table has bad rows (or cannot be read at all: line 1, nothing good).

    `problems` names every bad row as (line, what is wrong); `payments` holds the good rows,
    for an operator who decides to pay them and send the rest back for correction.
    """

    def __init__(self, path: Path, problems: list[tuple[int, str]],
                 payments: list[Payment], message: str | None = None) -> None:
        if message is None:
            shown = "\n".join(f"line {line}: {problem}"
                              for line, problem in problems[:MAX_PROBLEMS_SHOWN])
            more = (f"\n… and {len(problems) - MAX_PROBLEMS_SHOWN:,} more"
                    if len(problems) > MAX_PROBLEMS_SHOWN else "")
            message = f"{path}: {len(problems):,} bad rows\n{shown}{more}"
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


def read_payment_table(path: Path) -> list[Payment]:
    """The payments of a table with no bad row; raises PaymentTableError naming each bad
    line (with the good rows), OSError when the file cannot be read."""
    checked = check_payment_table(path)
    if checked.problems:
        raise PaymentTableError(path, checked.problems, checked.payments)
    return checked.payments


def check_payment_table(path: Path) -> CheckedTable:
    """Read and check the labour ministry's CSV (at most MAX_TABLE_ROWS rows): the good rows
    and each bad line's reason. Raises PaymentTableError when the table as a whole cannot be
    read (a required column missing, not UTF-8, a field past MAX_FIELD_CHARS), OSError when
    the file cannot be opened.

    The file is read twice, streaming (its fingerprint, then its rows), never whole: a
    million-row table is ~120 MB of bytes and twice that decoded, more than its payments."""
    if path.exists() and not path.is_file():
        raise PaymentTableError.unreadable(path, 1, "not a file (a device, a pipe or a folder)")
    sha256 = _utf8_fingerprint(path)
    with path.open(encoding=EXCEL_ENCODING, newline="") as file:
        first = file.readline()
        delimiter = ";" if ";" in first and "," not in first else ","
        reader = csv.reader(itertools.chain([first], file), delimiter=delimiter)
        try:
            return _checked_rows(path, reader, sha256)
        except csv.Error as error:
            raise PaymentTableError.unreadable(
                path, reader.line_num, f"not a readable CSV from here on ({error}); a field "
                f"holds at most {MAX_FIELD_CHARS:,} characters") from None


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


def _checked_rows(path: Path, reader: Any, sha256: str) -> CheckedTable:
    header = [name.strip().casefold() for name in next(reader, [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise PaymentTableError.unreadable(path, 1, f"header lacks {', '.join(missing)} (it "
                                           f"has: {', '.join(header) or 'nothing'})")
    known = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
    checked = CheckedTable(payments=[], sha256=sha256,
                           ignored_columns=[c for c in header if c not in known])
    payments: list[Payment] = []
    lines = array("L")  # each payment's line, beside it: a (line, payment) tuple a row is 64 B
    for values in reader:
        line = reader.line_num
        if not any(value.strip() for value in values):
            continue  # blank lines, and the empty rows spreadsheets leave at the end
        if len(payments) + len(checked.problems) >= MAX_TABLE_ROWS:
            checked.problems.append((line, f"more than {MAX_TABLE_ROWS:,} rows"))
            break
        if len(values) != len(header):  # a shifted or cut row: which field is which is a guess
            hint = (COMMA_INSIDE_HINT if len(values) > len(header) else FIELDS_MISSING_HINT)
            fields = "1 field" if len(values) == 1 else f"{len(values)} fields"
            checked.problems.append((line, f"{fields} where the header has {len(header)} "
                                     f"({hint})"))
            continue
        row = {name: value.strip() for name, value in zip(header, values, strict=True)}
        problem = _row_problem(row)
        if problem:
            checked.problems.append((line, problem))
            continue
        payments.append(_payment(row))
        lines.append(line)
    repeated = _repeated(payments, lines)
    if repeated:
        refused = {line for line, _ in repeated}
        payments = [p for p, line in zip(payments, lines, strict=True) if line not in refused]
        checked.problems += repeated
    checked.payments = payments
    checked.problems.sort()
    return checked


def _payment(row: dict[str, str]) -> Payment:
    """A checked row as a payment; the end-to-end id derived from who and what is paid when
    the table gives none, so that the same row has the same id in every run of the table."""
    get = row.get
    e2e = get("end_to_end_id") or DERIVED_ID_PREFIX + hashlib.sha256("\x1f".join(
        (row["citizen_id"], row["programme"], get("period", ""), get("arrears", ""))
    ).encode()).hexdigest()[:32]
    return Payment(  # a few BICs and programmes: one string each, not a million
        citizen_id=row["citizen_id"], full_name=row["full_name"],
        amount_vnd=int(row["amount_vnd"]), creditor_bic=sys.intern(get("creditor_bic", "")),
        account_id=get("account_id", ""), programme=sys.intern(row["programme"]),
        end_to_end_id=e2e, period=sys.intern(get("period", "")), arrears=get("arrears", ""),
        commune=sys.intern(get("commune", "")), address=get("address", ""))


def _text_problem(row: dict[str, str], column: str, max_chars: int) -> str | None:
    value = row.get(column, "")
    if len(value) > max_chars:
        return f"{column} is {len(value)} characters; at most {max_chars}"
    if not value.isprintable():
        return f"{column} {value!r} has control characters"
    return None


def _citizen_id_problem(text: str) -> str | None:
    problem = citizen_id_problem(text)
    if problem is None:
        return None
    hint = ""
    if len(text) < 12 and text.isdigit():
        hint = " (did a spreadsheet drop its leading zero? format the column as text)"
    elif "e+" in text.casefold():
        hint = " (a spreadsheet wrote it as a number: format the column as text)"
    return f"citizen_id {problem}{hint}"


def _row_problem(row: dict[str, str]) -> str | None:
    inside = next((c for c in _IDS if len(row.get(c, "").split()) > 1), None)
    if inside:
        return (f"{inside} {row[inside]!r} has a space inside; write it without spaces "
                "(a number split in two could be someone else's)")
    problem = _citizen_id_problem(row["citizen_id"])
    if problem:
        return problem
    amount = row["amount_vnd"]
    if not AMOUNT.fullmatch(amount) or not 0 < int(amount) <= MAX_AMOUNT_VND:
        hint = (" (write whole dong as digits only, without separators)"
                if re.fullmatch(r"[0-9][0-9.,]*[0-9]", amount) else
                " (a payment is more than zero)" if re.fullmatch(r"[-0]+", amount) or
                amount.startswith("-") else "")
        return (f"amount_vnd {amount!r} is not a positive whole number of dong up to "
                f"{MAX_AMOUNT_VND:,}{hint}")
    bic, account = row.get("creditor_bic", ""), row.get("account_id", "")
    if bic and not is_bic(bic):
        hint = " (BICs are written in capitals)" if is_bic(bic.upper()) else ""
        return f"creditor_bic {bic!r} is not a BIC{hint}"
    if bool(bic) != bool(account):
        return ("creditor_bic and account_id go together: give both, or leave both empty to "
                "pay by citizen id")
    if not row["full_name"]:
        return "full_name is empty"
    problem = (_text_problem(row, "full_name", MAX_NAME_CHARS)
               or _text_problem(row, "account_id", MAX_ACCOUNT_CHARS)
               or _text_problem(row, "end_to_end_id", MAX_ID_CHARS))
    if problem:
        return problem
    return next(filter(None, (_text_problem(row, c, MAX_NAME_CHARS) for c in _TEXTS)), None)


def _repeated(payments: list[Payment], lines: Sequence[int]) -> list[tuple[int, str]]:
    """Every line of a person paid twice in one programme and period without a period or
    arrears value telling the rows apart, and every repeat of an end-to-end id.

    A first pass keeps only hashes and the ids' own strings (a key tuple and a list of lines
    a row were ~400 MB at the peak of reading a million rows); rows whose hash or id came
    twice are then grouped exactly, so a hash collision is never taken for a repeat."""
    key_hashes: set[int] = set()
    twice_hashes: set[int] = set()
    ids: set[str] = set()
    twice_ids: set[str] = set()
    for p in payments:
        key_hash = hash((p.citizen_id, p.programme, p.period, p.arrears))
        (twice_hashes if key_hash in key_hashes else key_hashes).add(key_hash)
        (twice_ids if p.end_to_end_id in ids else ids).add(p.end_to_end_id)
    if not twice_hashes and not twice_ids:
        return []
    del key_hashes, ids
    lines_by_key: dict[tuple[str, str, str, str], list[int]] = defaultdict(list)
    lines_by_id: dict[str, list[int]] = defaultdict(list)
    for p, line in zip(payments, lines, strict=True):
        key = (p.citizen_id, p.programme, p.period, p.arrears)
        if hash(key) in twice_hashes:
            lines_by_key[key].append(line)
        if p.end_to_end_id in twice_ids:
            lines_by_id[p.end_to_end_id].append(line)
    problems = []
    repeated: set[int] = set()
    for (citizen_id, programme, period, _), key_lines in lines_by_key.items():
        if len(key_lines) < 2:
            continue  # only its hash was shared
        repeated.update(key_lines)
        where = f"programme {programme!r}" + (f", period {period!r}" if period else "")
        problems += [(line, f"citizen_id {citizen_id} is paid {len(key_lines)} times in "
                      f"{where} (lines {', '.join(map(str, key_lines))}): say why in a period "
                      "or arrears column, or remove the extra rows") for line in key_lines]
    for e2e, id_lines in lines_by_id.items():
        problems += [(line, f"end_to_end_id {e2e} appears twice (line {id_lines[0]})")
                     for line in id_lines[1:] if line not in repeated]
    return problems
