"""The population register's records and answers (register/citizens.py), and the worked
examples of docs/population.md, which must be what the code reads and answers."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import pytest

from banks.population import Mix, generate_population
from lab.citizens import register_of, write_verdicts
from register.citizens import RegisterFileError, read_register
from register.service import ChecksIn

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples" / "population"
HEADER = ("citizen_id,full_name,birth_date,household_id,household_head,commune,district,"
          "province,died_on")
RA = "001190012345,Nguyễn Thị Rà,1990-03-14,HK001,001190012345,Láng Hạ,Đống Đa,Hà Nội,"


def test_the_worked_register_and_checks_are_what_the_code_reads_and_answers() -> None:
    register = read_register(EXAMPLES / "register.csv")
    asked = ChecksIn.model_validate(json.loads((EXAMPLES / "checks-request.json").read_text(
        encoding="utf-8")))
    findings = register.check((r.citizen_id, r.full_name, r.birth_date) for r in asked.rows)
    answer = json.loads((EXAMPLES / "checks-answer.json").read_text(encoding="utf-8"))
    assert {"findings": [f.as_dict() for f in findings]} == answer
    assert [c.full_name for c in register.members("HK001")] == ["Nguyễn Thị Rà",
                                                                 "Nguyễn Văn Hùng"]


def test_a_register_file_with_bad_lines_is_refused_naming_every_problem(
        tmp_path: Path) -> None:
    path = tmp_path / "register.csv"
    path.write_text("\n".join([
        HEADER, RA,
        "003190012345,Nguyễn Văn A,1990-13-01,HK002,003190012345,x,y,z,",  # two problems
        RA,  # twice
        "079090054321,Trần Văn Đức,1990-07-02,HK001,079090054321,x,y,z,",  # a second head
        "036190011111,Lê Thị Hoa,1990-01-20,HK009,001190012345,x,y,z,2020-01-01",
        "038090022222,Phạm Văn Minh,1990-05-05,HK001,036190011111,x,y,z,",
    ]) + "\n", encoding="utf-8")
    with pytest.raises(RegisterFileError) as refused:
        read_register(path)
    problems = dict(refused.value.problems)
    assert "no province code" in problems[3] and "is not a date" in problems[3]
    assert "on line 2 already" in problems[4]
    assert "household HK001 has a head already, 001190012345 (line 2)" in problems[5]
    assert "household HK009 has no head of its own" in problems[6]
    assert "household_head 036190011111 is not the head of household HK001" in problems[7]
    assert "nothing was loaded" in str(refused.value)


def test_a_death_is_recorded_once_and_never_in_the_future(tmp_path: Path) -> None:
    path = tmp_path / "register.csv"
    path.write_text(f"{HEADER}\n{RA}\n", encoding="utf-8-sig")
    register = read_register(path)
    with pytest.raises(ValueError, match="in the future"):
        register.register_death("001190012345", date(2999, 1, 1))
    assert register.register_death("001190012345", date(2026, 10, 1)).died_on == date(
        2026, 10, 1)
    with pytest.raises(ValueError, match="recorded dead on 2026-10-01 already"):
        register.register_death("001190012345", date(2026, 10, 2))
    with pytest.raises(KeyError):
        register.register_death("079090054321", date(2026, 10, 1))
    (finding,) = register.check([("001190012345", "Nguyễn Thị Rà", date(1990, 3, 14))])
    assert (finding.code, finding.text) == ("MD07", "died on 2026-10-01 (population register)")


def test_a_generated_household_payout_and_its_register_agree(tmp_path: Path) -> None:
    """One row a household, to its head, for the gift times its members; the register the lab
    makes of it reads back whole, each household with its one head."""
    population = generate_population(500, 2025, Mix(household_gift_vnd=100_000,
                                                    died_after_list=0.1))
    register = register_of(population, date(2026, 11, 20))
    register.write(tmp_path / "register.csv")
    again = read_register(tmp_path / "register.csv")
    assert len(again) == len(population.beneficiaries) + len(population.members)
    for head in population.beneficiaries:
        members = again.members(head.household_id)
        assert members[0].citizen_id == head.citizen_id == head.household_head
        assert head.amount_vnd == 100_000 * len(members)
        assert all(m.household_head == head.citizen_id for m in members)
        assert (members[0].died_on is not None) == head.died_after_list
    dead = sum(b.died_after_list for b in population.beneficiaries)
    assert 25 <= dead <= 75  # 10 % of 500, drawn


def test_link_verdicts_open_in_excel_as_text_never_as_formulas(tmp_path: Path) -> None:
    """The attacker's note: the verdicts file of `switchlab link` wrote the register's answer
    as it came; a value that starts like a formula is shown as text in Excel ('=…)."""
    path = tmp_path / "verdicts.csv"
    write_verdicts(path, [{"citizen_id": "001190012345", "status": "refused",
                           "reason": '=HYPERLINK("http://evil.example","x")'}])
    with path.open(encoding="utf-8-sig", newline="") as file:
        (row,) = list(csv.DictReader(file))
    assert row == {"citizen_id": "001190012345", "status": "refused",
                   "reason": '\'=HYPERLINK("http://evil.example","x")'}
