"""Field types the participants' configurations share, so a BIC or a URL is checked the same
way in a bank's, the treasury's and a scenario's settings (keys: protocol/keys.py)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from banks.registry import PARTICIPANTS
from protocol.ids import is_bic

MAX_URL_CHARS = 2_048


def _bic(text: str) -> str:
    if not is_bic(text):
        raise ValueError(f"{text!r} is not a BIC (ISO 9362: 8 or 11 capitals and digits)")
    return text


def _lab_participant(text: str) -> str:
    if text not in PARTICIPANTS:
        raise ValueError(f"{text!r} is not one of the lab's participants "
                         f"({', '.join(PARTICIPANTS)})")
    return text


Bic = Annotated[str, AfterValidator(_bic)]
LabParticipantBic = Annotated[str, AfterValidator(_lab_participant)]  # banks/registry.py's cast
HttpUrl = Annotated[str, Field(pattern=r"^https?://", max_length=MAX_URL_CHARS)]
