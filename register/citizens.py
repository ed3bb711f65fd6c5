"""The population register's records (C06, the National Population Database): each citizen by
CCCD with name, date of birth, household and its head, residence, and life status; and the
register's answers to a ministry's list, decided here, apart from any I/O.

A register file is a CSV a user may write (columns CITIZEN_COLUMNS, `died_on` empty for the
living), read strictly: every bad line is named with every problem it has, and a file with
any is refused whole, since a register that half-loaded would call real people unknown.
"""

from __future__ import annotations

import csv
import itertools
import sys
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from protocol import reasons
from protocol.ids import citizen_id_problem
from protocol.names import same_name
from protocol.wording import count

CITIZEN_COLUMNS = ("citizen_id", "full_name", "birth_date", "household_id", "household_head",
                   "commune", "district", "province", "died_on")
MAX_CITIZENS = 20_000_000  # a province is a few million; the whole country ~100 million
MAX_TEXT_CHARS = 140  # Max140Text, as names in the scheme's messages
MAX_PROBLEMS_SHOWN = 20
ENCODING = "utf-8-sig"  # Excel's "CSV UTF-8" writes a byte-order mark
ALIVE_AND_MATCHING = ""  # a finding's code when the row is the register's living citizen


class RegisterFileError(ValueError):
    """The register file cannot be loaded: each bad line with its problems."""

    def __init__(self, path: Path, problems: list[tuple[int, str]]) -> None:
        shown = "\n".join(f"line {line}: {problem}"
                          for line, problem in problems[:MAX_PROBLEMS_SHOWN])
        more = (f"\n… and {len(problems) - MAX_PROBLEMS_SHOWN:,} more"
                if len(problems) > MAX_PROBLEMS_SHOWN else "")
        lines = count(len(problems), "bad line")
        super().__init__(f"{path}: {lines}; nothing was loaded\n{shown}{more}")
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Citizen:
    """One citizen as the register holds them. `household_head`: the CCCD of the household's
    head (the citizen's own for the head)."""

    citizen_id: str
    full_name: str
    birth_date: date
    household_id: str
    household_head: str
    commune: str
    district: str
    province: str
    died_on: date | None = None

    @property
    def alive(self) -> bool:
        return self.died_on is None

    def row(self) -> dict[str, str]:
        return {"citizen_id": self.citizen_id, "full_name": self.full_name,
                "birth_date": self.birth_date.isoformat(), "household_id": self.household_id,
                "household_head": self.household_head, "commune": self.commune,
                "district": self.district, "province": self.province,
                "died_on": self.died_on.isoformat() if self.died_on else ""}


@dataclass(frozen=True, slots=True)
class Finding:
    """The register's answer for one row of a list: `code` empty when the citizen is alive
    and the row's name (and birth date, when given) are the register's."""

    citizen_id: str
    code: str
    text: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"citizen_id": self.citizen_id, "code": self.code, "text": self.text}


def check_row(citizen: Citizen | None, citizen_id: str, full_name: str,
              birth_date: date | None) -> Finding:
    """One row of a ministry's list against the register: deceased (MD07, with the date),
    unknown (BE06), name (C601) or birth date (C602) not the register's; every problem is
    named in the text, the first in this order is the code. The name rule is the scheme's
    (protocol/names.py)."""
    if citizen is None:
        return Finding(citizen_id, reasons.UNKNOWN_CITIZEN,
                       f"{citizen_id} is not in the population register")
    problems: list[tuple[str, str]] = []
    if citizen.died_on is not None:
        problems.append((reasons.CREDITOR_DECEASED,
                         f"died on {citizen.died_on.isoformat()} (population register)"))
    if not same_name(full_name, citizen.full_name):
        problems.append((reasons.REGISTER_NAME_MISMATCH,
                         "the name is not the one in the population register"))
    if birth_date is not None and birth_date != citizen.birth_date:
        problems.append((reasons.REGISTER_BIRTH_DATE_MISMATCH,
                         "the birth date is not the one in the population register"))
    if not problems:
        return Finding(citizen_id, ALIVE_AND_MATCHING)
    return Finding(citizen_id, problems[0][0], "; ".join(text for _, text in problems))


class Register:
    """Every citizen by CCCD, in memory (~300 bytes a citizen), and households by id. The one
    writer is the register's service; deaths are its only change after loading."""

    def __init__(self, citizens: Iterable[Citizen] = ()) -> None:
        self.by_id: dict[str, Citizen] = {}
        self.households: dict[str, list[str]] = {}
        for citizen in citizens:
            self.add(citizen)

    def add(self, citizen: Citizen) -> None:
        if citizen.citizen_id in self.by_id:
            raise ValueError(f"citizen {citizen.citizen_id} is in the register twice")
        self.by_id[citizen.citizen_id] = citizen
        self.households.setdefault(citizen.household_id, []).append(citizen.citizen_id)

    def __len__(self) -> int:
        return len(self.by_id)

    def get(self, citizen_id: str) -> Citizen | None:
        return self.by_id.get(citizen_id)

    def register_death(self, citizen_id: str, died_on: date) -> Citizen:
        """Record a death; raises KeyError for an unknown citizen, ValueError for a date in
        the future or a death already recorded on another date."""
        citizen = self.by_id[citizen_id]
        if died_on > date.today():
            raise ValueError(f"died_on {died_on} is in the future")
        if citizen.died_on is not None and citizen.died_on != died_on:
            raise ValueError(f"{citizen_id} is recorded dead on {citizen.died_on} already")
        if died_on < citizen.birth_date:
            raise ValueError(f"died_on {died_on} is before the birth date")
        dead = replace(citizen, died_on=died_on)
        self.by_id[citizen_id] = dead
        return dead

    def members(self, household_id: str) -> list[Citizen]:
        """The household's citizens, head first, the dead included (their status says so)."""
        members = [self.by_id[i] for i in self.households.get(household_id, [])]
        return sorted(members, key=lambda c: c.citizen_id != c.household_head)

    def check(self, rows: Iterable[tuple[str, str, date | None]]) -> list[Finding]:
        """Each (citizen_id, full_name, birth_date or None) row's finding, in order."""
        return [check_row(self.by_id.get(cid), cid, name, born) for cid, name, born in rows]

    def write(self, path: Path) -> None:
        """The register as a file `read_register` reads back."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding=ENCODING) as file:
            writer = csv.DictWriter(file, fieldnames=CITIZEN_COLUMNS)
            writer.writeheader()
            writer.writerows(citizen.row() for citizen in self.by_id.values())


def _date(text: str, column: str) -> tuple[date | None, str | None]:
    try:
        return date.fromisoformat(text), None
    except ValueError:
        return None, f"{column} {text[:20]!r} is not a date (YYYY-MM-DD)"


def _citizen(row: Mapping[str, str]) -> tuple[Citizen | None, list[str]]:
    """A row as a citizen, or every problem it has."""
    problems = []
    for column in ("citizen_id", "household_head"):
        problem = citizen_id_problem(row[column])
        if problem:
            problems.append(f"{column} {problem}")
    for column in ("full_name", "household_id", "commune", "district", "province"):
        value = row[column]
        if not value or len(value) > MAX_TEXT_CHARS or not value.isprintable():
            problems.append(f"{column} must be 1 to {MAX_TEXT_CHARS} printable characters")
    born, problem = _date(row["birth_date"], "birth_date")
    problems += [problem] if problem else []
    died = None
    if row["died_on"]:
        died, problem = _date(row["died_on"], "died_on")
        problems += [problem] if problem else []
        if died is not None and born is not None and died < born:
            problems.append(f"died_on {died} is before birth_date {born}")
    if born is not None and born > date.today():
        problems.append(f"birth_date {born} is in the future")
    if problems or born is None:
        return None, problems
    # A place's name is shared by thousands of citizens: one string each (~150 bytes a
    # citizen saved, a province's register is millions).
    return Citizen(row["citizen_id"], row["full_name"], born, row["household_id"],
                   row["household_head"], sys.intern(row["commune"]),
                   sys.intern(row["district"]), sys.intern(row["province"]), died), []


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    with path.open(encoding=ENCODING, newline="") as file:
        reader = csv.reader(file, strict=True)
        last = 0
        for values in reader:
            yield last + 1, values
            last = reader.line_num


def read_register(path: Path) -> Register:
    """The citizens of a register file (CITIZEN_COLUMNS, any order, more columns ignored).
    Raises RegisterFileError naming every bad line and its problems (a CCCD twice, a head
    who is not in the household, a bad date…), OSError when it cannot be read."""
    problems: list[tuple[int, str]] = []
    citizens: list[Citizen] = []
    lines: dict[str, int] = {}
    try:
        rows = _rows(path)
        _, header = next(rows, (1, []))
        names = [unicodedata.normalize("NFC", name.strip().casefold()) for name in header]
        missing = [c for c in CITIZEN_COLUMNS if c not in names]
        if missing:
            raise RegisterFileError(path, [(1, f"header lacks {', '.join(missing)}")])
        for line, values in itertools.islice(rows, MAX_CITIZENS + 1):
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(names):
                problems.append((line, f"{count(len(values), 'field')} where the header has "
                                 f"{len(names)}"))
                continue
            row = {n: unicodedata.normalize("NFC", v.strip()) for n, v in zip(names, values,
                                                                              strict=True)}
            citizen, found = _citizen(row)
            if citizen is None:
                problems.append((line, "; ".join(found)))
            elif citizen.citizen_id in lines:
                problems.append((line, f"citizen_id {citizen.citizen_id} is on line "
                                 f"{lines[citizen.citizen_id]} already"))
            else:
                lines[citizen.citizen_id] = line
                citizens.append(citizen)
        if len(citizens) + len(problems) > MAX_CITIZENS:
            problems.append((line, f"more than {MAX_CITIZENS:,} citizens"))
    except (UnicodeDecodeError, csv.Error) as error:
        raise RegisterFileError(path, [(0, f"not a readable UTF-8 CSV: {error}")]) from None
    heads: dict[str, str] = {}
    for citizen in citizens:
        if citizen.citizen_id == citizen.household_head:
            first = heads.setdefault(citizen.household_id, citizen.citizen_id)
            if first != citizen.citizen_id:
                problems.append((lines[citizen.citizen_id], f"household "
                                 f"{citizen.household_id} has a head already, {first} (line "
                                 f"{lines[first]})"))
    for citizen in citizens:
        head = heads.get(citizen.household_id)
        if head is None:
            problems.append((lines[citizen.citizen_id], (
                f"household {citizen.household_id} has no head of its own (the head's line "
                "has household_head equal to its citizen_id)")))
        elif head != citizen.household_head and citizen.citizen_id != citizen.household_head:
            problems.append((lines[citizen.citizen_id], (
                f"household_head {citizen.household_head} is not the head of household "
                f"{citizen.household_id} ({head} is)")))
    if problems:
        raise RegisterFileError(path, sorted(problems))
    return Register(citizens)
