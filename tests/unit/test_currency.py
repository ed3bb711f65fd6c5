"""Issue #27's gap: whether money is in VND was not checked on the identity and payout side.
The scheme pays dong only: a payment table's row in another currency is refused (AM03), an
account in another currency is neither verified nor credited (AC09), and an accounts file's
currency must be an ISO 4217 code. The samples are files in tests/data/currency."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from banks.accounts_file import AccountsFileError, read_accounts
from banks.ledger import Ledger
from banks.payment_table import check_payment_table
from protocol import codec, reasons
from protocol.messages import VerificationItem
from tests.factories import BANK, SWITCH, message, statement

DATA = Path(__file__).resolve().parents[1] / "data" / "currency"


def test_issue27_a_table_row_in_another_currency_is_refused_with_am03() -> None:
    checked = check_payment_table(DATA / "table.csv")
    problems = dict(checked.problems)
    assert sorted(problems) == [3, 5]  # USD, and a lower-case vnd (ISO 4217 is capitals)
    assert "currency 'USD': the scheme pays VND only (ISO 20022 AM03" in problems[3]
    assert "and the currency as VND" in problems[5]
    assert [p.citizen_id for p in checked.payments] == ["001190012345", "001300012345"]


def test_issue27_an_account_in_another_currency_is_neither_verified_nor_credited(
        tmp_path: Path) -> None:
    accounts = read_accounts(DATA / "BFTVVNVX.csv")
    assert [a.currency for a in accounts] == ["VND", "USD", "VND"]  # empty is VND
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.open_accounts(a.ledger_account() for a in accounts)
    ra, duc, _ = accounts
    assert ledger.check(duc.account_id, duc.holder_name, duc.citizen_id) == (
        reasons.INVALID_ACCOUNT_CURRENCY)
    assert ledger.check(ra.account_id, ra.holder_name, ra.citizen_id) is None
    asked = ledger.verify(VerificationItem("V1", duc.holder_name, duc.citizen_id,
                                           duc.account_id))
    assert (asked.verified, asked.reason_code) == (False, reasons.INVALID_ACCOUNT_CURRENCY)
    ledger.close()
    reopened = Ledger(tmp_path / "ledger.sqlite")  # the currency is kept on disk
    assert reopened.accounts[duc.account_id].currency == "USD"
    reopened.close()


def test_issue27_an_accounts_file_currency_must_be_an_iso_4217_code() -> None:
    with pytest.raises(AccountsFileError, match=r"line 2: currency 'đồng': an ISO 4217 code"):
        read_accounts(DATA / "accounts_bad_currency.csv")


def test_issue27_a_ledger_made_before_accounts_had_a_currency_opens_in_vnd(
        tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as old:
        old.execute("CREATE TABLE accounts (account_id TEXT PRIMARY KEY, holder_name TEXT NOT "
                    "NULL, citizen_id TEXT NOT NULL, status TEXT NOT NULL, deceased INTEGER NOT"
                    " NULL, dies_after_payment INTEGER NOT NULL, balance_vnd INTEGER NOT NULL)")
        old.execute("INSERT INTO accounts VALUES ('A1', 'Nguyễn Thị Rà', '001190012345', "
                    "'active', 0, 0, 500)")
    ledger = Ledger(path)
    assert (ledger.accounts["A1"].currency, ledger.accounts["A1"].balance_vnd) == ("VND", 500)
    ledger.close()


@pytest.mark.parametrize("spoiled", [
    (b'<Amt Ccy="VND">1000</Amt>', b'<Amt Ccy="USD">1000</Amt>', "Stmt/Ntry[1]/Amt/@Ccy"),
    (b"<Ccy>VND</Ccy>", b"<Ccy>EUR</Ccy>", "Stmt/Acct/Ccy"),
    (b'<Amt Ccy="VND">0</Amt>', b'<Amt Ccy="JPY">0</Amt>', "Stmt/Bal/Amt/@Ccy"),
])
def test_issue27_a_statement_in_another_currency_is_no_statement(
        spoiled: tuple[bytes, bytes, str]) -> None:
    """A camt.053's amounts are positions in the scheme's currency: an account, a balance or
    an entry in another is refused whole (FF01), never read as dong."""
    good, bad, where = spoiled
    body = codec.encode(message(statement(), from_bic=SWITCH, to_bic=BANK))
    assert codec.decode(body).document == statement()
    assert good in body
    with pytest.raises(codec.CodecError, match=where.replace("[", r"\[").replace("]", r"\]")):
        codec.decode(body.replace(good, bad, 1))
