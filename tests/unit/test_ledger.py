"""A bank's ledger: checks, holds, credits at most once, returns, and what survives a restart."""

from __future__ import annotations

import sqlite3
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest

from banks.ledger import Account, Hold, Ledger

MAI = Account("0071000000001", "Lê Thị Mai", "001190000001", balance_vnd=100)
CLOSED = Account("0071000000002", "Trần Văn Đức", "001190000002", status="closed")
BLOCKED = Account("0071000000003", "Phạm Văn An", "001190000003", status="blocked")
DEAD = Account("0071000000004", "Vũ Thị Lan", "001190000004", deceased=True)
DYING = Account("0071000000005", "Nguyễn Văn Bình", "001190000005", dies_after_payment=True)
ACCOUNTS = [MAI, CLOSED, BLOCKED, DEAD, DYING]


def hold_for(account: Account, n: int, amount_vnd: int = 1_000_000) -> Hold:
    return Hold(f"E2E{n:04d}", f"TX{n:04d}", account.account_id, amount_vnd)


@pytest.fixture(params=["memory", "sqlite"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    book = Ledger(tmp_path / "ledger.sqlite" if request.param == "sqlite" else None)
    book.open_accounts(ACCOUNTS)
    yield book
    book.close()


@pytest.mark.parametrize(("account", "name", "citizen_id", "reason"), [
    (Account("9999", "x", "0"), "Lê Thị Mai", None, "AC01"),
    (CLOSED, CLOSED.holder_name, CLOSED.citizen_id, "AC04"),
    (BLOCKED, BLOCKED.holder_name, BLOCKED.citizen_id, "AC06"),
    (DEAD, DEAD.holder_name, DEAD.citizen_id, "MD07"),
    (MAI, "Lê Thị Mại", MAI.citizen_id, "BE01"),  # one diacritic off
    (MAI, "Le Thi Mai", MAI.citizen_id, None),  # typed without diacritics (protocol/names.py)
    (MAI, "Lê Thi Mai", MAI.citizen_id, "BE01"),  # some diacritics written: they must agree
    (MAI, MAI.holder_name, "001190000009", "BE01"),  # someone else's citizen id
    (MAI, "  lÊ   THỊ mai ", MAI.citizen_id, None),  # case and spacing do not matter
    (MAI, unicodedata.normalize("NFD", MAI.holder_name), MAI.citizen_id, None),
    (MAI, MAI.holder_name, None, None),  # no citizen id in the message: the name decides
])
def test_check_gives_the_iso_reason(ledger: Ledger, account: Account, name: str,
                                    citizen_id: str | None, reason: str | None) -> None:
    assert ledger.check(account.account_id, name, citizen_id) == reason


def test_a_hold_is_not_a_credit_and_settling_credits_once(ledger: Ledger) -> None:
    ledger.hold([hold_for(MAI, 1)])
    assert ledger.accounts[MAI.account_id].balance_vnd == 100
    assert (ledger.totals().held, ledger.totals().credited) == (1, 0)
    assert ledger.settle(["E2E0001"]) == ["E2E0001"]
    assert ledger.settle(["E2E0001", "E2E0001"]) == []
    ledger.hold([hold_for(MAI, 1)])  # the same id offered again is not held again
    assert ledger.settle(["E2E0001"]) == []
    totals = ledger.totals()
    assert (totals.held, totals.credited, totals.credited_vnd) == (0, 1, 1_000_000)
    assert ledger.accounts[MAI.account_id].balance_vnd == 1_000_100
    assert ledger.credits() == {"E2E0001": 1_000_000}


def test_release_drops_the_hold_and_nothing_is_credited_after(ledger: Ledger) -> None:
    ledger.hold([hold_for(MAI, 1), hold_for(MAI, 2)])
    assert ledger.release(["E2E0001", "UNKNOWN"]) == ["E2E0001"]
    assert ledger.settle(["E2E0001", "E2E0002", "UNKNOWN"]) == ["E2E0002"]
    totals = ledger.totals()
    assert (totals.held, totals.released, totals.credited) == (0, 1, 1)
    assert ledger.knows("E2E0001") and not ledger.knows("UNKNOWN")


def test_credit_before_confirmation_is_recorded_and_not_undone(ledger: Ledger) -> None:
    ledger.hold([hold_for(MAI, 1, 700)])
    ledger.settle(["E2E0001"], before_confirmation=True)
    assert ledger.release(["E2E0001"]) == []  # the switch rejects it: the money is gone
    totals = ledger.totals()
    assert (totals.credited_before_confirmation, totals.credited_before_confirmation_vnd,
            totals.credited_vnd) == (1, 700, 700)


def test_returns_debit_once_and_never_more_than_credited(ledger: Ledger) -> None:
    ledger.hold([hold_for(DYING, 1, 500), hold_for(DYING, 2, 500), hold_for(MAI, 3, 500)])
    ledger.settle(["E2E0001", "E2E0003"])
    assert [h.end_to_end_id for h in ledger.returns_due()] == ["E2E0001"]
    assert ledger.record_returns([("E2E0001", 501), ("E2E0002", 500)]) == []  # too much; held
    assert ledger.record_returns([("E2E0001", 500), ("E2E0001", 500)]) == ["E2E0001"]
    assert ledger.record_returns([("E2E0001", 500)]) == []
    assert ledger.returns_due() == []
    totals = ledger.totals()
    assert (totals.returned, totals.returned_vnd, totals.credited_vnd) == (1, 500, 1_000)
    assert ledger.accounts[DYING.account_id].balance_vnd == 0


def test_returns_received_as_debtor_are_booked_once(ledger: Ledger) -> None:
    assert ledger.record_received_returns([("OWN1", 300), ("OWN1", 300)]) == ["OWN1"]
    assert ledger.record_received_returns([("OWN1", 300)]) == []
    assert (ledger.totals().received_returns, ledger.totals().received_returns_vnd) == (1, 300)


def test_balances_are_opening_plus_credits_minus_returns(ledger: Ledger) -> None:
    opening_vnd = ledger.totals().balance_vnd
    ledger.hold([hold_for(MAI, 1, 10), hold_for(DYING, 2, 20), hold_for(MAI, 3, 40)])
    ledger.settle(["E2E0001", "E2E0002"])
    ledger.record_returns([("E2E0002", 20)])
    totals = ledger.totals()
    assert totals.balance_vnd == opening_vnd + totals.credited_vnd - totals.returned_vnd == 110


def test_everything_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    first = Ledger(path)
    first.open_accounts(ACCOUNTS)
    with first.batch():
        first.hold([hold_for(MAI, 1), hold_for(DYING, 2), hold_for(MAI, 3), hold_for(MAI, 4)])
        first.settle(["E2E0001", "E2E0002"])
        first.settle(["E2E0004"], before_confirmation=True)
        first.release(["E2E0003"])
    first.record_returns([("E2E0002", 1_000_000)])
    first.record_received_returns([("OWN1", 300)])
    first.close()
    reopened = Ledger(path)
    assert reopened.totals() == first.totals()
    assert reopened.credits() == first.credits()
    assert reopened.accounts == first.accounts
    assert reopened.settle(["E2E0001", "E2E0004"]) == []
    assert reopened.record_returns([("E2E0002", 1_000_000)]) == []
    reopened.close()


def test_a_failed_batch_leaves_memory_and_file_as_they_were(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    ledger.open_accounts([MAI])
    ledger.hold([hold_for(MAI, 1)])
    with pytest.raises(RuntimeError), ledger.batch():
        ledger.settle(["E2E0001"])
        ledger.hold([hold_for(MAI, 2)])
        raise RuntimeError("the process dies mid-message")
    assert ledger.totals().credited == 0 and not ledger.knows("E2E0002")
    assert ledger.accounts[MAI.account_id].balance_vnd == 100
    ledger.close()
    assert Ledger(path).totals() == ledger.totals()


def test_one_transaction_per_batch_whatever_its_size(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.open_accounts([MAI])
    statements: list[str] = []
    ledger._db.set_trace_callback(statements.append)  # type: ignore[union-attr]
    with ledger.batch():
        ledger.hold([hold_for(MAI, n) for n in range(1_000)])
        ledger.settle([f"E2E{n:04d}" for n in range(500)])
        ledger.release([f"E2E{n:04d}" for n in range(500, 1_000)])
    assert [s for s in statements if s.startswith(("BEGIN", "COMMIT"))] == [
        "BEGIN IMMEDIATE", "COMMIT"]
    ledger.close()


def test_a_closed_ledger_refuses_changes_instead_of_forgetting_them(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.open_accounts([MAI])
    ledger.close()
    with pytest.raises(sqlite3.ProgrammingError):
        ledger.hold([hold_for(MAI, 1)])


def test_an_account_status_must_be_known() -> None:
    with pytest.raises(ValueError, match="status 'frozen'"):
        Account("1", "A", "001190000001", status="frozen")
