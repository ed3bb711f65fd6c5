"""The identifiers of the scheme, checked the same way everywhere.

BICFI follows ISO 9362 as the ISO 20022 schemas write it (BICFIDec2014Identifier); message,
end-to-end and transaction ids are Max35Text; a citizen id (CCCD) is 12 digits with the
structure below.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Final

BIC: Final = re.compile(r"[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
CITIZEN_ID: Final = re.compile(r"[0-9]{12}")
MAX_ID_CHARS: Final = 35  # Max35Text: MsgId, EndToEndId, TxId, RtrId, BizMsgIdr
# The TxId the switch forwards a transfer under when its end-to-end id was used first by
# another debtor (ids belong to their sender, issue #22): the creditor tells the two apart by
# it (switch/transfer.py forward_tx_id). A creditor keys what it books by end-to-end id and
# TxId.
FORWARD_TX_PREFIX: Final = "SWT"


def booking_key(end_to_end_id: str, tx_id: str | None) -> str:
    """What a creditor keys a received transfer by: its end-to-end id, with the TxId when the
    switch forwarded it under one of its own (FORWARD_TX_PREFIX); "\x1f" cannot be in XML."""
    if tx_id and tx_id.startswith(FORWARD_TX_PREFIX):
        return f"{end_to_end_id}\x1f{tx_id}"
    return end_to_end_id


def wire_end_to_end_id(key: str) -> str:
    """The end-to-end id of a booking_key (or of the switch's scoped key)."""
    return key.partition("\x1f")[0]

# The personal identification number printed on the CCCD (citizen identity card), as Decree
# 137/2015/ND-CP art. 13 defines it and Circular 59/2021/TT-BCA art. 7 (which replaced
# Circular 07/2016/TT-BCA) codes it:
#   digits 1-3   the province (or centrally-run city) where the birth was registered,
#                from the Circular's appendix, the codes of Decision 124/2004/QD-TTg;
#   digit 4      century of birth and gender: 20th century (1900-1999) male 0, female 1;
#                21st (2000-2099) male 2, female 3; 22nd 4/5; 23rd 6/7; 24th 8/9;
#   digits 5-6   the last two digits of the year of birth;
#   digits 7-12  a random number.
# So the first six digits fix a birth year, which cannot lie in the future. Births registered
# abroad carry a country code instead of a province code; switchlab's population is born in
# Vietnam, and such ids are refused here (a documented limit).
PROVINCE_CODES: Final[dict[str, str]] = {
    "001": "Hà Nội", "002": "Hà Giang", "004": "Cao Bằng", "006": "Bắc Kạn",
    "008": "Tuyên Quang", "010": "Lào Cai", "011": "Điện Biên", "012": "Lai Châu",
    "014": "Sơn La", "015": "Yên Bái", "017": "Hòa Bình", "019": "Thái Nguyên",
    "020": "Lạng Sơn", "022": "Quảng Ninh", "024": "Bắc Giang", "025": "Phú Thọ",
    "026": "Vĩnh Phúc", "027": "Bắc Ninh", "030": "Hải Dương", "031": "Hải Phòng",
    "033": "Hưng Yên", "034": "Thái Bình", "035": "Hà Nam", "036": "Nam Định",
    "037": "Ninh Bình", "038": "Thanh Hóa", "040": "Nghệ An", "042": "Hà Tĩnh",
    "044": "Quảng Bình", "045": "Quảng Trị", "046": "Thừa Thiên Huế", "048": "Đà Nẵng",
    "049": "Quảng Nam", "051": "Quảng Ngãi", "052": "Bình Định", "054": "Phú Yên",
    "056": "Khánh Hòa", "058": "Ninh Thuận", "060": "Bình Thuận", "062": "Kon Tum",
    "064": "Gia Lai", "066": "Đắk Lắk", "067": "Đắk Nông", "068": "Lâm Đồng",
    "070": "Bình Phước", "072": "Tây Ninh", "074": "Bình Dương", "075": "Đồng Nai",
    "077": "Bà Rịa - Vũng Tàu", "079": "Hồ Chí Minh", "080": "Long An", "082": "Tiền Giang",
    "083": "Bến Tre", "084": "Trà Vinh", "086": "Vĩnh Long", "087": "Đồng Tháp",
    "089": "An Giang", "091": "Kiên Giang", "092": "Cần Thơ", "093": "Hậu Giang",
    "094": "Sóc Trăng", "095": "Bạc Liêu", "096": "Cà Mau",
}


def is_bic(text: str) -> bool:
    """An 8- or 11-character BIC (ISO 9362: institution, country, location, branch)."""
    return BIC.fullmatch(text) is not None


def is_max35_id(text: str) -> bool:
    """Max35Text as an id: 1 to 35 characters, none of them blank at either end."""
    return 0 < len(text) <= MAX_ID_CHARS and text == text.strip()


def birth_year(citizen_id: str) -> int:
    """The year of birth a well-formed citizen id stands for (digits 4 to 6)."""
    return 1900 + 100 * (int(citizen_id[3]) // 2) + int(citizen_id[4:6])


def citizen_id_problem(text: str, today: date | None = None) -> str | None:
    """Why `text` is not a citizen id (CCCD) by the rule above, or None when it is one.

    The sentence names the digits at fault, for a table's line or an API's answer.
    """
    if not CITIZEN_ID.fullmatch(text):
        return f"{text[:40]!r} is not 12 digits"
    if text[:3] not in PROVINCE_CODES:
        return f"{text} starts with {text[:3]}, which is no province code (Circular 59/2021)"
    year = birth_year(text)
    this_year = (today or date.today()).year
    if year > this_year:
        return (f"{text}: century and gender digit {text[3]} with year {text[4:6]} means "
                f"born in {year}, which is in the future")
    return None

