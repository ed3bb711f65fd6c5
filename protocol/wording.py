"""How switchlab says things to people, the same in every party's sentences and documents:
a count with its noun ("1 transfer", "2 transfers"), and the time on a document a
Vietnamese clerk signs, in Vietnam's time whatever the machine's zone.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def _vietnam_time() -> tzinfo:
    """Asia/Ho_Chi_Minh from the IANA database (the system's, or the tzdata package); where
    a machine has neither, the same fixed UTC+7 (Vietnam keeps no daylight saving)."""
    try:
        return ZoneInfo("Asia/Ho_Chi_Minh")
    except ZoneInfoNotFoundError:
        return timezone(timedelta(hours=7), "ICT")


VIETNAM_TIME = _vietnam_time()
VIETNAM_TIME_NAME = "giờ Việt Nam, UTC+7"  # said beside a time shown in VIETNAM_TIME


def count(n: int, noun: str, nouns: str | None = None) -> str:
    """`n` with thousands separators and its noun, singular for exactly one: count(1,
    "transfer") is "1 transfer", count(1_000, "transfer") "1,000 transfers". The plural is
    `noun` + "s" unless `nouns` is given (count(2, "beneficiary", "beneficiaries"); a verb
    may come with it: count(n, "row was", "rows were"))."""
    return f"{n:,} {noun if n == 1 else nouns or noun + 's'}"


def vietnam_now(moment: datetime | None = None) -> datetime:
    """`moment` (an aware datetime; now when None) in Vietnam's time, whatever the machine's
    time zone: the date a cash list is made on is Vietnam's date (a payout run at 06:00 in
    Hà Nội, 23:00 UTC the day before, is dated that morning)."""
    return (moment or datetime.now(VIETNAM_TIME)).astimezone(VIETNAM_TIME)
