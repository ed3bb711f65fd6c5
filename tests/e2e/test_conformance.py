"""The conformance suite's proof, as a bank engineer runs it: every case passes against
switchlab's own mock bank started as its own process on loopback, in both signing modes. The
faulty banks, each failing the case that names its defect, run in process
(tests/integration/test_faulty_banks.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from banks.accounts_file import read_accounts
from conformance import credentials, evidence
from conformance.catalogue import CASES
from conformance.report import write_reports
from conformance.rules import Schemas
from conformance.runner import NOT_APPLICABLE, PASSED, RunResult, SuiteSettings, run_suite
from protocol.runtime import bind, start_process, stop_process
from tests.conformance_harness import ACCOUNTS

pytestmark = pytest.mark.slow

BIC = "BANKVNVX"
BURST = 8


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
        "creditor.status-inquiry": NOT_APPLICABLE,
        "creditor.late-answer": NOT_APPLICABLE}, {
            name: why for name, (v, why) in verdicts(result).items() if v != PASSED}
    assert result.passed
    paths = write_reports(result, tmp_path / "reports")
    evidence.sign(tmp_path / "reports", credentials.report_key(tmp_path / "keys",
                                                               result.settings.keys))
    assert "unchanged since signed" in evidence.verify(tmp_path / "reports")  # a whole run
    suite = etree.parse(str(paths["junit"])).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == (
        str(len(CASES)), "0", "2")
    page = paths["html"].read_text(encoding="utf-8")
    assert "CONFORMS" in page and "&lt;AppHdr" in page  # the messages, escaped
    bulk = next(r for r in result.results if r.case.name == "creditor.bulk")
    forward = next(e for e in bulk.exchanges if e.sender == "switch")
    number = bulk.exchanges.index(forward) + 1
    assert (tmp_path / "reports" / "messages" / "creditor.bulk" / f"{number:03d}-request.txt"
            ).read_bytes() == forward.request_body  # the evidence is the bytes as sent
