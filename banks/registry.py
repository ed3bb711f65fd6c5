"""The lab's cast, in one place: the switch's BIC, the treasury, and each mock participant with
its name, kind and share of beneficiaries (a made-up but plausible market).

The four banks' BICs are real; the e-wallets', the mobile-money operator's, the treasury's and
the switch's codes are made up: no institution holds them. The population, the demo, the
bench, the scenarios and the load tests all read this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class LabParticipant:
    bic: str
    name: str
    kind: str  # bank, ewallet, mobile_money or treasury
    share: float  # of the beneficiaries in the default payout; 0 for those with none
    account_digits: int | None = None  # of an account number; None: the holder's phone number


SWITCH_BIC: Final = "SWLBVNVX"
TREASURY: Final = LabParticipant("TRSYVNV1", "Kho bạc Nhà nước (mock)", "treasury", 0.0)
TREASURY_BIC: Final = TREASURY.bic
PARTICIPANTS: Final[dict[str, LabParticipant]] = {p.bic: p for p in (
    # Account numbers: typical lengths at each bank, 10 to 14 digits.
    LabParticipant("BFTVVNVX", "Vietcombank", "bank", 0.30, account_digits=13),
    LabParticipant("ICBVVNVX", "VietinBank", "bank", 0.25, account_digits=12),
    LabParticipant("BIDVVNVX", "BIDV", "bank", 0.20, account_digits=14),
    LabParticipant("VBAAVNVX", "Agribank", "bank", 0.0, account_digits=13),
    LabParticipant("EWLAVNV1", "E-wallet A (made up)", "ewallet", 0.15),
    LabParticipant("EWLBVNV1", "E-wallet B (made up)", "ewallet", 0.10),
    LabParticipant("MMONVNV1", "Mobile money (made up)", "mobile_money", 0.0),
)}
# The participants of the default payout (demo, bench, load tests), with their shares.
DEFAULT_SHARES: Final[dict[str, float]] = {
    bic: p.share for bic, p in PARTICIPANTS.items() if p.share > 0}
