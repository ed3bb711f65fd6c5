"""The scheme's rule for Vietnamese names (protocol/names.py) on real-looking cases, and the
citizen-id rule (protocol/ids.py): what a bank, the switch and the treasury all rely on."""

from __future__ import annotations

import unicodedata
from datetime import date

import pytest

from protocol.ids import PROVINCE_CODES, birth_year, citizen_id_problem
from protocol.names import mask_name, same_name

NFD = lambda text: unicodedata.normalize("NFD", text)  # noqa: E731

# (as the bank's ledger holds it, as the table or the asker writes it, same person?)
NAME_TABLE = [
    # case, spacing, encoding
    ("Nguyễn Thị Ra", "NGUYỄN THỊ RA", True),
    ("Nguyễn Thị Ra", "nguyễn thị ra", True),
    ("Nguyễn Thị Ra", "  Nguyễn   Thị  Ra ", True),
    ("Nguyễn Thị Ra", "Nguyễn\u00a0Thị\tRa", True),  # non-breaking space, tab
    ("Nguyễn Thị Ra", NFD("Nguyễn Thị Ra"), True),  # decomposed (macOS, some web forms)
    ("Trần Văn Đức", NFD("TRẦN VĂN ĐỨC"), True),
    ("Phạm Thị Ngọc Ánh", "Phạm\u200b Thị Ngọc Ánh", True),  # zero-width space pasted in
    # typed without diacritics, as on a keyboard without Vietnamese input
    ("Nguyễn Thị Ra", "Nguyen Thi Ra", True),
    ("NGUYỄN THỊ RA", "Nguyen Thi Ra", True),
    ("Trần Văn Đức", "Tran Van Duc", True),
    ("Đặng Thị Thu Hương", "DANG THI THU HUONG", True),
    ("NGUYEN VAN HUNG", "Nguyễn Văn Hùng", True),  # a core system that stores no diacritics
    ("Lê Thị Mai", "Le Thi Mai", True),
    # tone mark placement, old style and new
    ("Nguyễn Thị Hòa", "Nguyễn Thị Hoà", True),
    ("Lê Thị Thủy", "Lê Thị Thuỷ", True),
    ("Trần Văn Khỏe", "Trần Văn Khoẻ", True),
    ("Võ Thị Thúy", "VÕ THỊ THUÝ", True),
    # minority names and apostrophes
    ("H'Hen Niê", "H’ Hen Niê", True),
    ("Y Moan Êban", "Y MOAN ÊBAN", True),
    # a different person, or a different name
    ("Nguyễn Thị Ra", "Nguyễn Thị Rà", False),  # one tone: another given name
    ("Nguyễn Thị Rà", "Nguyễn Thị Ra", False),
    ("Lê Văn Lệ", "Lê Văn Lê", False),
    ("Nguyễn Văn An", "Nguyễn Văn Ân", False),  # a vowel mark
    ("Trần Thị Thu", "Trần Thị Thư", False),
    ("Đỗ Văn Nam", "Do Van Nam Anh", False),  # an extra word
    ("Nguyễn Thị Ra", "Nguyễn Ra", False),  # a missing middle name
    ("Nguyễn Thị Ra", "Ra Nguyễn Thị", False),  # another order
    ("Nguyễn Thị Ra", "Nguyễn Thi Ra", False),  # some diacritics written: they must agree
    ("Phạm Minh Chính", "Phạm Minh Chinh", False),
    ("Hoàng Văn Tùng", "Hoang Van Tung Lam", False),
    ("Bùi Thị Xuân", "Bùi Thị Xuân Mai", False),
    ("Nguyễn Thị Ra", "", False),
    ("", "", False),
    ("Nguyễn Thị Ra", "Nguyễn Thị Ra" + " x" * 80, False),  # over Max140Text: no name
    ("Vũ Văn Hải", "Vu Van Hai", True),
    ("Dương Thị Hạnh", "Duong Thi Hanh", True),
    ("Dương Thị Hạnh", "Đuong Thi Hanh", False),  # đ is a diacritic: then all must agree
]


@pytest.mark.parametrize(("ledger", "written", "same"), NAME_TABLE)
def test_vietnamese_names_match_by_the_schemes_rule(ledger: str, written: str,
                                                     same: bool) -> None:
    assert same_name(ledger, written) is same
    assert same_name(written, ledger) is same  # the rule does not care who holds which


def test_the_table_is_large_and_mixed() -> None:
    assert len(NAME_TABLE) >= 30
    assert sum(same for *_, same in NAME_TABLE) >= 12 <= sum(not s for *_, s in NAME_TABLE)


@pytest.mark.parametrize(("name", "masked"), [
    ("Nguyễn Thị Rà", "N***** T** R*"),
    ("nguyễn   thị rà", "N***** T** R*"),
    ("Trần Văn Đức", "T*** V** D**"),
    ("Đặng Thị Thu Hương", "D*** T** T** H****"),
    ("H'Hen Niê", "H**** N**"),
    ("Y Moan", "Y M***"),
])
def test_a_shown_name_is_masked_initials_kept(name: str, masked: str) -> None:
    assert mask_name(name) == masked
    # Nothing but initials: no letter after the first of a word survives.
    assert all(set(word[1:]) <= {"*"} for word in mask_name(name).split())


@pytest.mark.parametrize(("citizen_id", "problem"), [
    ("001190012345", None),  # Hà Nội, female, born 1990
    ("079090054321", None),  # Hồ Chí Minh, male, 1990
    ("096300012345", None),  # Cà Mau, female, born 2000
    ("001225012345", "in the future"),  # male, 2025 is past 2024: not yet born
    ("001426012345", "in the future"),  # 22nd century
    ("003190012345", "no province code"),  # 003 is not used
    ("100190012345", "no province code"),
    ("00119001234", "not 12 digits"),
    ("0011900123456", "not 12 digits"),
    ("00119001234A", "not 12 digits"),
    ("００１１９００１２３４５", "not 12 digits"),  # full-width digits
    ("", "not 12 digits"),
])
def test_a_citizen_id_follows_the_cccd_structure(citizen_id: str, problem: str | None) -> None:
    found = citizen_id_problem(citizen_id, today=date(2024, 6, 1))
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_the_fourth_digit_gives_century_and_the_next_two_the_year() -> None:
    assert [birth_year(f"001{d}45000000") for d in "0123"] == [1945, 1945, 2045, 2045]
    assert len(PROVINCE_CODES) == 63  # the provinces and centrally-run cities
