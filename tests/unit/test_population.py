"""The generated population: reproducible, shaped by its mix, and consistent with the ledgers."""

from __future__ import annotations

import csv
import math
from collections import Counter
from pathlib import Path

import pytest

import banks.population as population_module
from banks.ledger import Ledger
from banks.population import (
    BANK_ACCOUNT_DIGITS,
    PARTICIPANTS,
    PAYMENT_TABLE_COLUMNS,
    PROGRAMMES,
    PROVINCE_CODES,
    Mix,
    Population,
    Programme,
    generate_population,
)
from protocol.names import same_name

SIZE = 20_000
MIX = Mix(participants={"BFTVVNVX": 0.4, "VBAAVNVX": 0.2, "EWLAVNV1": 0.3, "MMONVNV1": 0.1},
          programmes={"luong_huu": 0.5, "tro_cap_xa_hoi": 0.3, "nguoi_co_cong": 0.2},
          no_account=0.1, closed=0.05, blocked=0.04, name_mismatch=0.03, deceased=0.02,
          dies_after_payment=0.01, impostor_link=0.02, by_citizen_id=0.25)


@pytest.fixture(scope="module")
def population() -> Population:
    return generate_population(SIZE, 42, MIX)


def assert_share(count: int, trials: int, share: float) -> None:
    """Within five standard deviations of the binomial mean: fails on a wrong share, not on
    bad luck (about one run in 1.7 million)."""
    sigma = math.sqrt(trials * share * (1 - share))
    assert abs(count - trials * share) <= 5 * sigma + 1, (count, trials, share)


def test_same_seed_same_world_other_seed_another(tmp_path: Path) -> None:
    first, again, other = (generate_population(2_000, seed, MIX) for seed in (7, 7, 8))
    assert first.beneficiaries == again.beneficiaries
    first.write_payment_table(tmp_path / "a.csv")
    again.write_payment_table(tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert first.accounts_for("BFTVVNVX") == again.accounts_for("BFTVVNVX")
    assert [b.citizen_id for b in first.beneficiaries] != [b.citizen_id for b in
                                                           other.beneficiaries]
    assert first.payment_rows() != other.payment_rows()


def test_shares_of_the_mix_are_respected(population: Population) -> None:
    people = population.beneficiaries
    linked = [b for b in people if b.participant_bic is not None]
    assert_share(len(people) - len(linked), len(people), MIX.no_account)
    by_participant = Counter(b.participant_bic for b in linked)
    assert set(by_participant) == set(MIX.participants)
    for bic, share in MIX.participants.items():
        assert_share(by_participant[bic], len(linked), share)
    by_programme = Counter(b.programme for b in people)
    for programme, share in MIX.programmes.items():
        assert_share(by_programme[programme], len(people), share)
    faults = {
        "closed": sum(b.status == "closed" for b in linked),
        "blocked": sum(b.status == "blocked" for b in linked),
        "name_mismatch": sum(b.ledger_name != b.full_name and b.ledger_citizen_id is None
                             for b in linked),
        "deceased": sum(b.deceased for b in linked),
        "dies_after_payment": sum(b.dies_after_payment for b in linked),
        "impostor_link": sum(b.ledger_citizen_id is not None for b in linked),
    }
    for fault, share in MIX.fault_shares().items():
        assert_share(faults[fault], len(linked), share)
    assert sum(faults.values()) == sum(  # one fault at most per beneficiary
        b.status != "active" or b.ledger_name != b.full_name or b.deceased
        or b.dies_after_payment for b in linked)
    # Impostor links are always paid by citizen id; the others in the mix's share.
    honest = [b for b in linked if b.ledger_citizen_id is None]
    assert all(b.by_citizen_id for b in linked if b.ledger_citizen_id is not None)
    assert_share(sum(b.by_citizen_id for b in honest), len(honest), MIX.by_citizen_id)
    assert population.wrong_holder_ids() == {
        b.end_to_end_id for b in linked if b.ledger_name != b.full_name}


def test_no_faults_and_no_cash_when_the_mix_says_none() -> None:
    clean = Mix(no_account=0, closed=0, blocked=0, name_mismatch=0, deceased=0,
                dies_after_payment=0)
    people = generate_population(3_000, 3, clean).beneficiaries
    assert all(b.participant_bic and b.status == "active" and b.ledger_name == b.full_name
               and not b.deceased and not b.dies_after_payment for b in people)


def test_citizen_ids_are_unique_cccd_numbers(population: Population) -> None:
    ids = [b.citizen_id for b in population.beneficiaries]
    assert len(set(ids)) == len(ids)
    for citizen_id, programme in ((b.citizen_id, PROGRAMMES[b.programme])
                                  for b in population.beneficiaries):
        assert len(citizen_id) == 12 and citizen_id.isdigit()
        assert citizen_id[:3] in PROVINCE_CODES
        century = 1900 + 100 * (int(citizen_id[3]) // 2)
        assert programme.born_from <= century + int(citizen_id[4:6]) <= programme.born_to


def test_citizen_ids_stay_unique_when_they_crowd_one_province_and_year(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """20,000 people in 2 x 10**6 possible ids: about a hundred draws collide and are redrawn."""
    monkeypatch.setattr(population_module, "PROVINCE_CODES", ("001",))
    monkeypatch.setitem(PROGRAMMES, "one_year", Programme(500_000, (1.0,), 1950, 1950))
    people = generate_population(20_000, 5, Mix(programmes={"one_year": 1.0})).beneficiaries
    assert {b.citizen_id[:6] for b in people} == {"001050", "001150"}
    assert len({b.citizen_id for b in people}) == len(people)


def test_account_ids_look_like_each_participant_and_are_unique(population: Population) -> None:
    by_participant: dict[str, list[str]] = {}
    for b in population.payable():
        assert b.participant_bic is not None and b.account_id is not None
        by_participant.setdefault(b.participant_bic, []).append(b.account_id)
    for bic, ids in by_participant.items():
        assert len(set(ids)) == len(ids), bic
        assert all(i.isdigit() for i in ids), bic
        if PARTICIPANTS[bic].kind == "bank":
            assert {len(i) for i in ids} == {BANK_ACCOUNT_DIGITS[bic]}
            assert 10 <= BANK_ACCOUNT_DIGITS[bic] <= 14
        else:
            assert all(len(i) == 10 and i.startswith("09") for i in ids), bic


def test_names_are_vietnamese_and_a_mismatch_is_another_name(population: Population) -> None:
    names = [b.full_name for b in population.beneficiaries]
    assert all(len(name.split()) >= 3 for name in names)
    assert sum(not name.isascii() for name in names) > len(names) // 2  # diacritics
    assert any(name.startswith("Nguyễn ") for name in names)
    mismatched = [b for b in population.beneficiaries if b.ledger_name != b.full_name]
    assert mismatched
    assert not any(same_name(b.ledger_name, b.full_name) for b in mismatched)


def test_amounts_are_base_times_coefficient_in_whole_dong(population: Population) -> None:
    for b in population.beneficiaries:
        programme = PROGRAMMES[b.programme]
        assert isinstance(b.amount_vnd, int)
        assert b.amount_vnd in {round(programme.base_vnd * c) for c in programme.coefficients}
    allowances = {b.amount_vnd for b in population.beneficiaries
                  if b.programme == "tro_cap_xa_hoi"}
    assert allowances == {500_000, 750_000, 1_000_000, 1_250_000, 1_500_000}


def test_payment_table_holds_the_linked_and_the_cash_list_the_rest(
        population: Population, tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    assert population.write_payment_table(path) == len(list(population.payable()))
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # Excel shows the names right
    with path.open(encoding="utf-8-sig", newline="") as file:
        reader = csv.DictReader(file)
        assert tuple(reader.fieldnames or ()) == PAYMENT_TABLE_COLUMNS
        rows = list(reader)
    assert rows == [{k: str(v) for k, v in row.items()} for row in population.payment_rows()]
    e2e_ids = [row["end_to_end_id"] for row in rows]
    assert len(set(e2e_ids)) == len(e2e_ids) and max(map(len, e2e_ids)) <= 35
    assert all(row["end_to_end_id"].startswith("KBNN20261120") for row in rows)
    cash = population.cash_list()
    assert {b.citizen_id for b in cash}.isdisjoint(row["citizen_id"] for row in rows)
    assert len(cash) + len(rows) == SIZE
    assert all(b.account_id is None for b in cash)


def test_each_participant_ledger_answers_as_the_population_says(population: Population) -> None:
    expected = Counter()
    answered = Counter()
    for bic in MIX.participants:
        ledger = Ledger()
        ledger.open_accounts(population.accounts_for(bic))
        for b in population.payable():
            if b.participant_bic != bic:
                continue
            assert b.account_id is not None
            answered[ledger.check(b.account_id, b.full_name, b.citizen_id)] += 1
            expected[{"closed": "AC04", "blocked": "AC06"}.get(b.status) or (
                "MD07" if b.deceased else "BE01" if b.ledger_name != b.full_name else None)] += 1
    assert answered == expected
    assert set(answered) == {None, "AC04", "AC06", "MD07", "BE01"}


@pytest.mark.parametrize(("changes", "message"), [
    ({"participants": {"XXXXVNVX": 1.0}}, "unknown participants"),
    ({"programmes": {"luong_huu": 0.0}}, "programmes.luong_huu\n  Input should be greater than 0"),
    ({"closed": 0.6, "blocked": 0.6}, "exceed 1"),
    ({"no_account": 1.5}, "no_account\n  Input should be less than or equal to 1"),
])
def test_a_nonsensical_mix_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Mix(**changes)  # type: ignore[arg-type]
