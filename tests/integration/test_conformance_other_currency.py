"""Leftover 2: no conformance case paid into a bank's account in another currency than VND.
The scheme pays dong only, so the bank must refuse it RJCT AC09 (docs/conformance.md); a bank
whose core system credits it anyway must fail the case, in a sentence that says so. The mock
bank and its faulty twin on 127.0.0.1, the switch in process."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.runner import NOT_APPLICABLE, PASSED, RunResult
from tests import conformance_harness
from tests.conformance_harness import failures, run_in_process
from tests.faulty_banks import FAULTY_BANKS

CASE = "creditor.reject-other-currency"
CREDITS_USD = next(bank for bank in FAULTY_BANKS if bank.case == CASE)


def verdict(result: RunResult) -> str:
    return next(r.verdict for r in result.results if r.case.name == CASE)


async def test_leftovers2_an_account_in_another_currency_is_refused_ac09(tmp_path: Path
                                                                         ) -> None:
    correct = await run_in_process(tmp_path / "correct", [CASE])
    assert verdict(correct) == PASSED and not failures(correct)
    faulty = await run_in_process(tmp_path / "faulty", [CASE], CREDITS_USD.patch)
    assert set(failures(faulty)) == {CASE}
    assert CREDITS_USD.says in (failures(faulty)[CASE] or "")


async def test_leftovers2_a_bank_with_no_other_currency_account_has_nothing_to_refuse(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    only_dong = "".join(line for line in conformance_harness.ACCOUNTS.splitlines(keepends=True)
                        if not line.endswith(",USD\n"))
    monkeypatch.setattr(conformance_harness, "ACCOUNTS", only_dong)
    assert verdict(await run_in_process(tmp_path, [CASE])) == NOT_APPLICABLE
