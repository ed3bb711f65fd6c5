"""The payment table as people save it: Excel's byte-order mark and semicolons, stray spaces,
the same person twice, rows without account. Each bad row is named with its line and reason;
the good rows go on."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from banks.payment_table import (
    DERIVED_ID_PREFIX,
    PaymentTableError,
    check_payment_table,
    read_payment_table,
    retry_id,
)

HEADER = "citizen_id,full_name,amount_vnd,programme,period,arrears,creditor_bic,account_id"
RA = "001190012345,Nguyễn Thị Rà,1170000,luong_huu,2026-11,,BFTVVNVX,0011004455667"
DUC = "079090054321,Trần Văn Đức,2340000,luong_huu,2026-11,,,"


def excel_csv(path: Path, *lines: str, separator: str = ",") -> Path:
    """As Excel's "CSV UTF-8" saves it: a byte-order mark, CRLF line ends."""
    text = "\r\n".join(line.replace(",", separator) for line in lines) + "\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    return path


def problems_of(path: Path) -> dict[int, str]:
    return dict(check_payment_table(path).problems)


def test_a_table_saved_by_excel_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    payments = read_payment_table(excel_csv(tmp_path / "t.csv", HEADER, RA, DUC))
    assert [p.full_name for p in payments] == ["Nguyễn Thị Rà", "Trần Văn Đức"]
    assert (payments[0].creditor_bic, payments[0].account_id) == ("BFTVVNVX", "0011004455667")


def test_semicolons_and_header_case_and_spaces_are_read(tmp_path: Path) -> None:
    header = " Citizen_ID ;Full_Name;AMOUNT_VND;programme;period;arrears;creditor_bic;account_id"
    path = excel_csv(tmp_path / "t.csv", header, RA.replace(",", ";"), separator=";")
    assert read_payment_table(path)[0].citizen_id == "001190012345"


def test_spaces_around_values_are_trimmed(tmp_path: Path) -> None:
    path = excel_csv(tmp_path / "t.csv", HEADER,
                     " 001190012345 , Nguyễn Thị Rà ,1170000 ,luong_huu,2026-11,,BFTVVNVX ,"
                     " 0011004455667 ")
    (payment,) = read_payment_table(path)
    assert (payment.citizen_id, payment.account_id, payment.full_name, payment.amount_vnd) == (
        "001190012345", "0011004455667", "Nguyễn Thị Rà", 1_170_000)


def test_a_space_inside_an_account_or_id_is_refused_with_its_line(tmp_path: Path) -> None:
    path = excel_csv(tmp_path / "t.csv", HEADER, RA.replace("0011004455667", "0011 004455667"),
                     DUC, DUC.replace("079090054321", "079 090054321"))
    checked = check_payment_table(path)
    problems = dict(checked.problems)
    assert sorted(problems) == [2, 4]
    assert problems[2].startswith("account_id '0011 004455667' has a space inside")
    assert problems[4].startswith("citizen_id '079 090054321' has a space inside")
    assert [p.citizen_id for p in checked.payments] == ["079090054321"]  # the good row goes on


def test_the_same_person_twice_in_a_programme_and_period_is_refused(tmp_path: Path) -> None:
    path = excel_csv(tmp_path / "t.csv", HEADER, RA, DUC, RA)
    problems = problems_of(path)
    assert sorted(problems) == [2, 4]  # both lines: which one is right is the ministry's call
    assert "citizen_id 001190012345 is paid 2 times in programme 'luong_huu', period " \
           "'2026-11' (lines 2, 4)" in problems[2]
    assert "period or arrears column" in problems[4]


def test_a_period_or_arrears_column_says_why_a_person_is_paid_twice(tmp_path: Path) -> None:
    arrears = RA.replace("2026-11,,", "2026-11,truy lĩnh tháng 10,")
    october = RA.replace("2026-11", "2026-10")
    checked = check_payment_table(excel_csv(tmp_path / "t.csv", HEADER, RA, arrears, october))
    assert checked.problems == []
    ids = [p.end_to_end_id for p in checked.payments]
    assert len(set(ids)) == 3 and all(i.startswith(DERIVED_ID_PREFIX) for i in ids)


def test_derived_end_to_end_ids_are_the_same_in_every_run(tmp_path: Path) -> None:
    first = read_payment_table(excel_csv(tmp_path / "a.csv", HEADER, RA, DUC))
    again = read_payment_table(excel_csv(tmp_path / "b.csv", HEADER, DUC, RA))
    assert {p.end_to_end_id for p in first} == {p.end_to_end_id for p in again}
    assert all(len(p.end_to_end_id) <= 35 for p in first)


def test_a_row_without_account_is_paid_by_citizen_id(tmp_path: Path) -> None:
    (payment,) = read_payment_table(excel_csv(tmp_path / "t.csv", HEADER, DUC))
    assert (payment.creditor_bic, payment.account_id) == ("", "")
    lonely = "079090054321,Trần Văn Đức,2340000,luong_huu,2026-11,,BFTVVNVX,"
    assert "creditor_bic and account_id go together" in problems_of(
        excel_csv(tmp_path / "u.csv", HEADER, lonely))[2]


@pytest.mark.parametrize(("citizen_id", "says"), [
    ("1190012345", "did a spreadsheet drop its leading zero?"),
    ("1.1901E+11", "wrote it as a number"),
    ("003190012345", "no province code"),
    ("001299012345", "in the future"),
])
def test_a_citizen_id_is_checked_with_a_hint(tmp_path: Path, citizen_id: str,
                                             says: str) -> None:
    path = excel_csv(tmp_path / "t.csv", HEADER, RA.replace("001190012345", citizen_id))
    assert says in problems_of(path)[2]


@pytest.mark.parametrize("citizen_id", ["01190022222", "0119002222", "99190012345", "119"])
def test_issue_newuser3_finding10_no_leading_zero_hint_where_it_cannot_be_the_cause(
        tmp_path: Path, citizen_id: str) -> None:
    """'01190022222' still has a leading zero, so no spreadsheet dropped it: the hint is for
    digits that become a valid citizen id with their zeros put back ('1190012345' →
    '001190012345'), and names it."""
    path = excel_csv(tmp_path / "t.csv", HEADER, RA.replace("001190012345", citizen_id))
    said = problems_of(path)[2]
    assert "is not 12 digits" in said and "leading zero" not in said, said
    dropped = excel_csv(tmp_path / "d.csv", HEADER, RA.replace("001190012345", "1190012345"))
    assert "leading zero? 001190012345 would be one" in problems_of(dropped)[2]


@pytest.mark.parametrize(("amount", "says"), [
    ("1.170.000", "without separators"),
    ("0", "more than zero"),
    ("-5000", "more than zero"),
])
def test_a_bad_amount_is_refused_not_guessed(tmp_path: Path, amount: str, says: str) -> None:
    path = excel_csv(tmp_path / "t.csv", HEADER, RA.replace("1170000", amount))
    assert says in problems_of(path)[2]


def test_a_lowercase_bic_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = excel_csv(tmp_path / "t.csv", HEADER, RA.replace("BFTVVNVX", "bftvvnvx"))
    assert "written in capitals" in problems_of(path)[2]


def test_columns_it_does_not_use_are_named_and_blank_rows_skipped(tmp_path: Path) -> None:
    path = excel_csv(tmp_path / "t.csv", "stt," + HEADER, "1," + RA, ",,,,,,,,", "2," + DUC)
    checked = check_payment_table(path)
    assert checked.ignored_columns == ["stt"] and checked.problems == []
    assert len(checked.payments) == 2


def test_a_table_that_is_not_utf8_is_refused_whole(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes((HEADER + "\r\n" + RA + "\r\n").encode("cp1258", errors="replace"))
    with pytest.raises(PaymentTableError, match="line 2: the file is not UTF-8"):
        check_payment_table(path)


def test_a_bad_byte_far_into_the_file_is_named_by_its_line(tmp_path: Path) -> None:
    rows = 30_000  # ~2.5 MB: past the first chunks the file is read in
    text = HEADER + "\r\n" + (RA + "\r\n") * rows
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode() + b"Ph\xe1m\r\n")  # "Phám" as cp1258 writes it
    with pytest.raises(PaymentTableError, match=f"line {rows + 2}: the file is not UTF-8"):
        check_payment_table(path)


def test_a_field_too_long_for_any_name_refuses_the_file_in_one_line(tmp_path: Path) -> None:
    path = excel_csv(tmp_path / "t.csv", HEADER, RA, RA.replace("Nguyễn Thị Rà", "A" * 200_000))
    with pytest.raises(PaymentTableError, match="line 3: not a readable CSV from here on"):
        check_payment_table(path)


def test_the_documented_example_is_a_clean_table() -> None:
    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "payment-table.csv"
    assert example.read_bytes().startswith(b"\xef\xbb\xbf")  # as Excel saves it
    checked = check_payment_table(example)
    assert checked.problems == [] and len(checked.payments) == 7


def test_a_row_of_the_wrong_width_is_refused_not_guessed(tmp_path: Path) -> None:
    path = excel_csv(tmp_path / "t.csv", HEADER, RA, "001190012345", RA + ",extra")
    problems = problems_of(path)
    assert problems[3] == "1 field where the header has 8 (fields missing: keep the commas of " \
        "empty ones)"
    assert "9 fields where the header has 8 (a comma inside" in problems[4]


def test_a_device_is_refused_as_a_table() -> None:
    with pytest.raises(PaymentTableError, match="not a file"):
        check_payment_table(Path("/dev/zero"))


@pytest.mark.parametrize("second", ["amount_vnd", " Amount_VND ", "citizen_id"])
def test_a_column_named_twice_refuses_the_table(tmp_path: Path, second: str) -> None:
    """The last copy won: 999 dong were paid where the first amount column said 1,170,000."""
    path = excel_csv(tmp_path / "t.csv", f"{HEADER},{second}", f"{RA},999")
    with pytest.raises(PaymentTableError, match=r"line 1: a column appears more than once "
                       rf"\({second.strip().casefold()} in columns \d, 9\)"):
        check_payment_table(path)


def test_a_quote_never_closed_refuses_the_table_at_the_line_it_opens(tmp_path: Path) -> None:
    """It swallowed every row after it, and the payout paid the one row before and said so."""
    rows = [RA.replace("001190012345", f"0011900{n:05d}") for n in range(1, 50)]
    rows[1] = rows[1].replace("Nguyễn", '"Nguyễn')
    with pytest.raises(PaymentTableError, match="line 3: a quote opened in the record starting "
                       "here is never closed"):
        check_payment_table(excel_csv(tmp_path / "t.csv", HEADER, *rows))


def test_a_stray_quote_closed_lines_later_names_the_lines_it_took(tmp_path: Path) -> None:
    rows = [RA.replace("001190012345", f"0011900{n:05d}") for n in range(1, 10)]
    rows[1] = rows[1].replace("Nguyễn", '"Nguyễn')
    rows[5] = rows[5].replace("Rà", 'Rà"')
    problems = problems_of(excel_csv(tmp_path / "t.csv", HEADER, *rows))
    assert list(problems) == [3]
    assert problems[3].startswith("a quoted field runs from line 3 to line 7")


def test_rows_are_named_by_the_line_they_start_on(tmp_path: Path) -> None:
    """A line break in a quoted field (Alt+Enter) moved every later line number."""
    address = RA.replace("Nguyễn Thị Rà", '"Nguyễn\r\nThị Rà"')
    path = excel_csv(tmp_path / "t.csv", HEADER, address, DUC, RA.replace("1170000", "-1"))
    problems = problems_of(path)
    assert sorted(problems) == [2, 5]
    assert problems[2].startswith("a quoted field runs from line 2 to line 3 (a line break in "
                                  "a cell")


def test_the_same_programme_in_another_case_is_the_same_programme(tmp_path: Path) -> None:
    """LUONG_HUU was paid beside luong_huu: a pension twice in one period."""
    path = excel_csv(tmp_path / "t.csv", HEADER, RA, RA.replace("luong_huu", "LUONG_HUU"))
    assert sorted(problems_of(path)) == [2, 3]


def test_a_resent_row_never_takes_an_id_the_table_can_give(tmp_path: Path) -> None:
    """Retries were the id's first 32 characters and R1: row "X" resent as "XR1" would have
    read row "XR1"'s settlement as its own, and two long ids sharing 32 characters retried
    under one id."""
    long_a, long_b = "A" * 32 + "one", "A" * 32 + "two"
    assert retry_id(long_a, 1) != retry_id(long_b, 1)
    assert retry_id(long_a, 1) != retry_id(long_a, 2)
    assert all(len(retry_id(e2e, 9)) <= 35 for e2e in (long_a, "X", "é" * 35))
    path = excel_csv(tmp_path / "t.csv", HEADER + ",end_to_end_id", RA + ",X",
                     DUC + f",{retry_id('X', 1)}")
    problems = problems_of(path)
    assert list(problems) == [3]
    assert "keeps for the ids of rows sent again" in problems[3]


def test_a_name_saved_decomposed_is_read_composed(tmp_path: Path) -> None:
    """A Mac saves "Nguyễn" as letters and combining marks: a 70-letter name was three times
    as many code points, refused as over Max140Text's 140."""
    name = ("Nguyễn Thị Rà " * 10).strip()  # 139 letters and spaces
    decomposed = unicodedata.normalize("NFD", name)
    assert len(decomposed) > 140 >= len(name)
    (payment,) = read_payment_table(excel_csv(tmp_path / "t.csv", HEADER,
                                              RA.replace("Nguyễn Thị Rà", decomposed)))
    assert payment.full_name == name


def test_issue_27_a_row_with_two_problems_is_reported_with_both(tmp_path: Path) -> None:
    """Province code 099 and amount `1.000` in one row: the clerk sees both at once."""
    path = excel_csv(tmp_path / "t.csv", HEADER,
                     RA.replace("001190012345", "099190012345").replace("1170000", "1.000"))
    problem = problems_of(path)[2]
    assert "no province code" in problem and "amount_vnd '1.000'" in problem
    assert "without separators" in problem
