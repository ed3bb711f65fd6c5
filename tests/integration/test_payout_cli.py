"""`switchlab payout` in its embedded lab (real servers on 127.0.0.1): a folder holds the run
of one table."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchlab.cli import main


def test_payout_refuses_another_table_in_a_finished_runs_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("citizen_id,full_name,amount_vnd,programme\n001190012345,A,1,p\n",
                     encoding="utf-8")
    second.write_text("citizen_id,full_name,amount_vnd,programme\n001190012345,A,2,p\n",
                      encoding="utf-8")
    out = str(tmp_path / "out")
    assert main(["payout", str(first), "--output", out, "--no-progress"]) == 0
    assert "Cash list for the post office: 1 beneficiaries" in capsys.readouterr().out
    assert main(["payout", str(second), "--output", out, "--no-progress"]) == 2
    assert "holds the run of another table" in capsys.readouterr().err
