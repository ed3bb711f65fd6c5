"""`switchlab journal` against a real switch: from its journal file (read-only, while the switch
writes it) and from its admin API, the same answers; and every mistake a sentence and exit 2."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from protocol import reasons
from protocol.codec import new_id
from protocol.messages import CreditTransferMessage, PaymentReturn, PaymentReturnItem, TxStatus
from switchlab.cli import main
from tests.harness import (
    BANK_A,
    BANK_B,
    SWITCH_BIC,
    TREASURY,
    Answer,
    SwitchLab,
    credit_transfers,
    transfer,
    until,
)

TOKEN = "t0ken"  # the harness's admin token


@pytest.fixture
async def lab(journal: dict[str, str], tmp_path: Path) -> AsyncIterator[SwitchLab]:
    """A switch whose journal holds one transfer of each kind, one still in flight; on
    either journal (a PostgreSQL one is looked into through the switch alone)."""
    lab = await SwitchLab(tmp_path / "switch.sqlite", creditor_timeout_s=60, **journal).start()
    answers = {"E2E-RJ": Answer("RJCT", reasons.CLOSED_ACCOUNT),
               "E2E-SLOW": Answer("never", asynchronous=True)}
    lab.participants[BANK_A].decide = lambda tx: answers.get(tx.end_to_end_id, Answer())
    treasury = lab.peer(TREASURY)
    for e2e, amount_vnd in (("E2E-OK", 1_500_000), ("E2E-RJ", 2_000), ("E2E/RT?#1", 7_000_000)):
        await treasury.send(credit_transfers([transfer(e2e, amount_vnd)]))
    await treasury.send(credit_transfers([transfer("E2E-B1", 40_000, creditor=BANK_B),
                                          transfer("E2E-B2", 5, currency="USD")]))
    returned = await lab.peer(BANK_A).send(PaymentReturn(
        msg_id=new_id("R"), created_at=datetime.now(UTC), instructing_agent_bic=BANK_A,
        instructed_agent_bic=SWITCH_BIC, items=[PaymentReturnItem(
            return_id="RT-1", original_end_to_end_id="E2E/RT?#1", original_tx_id="TXE2E/RT?#1",
            returned_amount_vnd=6_000_000, reason_code=reasons.CREDITOR_DECEASED,
            amount_text="6000000")]))
    assert returned.message.document.transactions[0].status is TxStatus.SETTLED
    lab.slow = asyncio.get_running_loop().create_task(  # type: ignore[attr-defined]
        treasury.send(credit_transfers([transfer("E2E-SLOW", 3_000)])))
    await until(lambda: "E2E-SLOW" in lab.switch.state.book.in_flight and any(
        tx.end_to_end_id == "E2E-SLOW" for m in lab.participants[BANK_A].received
        if isinstance(m.document, CreditTransferMessage) for tx in m.document.transactions))
    yield lab  # in flight, and forwarded: settle_the_slow_one answers that forward
    await settle_the_slow_one(lab)
    await lab.stop()


async def settle_the_slow_one(lab: SwitchLab) -> None:
    """The creditor answers, at last, the transfer it held in flight."""
    if "E2E-SLOW" in lab.switch.state.book.in_flight:
        creditor = lab.participants[BANK_A]
        forwarded = next(m.document for m in reversed(creditor.received)
                         if isinstance(m.document, CreditTransferMessage))
        await lab.peer(BANK_A).send(creditor.answer(forwarded, [Answer()]))
    await lab.slow  # type: ignore[attr-defined]


async def journal(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `switchlab journal ...` as the command line does (in a thread: it runs an event
    loop of its own); exit status, stdout, stderr."""
    capsys.readouterr()
    try:
        status = await asyncio.to_thread(main, ["journal", *argv])
    except SystemExit as exit_:  # argparse refusing the command line
        status = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def sources(lab: SwitchLab) -> list[list[str]]:
    """The journal file (a SQLite journal's), and the running switch."""
    from_file = [] if lab.switch.state.store.shared else [["--file", str(lab.journal_path)]]
    return [*from_file, ["--switch", lab.url, "--token", TOKEN]]


async def both(lab: SwitchLab, capsys: pytest.CaptureFixture[str], *question: str
               ) -> dict[str, object]:
    """The JSON answer, asked of the journal file and of the running switch: the same."""
    answers = []
    for source in sources(lab):
        status, out, err = await journal(capsys, *question, *source, "--json")
        assert (status, err) == (0, "")
        answers.append(json.loads(out))
    assert all(answer == answers[0] for answer in answers)
    return answers[0]


async def test_a_transfer_s_history_from_the_file_and_from_the_switch(
        lab: SwitchLab, capsys: pytest.CaptureFixture[str]) -> None:
    settled = await both(lab, capsys, "show", "E2E-OK")
    assert (settled["state"], settled["amount_vnd"], settled["mode"]) == ("SETTLED", 1_500_000,
                                                                        "instant")
    assert [(h["from"], h["to"]) for h in settled["history"]] == [  # type: ignore[union-attr]
        (None, "PENDING"), ("PENDING", "SETTLED")]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(settled["final_at"]))
    rejected = await both(lab, capsys, "show", "E2E-RJ")
    assert (rejected["state"], rejected["reason_code"], rejected["reason_by"]) == (
        "REJECTED", reasons.CLOSED_ACCOUNT, BANK_A)
    returned = await both(lab, capsys, "show", "E2E/RT?#1")
    assert returned["state"] == "RETURNED"
    assert returned["return"] == {"return_id": "RT-1", "amount_vnd": 6_000_000,
                                  "reason_code": reasons.CREDITOR_DECEASED, "cycle_id": 1,
                                  "settled_at": returned["history"][-1]["at"]}  # type: ignore[index]
    for source in sources(lab):
        assert await journal(capsys, "show", "E2E-NEVER", *source) == (
            1, "", "no transfer E2E-NEVER in the journal\n")


async def test_what_is_in_flight_and_a_participant_s_transfers(
        lab: SwitchLab, capsys: pytest.CaptureFixture[str]) -> None:
    in_flight = await both(lab, capsys, "in-flight")
    assert [t["end_to_end_id"] for t in in_flight["transfers"]] == ["E2E-SLOW"]  # type: ignore[index]
    assert in_flight["transfers"][0]["final_at"] is None  # type: ignore[index]
    assert (await both(lab, capsys, "in-flight", "--participant", BANK_B))["transfers"] == []
    everything = await both(lab, capsys, "participant", BANK_A)
    # E2E-B2 named BANK_A as creditor: refused at intake (AM03), it is still BANK_A's.
    assert [t["end_to_end_id"] for t in everything["transfers"]] == [  # type: ignore[index]
        "E2E-OK", "E2E-RJ", "E2E/RT?#1", "E2E-B2", "E2E-SLOW"]
    assert everything["more"] is False
    last_two = await both(lab, capsys, "participant", BANK_A, "--last", "2")
    assert [t["end_to_end_id"] for t in last_two["transfers"]] == [  # type: ignore[index]
        "E2E-B2", "E2E-SLOW"]
    assert last_two["more"] is True
    rejected = await both(lab, capsys, "participant", TREASURY, "--state", "rejected")
    assert {t["end_to_end_id"]: t["reason_code"] for t in rejected["transfers"]} == {  # type: ignore[union-attr]
        "E2E-RJ": reasons.CLOSED_ACCOUNT, "E2E-B2": reasons.NOT_ALLOWED_CURRENCY}
    assert (await both(lab, capsys, "participant", BANK_A, "--since", "2099-01-01"))[
        "transfers"] == []
    assert len((await both(lab, capsys, "participant", BANK_A, "--since", "10m"))[
        "transfers"]) == 5  # type: ignore[arg-type]


async def test_the_tables_a_person_reads(lab: SwitchLab, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    status, out, _ = await journal(capsys, "participant", TREASURY, *sources(lab)[0])
    assert status == 0
    title, header, _, *rows = out.splitlines()
    assert title == f"transfers of {TREASURY}: all 6, in the order received"
    assert len(rows) == 6
    amount_ends = {line.index(" VND") for line in rows}
    assert len(amount_ends) == 1  # amounts right-aligned in one column
    assert header.index("amount") + len("amount") == amount_ends.pop() + len(" VND")
    assert any("  7,000,000 VND  instant  RETURNED  MD07" in row for row in rows)
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z  ", row) for row in rows)

    status, out, _ = await journal(capsys, "show", "E2E-RJ", "--switch", lab.url, "--token",
                                   TOKEN)
    assert status == 0
    assert "  amount      2,000 VND\n" in out
    assert f"  reason      AC04 closed account (given by {BANK_A})\n" in out
    assert re.search(r"PENDING +REJECTED +AC04 closed account\n", out)

    status, out, _ = await journal(capsys, "show", "E2E/RT?#1", *sources(lab)[0])
    # A new user's finding 9: 'final <settled time>' then 'reason MD07' read as if it was
    # final for MD07; the lines say which state each belongs to
    settled_at, returned_at = re.findall(r"(\S+Z)  (?:PENDING +SETTLED|SETTLED +RETURNED)", out)
    assert f"  final       {settled_at} SETTLED  (" in out, out
    assert (f"  reason      MD07 creditor deceased (why it became RETURNED, at {returned_at})\n"
            in out), out

    status, out, _ = await journal(capsys, "in-flight", "--switch", lab.url, "--token", TOKEN)
    assert (status, out.splitlines()[0]) == (0, "1 in flight, oldest first")
    assert out.splitlines()[1].endswith("mode     waiting")
    assert re.search(r"^\S+Z  E2E-SLOW  .*  3,000 VND  instant  +\d+\.\d s$", out, re.MULTILINE)


@pytest.mark.parametrize(("argv", "error"), [
    (["show", "X", "--file", "missing.sqlite"], "missing.sqlite: no such file"),
    (["show", "X", "--file", "."], ". is not a file"),
    (["show", "X", "--file", "table.csv"], "table.csv is not a switch journal: file is not a "
     "database"),
    (["show", "X", "--file", "other.sqlite"], "other.sqlite is a SQLite database but not a "
     "switch journal (no returns, transfers, transitions)"),
    (["show", "X", "--file", "postgresql://switch@db/journal"], "a PostgreSQL journal is "
     "looked into through a running switch: --switch URL"),
    (["show", "X", "--switch", "http://127.0.0.1:9"], "--switch needs the admin token"),
    (["show", "X", "--switch", "127.0.0.1:9", "--token", "t"], "is not an http(s) URL"),
    (["show", "X", "--switch", "http://127.0.0.1:9", "--token", "t"],
     "cannot reach the switch at http://127.0.0.1:9"),
    (["show", "X"], "one of the arguments --file --switch --archive is required"),
    (["in-flight", "--file", "j", "--last", "0"], "'0' is not a whole number from 1 to 1,000"),
    (["in-flight", "--file", "j", "--last", "1001"], "is not a whole number from 1 to 1,000"),
    (["participant", "bftvvnvx", "--file", "j"], "'bftvvnvx' is not a BIC"),
    (["participant", BANK_A, "--file", "j", "--state", "PAID"], "'PAID' is not a state"),
    (["participant", BANK_A, "--file", "j", "--since", "yesterday"],
     "'yesterday' is neither an ISO 8601 time"),
])
async def test_every_mistake_is_a_sentence_and_exit_2(
        argv: list[str], error: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SWITCHLAB_ADMIN_TOKEN", raising=False)
    Path("table.csv").write_text("citizen_id,name\n001190012345,Lê Thị Mai\n")
    subprocess.run([sys.executable, "-c", "import sqlite3; sqlite3.connect('other.sqlite')"
                    ".execute('CREATE TABLE t (x)')"], check=True)
    status, out, err = await journal(capsys, *argv)
    assert (status, out) == (2, "")
    assert error in err
    assert "Traceback" not in err


async def test_a_refused_token_is_exit_2(lab: SwitchLab, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    status, _, err = await journal(capsys, "in-flight", "--switch", lab.url, "--token", "wrong")
    assert status == 2
    assert err == f"switchlab journal: the switch at {lab.url} refused the admin token (401)\n"


@pytest.mark.parametrize("journal", [{}], ids=["sqlite"])  # a file: the SQLite journal
async def test_reading_a_journal_changes_nothing_in_it(lab: SwitchLab,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    await settle_the_slow_one(lab)
    assert lab.switch_runner is not None
    await lab.switch_runner.cleanup()  # stopped: the file is what it is
    lab.switch_runner = None
    # The database and its write-ahead log; the -shm file is SQLite's shared index of the
    # log, which every reader updates by design.
    files = [lab.journal_path, lab.journal_path.with_name("switch.sqlite-wal")]
    before = [(p.exists() and (p.stat().st_mtime_ns, p.read_bytes())) for p in files]
    for question in (["show", "E2E-OK"], ["in-flight"], ["participant", BANK_A]):
        assert (await journal(capsys, *question, "--file", str(lab.journal_path)))[0] == 0
    assert [(p.exists() and (p.stat().st_mtime_ns, p.read_bytes())) for p in files] == before


@pytest.mark.parametrize(("query", "error"), [
    ("state=PAID", "state='PAID': one of PENDING, SETTLED, REJECTED, RETURNED"),
    ("participant=bftvvnvx", "participant='bftvvnvx': a BIC"),
    ("participant=" + "A" * 5_000, "a BIC"),
    ("since=yesterday", "since='yesterday': an ISO 8601 time"),
    ("limit=0", "limit must be a whole number from 1 to 1,000, not '0'"),
    ("limit=1001", "not '1001'"),
    ("limit=-1", "not '-1'"),
    ("limit=1e3", "not '1e3'"),
    ("limit=%D9%A1", "not '١'"),
    ("order=random", "order='random': newest"),
    ("partcipant=BFTVVNVX", "unknown parameter partcipant; known: state, participant, since, "
     "limit, order"),
])
async def test_the_admin_listing_refuses_a_bad_parameter_with_400(
        lab: SwitchLab, query: str, error: str) -> None:
    status, body = await lab.admin("GET", f"/v1/admin/transfers?{query}")
    assert status == 400
    assert error in str(body)


async def test_the_admin_listing_is_bounded_and_behind_the_token(lab: SwitchLab) -> None:
    status, body = await lab.admin("GET", "/v1/admin/transfers?limit=1000&order=oldest")
    assert status == 200
    assert isinstance(body, dict)
    assert body["transfers"][0]["end_to_end_id"] == "E2E-OK"
    assert (body["limit"], body["more"]) == (1_000, False)
    status, body = await lab.admin("GET", "/v1/admin/transfers")
    assert isinstance(body, dict) and body["limit"] == 100
    assert lab.session is not None
    async with lab.session.get(f"{lab.url}/v1/admin/transfers") as response:
        assert response.status == 401


def test_the_command_from_a_folder_of_its_own(tmp_path: Path) -> None:
    """As a user runs it: the installed `switchlab` script, from a folder outside the
    project, with a relative path."""
    script = Path(sys.executable).parent / "switchlab"
    run = subprocess.run([str(script), "journal", "show", "X", "--file", "switch.sqlite"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": ""})
    assert (run.returncode, run.stdout) == (2, "")
    assert run.stderr == "switchlab journal: switch.sqlite: no such file\n"
