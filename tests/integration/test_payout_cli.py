"""`switchlab payout` against real servers on 127.0.0.1: in its embedded lab, where a folder
holds the run of one table, and against a switch that is already running."""

from __future__ import annotations

from pathlib import Path

import pytest

from banks.behaviour import Behaviour
from banks.population import Beneficiary, Population
from banks.registry import SWITCH_BIC, TREASURY_BIC
from banks.treasury import TreasurySettings
from protocol.keys import SwitchKeys
from switchlab.cli import main
from switchlab.payout import PayoutSettings, RemoteSwitch, pay_table
from switchlab.world import World, WorldSettings

BANK = "BFTVVNVX"


def test_payout_refuses_another_table_in_a_finished_runs_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("citizen_id,full_name,amount_vnd,programme\n001190012345,A,1,p\n",
                     encoding="utf-8")
    second.write_text("citizen_id,full_name,amount_vnd,programme\n001190012345,A,2,p\n",
                      encoding="utf-8")
    out = str(tmp_path / "out")
    assert main(["payout", str(first), "--output", out, "--no-progress"]) == 0
    assert "Cash list for the post office: 1 beneficiary " in capsys.readouterr().out
    assert main(["payout", str(second), "--output", out, "--no-progress"]) == 2
    assert "holds the run of another table" in capsys.readouterr().err


async def test_payout_against_a_running_switch_with_the_treasurys_key(tmp_path: Path) -> None:
    """--switch: the treasury pays through a switch it does not start, listening where the
    switch pushes its reports, and reconciles with the switch's books over the admin API."""
    holder = Beneficiary(citizen_id="001190012345", full_name="Nguyễn Thị Rà",
                         programme="luong_huu", amount_vnd=1, participant_bic=BANK,
                         account_id="0011004455667", ledger_name="Nguyễn Thị Rà",
                         end_to_end_id="unused")
    world = World(WorldSettings(tmp_path / "lab", {BANK: Behaviour()}, register=True))
    await world.start(Population(seed=0, beneficiaries=[holder]))
    try:
        await world.link_citizens([{"citizen_id": holder.citizen_id, "participant_bic": BANK,
                                    "account_id": "0011004455667"}])
        inbound = world.runners.pop()  # the lab's own treasury steps aside for ours
        port = inbound.addresses[0][1]
        await inbound.cleanup()
        table = tmp_path / "table.csv"
        table.write_text("citizen_id,full_name,amount_vnd,programme,creditor_bic,account_id\n"
                         f"001190012345,Nguyễn Thị Rà,1170000,luong_huu,{BANK},0011004455667\n"
                         "001190012345,NGUYEN THI RA,500000,tro_cap_xa_hoi,,\n"
                         "079090054321,Trần Văn Đức,500000,tro_cap_xa_hoi,,\n",
                         encoding="utf-8")
        report = await pay_table(PayoutSettings(
            table=table, output=tmp_path / "out", progress=False,
            treasury=TreasurySettings(verify=True, bulk_size=2),
            remote=RemoteSwitch(
                url=world.switch_url, bic=TREASURY_BIC,
                keys=SwitchKeys(**world.keys.handed[TREASURY_BIC]), switch_bic=SWITCH_BIC,
                inbound_host="127.0.0.1",
                inbound_port=port, admin_token=world.admin_token)))
    finally:
        await world.stop()
    assert report.exit_code == 0 and report.mismatches == []
    assert report.reconciled_with == "the switch's settlement"
    assert dict(report.result.by_status) == {"paid": 2, "stopped": 1}
    assert [row["reason_code"] for row in report.result.cash_list_rows()] == ["BE23"]
