"""Conformance runs against switchlab's mock bank in this process: the correct bank, or a
faulty one (a defect from tests/faulty_banks.py applied to its Bank), each on loopback with
OS-chosen ports and a short creditor deadline, so that the suite's proof stays within CI's
budget (docs/conformance.md, "The faulty banks")."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from banks.accounts_file import read_accounts
from banks.bank import INBOUND_PATH, Bank, BankConfig, create_bank_app
from conformance import credentials
from conformance.catalogue import CASES
from conformance.declaration import Declaration
from conformance.rules import Schemas
from conformance.runner import RunResult, SuiteSettings, run_suite
from protocol.runtime import bind, serve

BIC = "BANKVNVX"
ACCOUNTS = """account_id,holder_name,citizen_id,status,currency
0011004455667,Nguyễn Thị Rà,001190012345,open,
0011004455668,Trần Văn Đóng,079185001234,closed,
0011004455669,Lê Thị Khoá,001300012345,blocked,
0011004455670,Phạm Văn Mất,048145000111,deceased,
0011004455671,Đỗ Văn Ngoại,001195004321,open,USD
"""
SHORT_DEADLINE_S = 1.0  # the switch's creditor deadline in these runs: the mock answers in ms
BOTH_ROLES = Declaration(roles=("creditor", "debtor"))
Defect = Callable[[Bank], None]  # changes one thing of a correct Bank


async def run_in_process(folder: Path, cases: Sequence[str] | None = None,
                         defect: Defect | None = None, signing: str = "hmac",
                         behaviour: dict[str, Any] | None = None,
                         creditor_timeout_s: float = SHORT_DEADLINE_S,
                         secret_suffix: str = "") -> RunResult:
    """The chosen cases (all when None) against the mock bank, with `defect` applied to it
    (and, in hmac, `secret_suffix` after the secret it is configured with)."""
    keys_folder = folder / "keys"
    credentials.create(keys_folder, signing)  # type: ignore[arg-type]
    keys = credentials.load(keys_folder, signing)  # type: ignore[arg-type]
    accounts_file = folder / "accounts.csv"
    accounts_file.write_text(ACCOUNTS, encoding="utf-8")
    switch_side = bind()
    bank_keys = ({"secret": (keys_folder / "secret.txt").read_text().strip() + secret_suffix}
                 if signing == "hmac" else
                 {"private_key": (keys_folder / "bank.pem").read_text(),
                  "switch_public_key": (keys_folder / "switch.pub").read_text()})
    config = BankConfig.model_validate({
        "bic": BIC, "name": "Bank under test", "kind": "bank",
        "switch_url": switch_side.base_url, "switch_bic": "SWLBVNVX",
        "admin_token": "local", "signing": signing, "accounts_file": str(accounts_file),
        "behaviour": behaviour or {}} | bank_keys)
    bank = Bank(config)
    if defect is not None:
        defect(bank)
    bound = bind()
    runner = await serve(create_bank_app(bank), bound)
    chosen = [CASES[name] for name in cases] if cases else list(CASES.values())
    try:
        return await run_suite(SuiteSettings(
            participant_url=f"{bound.base_url}{INBOUND_PATH}", bic=BIC, keys=keys,
            accounts=read_accounts(accounts_file), cases=chosen, run_dir=folder / "run",
            schemas=Schemas(), burst=8, declaration=BOTH_ROLES,
            creditor_timeout_s=creditor_timeout_s, switch_socket=switch_side))
    finally:
        await runner.cleanup()


def failures(result: RunResult) -> dict[str, str | None]:
    """Case id -> its sentence, for every case that failed."""
    return {r.case.name: r.wrong for r in result.results if r.verdict == "failed"}
