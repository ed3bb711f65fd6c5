"""A year of payout days (issue #24): statistics kept as counters, not scans, on both
journals; and the totals of one payout run's own transfers."""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from protocol import reasons
from protocol.messages import TxStatus
from switch import retention
from switch.journal import joined_rows, split_sum
from switchlab.cli import main
from tests.harness import (
    BANK_A,
    BANK_B,
    TREASURY,
    Answer,
    SwitchLab,
    only_status,
    pay,
    return_of,
    transfer,
    until,
)

SCANNED = (f"SELECT state, coalesce(reason_code, ''), count(*), {split_sum('amount_vnd')}"
           " FROM transfers GROUP BY 1, 2")
SCANNED_RETURNS = f"SELECT count(*), {split_sum('amount_vnd')} FROM returns"


async def _scanned(lab: SwitchLab) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """What `GET /v1/admin/stats` said before counters: every row of the journal read."""
    store = lab.switch.state.store
    by_state: dict[str, dict[str, int]] = {}
    for state, reason, count, amount in joined_rows(await store.read(SCANNED)):
        entry = by_state.setdefault(state, {"count": 0, "amount_vnd": 0})
        entry["count"] += count
        entry["amount_vnd"] += amount
        if reason:
            entry[f"count_{reason}"] = count
    ((returns, returns_vnd),) = joined_rows(await store.read(SCANNED_RETURNS))
    return by_state, {"count": returns, "amount_vnd": returns_vnd}


async def _counted(lab: SwitchLab) -> tuple[Any, Any]:
    _, stats = await lab.admin("GET", "/v1/admin/stats")
    return stats["by_state"], stats["returns"]  # type: ignore[index]


async def test_issue_24_stats_counters_equal_a_scan_after_returns_rejections_restarts(
        lab: SwitchLab) -> None:
    """The counters behind `GET /v1/admin/stats` move in the writes they count: after
    settlements, rejections at intake and by the creditor, full and partial returns and a
    restart, they say what a scan of every row says."""
    big = 9 * 10**17  # two of them overflow a 64-bit sum: the counters keep two parts
    for settled in (transfer("E2E-C1", amount_vnd=2_000_000),
                    transfer("E2E-C2", amount_vnd=3_000_000)):
        assert only_status(await pay(lab, settled)) == (TxStatus.SETTLED, None)
    assert only_status(await pay(lab, transfer("E2E-C3", creditor="NOBKVNVX"))) == (
        TxStatus.REJECTED, reasons.WRONG_BIC)
    lab.participants[BANK_A].decide = lambda tx: Answer("RJCT", "AC04")
    assert only_status(await pay(lab, transfer("E2E-C4"))) == (TxStatus.REJECTED, "AC04")
    lab.participants[BANK_A].decide = lambda tx: Answer()
    assert only_status(await lab.peer(BANK_A).send(return_of("E2E-C1", 2_000_000))) == (
        TxStatus.SETTLED, None)
    assert only_status(await lab.peer(BANK_A).send(return_of("E2E-C2", 1_000_000))) == (
        TxStatus.SETTLED, None)
    await lab.restart_switch()
    await pay(lab, transfer("E2E-C5", amount_vnd=big, creditor=BANK_B),
              transfer("E2E-C6", amount_vnd=big, creditor=BANK_B))
    await until(lambda: not lab.switch.state.book.in_flight)
    by_state, returns = await _counted(lab)
    assert (by_state, returns) == await _scanned(lab)
    assert returns == {"count": 2, "amount_vnd": 3_000_000}
    assert by_state["REJECTED"]["count_AC04"] == 1
    assert by_state["REJECTED"][f"count_{reasons.WRONG_BIC}"] == 1
    assert by_state["RETURNED"]["count"] == 2
    assert "PENDING" not in by_state


async def test_issue_24_totals_of_a_run_count_its_own_transfers_only(lab: SwitchLab) -> None:
    """`POST /v1/admin/totals`: the debtor's transfers under the ids given, none other;
    a malformed request is 400 with the body's shape."""
    await pay(lab, transfer("E2E-MINE-1", amount_vnd=1_000), transfer("E2E-OTHER",
                                                                       amount_vnd=7_000))
    await pay(lab, transfer("E2E-MINE-2", amount_vnd=2_000, debtor=BANK_B), sender=BANK_B)
    status, totals = await lab.admin("POST", "/v1/admin/totals", json={
        "debtor": TREASURY, "end_to_end_ids": ["E2E-MINE-1", "E2E-MINE-2", "E2E-NEVER"]})
    assert status == 200
    assert isinstance(totals, dict)
    assert totals["by_state"] == {"SETTLED": {"count": 1, "amount_vnd": 1_000}}
    assert totals["in_flight"] == 0
    for bad in ({"debtor": "nope", "end_to_end_ids": []}, {"debtor": TREASURY},
                {"debtor": TREASURY, "end_to_end_ids": ["x"] * 1_001},
                {"debtor": TREASURY, "end_to_end_ids": [7]}, [1, 2]):
        status, text = await lab.admin("POST", "/v1/admin/totals", json=bad)
        assert status == 400 and "end_to_end_ids" in str(text)


async def test_issue_24_a_day_archived_then_dropped_beside_the_running_switch(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`switchlab journal archive --drop` on the journal of a running switch: refused while
    the day is not over (a cycle open), then archived, verified and dropped once it is; the
    all-time totals stay; the archive answers `journal show` as the journal did. Its folder
    did not exist: it is made (a new user's finding 5: "….partial: No such file or
    directory"). A lab's journal holds only today: --keep-days 0 and a --before of tomorrow,
    as docs/operations.md says to try it."""
    lab = await SwitchLab(tmp_path / "switch.sqlite").start()
    try:
        assert only_status(await pay(lab, transfer("E2E-OLD-1", amount_vnd=4_000_000))) == (
            TxStatus.SETTLED, None)
        assert only_status(await pay(lab, transfer("E2E-OLD-2", creditor="NOBKVNVX"))) == (
            TxStatus.REJECTED, reasons.WRONG_BIC)
        assert only_status(await lab.peer(BANK_A).send(return_of("E2E-OLD-1", 1_000_000))) == (
            TxStatus.SETTLED, None)
        await until(lambda: not lab.switch.state.notifier.backlog())
        journal, archive = str(lab.journal_path), str(tmp_path / "archive" / "old.jsonl.gz")
        tomorrow = str(retention.business_day(time.time()) + timedelta(days=1))
        command = ["journal", "archive", "--file", journal, "--before", tomorrow, "--to",
                   archive, "--keep-days", "0", "--drop"]
        assert main(command) == 2
        refused = capsys.readouterr().err  # a new user's finding 8: '1 transfers settled'
        assert "1 transfer settled in a settlement cycle still open" in refused, refused
        status, _ = await lab.admin("POST", "/v1/admin/settlement/close")
        assert status == 200
        _, before = await lab.admin("GET", "/v1/admin/stats")
        assert main(command) == 0
        said = capsys.readouterr().out
        assert "2 transfers, 4 transitions, 1 return" in said and "dropped 2 transfers" in said
        status, _ = await lab.admin("GET", "/v1/admin/transfers/E2E-OLD-1")
        assert status == 404
        _, after = await lab.admin("GET", "/v1/admin/stats")
        assert isinstance(before, dict) and isinstance(after, dict)
        assert (after["by_state"], after["returns"]) == (before["by_state"], before["returns"])
        assert only_status(await pay(lab, transfer("E2E-NEW-1"))) == (TxStatus.SETTLED, None)
    finally:
        await lab.stop()
    assert main(["journal", "show", "E2E-OLD-1", "--archive", archive, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["state"], shown["return"]["amount_vnd"]) == ("RETURNED", 1_000_000)
    assert [h["to"] for h in shown["history"]] == ["PENDING", "SETTLED", "RETURNED"]
    manifest = retention.read_manifest(Path(archive))
    assert manifest["participants"][BANK_A] == {
        "debited_vnd": 0, "credited_vnd": 4_000_000, "returned_vnd": 1_000_000}
    with gzip.open(archive, "rb") as lines:
        tampered = lines.read().replace(b"4000000", b"4000001")
    with gzip.open(archive, "wb") as out:
        out.write(tampered)
    assert main(["journal", "verify", archive]) == 2
    assert "SHA-256 is not the manifest's" in capsys.readouterr().err


def _forge(archive: Path, lines: list[bytes], **manifest_changes: Any) -> None:
    """An archive of `lines` with a manifest that agrees with them, as anyone can compute
    (a SHA-256 and tallies prove no origin)."""
    manifest = retention.read_manifest(archive) if archive.exists() else {}
    with gzip.open(archive, "wb") as out:
        out.write(b"".join(line.rstrip(b"\n") + b"\n" for line in lines))
    tally = retention.Tally()
    for table, row in retention.archived_rows(archive):
        tally.add(table, row)
    manifest |= {"sha256": hashlib.sha256(archive.read_bytes()).hexdigest()}
    manifest |= json.loads(json.dumps(tally.as_dict())) | manifest_changes
    retention.manifest_path(archive).write_text(json.dumps(manifest), encoding="utf-8")


async def test_issue_24_attacker_2_a_forged_archive_drops_nothing_the_journal_keeps(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A drop chooses its rows from the journal: a forged archive (its manifest recomputed)
    that lists a transfer settled today, or that leaves out or alters a row of the days it
    names, is refused and nothing goes; the journal still knows the id as a duplicate."""
    lab = await SwitchLab(tmp_path / "switch.sqlite").start()
    try:
        assert only_status(await pay(lab, transfer("E2E-TODAY", amount_vnd=5_000_000))) == (
            TxStatus.SETTLED, None)
        await until(lambda: not lab.switch.state.notifier.backlog())
        await lab.admin("POST", "/v1/admin/settlement/close")
        journal, archive = lab.journal_path, tmp_path / "forged.jsonl.gz"
        tomorrow = str(retention.business_day(time.time()) + timedelta(days=1))
        assert main(["journal", "archive", "--file", str(journal), "--before", tomorrow,
                     "--to", str(archive), "--keep-days", "0"]) == 0
        capsys.readouterr()
        with gzip.open(archive, "rb") as lines:
            true_lines = lines.readlines()
        drop = ["journal", "drop", "--file", str(journal), "--archive", str(archive)]
        assert main(drop) == 2  # the default window keeps today whatever the archive says
        assert "reach into the last 35 days" in capsys.readouterr().err
        altered = [line.replace(b"5000000", b"5000001") for line in true_lines]
        for forged in (true_lines[1:], altered):
            _forge(archive, forged)
            assert main(["journal", "verify", str(archive)]) == 0
            assert main([*drop, "--keep-days", "0"]) == 2
            assert "does not hold the journal's transfers row E2E-TODAY" in (
                capsys.readouterr().err)
        _forge(archive, true_lines, before="2026-01-01")  # the attacker's: an old day named
        assert main([*drop, "--keep-days", "0"]) == 0
        assert "dropped 0 transfers, 0 transitions, 0 returns, 0 messages" in (
            capsys.readouterr().out)
        status, kept = await lab.admin("GET", "/v1/admin/transfers/E2E-TODAY")
        assert status == 200 and isinstance(kept, dict) and kept["state"] == "SETTLED"
        assert len(kept["history"]) == 2
        again = await pay(lab, transfer("E2E-TODAY", amount_vnd=5_000_000))
        assert only_status(again) == (TxStatus.REJECTED, reasons.DUPLICATE)
    finally:
        await lab.stop()


GOOD_TRANSFER = {"end_to_end_id": "E2E-1", "tx_id": "TX1", "msg_id": "M1",
                 "debtor_bic": TREASURY, "creditor_bic": BANK_A, "amount_vnd": 1_000,
                 "state": "SETTLED", "reason_code": None, "reason_by": None, "bulk": 1,
                 "received_at": 1.5e9, "final_at": 1.5e9, "cycle_id": 1,
                 "creditor_notice": 2, "debtor_notice": 2}


@pytest.mark.parametrize("line", [
    json.dumps({"table": "transfers", "row": {k: v for k, v in GOOD_TRANSFER.items()
                                              if k != "tx_id"}}).encode(),
    json.dumps({"table": "transfers", "row": GOOD_TRANSFER | {"received_at": "x"}}).encode(),
    json.dumps({"table": "transfers", "row": GOOD_TRANSFER | {"received_at": 1e300}}).encode(),
    json.dumps({"table": "transfers", "row": GOOD_TRANSFER | {"amount_vnd": 10**30}}).encode(),
    b'{"table": "transfers", "row": ' + json.dumps(GOOD_TRANSFER).encode()[:-1]
    + b', "final_at": NaN}',
    json.dumps({"table": "transfers", "row": GOOD_TRANSFER | {"state": "PAID"}}).encode(),
    json.dumps({"table": "transfers", "row": GOOD_TRANSFER | {
        "debtor_bic": "\x1b]0;owned\x07"}}).encode(),
    b"[" * 100_000 + b"]" * 100_000,
    b"not json",
], ids=["missing-column", "text-time", "huge-time", "huge-amount", "nan", "unknown-state",
        "terminal-escape", "deep-nesting", "not-json"])
def test_issue_24_attacker_5_a_hostile_archive_is_one_sentence_and_exit_2(
        line: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "hostile.jsonl.gz"
    retention.manifest_path(archive).write_text(json.dumps({
        "format": retention.FORMAT, "journal": "/j", "before": "2026-01-01",
        "rows": dict.fromkeys(retention.TABLES, 0), "sha256": "0"}), encoding="utf-8")
    with gzip.open(archive, "wb") as out:
        out.write(line + b"\n")
    for command in (["show", "E2E-1", "--archive", str(archive)],
                    ["participant", BANK_A, "--archive", str(archive)],
                    ["in-flight", "--archive", str(archive)]):
        assert main(["journal", *command]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and ": line 1 is " in err
        assert "\x1b" not in err
    assert main(["journal", "verify", str(archive)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_issue_24_attacker_5_a_hostile_manifest_is_one_sentence_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "a.jsonl.gz"
    with gzip.open(archive, "wb") as out:
        out.write(json.dumps({"table": "transfers", "row": GOOD_TRANSFER}).encode() + b"\n")
    for manifest in ("[" * 100_000, json.dumps({"format": retention.FORMAT, "rows": 7}),
                     json.dumps({"format": retention.FORMAT, "journal": "/j", "before": "x",
                                 "rows": {}, "sha256": "0"})):
        retention.manifest_path(archive).write_text(manifest, encoding="utf-8")
        assert main(["journal", "verify", str(archive)]) == 2
        assert main(["journal", "show", "E2E-1", "--archive", str(archive)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 2 and "not a" in err and "manifest" in err


async def test_issue_24_attacker_4_hostile_totals_requests_are_400_or_413(
        lab: SwitchLab) -> None:
    for body in (b"[" * 100_000 + b"]" * 100_000,
                 json.dumps({"debtor": TREASURY, "end_to_end_ids": ["E2E\x1b[2J"]}).encode()):
        status, text = await lab.admin("POST", "/v1/admin/totals", data=body)
        assert status == 400, text
    status, _ = await lab.admin("POST", "/v1/admin/totals", data=b" " * 2_000_000)
    assert status == 413
