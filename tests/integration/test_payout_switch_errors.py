"""`switchlab payout --switch` when the switch cannot be asked (a new user's findings 1 and 2):
a wrong treasury key, a wrong --switch-bic, a switch not running, an admin token the switch
refuses. Each is the payout's own failure, named in one sentence; never the creditor's bank
offline (AB08), never a traceback; where money moved, the files are written first."""

from __future__ import annotations

import csv
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from banks.behaviour import Behaviour
from banks.population import Beneficiary, Population
from banks.registry import SWITCH_BIC, TREASURY_BIC
from banks.treasury import TreasurySettings
from lab.world import World, WorldSettings
from protocol.keys import SwitchKeys
from switchlab.cli import main
from switchlab.payout import (
    PayoutSettings,
    RemoteSwitch,
    SwitchFailed,
    admin_failure,
    pay_table,
)

BANK = "BFTVVNVX"
TABLE = ("citizen_id,full_name,amount_vnd,programme,creditor_bic,account_id\n"
         f"001190012345,Nguyễn Thị Rà,1170000,luong_huu,{BANK},0011004455667\n")


def _closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (the OS chose it, then it was let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[World, int]]:
    """A running switch with one bank and the beneficiary's account; the port the lab's own
    treasury listened on, free for the payout's."""
    holder = Beneficiary(citizen_id="001190012345", full_name="Nguyễn Thị Rà",
                         programme="luong_huu", amount_vnd=1, participant_bic=BANK,
                         account_id="0011004455667", ledger_name="Nguyễn Thị Rà",
                         end_to_end_id="unused")
    lab = World(WorldSettings(tmp_path / "lab", {BANK: Behaviour()}))
    await lab.start(Population(seed=0, beneficiaries=[holder]))
    try:
        inbound = lab.runners.pop()  # the lab's own treasury steps aside for ours
        port = inbound.addresses[0][1]
        await inbound.cleanup()
        yield lab, port
    finally:
        await lab.stop()


def _remote(lab: World, port: int, **changes: object) -> RemoteSwitch:
    remote = RemoteSwitch(
        url=lab.switch_url, bic=TREASURY_BIC, keys=SwitchKeys(**lab.keys.handed[TREASURY_BIC]),
        switch_bic=SWITCH_BIC, inbound_host="127.0.0.1", inbound_port=port,
        admin_token=lab.admin_token)
    for name, value in changes.items():
        setattr(remote, name, value)
    return remote


def _settings(tmp_path: Path, remote: RemoteSwitch) -> PayoutSettings:
    table = tmp_path / "t.csv"
    table.write_text(TABLE, encoding="utf-8")
    return PayoutSettings(table=table, output=tmp_path / "out", progress=False, remote=remote,
                          treasury=TreasurySettings(verify=True, max_retries=1))


def _wrong_key(lab: World) -> SwitchKeys:
    handed = dict(lab.keys.handed[TREASURY_BIC])
    if handed["signing"] == "hmac":
        handed["secret"] = "not-the-treasurys-secret"
    else:  # another treasury's key: a valid one the switch does not hold for this BIC
        handed["private_key"] = lab.keys.handed[BANK]["private_key"]
    return SwitchKeys(**handed)


async def test_newuser_2_a_wrong_treasury_key_is_named_not_blamed_on_the_creditor(
        tmp_path: Path, world: tuple[World, int]) -> None:
    lab, port = world
    with pytest.raises(SwitchFailed) as refused:
        await pay_table(_settings(tmp_path, _remote(lab, port, keys=_wrong_key(lab))))
    assert "refuses the treasury" in str(refused.value)
    assert "HTTP 401: unauthenticated: the signature does not match" in str(refused.value)
    assert "same command finishes it" in str(refused.value)
    assert not (tmp_path / "out" / "results.csv").exists()  # no AB08 rows to mislead


async def test_newuser_2_a_switch_bic_the_switch_does_not_know_is_named(
        tmp_path: Path, world: tuple[World, int]) -> None:
    lab, port = world
    with pytest.raises(SwitchFailed) as refused:
        await pay_table(_settings(tmp_path, _remote(lab, port, switch_bic="SWLBVNV2")))
    assert "no answer signed as --switch-bic SWLBVNV2" in str(refused.value)
    assert "AB08" not in str(refused.value)


async def test_newuser_1_a_refused_admin_token_writes_the_files_then_says_so(
        tmp_path: Path, world: tuple[World, int]) -> None:
    lab, port = world
    report = await pay_table(_settings(tmp_path, _remote(lab, port, admin_token="wrong")))
    out = tmp_path / "out"
    with (out / "results.csv").open(encoding="utf-8-sig") as file:
        assert [row["status"] for row in csv.DictReader(file)] == ["paid"]
    assert (out / "report.html").is_file() and (out / "cash_list.xlsx").is_file()
    assert "refused the admin token" in report.not_reconciled
    assert "HTTP 401" in report.not_reconciled
    assert report.exit_code == 1


async def test_leftovers4_the_refused_admin_token_is_in_summary_and_report(
        tmp_path: Path, world: tuple[World, int]) -> None:
    """The refusal was only on the terminal: summary.json and report.html (what a clerk keeps
    and reads) said nothing, and the page even said "No reconciliation mismatch"."""
    lab, port = world
    report = await pay_table(_settings(tmp_path, _remote(lab, port, admin_token="wrong")))
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["not_reconciled"] == report.not_reconciled
    assert "refused the admin token" in summary["not_reconciled"]
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Not reconciled: the switch refused the admin token" in page
    assert "No reconciliation mismatch" not in page


def test_newuser_2_a_switch_not_running_is_named_with_its_address(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table, key = tmp_path / "t.csv", tmp_path / "treasury.key"
    table.write_text(TABLE, encoding="utf-8")
    key.write_text("some-secret\n", encoding="utf-8")
    url = f"http://127.0.0.1:{_closed_port()}"
    code = main(["payout", str(table), "--switch", url, "--key-file", str(key),
                 "--inbound-port", str(_closed_port()), "--output", str(tmp_path / "out"),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert "could not be reached" in err and url in err
    assert "AB08" not in err and "Traceback" not in err
    assert not (tmp_path / "out" / "results.csv").exists()


def test_newuser_2_unsent_rows_without_verification_name_the_switch_not_a_bank(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--no-verify: nothing asks the switch before paying; the rows it never answered stay
    unresolved (resumable) with no creditor's code, and stderr says the switch was not
    reached."""
    table, key = tmp_path / "t.csv", tmp_path / "treasury.key"
    table.write_text(TABLE, encoding="utf-8")
    key.write_text("some-secret\n", encoding="utf-8")
    url = f"http://127.0.0.1:{_closed_port()}"
    code = main(["payout", str(table), "--switch", url, "--key-file", str(key), "--no-verify",
                 "--inbound-port", str(_closed_port()), "--output", str(tmp_path / "out"),
                 "--no-progress", "--time-limit-s", "3"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"the switch could not be reached at {url}" in err
    with (tmp_path / "out" / "results.csv").open(encoding="utf-8-sig") as file:
        rows = list(csv.DictReader(file))
    assert [(row["status"], row["reason_code"]) for row in rows] == [("unresolved", "")]


@pytest.mark.parametrize(("error", "said"), [
    (ConnectionRefusedError(111, "Connect call failed"), "could not be reached"),
    (TimeoutError(), "could not be reached (TimeoutError)"),
    (ValueError("settled_vnd: -1 is negative"), "figures that cannot be read"),
], ids=["refused", "timeout", "bad-figures"])
def test_newuser_1_any_admin_api_failure_is_one_sentence(error: Exception, said: str) -> None:
    sentence = admin_failure("http://127.0.0.1:8080/", error)
    assert said in sentence and "http://127.0.0.1:8080/v1/admin/totals" in sentence
    assert "the payment stands" in sentence and "\n" not in sentence
