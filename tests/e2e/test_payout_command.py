"""`switchlab payout` as a user runs it: from a folder outside the project, on a table saved as
Excel saves it; killed with SIGKILL at any point and started again with the same command, it
finishes without paying anyone twice; a discrepancy slipped into a bank's books is caught."""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from banks.payment_table import read_payment_table, retry_id
from banks.population import Mix, generate_population
from banks.registry import DEFAULT_SHARES
from switchlab.payout import MAX_ATTEMPTS

pytestmark = pytest.mark.slow  # whole runs and process kills

NO_LINK_NAME = "Nguyễn Thị Rà"


def write_table(path: Path, size: int, seed: int) -> dict[str, str]:
    """A table as the ministry's Excel saves it (BOM, CRLF), without end-to-end ids: each
    beneficiary's pension into their account, every third one's allowance by citizen id
    alone, and one person with no account anywhere. Returns each citizen's account."""
    population = generate_population(size, seed, Mix(
        participants=DEFAULT_SHARES, no_account=0, closed=0, blocked=0, name_mismatch=0,
        deceased=0, dies_after_payment=0))
    rows = [("citizen_id", "full_name", "amount_vnd", "programme", "period", "creditor_bic",
             "account_id", "commune")]
    for n, b in enumerate(population.beneficiaries):
        rows.append((b.citizen_id, b.full_name, str(b.amount_vnd), "luong_huu", "2026-11",
                     b.participant_bic or "", b.account_id or "", "Phường Láng"))
        if n % 3 == 0:
            rows.append((b.citizen_id, b.full_name, "500000", "tro_cap_xa_hoi", "2026-11", "",
                         "", "Phường Láng"))
    rows.append(("001190099999", NO_LINK_NAME, "500000", "tro_cap_xa_hoi", "2026-11", "", "",
                 "Xã Hải Hậu"))
    with path.open("w", newline="", encoding="utf-8-sig") as file:
        csv.writer(file, lineterminator="\r\n").writerows(rows)
    return {b.citizen_id: b.account_id or "" for b in population.beneficiaries}


def command(table: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "switchlab.cli", "payout", str(table), "--output", "out",
            "--no-progress", *extra]


def count(database: Path, sql: str) -> int:
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            return int(db.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def all_ids(database: Path, sql: str) -> list[str]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        return [row[0] for row in db.execute(sql)]


def kill_when(process: subprocess.Popen[bytes], ready: object, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():  # type: ignore[operator]
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "the run did not get there in time"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def credits(lab: Path) -> Counter[str]:
    """Credits per end-to-end id over every participant's ledger file."""
    credited: Counter[str] = Counter()
    for ledger in lab.glob("*.sqlite"):
        if ledger.name == "switch.sqlite":
            continue
        with sqlite3.connect(ledger) as db:
            credited.update(e2e for (e2e,) in db.execute(
                "SELECT end_to_end_id FROM bookings WHERE state='credited'"))
    return credited


def balances(lab: Path) -> dict[str, int]:
    found: dict[str, int] = {}
    for ledger in lab.glob("*.sqlite"):
        if ledger.name != "switch.sqlite":
            with sqlite3.connect(ledger) as db:
                found.update(db.execute("SELECT account_id, balance_vnd FROM accounts"))
    return found


@pytest.mark.parametrize(("mode", "killed_after"), [
    ("instant", "setup"),  # before anything is paid: while accounts and links are made
    ("instant", 300),  # mid-run: transfers in flight, answers lost with the process
    ("bulk", 1),  # a bulk file journaled, its reports not all delivered
])
def test_a_run_killed_and_started_again_pays_nobody_twice(tmp_path: Path, mode: str,
                                                          killed_after: object) -> None:
    table = tmp_path / "bảng chi trả.csv"
    account_of = write_table(table, 900, seed=31)
    public_ids = {p.end_to_end_id for p in read_payment_table(table)}  # without the run's key
    rows = len(public_ids)
    args = command(table, "--mode", mode, "--concurrency", "4", "--bulk-size", "200",
                   "--files-in-flight", "1", "--rate", "400")
    journal = tmp_path / "out" / "lab" / "switch.sqlite"
    first = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    if killed_after == "setup":
        kill_when(first, lambda: (tmp_path / "out" / "run.sqlite").exists())
    else:
        kill_when(first, lambda: count(journal, "SELECT count(*) FROM transfers")
                  >= killed_after)  # type: ignore[operator]
    again = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Traceback" not in again.stderr
    assert "Reconciled to the dong" in again.stdout
    if killed_after == 300:  # what the killed run learnt was kept as it went (KEEP_EVERY)
        assert "Resumed: " in again.stdout, again.stdout

    lab = tmp_path / "out" / "lab"
    [secret] = all_ids(tmp_path / "out" / "run.sqlite",
                       "SELECT value FROM run WHERE key='id_secret'")
    id_key = bytes.fromhex(secret)  # the killed run's, kept: the same ids when resumed
    payments = {p.end_to_end_id: p for p in read_payment_table(table, id_key)}
    with (tmp_path / "out" / "results.csv").open(encoding="utf-8-sig") as file:
        results = list(csv.DictReader(file))
    assert len(results) == rows
    # Each result joins back to its table row by the table's own id and line, with every id
    # the row went under (a row resent after AB06 lists its RETRY id after the table's).
    assert [r["end_to_end_id"] for r in results] == list(payments)
    assert [int(r["line"]) for r in results] == list(range(2, rows + 2))
    sent_as = {e2e: r["end_to_end_id"] for r in results for e2e in r["ids_sent"].split()}
    paid = {r["end_to_end_id"] for r in results if r["status"] == "paid"}
    # Paid or listed: only the one person with no account anywhere (BE23) is not paid. What
    # was in flight inside the killed switch (AB06: final, nothing moved) was sent again.
    assert Counter(r["reason_code"] for r in results if r["status"] != "paid") == {"BE23": 1}
    assert len(paid) == rows - 1
    # Nobody twice: at most one settled transfer per row in the switch's journal (a row sent
    # again goes under retry_id), one credit per transfer, and each account holds exactly
    # what its rows say.
    settled = all_ids(journal, "SELECT end_to_end_id FROM transfers WHERE state='SETTLED'")
    assert {sent_as[e2e] for e2e in settled} == paid
    assert not set(settled) & public_ids  # issue 22: no id anyone else could compute
    by_id = payments | {retry_id(e2e, attempt, id_key): p for e2e, p in payments.items()
                        for attempt in range(1, MAX_ATTEMPTS)}
    assert set(Counter(by_id[e2e].end_to_end_id for e2e in settled).values()) == {1}
    credited = credits(lab)
    assert set(credited) == set(settled) and set(credited.values()) == {1}
    expected: dict[str, int] = defaultdict(int)
    for e2e in settled:
        row = by_id[e2e]
        expected[account_of[row.citizen_id]] += row.amount_vnd
    held = balances(lab)
    assert {account: held[account] for account in account_of.values()} == {
        account: expected[account] for account in account_of.values()}
    # The one with no linked account is on the cash list, as Excel reads it.
    raw = (tmp_path / "out" / "cash_list.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and NO_LINK_NAME.encode() in raw
    assert "chưa liên kết tài khoản".encode() in raw


def test_a_discrepancy_in_a_banks_books_is_caught(tmp_path: Path) -> None:
    table = tmp_path / "table.csv"
    write_table(table, 150, seed=5)
    done = subprocess.run(command(table), cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lab = tmp_path / "out" / "lab"
    ledger = next(p for p in lab.glob("*.sqlite") if p.name != "switch.sqlite")
    with sqlite3.connect(ledger) as db:  # one dong more, credited behind everyone's back
        db.execute("UPDATE bookings SET amount_vnd = amount_vnd + 1 WHERE end_to_end_id ="
                   " (SELECT end_to_end_id FROM bookings WHERE state='credited' LIMIT 1)")
    again = subprocess.run(command(table), cwd=tmp_path, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 1, again.stdout + again.stderr
    assert "RECONCILIATION FAILED" in again.stdout
    assert "switch settlements vs bank credits" in again.stdout and "(off by -1)" in again.stdout
    assert "none was sent again" in again.stdout


def test_a_corrected_table_beside_a_killed_run_pays_none_of_its_rows(tmp_path: Path) -> None:
    """Issue #25: the register's keys are claimed before anything is sent, so a run killed
    with SIGKILL holds its rows; a corrected table paid into another folder meanwhile pays
    only rows no run holds, and the killed run, started again, finishes its own. Across both
    labs each (citizen, programme, period) is credited once."""
    table = tmp_path / "table.csv"
    write_table(table, 300, seed=7)
    first = command(table, "--mode", "instant", "--concurrency", "4", "--rate", "300")
    journal = tmp_path / "out" / "lab" / "switch.sqlite"
    killed = subprocess.Popen(first, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    kill_when(killed, lambda: count(journal, "SELECT count(*) FROM transfers") >= 100)
    corrected = tmp_path / "corrected.csv"
    lines = table.read_text(encoding="utf-8-sig").splitlines()
    extra = "036145011111,Lê Thị Hoa,1000000,tro_cap_xa_hoi,2026-11,EWLAVNV1,0912345678,Xã Hải Hậu"
    corrected.write_text("\n".join([*lines, extra]) + "\n", encoding="utf-8")
    beside = subprocess.run([*command(corrected)[:-3], "--output", "out2", "--no-progress"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert beside.returncode == 0, beside.stdout + beside.stderr
    with (tmp_path / "out2" / "results.csv").open(encoding="utf-8-sig") as file:
        second = list(csv.DictReader(file))
    assert [r["status"] for r in second].count("paid") == 1  # only the new row
    assert {r["reason_code"] for r in second[:-1]} == {"claimed"}
    again = subprocess.run(first, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    credited = credits(tmp_path / "out" / "lab") + credits(tmp_path / "out2" / "lab")
    with (tmp_path / "out" / "results.csv").open(encoding="utf-8-sig") as file:
        own = list(csv.DictReader(file))
    keys = Counter((r["citizen_id"], r["programme"], r["period"]) for rows in (own, second)
                   for r in rows for e2e in r["ids_sent"].split() if e2e in credited)
    assert set(keys.values()) == {1} and len(keys) == len(own) - 1 + 1
