"""The identifiers of the scheme, checked the same way everywhere.

BICFI follows ISO 9362 as the ISO 20022 schemas write it (BICFIDec2014Identifier); message,
end-to-end and transaction ids are Max35Text; a citizen id (CCCD) is 12 digits.
"""

from __future__ import annotations

import re
from typing import Final

BIC: Final = re.compile(r"[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
CITIZEN_ID: Final = re.compile(r"[0-9]{12}")
MAX_ID_CHARS: Final = 35  # Max35Text: MsgId, EndToEndId, TxId, RtrId, BizMsgIdr


def is_bic(text: str) -> bool:
    """An 8- or 11-character BIC (ISO 9362: institution, country, location, branch)."""
    return BIC.fullmatch(text) is not None


def is_max35_id(text: str) -> bool:
    """Max35Text as an id: 1 to 35 characters, none of them blank at either end."""
    return 0 < len(text) <= MAX_ID_CHARS and text == text.strip()
