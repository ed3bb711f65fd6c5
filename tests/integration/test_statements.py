"""Each participant gets its own settlement statement: pushed when a cycle closes, and fetched
with a signed request, never another participant's."""

from __future__ import annotations

import aiohttp
import pytest

from protocol import codec, reasons, signing
from protocol.messages import Statement, TxStatus
from switch import cycles
from switch.book import Book
from switch.statements import STATEMENTS_PATH
from tests.harness import BANK_A, BANK_B, TREASURY, SwitchLab, only_status, pay, transfer, until


async def fetch(lab: SwitchLab, bic: str, cycle: str, sign: bool = True
                ) -> tuple[int, bytes, aiohttp.typedefs.LooseHeaders]:
    """GET a statement as participant `bic`, signed as a participant signs every request."""
    path = f"{STATEMENTS_PATH}/{cycle}"
    headers = (signing.sign(bic, lab.participants[bic].credentials.own, path, b"", method="GET")
               if sign else {})
    async with lab.session.get(lab.url + path, headers=headers) as response:
        return response.status, await response.read(), response.headers


async def test_a_closed_cycle_is_pushed_to_every_participant_and_fetched_by_its_own(
        lab: SwitchLab) -> None:
    assert only_status(await pay(lab, transfer("E2E-ST1", amount_vnd=70_000))) == (
        TxStatus.SETTLED, None)
    status, summary = await lab.admin("POST", "/v1/admin/settlement/close")
    assert status == 200 and isinstance(summary, dict)
    cycle_id = summary["cycle_id"]

    def pushed(bic: str) -> list[Statement]:
        return [m.document for m in lab.participants[bic].received
                if isinstance(m.document, Statement)]

    await until(lambda: all(pushed(bic) for bic in (TREASURY, BANK_A, BANK_B)))
    (statement,) = pushed(BANK_A)
    assert (statement.cycle_id, statement.participant_bic, statement.closing_balance_vnd) == (
        cycle_id, BANK_A, 70_000)
    assert [e.entry_ref for e in statement.entries] == ["E2E-ST1"]

    status, body, headers = await fetch(lab, BANK_A, "latest")
    assert status == 200
    fetched = codec.decode(body)
    assert fetched.header.to_bic == BANK_A and isinstance(fetched.document, Statement)
    assert fetched.document.closing_balance_vnd == 70_000
    assert signing.SIGNATURE_HEADER in headers  # signed, as every answer
    status, body, _ = await fetch(lab, BANK_B, str(cycle_id))
    fetched_b = codec.decode(body).document
    assert status == 200 and isinstance(fetched_b, Statement)
    assert fetched_b.participant_bic == BANK_B and fetched_b.entries == []


async def test_a_statement_is_refused_unsigned_for_the_open_cycle_and_for_no_cycle(
        lab: SwitchLab) -> None:
    status, body, _ = await fetch(lab, BANK_A, "1", sign=False)
    assert status == 401 and b"missing" in body
    status, body, _ = await fetch(lab, BANK_A, "1")
    assert status == 409 and b"still open" in body
    status, body, _ = await fetch(lab, BANK_A, "latest")  # nothing closed yet: cycle 0
    assert status == 404
    status, _, _ = await fetch(lab, BANK_A, "x1")
    assert status == 404


async def test_a_large_statement_comes_in_balanced_pages(
        lab: SwitchLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """However many credits a cycle holds, each message stays within a participant's body
    limit: the statement comes in pages (Stmt/StmtPgntn), each opening where the last closed."""
    monkeypatch.setattr(cycles, "MAX_ENTRIES_PER_PAGE", 2)
    for n in range(5):
        assert only_status(await pay(lab, transfer(f"E2E-PG{n}", amount_vnd=1_000 + n))) == (
            TxStatus.SETTLED, None)
    status, summary = await lab.admin("POST", "/v1/admin/settlement/close")
    assert status == 200 and isinstance(summary, dict)

    def pushed() -> list[Statement]:
        return [m.document for m in lab.participants[BANK_A].received
                if isinstance(m.document, Statement)]

    await until(lambda: len(pushed()) == 3)
    pages = sorted(pushed(), key=lambda page: page.page_number)
    assert [(p.page_number, p.last_page, len(p.entries)) for p in pages] == [
        (1, False, 2), (2, False, 2), (3, True, 1)]
    assert [(p.opening_balance_vnd, p.closing_balance_vnd) for p in pages] == [
        (0, 2_001), (2_001, 4_006), (4_006, 5_010)]
    assert [e.entry_ref for p in pages for e in p.entries] == [f"E2E-PG{n}" for n in range(5)]
    status, body, _ = await fetch(lab, BANK_A, f"{summary['cycle_id']}?page=2")
    fetched = codec.decode(body).document
    assert status == 200 and isinstance(fetched, Statement)
    assert (fetched.page_number, [e.entry_ref for e in fetched.entries]) == (
        2, ["E2E-PG2", "E2E-PG3"])
    assert (await fetch(lab, BANK_A, f"{summary['cycle_id']}?page=4"))[0] == 404
    status, body, _ = await fetch(lab, BANK_A, f"{summary['cycle_id']}?page=x")
    assert status == 400 and b"page must be a whole number" in body


async def test_a_bank_paying_itself_is_refused_ag03_and_its_statement_stays_whole(
        lab: SwitchLab) -> None:
    """A pacs.008 with DbtrAgt = CdtrAgt = the signer was settled ACSC, and its statement
    then failed an assertion (500 to the bank and the operator). An on-us transfer is not the
    scheme's to clear: AG03, nothing forwarded, nothing reserved, and the cycle's statements
    are served."""
    reply = await pay(lab, transfer("E2E-ONUS", debtor=BANK_A, creditor=BANK_A), sender=BANK_A)
    assert only_status(reply) == (TxStatus.REJECTED, reasons.NOT_SUPPORTED)
    assert reply.message.document.transactions[0].reason_text.startswith("on-us transfer")
    assert lab.participants[BANK_A].received == []
    _, participants = await lab.admin("GET", "/v1/admin/participants")
    assert {p["bic"]: p["reserved_vnd"] for p in participants}[BANK_A] == 0
    status, summary = await lab.admin("POST", "/v1/admin/settlement/close")
    assert status == 200 and summary["net_vnd"] == {}
    status, _, _ = await fetch(lab, BANK_A, "latest")
    assert status == 200


async def test_a_statement_the_journal_cannot_back_is_a_clear_409_and_logged(
        lab: SwitchLab, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
        ) -> None:
    """A journal holding a settled on-us transfer (written before intake refused them) makes
    a statement that disagrees with the net: the fetch, the operator's request and the push
    each say so instead of a 500 or a dead background task, and the log names the breach."""
    monkeypatch.setattr(Book, "_refusal", lambda *_: None)  # as before AG03
    reply = await pay(lab, transfer("E2E-ONUS-OLD", debtor=BANK_A, creditor=BANK_A),
                      sender=BANK_A)
    assert only_status(reply) == (TxStatus.SETTLED, None)
    monkeypatch.undo()
    status, summary = await lab.admin("POST", "/v1/admin/settlement/close")
    assert status == 200
    cycle_id = summary["cycle_id"]
    await until(lambda: "statement not pushed to BFTVVNVX" in caplog.text)
    status, body, headers = await fetch(lab, BANK_A, str(cycle_id))
    assert status == 409 and b"statement of cycle" in body and b"net position" in body
    assert signing.SIGNATURE_HEADER in headers
    status, text = await lab.admin(
        "GET", f"/v1/admin/settlement/cycles/{cycle_id}/statements/{BANK_A}")
    assert status == 409 and "operator has been alerted" in str(text)
    assert "journal invariant broken" in caplog.text
    status, _, _ = await fetch(lab, BANK_B, str(cycle_id))  # the others' are whole
    assert status == 200
