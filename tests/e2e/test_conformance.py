"""The conformance suite's proof: it passes against switchlab's own mock bank run as its own
process on loopback (both signing modes), and fails against each deliberately faulty mock
bank (one defect of banks/behaviour.py each) with the case that covers the defect named and
no other case failing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from banks.accounts_file import read_accounts
from conformance import credentials
from conformance.catalogue import CASES
from conformance.report import write_reports
from conformance.rules import Schemas
from conformance.runner import FAILED, NOT_APPLICABLE, PASSED, RunResult, SuiteSettings, run_suite
from protocol.runtime import bind, start_process, stop_process

pytestmark = pytest.mark.slow

BIC = "BANKVNVX"
ACCOUNTS = """account_id,holder_name,citizen_id,status
0011004455667,Nguyễn Thị Rà,001190012345,open
0011004455668,Trần Văn Đóng,079185001234,closed
0011004455669,Lê Thị Khoá,001300012345,blocked
0011004455670,Phạm Văn Mất,048145000111,deceased
"""
FAULTY_RUNS_AT_ONCE = 5
BURST = 8  # with the slow bank's 800 ms, one at a time: the seventh misses the 5 s deadline
# defect -> (the mock bank's Behaviour, the one case that must fail)
DEFECTS: dict[str, tuple[dict[str, Any], str]] = {
    "wrong reason code": ({"wrong_reason_codes": {"AC04": "AC01"}},
                          "creditor.reject-closed-account"),
    "credits before confirmation": ({"credit_before_confirmation": True},
                                    "creditor.no-credit-before-confirmation"),
    "double credit on redelivery": ({"double_credit_on_redelivery": True},
                                    "creditor.redelivery"),
    "slow answers": ({"serial_answers": True, "latency_ms_median": 800.0}, "creditor.burst"),
    "malformed XML": ({"message_fault": "malformed", "message_fault_on": "bulk_answer"},
                      "creditor.bulk"),
    "missing signature header": ({"message_fault": "unsigned",
                                  "message_fault_on": "verification_answer"},
                                 "creditor.verification"),
    "wrong head.001 receiver": ({"message_fault": "wrong_receiver",
                                 "message_fault_on": "verification_answer"},
                                "creditor.verification"),
    "answers for another bank": ({"message_fault": "wrong_sender",
                                  "message_fault_on": "bulk_answer"}, "creditor.bulk"),
    "bad signature on its answers": ({"message_fault": "bad_signature",
                                      "message_fault_on": "verification_answer"},
                                     "creditor.verification"),
    "a return that does not refer to the original": ({"return_wrong_original": True},
                                                     "creditor.return"),
}


async def conformance_run(folder: Path, behaviour: dict[str, Any], signing: str = "hmac"
                          ) -> RunResult:
    """The whole suite against `python -m banks.bank` started as a bank engineer would."""
    keys_folder = folder / "keys"
    credentials.create(keys_folder, signing)  # type: ignore[arg-type]
    keys = credentials.load(keys_folder, signing)  # type: ignore[arg-type]
    (folder / "accounts.csv").write_text(ACCOUNTS, encoding="utf-8")
    switch_side = bind()  # held until the lab serves on it: no other run can take the port
    bank_keys = ({"secret": (keys_folder / "secret.txt").read_text().strip()}
                 if signing == "hmac" else
                 {"private_key": (keys_folder / "bank.pem").read_text(),
                  "switch_public_key": (keys_folder / "switch.pub").read_text()})
    (folder / "bank.json").write_text(json.dumps({
        "bic": BIC, "name": "Bank under test", "kind": "bank",
        "switch_url": switch_side.base_url, "switch_bic": "SWLBVNVX",
        "admin_token": "local", "signing": signing, "accounts_file": "accounts.csv",
        "behaviour": behaviour} | bank_keys), encoding="utf-8")
    bank, url = await start_process("-m", "banks.bank", "--config", str(folder / "bank.json"),
                                    cwd=folder)  # on a port the OS chooses; it says which
    try:
        return await run_suite(SuiteSettings(
            participant_url=url, bic=BIC, keys=keys,
            accounts=read_accounts(folder / "accounts.csv"), cases=list(CASES.values()),
            run_dir=folder / "run", schemas=Schemas(), burst=BURST,
            switch_socket=switch_side))
    finally:
        await stop_process(bank)


def verdicts(result: RunResult) -> dict[str, tuple[str, str | None]]:
    return {r.case.name: (r.verdict, r.wrong) for r in result.results}


@pytest.mark.parametrize("signing", ["hmac", "ed25519"])
async def test_the_mock_bank_conforms_in_each_signing_mode(tmp_path: Path, signing: str
                                                           ) -> None:
    result = await conformance_run(tmp_path, {}, signing)
    assert result.stopped_because is None
    assert {name: v for name, (v, _) in verdicts(result).items() if v != PASSED} == {
        "creditor.status-inquiry": NOT_APPLICABLE}, verdicts(result)
    assert result.passed
    paths = write_reports(result, tmp_path / "reports")
    suite = etree.parse(str(paths["junit"])).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == (
        str(len(CASES)), "0", "1")
    page = paths["html"].read_text(encoding="utf-8")
    assert "CONFORMS" in page and "&lt;AppHdr" in page  # the messages, escaped
    bulk = next(r for r in result.results if r.case.name == "creditor.bulk")
    forward = next(e for e in bulk.exchanges if e.sender == "switch")
    number = bulk.exchanges.index(forward) + 1
    assert (tmp_path / "reports" / "messages" / "creditor.bulk" / f"{number:03d}-request.txt"
            ).read_bytes() == forward.request_body  # the evidence is the bytes as sent


async def test_each_faulty_bank_fails_the_case_for_its_defect_and_no_other(tmp_path: Path
                                                                            ) -> None:
    """All the faulty banks at once (a run mostly waits on its bank), a few at a time."""
    room = asyncio.Semaphore(FAULTY_RUNS_AT_ONCE)

    async def run(number: int, behaviour: dict[str, Any]) -> RunResult:
        async with room:
            folder = tmp_path / f"bank-{number}"
            folder.mkdir()
            return await conformance_run(folder, behaviour)

    results = await asyncio.gather(*(run(n, behaviour)
                                     for n, (behaviour, _) in enumerate(DEFECTS.values())),
                                   return_exceptions=True)  # no run is left behind running
    wrong: dict[str, object] = {}
    for (defect, (_, case)), result in zip(DEFECTS.items(), results, strict=True):
        if isinstance(result, BaseException):
            wrong[defect] = repr(result)
            continue
        failed = {name: why for name, (verdict, why) in verdicts(result).items()
                  if verdict == FAILED}
        if list(failed) != [case] or result.passed or "\n" in (failed[case] or "\n"):
            wrong[defect] = failed
    assert not wrong, f"defect -> the cases that failed (each must fail its one case): {wrong}"
