"""Each participant gets its own settlement statement: pushed when a cycle closes, and fetched
with a signed request, never another participant's."""

from __future__ import annotations

import aiohttp

from protocol import codec, signing
from protocol.messages import Statement, TxStatus
from switch.statements import STATEMENTS_PATH
from tests.harness import BANK_A, BANK_B, TREASURY, SwitchLab, only_status, pay, transfer, until


async def fetch(lab: SwitchLab, bic: str, cycle: str, sign: bool = True
                ) -> tuple[int, bytes, aiohttp.typedefs.LooseHeaders]:
    """GET a statement as participant `bic`, signed as a participant signs every request."""
    path = f"{STATEMENTS_PATH}/{cycle}"
    headers = (signing.sign(bic, lab.participants[bic].credentials.own, path, b"")
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
