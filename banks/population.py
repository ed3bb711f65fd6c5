"""The mock world's people: beneficiaries, their citizen ids, linked accounts and entitlements.

Everything comes from one seed through one `random.Random`, so the same seed always gives the
same people, accounts, payment table and therefore the same outcome counts. Names are drawn
from faker's vi_VN name lists with that Random rather than by calling faker per person:
faker's name() costs tens of microseconds (most of a million-person population's time), and
no Faker instance means no global faker state to leak between runs.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import random
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, TypeVar

from faker.providers.person.vi_VN import Provider as VietnameseNames
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from banks.ledger import ACTIVE, BLOCKED, CLOSED, Account
from banks.payment_table import EXCEL_ENCODING
from banks.registry import DEFAULT_SHARES, PARTICIPANTS
from protocol.names import same_name
from protocol.wording import count

# Digits of a bank account number at each bank (the registry's); e-wallet and mobile-money
# accounts are the holder's 10-digit phone number, 09xxxxxxxx.
BANK_ACCOUNT_DIGITS = {bic: p.account_digits for bic, p in PARTICIPANTS.items()
                       if p.account_digits is not None}
PHONE_PREFIX, PHONE_DIGITS = "09", 10
BRANCH_DIGITS = 3  # a bank account number starts with its branch code
# Province codes of the CCCD (citizen id): its first three digits. Hà Nội, TP HCM, Hải Phòng,
# Đà Nẵng, Cần Thơ, Nam Định, Thanh Hóa, Nghệ An, Thừa Thiên Huế, Đồng Nai.
PROVINCE_CODES = ("001", "079", "031", "048", "092", "036", "038", "040", "046", "075")
DEFAULT_PAYOUT_DATE = date(2026, 11, 20)
# Where people live, for the post office's cash list: two districts of each province above,
# two communes (xã/phường) of each, and the streets of a phường's addresses (a xã's are by
# thôn). A person's place is read from the six random digits of their citizen id
# (`Beneficiary.place`): no draw of the seed's Random, so every seed keeps its people.
PLACES: dict[str, tuple[str, tuple[tuple[str, tuple[str, str]], ...]]] = {
    "001": ("Thành phố Hà Nội", (("Quận Đống Đa", ("Phường Láng", "Phường Kim Liên")),
                                 ("Huyện Đông Anh", ("Xã Uy Nỗ", "Xã Kim Chung")))),
    "079": ("Thành phố Hồ Chí Minh", (("Quận 1", ("Phường Bến Nghé", "Phường Đa Kao")),
                                      ("Huyện Củ Chi", ("Xã Tân Thông Hội", "Xã Phước Vĩnh An")))),
    "031": ("Thành phố Hải Phòng", (("Quận Lê Chân", ("Phường An Biên", "Phường Dư Hàng")),
                                    ("Huyện Thủy Nguyên", ("Xã Lập Lễ", "Xã Thủy Sơn")))),
    "048": ("Thành phố Đà Nẵng", (("Quận Hải Châu", ("Phường Thạch Thang", "Phường Hòa Cường Bắc")),
                                  ("Huyện Hòa Vang", ("Xã Hòa Phong", "Xã Hòa Tiến")))),
    "092": ("Thành phố Cần Thơ", (("Quận Ninh Kiều", ("Phường An Hòa", "Phường Xuân Khánh")),
                                  ("Huyện Phong Điền", ("Xã Nhơn Ái", "Xã Mỹ Khánh")))),
    "036": ("Tỉnh Nam Định", (("Thành phố Nam Định", ("Phường Trần Hưng Đạo", "Phường Vị Xuyên")),
                              ("Huyện Hải Hậu", ("Xã Hải Minh", "Xã Hải Đông")))),
    "038": ("Tỉnh Thanh Hóa", (("Thành phố Thanh Hóa", ("Phường Điện Biên", "Phường Ba Đình")),
                               ("Huyện Hoằng Hóa", ("Xã Hoằng Đạo", "Xã Hoằng Lộc")))),
    "040": ("Tỉnh Nghệ An", (("Thành phố Vinh", ("Phường Hưng Bình", "Phường Lê Mao")),
                             ("Huyện Nghi Lộc", ("Xã Nghi Phong", "Xã Nghi Xá")))),
    "046": ("Tỉnh Thừa Thiên Huế", (("Thành phố Huế", ("Phường Phú Hội", "Phường Vĩnh Ninh")),
                                    ("Huyện Phú Vang", ("Xã Phú Thượng", "Xã Phú Mỹ")))),
    "075": ("Tỉnh Đồng Nai", (("Thành phố Biên Hòa", ("Phường Tân Phong", "Phường Trảng Dài")),
                              ("Huyện Long Thành", ("Xã An Phước", "Xã Long An")))),
}
STREETS = ("Lê Lợi", "Trần Phú", "Nguyễn Trãi", "Hai Bà Trưng", "Quang Trung")
# The payment table's columns for the post office (docs/payment-table.md), with `places`.
PLACE_COLUMNS = ("period", "province", "district", "commune", "address")
MAX_WEIGHT = 1_000_000.0
T = TypeVar("T")
PAYMENT_TABLE_COLUMNS = ("citizen_id", "full_name", "amount_vnd", "creditor_bic", "account_id",
                         "programme", "end_to_end_id")


@dataclass(frozen=True, slots=True)
class Programme:
    """A social payment: base level times one of the coefficients, whole dong."""

    base_vnd: int
    coefficients: tuple[float, ...]
    born_from: int  # birth years of its beneficiaries, inclusive
    born_to: int


PROGRAMMES: dict[str, Programme] = {
    # pensions: the statutory base salary (lương cơ sở, 2,340,000 VND from July 2024)
    "luong_huu": Programme(2_340_000, (1.0, 1.2, 1.5, 2.0, 2.5), 1935, 1966),
    # social allowances: the social-assistance standard (Decree 20/2021), elderly, disabled,
    # orphans: coefficients 1 to 3
    "tro_cap_xa_hoi": Programme(500_000, (1.0, 1.5, 2.0, 2.5, 3.0), 1925, 2020),
    # people with meritorious services and their relatives (Decree 55/2023 standard level)
    "nguoi_co_cong": Programme(2_055_000, (1.0, 1.5, 2.0), 1925, 1975),
}


# Strict: `true` or "0.1" in a scenario file is a mistake, not a share.
Share = Annotated[float, Field(ge=0, le=1, strict=True)]
Weight = Annotated[float, Field(gt=0, le=MAX_WEIGHT, strict=True)]  # relative to the others


class Mix(BaseModel):
    """Shares of the population. `no_account` is drawn over everyone; each account fault is
    drawn, exclusively, among those with an account. Participants' and programmes' weights
    are relative. Validating raises pydantic.ValidationError (a ValueError) naming the field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    participants: dict[str, Weight] = Field(default_factory=lambda: dict(DEFAULT_SHARES))
    programmes: dict[str, Weight] = Field(default_factory=lambda: {
        "luong_huu": 0.5, "tro_cap_xa_hoi": 0.4, "nguoi_co_cong": 0.1,
    })
    no_account: Share = 0.02  # paid in cash at the post office, not through the switch
    closed: Share = 0.005  # the bank refuses AC04
    blocked: Share = 0.003  # AC06
    name_mismatch: Share = 0.004  # the payment table's name is not the bank's: BE01
    deceased: Share = 0.002  # died before the payment: MD07
    dies_after_payment: Share = 0.001  # paid, then returned by the bank (pacs.004 MD07)
    # The table names no account: the beneficiary is paid by citizen id, through the link its
    # bank registered in the switch's directory.
    by_citizen_id: Share = 0.0
    # Paid by citizen id, but the link (imported from the national registry, where the
    # citizen mistyped it, or gone stale) points at an account whose holder is someone else.
    impostor_link: Share = 0.0
    # Died after the ministry's list was made, and registered dead in the population register
    # (register/): the ministry's check against it stops them before paying; drawn over
    # everyone, with or without an account.
    died_after_list: Share = 0.0
    # A household payout in the manner of the September 2025 gift (VND 100,000 a citizen):
    # one row a household, to its head, for this many dong per member; 0: each beneficiary
    # paid for their own programme. Those without an account are the households without a
    # linked account, paid in cash.
    household_gift_vnd: int = Field(0, ge=0, le=10_000_000, strict=True)
    household_members_max: int = Field(6, ge=1, le=20, strict=True)  # the head included

    @field_validator("participants", "programmes")
    @classmethod
    def _known_and_not_empty(cls, weights: dict[str, float], info: ValidationInfo
                             ) -> dict[str, float]:
        known = PARTICIPANTS if info.field_name == "participants" else PROGRAMMES
        unknown = set(weights) - set(known)
        if unknown:
            raise ValueError(f"unknown {info.field_name} in the mix: {sorted(unknown)}; "
                             f"known: {', '.join(known)}")
        if not weights:
            raise ValueError(f"{info.field_name} need at least one positive share")
        return weights

    @model_validator(mode="after")
    def _faults_fit(self) -> Mix:
        if sum(self.fault_shares().values()) > 1:
            raise ValueError("closed, blocked, name_mismatch, deceased, dies_after_payment and "
                             "impostor_link together exceed 1")
        return self

    def fault_shares(self) -> dict[str, float]:
        return {"closed": self.closed, "blocked": self.blocked,
                "name_mismatch": self.name_mismatch, "deceased": self.deceased,
                "dies_after_payment": self.dies_after_payment,
                "impostor_link": self.impostor_link}


@dataclass(slots=True)
class Beneficiary:
    citizen_id: str
    full_name: str  # as the labour ministry's payment table has it
    programme: str
    amount_vnd: int
    participant_bic: str | None  # None: no linked account, paid in cash
    account_id: str | None
    ledger_name: str  # as the participant's ledger has it (differs on a name mismatch)
    end_to_end_id: str
    status: str = ACTIVE
    deceased: bool = False
    dies_after_payment: bool = False
    by_citizen_id: bool = False  # the table names no account: paid through the directory
    ledger_citizen_id: str | None = None  # the account's holder, when it is someone else
    died_after_list: bool = False  # registered dead in the population register since
    household_id: str = ""  # the population register's household ("": their own)
    household_head: str = ""  # its head's citizen id ("": themselves)

    @property
    def wrong_holder(self) -> bool:
        """Whether the account this beneficiary would be paid into belongs to someone else
        (another holder, or a name the bank does not know): verification must stop it."""
        return self.ledger_citizen_id is not None or not same_name(self.ledger_name,
                                                                   self.full_name)

    @property
    def place(self) -> tuple[str, str, str, str]:
        """(province, district, commune, address) where they live, from their citizen id:
        its province code, and its six random digits for the rest (PLACES)."""
        province, districts = PLACES.get(self.citizen_id[:3], PLACES["001"])
        digits = int(self.citizen_id[6:])
        district, communes = districts[digits % len(districts)]
        commune = communes[digits // 2 % len(communes)]
        address = (f"Số {digits // 4 % 200 + 1} đường {STREETS[digits // 800 % len(STREETS)]}"
                   if commune.startswith("Phường") else f"Thôn {digits // 4 % 12 + 1}")
        return province, district, commune, address

    def payment_row(self) -> tuple[str, str, int, str | None, str | None, str, str]:
        """Its line of the payment table, in PAYMENT_TABLE_COLUMNS order; no participant nor
        account when it is paid by citizen id."""
        if self.by_citizen_id:
            return (self.citizen_id, self.full_name, self.amount_vnd, "", "", self.programme,
                    self.end_to_end_id)
        return (self.citizen_id, self.full_name, self.amount_vnd, self.participant_bic,
                self.account_id, self.programme, self.end_to_end_id)


HOUSEHOLD_GIFT = "qua_tang_2025"  # the programme of a household payout's rows


@dataclass(frozen=True, slots=True)
class Member:
    """A household member who is not its head: in the population register, not in the table."""

    citizen_id: str
    full_name: str
    household_id: str


@dataclass(slots=True)
class Population:
    seed: int
    beneficiaries: list[Beneficiary]
    members: list[Member] = field(default_factory=list)  # a household payout's other members
    household_gift_vnd: int = 0  # a household payout's amount per member (Mix's)
    period: str = f"{DEFAULT_PAYOUT_DATE:%Y-%m}"  # the month paid, as the table's `period`

    def payable(self) -> Iterator[Beneficiary]:
        """Those with a linked account: the rows of the payment table."""
        return (b for b in self.beneficiaries if b.participant_bic is not None)

    def cash_list(self) -> list[Beneficiary]:
        """Those with no linked account: the post office pays them in cash; they are not in
        the payment table."""
        return [b for b in self.beneficiaries if b.participant_bic is None]

    def without_account_rows(self, cash: Iterable[Beneficiary] | None = None
                             ) -> list[dict[str, object]]:
        """`cash` (default: `cash_list()`) as rows for the post office's list: the table's
        columns for a person, with the period and their place (PLACE_COLUMNS)."""
        return [{"citizen_id": b.citizen_id, "full_name": b.full_name,
                 "amount_vnd": b.amount_vnd, "programme": b.programme,
                 "end_to_end_id": b.end_to_end_id,
                 **dict(zip(PLACE_COLUMNS, (self.period, *b.place), strict=True))}
                for b in (self.cash_list() if cash is None else cash)]

    def payment_rows(self) -> list[dict[str, object]]:
        """The payment table as dicts keyed by PAYMENT_TABLE_COLUMNS."""
        return [dict(zip(PAYMENT_TABLE_COLUMNS, b.payment_row(), strict=True))
                for b in self.payable()]

    def write_payment_table(self, path: Path, places: bool = False) -> int:
        """The CSV the labour ministry sends the treasury; returns the number of rows. With
        `places`, the columns the post office's cash list needs too (PLACE_COLUMNS): the
        demo's; the bench and the scenarios send only what paying needs."""
        path.parent.mkdir(parents=True, exist_ok=True)
        count = 0
        with path.open("w", newline="", encoding=EXCEL_ENCODING) as file:
            writer = csv.writer(file)
            writer.writerow(PAYMENT_TABLE_COLUMNS + (PLACE_COLUMNS if places else ()))
            for beneficiary in self.payable():
                writer.writerow(beneficiary.payment_row() + (
                    (self.period, *beneficiary.place) if places else ()))
                count += 1
        return count

    def accounts_for(self, bic: str) -> list[Account]:
        """The accounts a participant holds for its part of the population, to seed its
        ledger."""
        return [
            Account(account_id=b.account_id or "", holder_name=b.ledger_name,
                    citizen_id=b.ledger_citizen_id or b.citizen_id, status=b.status,
                    deceased=b.deceased or b.died_after_list,
                    dies_after_payment=b.dies_after_payment)
            for b in self.beneficiaries if b.participant_bic == bic
        ]

    def directory_links(self) -> list[Beneficiary]:
        """Those paid by citizen id: their links, which the directory must hold (an impostor
        link from the national registry, the others registered by their participant)."""
        return [b for b in self.beneficiaries if b.by_citizen_id]

    def wrong_holder_ids(self) -> frozenset[str]:
        """End-to-end ids of the payments aimed at an account someone else holds."""
        return frozenset(b.end_to_end_id for b in self.payable() if b.wrong_holder)


def _nfc(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(unicodedata.normalize("NFC", n) for n in names))


def _full_names(middles: tuple[str, ...], givens: tuple[str, ...]) -> tuple[str, ...]:
    """Every family + middle + given name, the Vietnamese order: one draw per person."""
    return tuple(f"{family} {middle} {given}" for family in _nfc(VietnameseNames.last_names)
                 for middle in _nfc(middles) for given in _nfc(givens))


MALE_NAMES = _full_names(tuple(n for n in VietnameseNames.middle_names if n != "Thị"),
                         VietnameseNames.first_names_male + VietnameseNames.first_names_unisex)
_FEMALE_GIVEN = VietnameseNames.first_names_female + VietnameseNames.first_names_unisex
FEMALE_THI_NAMES = _full_names(("Thị",), _FEMALE_GIVEN)  # most women's middle name is Thị
FEMALE_OTHER_NAMES = _full_names(tuple(n for n in VietnameseNames.middle_names
                                       if n not in ("Thị", "Văn")), _FEMALE_GIVEN)
FEMALE_THI_SHARE = 0.6


class _Draws:
    """The population's draws, all from one seeded Random's random(): a float per draw is
    about three times cheaper than Random.choice or randrange, which matters a million times."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed).random

    def below(self, n: int) -> int:
        return int(self.random() * n)

    def choice(self, items: Sequence[T]) -> T:
        return items[int(self.random() * len(items))]

    def weighted(self, chooser: tuple[list[str], list[float]]) -> str:
        names, cumulative = chooser
        return names[bisect.bisect(cumulative, self.random())]

    def full_name(self, female: bool) -> str:
        if not female:
            return self.choice(MALE_NAMES)
        return self.choice(FEMALE_THI_NAMES if self.random() < FEMALE_THI_SHARE
                           else FEMALE_OTHER_NAMES)

    def citizen_id(self, female: bool, birth_year: int, used: set[str]) -> str:
        """CCCD: province (3 digits), gender and century (0/1: 1900s male/female, 2/3:
        2000s), birth year (2), then 6 random digits; unique in the population."""
        century_gender = 2 * (birth_year // 100 - 19) + female
        prefix = f"{self.choice(PROVINCE_CODES)}{century_gender}{birth_year % 100:02d}"
        while True:
            candidate = f"{prefix}{self.below(1_000_000):06d}"
            if candidate not in used:
                used.add(candidate)
                return candidate


class _AccountNumbers:
    """Account ids unique within each participant and random-looking: the beneficiary's
    serial through a bijection of 0..10**k-1 (multiply by a unit, add an offset)."""

    MULTIPLIER = 7_919_317_973  # odd, not a multiple of 5: a unit modulo every power of ten
    PHONE = (False, PHONE_DIGITS - len(PHONE_PREFIX))

    def __init__(self, draws: _Draws, size: int) -> None:
        self.offset = draws.below(10**9)
        self.formats = {bic: (True, digits - BRANCH_DIGITS)
                        for bic, digits in BANK_ACCOUNT_DIGITS.items()}
        for bic, (_, free) in (*self.formats.items(), ("phone", self.PHONE)):
            if size > 10**free:
                raise ValueError(f"{count(size, 'beneficiary', 'beneficiaries')} do not fit "
                                 f"{bic}'s account numbers")

    def make(self, draws: _Draws, bic: str, serial: int) -> str:
        branch, digits = self.formats.get(bic, self.PHONE)
        number = f"{(serial * self.MULTIPLIER + self.offset) % 10**digits:0{digits}d}"
        if not branch:
            return PHONE_PREFIX + number
        return f"{draws.below(900) + 100}{number}"  # a branch code, 100 to 999


def _chooser(weights: Mapping[str, float]) -> tuple[list[str], list[float]]:
    """Names and cumulative shares, so that each weighted draw is one random() and a bisect.
    The last share is exactly 1.0, and random() is below 1.0: the bisect stays in range."""
    total = sum(weights.values())
    cumulative = list(itertools.accumulate(w / total for w in weights.values()))
    cumulative[-1] = 1.0
    return list(weights), cumulative


def generate_population(size: int, seed: int, mix: Mix | None = None, payout_id: str = "KBNN",
                        payout_date: date = DEFAULT_PAYOUT_DATE) -> Population:
    """`size` beneficiaries drawn from `seed`. End-to-end ids are `payout_id`, the payout
    date, the seed's last four digits and a sequence: unique within a run, at most 35 chars."""
    if size < 0:
        raise ValueError("size must be zero or more")
    if not payout_id.isalnum() or len(payout_id) > 10:
        raise ValueError("payout_id must be 1 to 10 letters or digits")
    mix = mix or Mix()
    draws = _Draws(seed)
    participants, programmes = _chooser(mix.participants), _chooser(mix.programmes)
    faults = _chooser(mix.fault_shares() | {"": 1 - sum(mix.fault_shares().values())})
    numbers = _AccountNumbers(draws, size)
    id_prefix = f"{payout_id}{payout_date:%Y%m%d}{seed % 10_000:04d}"
    used_ids: set[str] = set()
    people = []
    members: list[Member] = []
    for serial in range(size):
        programme_name = draws.weighted(programmes)
        programme = PROGRAMMES[programme_name]
        female = draws.random() < 0.5
        name = draws.full_name(female)
        birth_year = programme.born_from + draws.below(programme.born_to + 1 - programme.born_from)
        person = Beneficiary(
            citizen_id=draws.citizen_id(female, birth_year, used_ids), full_name=name,
            programme=programme_name,
            amount_vnd=round(programme.base_vnd * draws.choice(programme.coefficients)),
            participant_bic=None, account_id=None, ledger_name=name,
            end_to_end_id=f"{id_prefix}{serial:09d}",
        )
        if mix.household_gift_vnd:
            _household(person, draws, mix, used_ids, members)
        if draws.random() >= mix.no_account:
            bic = draws.weighted(participants)
            person.participant_bic = bic
            person.account_id = numbers.make(draws, bic, serial)
            _apply_fault(person, draws, draws.weighted(faults), female, used_ids)
            # Drawn only when asked for, so that other mixes keep their seeds' people.
            person.by_citizen_id = person.ledger_citizen_id is not None or (
                mix.by_citizen_id > 0 and draws.random() < mix.by_citizen_id)
        person.died_after_list = mix.died_after_list > 0 and (
            draws.random() < mix.died_after_list)
        people.append(person)
    return Population(seed=seed, beneficiaries=people, members=members,
                      household_gift_vnd=mix.household_gift_vnd,
                      period=f"{payout_date:%Y-%m}")


def _household(head: Beneficiary, draws: _Draws, mix: Mix, used_ids: set[str],
               members: list[Member]) -> None:
    """`head` as the head of a household of 1 to household_members_max citizens, paid the
    gift for each of them; the others drawn into `members`."""
    household_id = f"HK{head.citizen_id}"
    size = 1 + draws.below(mix.household_members_max)
    head.household_id, head.household_head = household_id, head.citizen_id
    head.programme, head.amount_vnd = HOUSEHOLD_GIFT, mix.household_gift_vnd * size
    for _ in range(size - 1):
        female = draws.random() < 0.5
        members.append(Member(draws.citizen_id(female, 1940 + draws.below(80), used_ids),
                              draws.full_name(female), household_id))


def _apply_fault(person: Beneficiary, draws: _Draws, fault: str, female: bool,
                 used_ids: set[str]) -> None:
    if fault == "closed":
        person.status = CLOSED
    elif fault == "blocked":
        person.status = BLOCKED
    elif fault == "name_mismatch":
        while same_name(person.ledger_name, person.full_name):
            person.ledger_name = draws.full_name(female)
    elif fault == "impostor_link":  # the account's holder: another person, born 1960-1999
        other_female = draws.random() < 0.5
        person.ledger_citizen_id = draws.citizen_id(other_female, 1960 + draws.below(40),
                                                    used_ids)
        while same_name(person.ledger_name, person.full_name):
            person.ledger_name = draws.full_name(other_female)
    elif fault == "deceased":
        person.deceased = True
    elif fault == "dies_after_payment":
        person.dies_after_payment = True
