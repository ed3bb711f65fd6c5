"""The mock world's people: beneficiaries, their citizen ids, linked accounts and entitlements.

Everything comes from one seed, so the same seed always gives the same people, accounts,
payment table and therefore the same outcome counts. Names are drawn from faker's vi_VN
lists with a seeded Random rather than by calling faker per person: faker's name() costs
tens of microseconds, which is most of a million-person population's generation time.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from faker.providers.person.vi_VN import Provider as VietnameseNames

from banks.ledger import Account

TREASURY_BIC = "TRSYVNV1"  # made up: the State Treasury's participant code in this lab
PARTICIPANTS: dict[str, tuple[str, str]] = {
    "BFTVVNVX": ("Vietcombank", "bank"),
    "ICBVVNVX": ("VietinBank", "bank"),
    "BIDVVNVX": ("BIDV", "bank"),
    "VBAAVNVX": ("Agribank", "bank"),
    "EWLAVNV1": ("E-wallet A (made up)", "ewallet"),
    "EWLBVNV1": ("E-wallet B (made up)", "ewallet"),
    "MMONVNV1": ("Mobile money (made up)", "mobile_money"),
}
# Province codes of the CCCD (citizen id): the first three digits.
PROVINCE_CODES = ("001", "079", "031", "048", "092", "036", "038", "040", "046", "075")
# Amount model: a base level times a coefficient (Decree 20/2021 style social allowances).
PROGRAMMES: dict[str, tuple[int, tuple[float, ...]]] = {
    "luong_huu": (2_340_000, (1.0, 1.2, 1.5, 2.0, 2.5)),
    "tro_cap_xa_hoi": (500_000, (1.0, 1.5, 2.0, 2.5, 3.0)),
    "nguoi_co_cong": (2_055_000, (1.0, 1.5, 2.0)),
}


@dataclass(frozen=True, slots=True)
class Mix:
    """Shares of the population; each fault share is drawn among those with an account."""

    participants: dict[str, float] = field(default_factory=lambda: {
        "BFTVVNVX": 0.30, "ICBVVNVX": 0.25, "BIDVVNVX": 0.20, "EWLAVNV1": 0.15,
        "EWLBVNV1": 0.10,
    })
    programmes: dict[str, float] = field(default_factory=lambda: {
        "luong_huu": 0.5, "tro_cap_xa_hoi": 0.4, "nguoi_co_cong": 0.1,
    })
    no_account: float = 0.02
    closed: float = 0.005
    blocked: float = 0.003
    name_mismatch: float = 0.004
    deceased: float = 0.002
    dies_after_payment: float = 0.001


@dataclass(slots=True)
class Beneficiary:
    citizen_id: str
    full_name: str  # as the labour ministry's table has it
    programme: str
    amount_vnd: int
    participant_bic: str | None  # None: no linked account, paid in cash
    account_id: str | None
    ledger_name: str  # as the bank has it (differs on a name mismatch)
    status: str = "active"
    deceased: bool = False
    dies_after_payment: bool = False
    end_to_end_id: str = ""


@dataclass(slots=True)
class Population:
    seed: int
    beneficiaries: list[Beneficiary]

    def payable(self) -> Iterator[Beneficiary]:
        return (b for b in self.beneficiaries if b.participant_bic is not None)

    def cash_list(self) -> list[Beneficiary]:
        """Those with no linked account: the post office pays them in cash."""
        return [b for b in self.beneficiaries if b.participant_bic is None]

    def payment_rows(self) -> list[dict[str, object]]:
        return [
            {"citizen_id": b.citizen_id, "full_name": b.full_name, "amount_vnd": b.amount_vnd,
             "creditor_bic": b.participant_bic, "account_id": b.account_id,
             "programme": b.programme, "end_to_end_id": b.end_to_end_id}
            for b in self.payable()
        ]

    def write_payment_table(self, path: Path) -> int:
        """The CSV the labour ministry sends the treasury; returns the number of rows."""
        rows = self.payment_rows()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=list(PAYMENT_TABLE_COLUMNS))
            writer.writeheader()
            writer.writerows(rows)
        return len(rows)

    def accounts_for(self, bic: str) -> list[Account]:
        """The ledger a participant holds for its part of the population."""
        return [
            Account(account_id=b.account_id or "", holder_name=b.ledger_name,
                    citizen_id=b.citizen_id, status=b.status, deceased=b.deceased,
                    dies_after_payment=b.dies_after_payment)
            for b in self.beneficiaries if b.participant_bic == bic
        ]


PAYMENT_TABLE_COLUMNS = ("citizen_id", "full_name", "amount_vnd", "creditor_bic", "account_id",
                         "programme", "end_to_end_id")


def _name(rng: random.Random) -> str:
    female = rng.random() < 0.5
    first = rng.choice(VietnameseNames.first_names_female if female
                       else VietnameseNames.first_names_male)
    middle = "Thị" if female and rng.random() < 0.6 else rng.choice(VietnameseNames.middle_names)
    return f"{rng.choice(VietnameseNames.last_names)} {middle} {first}"


def _citizen_id(rng: random.Random, used: set[str]) -> str:
    while True:
        century_gender = rng.choice("0123")  # 0/1: born 1900s male/female; 2/3: 2000s
        birth_year = rng.randrange(30, 100) if century_gender in "01" else rng.randrange(0, 10)
        candidate = (f"{rng.choice(PROVINCE_CODES)}{century_gender}{birth_year:02d}"
                     f"{rng.randrange(1_000_000):06d}")
        if candidate not in used:
            used.add(candidate)
            return candidate


def _account_id(rng: random.Random, kind: str, serial: int) -> str:
    if kind == "bank":
        return f"{rng.randrange(10, 100)}{serial:010d}"
    return f"09{rng.randrange(10_000_000, 100_000_000)}{serial % 10}"


def generate_population(size: int, seed: int, mix: Mix | None = None,
                        payout_id: str = "KBNN") -> Population:
    """`size` beneficiaries drawn from `seed`; end-to-end ids are `payout_id` + sequence."""
    if size < 0:
        raise ValueError("size must be zero or more")
    mix = mix or Mix()
    unknown = set(mix.participants) - set(PARTICIPANTS)
    if unknown:
        raise ValueError(f"unknown participants in the mix: {sorted(unknown)}")
    rng = random.Random(seed)
    bics, bic_weights = list(mix.participants), list(mix.participants.values())
    programmes, programme_weights = list(mix.programmes), list(mix.programmes.values())
    used_ids: set[str] = set()
    people = []
    for serial in range(size):
        programme = rng.choices(programmes, programme_weights)[0]
        base_vnd, coefficients = PROGRAMMES[programme]
        name = _name(rng)
        person = Beneficiary(
            citizen_id=_citizen_id(rng, used_ids), full_name=name, programme=programme,
            amount_vnd=int(base_vnd * rng.choice(coefficients)), participant_bic=None,
            account_id=None, ledger_name=name,
            end_to_end_id=f"{payout_id[:8]}{seed % 10_000:04d}{serial:09d}",
        )
        if rng.random() >= mix.no_account:
            bic = rng.choices(bics, bic_weights)[0]
            person.participant_bic = bic
            person.account_id = _account_id(rng, PARTICIPANTS[bic][1], serial)
            _apply_faults(person, rng, mix)
        people.append(person)
    return Population(seed=seed, beneficiaries=people)


def _apply_faults(person: Beneficiary, rng: random.Random, mix: Mix) -> None:
    draw = rng.random()
    for share, fault in (
        (mix.closed, "closed"), (mix.blocked, "blocked"), (mix.name_mismatch, "mismatch"),
        (mix.deceased, "deceased"), (mix.dies_after_payment, "dies_after_payment"),
    ):
        if draw < share:
            if fault in ("closed", "blocked"):
                person.status = fault
            elif fault == "mismatch":
                person.ledger_name = _name(rng)
            elif fault == "deceased":
                person.deceased = True
            else:
                person.dies_after_payment = True
            return
        draw -= share
