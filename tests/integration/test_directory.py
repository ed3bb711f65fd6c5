"""The citizen-id directory, verification (acmt.023/024) and transfers by citizen id, against
a real switch and real mock participants on 127.0.0.1 (lab/world.py)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from banks.behaviour import Behaviour
from banks.ledger import CLOSED
from banks.ministry import payment_notices
from banks.payment_table import Payment, PaymentTable
from banks.population import Beneficiary, Population
from banks.registry import SWITCH_BIC, TREASURY_BIC
from lab.citizens import REGISTER_ID
from lab.world import World, WorldSettings
from protocol import signing
from protocol.codec import encode, new_id
from protocol.directory import (
    ENTRIES_PATH,
    CitizenLinksClient,
    DirectoryClient,
    DirectoryError,
)
from protocol.http import SWITCH_MESSAGES_PATH, Peer, idempotency_key, wrap
from protocol.keys import SwitchKeys
from protocol.messages import (
    CreditTransfer,
    CreditTransferMessage,
    PaymentStatusReport,
    TxStatus,
    VerificationItem,
    VerificationReport,
    VerificationRequest,
    VerificationResult,
)
from protocol.population import CHECKS_PATH, MAX_CHECK_ROWS
from protocol.signing import Credentials
from switchlab.cli import main
from tests.harness import until

BANK, WALLET = "BFTVVNVX", "EWLAVNV1"
RA = ("001190012345", "Nguyễn Thị Rà", BANK, "0011004455667")
DUC = ("079090054321", "Trần Văn Đức", BANK, "0011009999999")
HOA = ("036190011111", "Lê Thị Hoa", WALLET, "0912345678")
MINH = ("038090022222", "Phạm Văn Minh", BANK, "0011000000003")  # account closed
RA_SAVINGS = "0011004455668"  # Rà's second account at the bank
RA_WALLET = "0901234567"  # and her e-wallet
NAM = ("040090033333", "Hồ Văn Nam", BANK, "0011000000004")  # deceased, his bank knows
STRANGER = "001185067347"  # a valid citizen id that nobody in the lab holds


def person(citizen_id: str, name: str, bic: str, account: str, **changes: Any
           ) -> Beneficiary:
    return Beneficiary(citizen_id=citizen_id, full_name=name, programme="luong_huu",
                       amount_vnd=1_000_000, participant_bic=bic, account_id=account,
                       ledger_name=name, end_to_end_id=f"E2E{citizen_id}", **changes)


@pytest.fixture
async def world(journal: dict[str, str], tmp_path: Path) -> AsyncIterator[World]:
    """The lab on either journal: the directory's rules hold the same on both."""
    lab = World(WorldSettings(tmp_path, {BANK: Behaviour(), WALLET: Behaviour()},
                              switch_settings=journal, register=True))
    await lab.start(Population(seed=0, beneficiaries=[
        person(*RA), person(*DUC), person(*HOA), person(*MINH, status=CLOSED),
        person(*NAM, deceased=True), person(RA[0], RA[1], BANK, RA_SAVINGS),
        person(RA[0], RA[1], WALLET, RA_WALLET)]))
    yield lab
    await lab.stop()


def credentials(world: World, bic: str) -> Credentials:
    """What `bic` holds towards the switch, as the lab provisioned it."""
    return SwitchKeys(**world.keys.handed[bic]).credentials()


def directory(world: World, bic: str) -> DirectoryClient:
    assert world.session is not None
    return DirectoryClient(world.session, world.switch_url, bic, credentials(world, bic),
                           SWITCH_BIC)


def entry(citizen_id: str, name: str, _bic: str, account: str) -> dict[str, str]:
    return {"citizen_id": citizen_id, "account_id": account, "holder_name": name}


def treasury(world: World) -> Peer:
    assert world.session is not None
    return Peer(world.session, f"{world.switch_url}{SWITCH_MESSAGES_PATH}", TREASURY_BIC,
                credentials(world, TREASURY_BIC), SWITCH_BIC)


async def admin(world: World, method: str, path: str, body: object = None
                ) -> tuple[int, Any]:
    assert world.session is not None
    async with world.session.request(method, f"{world.switch_url}{path}", json=body,
                                     headers=idempotency_key()) as r:
        return r.status, (await r.json() if r.content_type == "application/json"
                          else await r.text())


async def register_admin(world: World, method: str, path: str, body: object = None
                         ) -> tuple[int, Any]:
    """The population register's operator API, with its admin token (the lab's)."""
    assert world.session is not None and world.register_url is not None
    async with world.session.request(method, f"{world.register_url}{path}", json=body) as r:
        return r.status, await r.json()


async def verify(world: World, *items: VerificationItem) -> list[VerificationResult]:
    reply = await treasury(world).send(VerificationRequest(
        msg_id=new_id("T"), created_at=datetime.now(UTC), assigner_bic=TREASURY_BIC,
        assignee_bic=SWITCH_BIC, items=list(items)))
    assert reply.status == 200, reply.text
    assert reply.message is not None and isinstance(reply.message.document, VerificationReport)
    return reply.message.document.results


async def pay_by_citizen_id(world: World, citizen_id: str, name: str, e2e: str,
                            account: str = "") -> PaymentStatusReport:
    tx = CreditTransfer(
        end_to_end_id=e2e, tx_id=e2e, amount_vnd=1_500_000, amount_text="1500000",
        debtor_name="Kho bạc Nhà nước", debtor_account="KBNN-TW-0001",
        debtor_agent_bic=TREASURY_BIC, creditor_name=name, creditor_account=account,
        creditor_agent_bic=SWITCH_BIC, creditor_citizen_id=citizen_id)
    reply = await treasury(world).send(CreditTransferMessage(
        msg_id=new_id("T"), created_at=datetime.now(UTC), instructing_agent_bic=TREASURY_BIC,
        instructed_agent_bic=SWITCH_BIC, transactions=[tx]))
    assert reply.status == 200 and reply.message is not None, reply.text
    assert isinstance(reply.message.document, PaymentStatusReport)
    return reply.message.document


# ---- the directory's rules --------------------------------------------------------------------


async def link(world: World, *people: tuple[str, str, str, str]) -> list[dict[str, str]]:
    """Each citizen links their own account, signed in to the population register."""
    return await world.link_citizens([{"citizen_id": cid, "participant_bic": bic,
                                       "account_id": account} for cid, _, bic, account in people])


async def test_a_citizen_links_only_an_account_its_holder_confirms_open_and_theirs(
        world: World) -> None:
    results = await link(world, RA, (DUC[0], DUC[1], BANK, RA_SAVINGS), MINH,
                         (HOA[0], HOA[1], BANK, HOA[3]), NAM)
    assert [r["status"] for r in results] == ["linked"] + ["refused"] * 4
    assert "acmt.024 BE17" in results[1]["reason"]  # another holder's account
    assert "acmt.024 AC04" in results[2]["reason"]  # closed: cannot be linked
    assert "acmt.024 AC01" in results[3]["reason"]  # the bank holds no such account
    assert "acmt.024 MD07" in results[4]["reason"]  # the holder's bank knows they died
    bank = directory(world, BANK)
    entry_now = await bank.entry(RA[0]) or {}
    assert entry_now["account_id"] == RA[3]
    # Read right after the change, the entry shows it (it showed 0.0 and "" until a restart).
    assert entry_now["updated_at"] > 0
    assert entry_now["updated_by"] == f"{REGISTER_ID} for citizen {RA[0]}; confirmed by {BANK}"
    assert await directory(world, WALLET).entry(RA[0]) is None  # another's entry stays hidden
    assert (await link(world, RA))[0]["status"] == "unchanged"


async def test_issue_27_a_participant_alone_can_neither_create_nor_move_a_link(
        world: World) -> None:
    """The hijack: an e-wallet linked a bank customer's citizen id to its own wallet, the
    switch asked only the e-wallet, and a treasury payment by citizen id went to the wallet."""
    await link(world, RA)
    wallet = directory(world, WALLET)
    for cid in (RA[0], DUC[0]):  # linked at the bank, or not linked at all
        with pytest.raises(DirectoryError, match="HTTP 403") as refused:
            await wallet.register([{"citizen_id": cid, "account_id": HOA[3],
                                    "holder_name": RA[1]}])
        assert "cannot create or move a link" in str(refused.value)
    report = await pay_by_citizen_id(world, RA[0], RA[1], "E2E-HIJACK")
    assert report.transactions[0].status == TxStatus.SETTLED
    ledger = world.banks[BANK].ledger
    await until(lambda: ledger.accounts[RA[3]].balance_vnd == 1_500_000)
    assert world.banks[WALLET].ledger.accounts[HOA[3]].balance_vnd == 0


async def test_moving_a_link_is_the_citizens_request_and_the_old_holder_is_told(
        world: World) -> None:
    await link(world, RA)
    moved = await link(world, (RA[0], RA[1], WALLET, RA_WALLET))
    assert moved[0]["status"] == "moved"
    bank, wallet = directory(world, BANK), directory(world, WALLET)
    assert await bank.entry(RA[0]) is None
    assert (await wallet.entry(RA[0]) or {})["account_id"] == RA_WALLET
    told = await bank.changes()
    assert [(c["action"], c["account_id"]) for c in told] == [("link", RA[3]),
                                                              ("unlink", RA[3])]
    assert f"for citizen {RA[0]}; confirmed by {WALLET}" in told[1]["changed_by"]
    # One account, one citizen: Đức cannot take Rà's wallet, whatever its holder says.
    taken = await link(world, (DUC[0], DUC[1], WALLET, RA_WALLET))
    assert taken[0]["status"] == "refused"
    assert "the account is linked to another citizen id" in taken[0]["reason"]
    # Within the bank: the citizen's savings account instead, confirmed again.
    await link(world, RA)
    assert (await link(world, (RA[0], RA[1], BANK, RA_SAVINGS)))[0]["status"] == "updated"


async def test_a_death_registered_in_the_register_unlinks(world: World) -> None:
    await link(world, RA)
    status, answer = await register_admin(world, "POST", "/v1/admin/deaths", {
        "deaths": [{"citizen_id": RA[0], "died_on": "2026-11-01"},
                   {"citizen_id": STRANGER, "died_on": "2026-11-01"}]})
    assert status == 200
    assert answer["results"][0] == {"citizen_id": RA[0], "status": "recorded", "unlinked": "yes"}
    assert answer["results"][1]["status"] == "refused"
    assert await directory(world, BANK).entry(RA[0]) is None
    again = await link(world, RA)
    assert again[0]["status"] == "refused" and "died on 2026-11-01" in again[0]["reason"]
    report = await pay_by_citizen_id(world, RA[0], RA[1], "E2E-AFTER-DEATH")
    assert report.transactions[0].reason_code == "BE23"
    _, history = await admin(world, "GET", f"/v1/admin/directory/entries/{RA[0]}")
    assert history["history"][-1]["changed_by"] == f"{REGISTER_ID} for citizen {RA[0]} (death)"


async def test_unlink_by_the_holder_and_every_change_is_journaled_with_who_and_when(
        world: World) -> None:
    bank, wallet = directory(world, BANK), directory(world, WALLET)
    await link(world, RA)
    assert not await wallet.unlink(RA[0])  # not the wallet's entry: nothing happens
    assert await bank.unlink(RA[0])  # the bank may unlink its own (the account closed)
    assert await bank.entry(RA[0]) is None
    assert not await bank.unlink(RA[0])
    status, history = await admin(world, "GET", f"/v1/admin/directory/entries/{RA[0]}")
    assert status == 200 and history["entry"] is None
    assert [(c["action"], c["changed_by"], c["account_id"]) for c in history["history"]] == [
        ("link", f"{REGISTER_ID} for citizen {RA[0]}; confirmed by {BANK}", RA[3]),
        ("unlink", BANK, RA[3])]
    assert all(c["at"] > 0 for c in history["history"])
    assert [c["action"] for c in await bank.changes()] == ["link", "unlink"]
    assert await wallet.changes() == []
    _, listed = await admin(world, "GET", f"/v1/admin/directory/changes?participant={BANK}")
    assert len(listed["changes"]) == 2
    for query in ("after_seq=-1", "limit=1001", "after_seq=" + "9" * 5_000, "limit=x"):
        status, text = await admin(world, "GET", f"/v1/admin/directory/changes?{query}")
        assert status == 400 and "must be a whole number" in text


async def test_link_requests_are_signed_by_the_register_and_checked(world: World) -> None:
    assert world.session is not None
    as_bank = CitizenLinksClient(world.session, world.switch_url, BANK,
                                 credentials(world, BANK), SWITCH_BIC)
    with pytest.raises(DirectoryError, match="HTTP 401"):  # a bank is not the register
        await as_bank.link([{"citizen_id": RA[0], "participant_bic": BANK,
                             "account_id": RA[3], "holder_name": RA[1]}])
    register = CitizenLinksClient(world.session, world.switch_url, REGISTER_ID,
                                  credentials(world, REGISTER_ID), SWITCH_BIC)
    for bad, says in [
        ([{"citizen_id": RA[0], "participant_bic": BANK, "account_id": "0011 004455667",
           "holder_name": RA[1]}], "links.0.account_id"),
        ([{"citizen_id": RA[0], "account_id": RA[3], "holder_name": RA[1]}],
         "links.0.participant_bic"),
        ([], "at least 1 item"),
    ]:
        with pytest.raises(DirectoryError, match="HTTP 400") as error:
            await register.link(bad)
        assert says in str(error.value)
    with pytest.raises(DirectoryError, match="HTTP 403"):  # a treasury holds no accounts
        await register.link([{"citizen_id": RA[0], "participant_bic": TREASURY_BIC,
                              "account_id": RA[3], "holder_name": RA[1]}])
    bad_id = await register.link([{"citizen_id": "003190012345", "participant_bic": BANK,
                                   "account_id": RA[3], "holder_name": RA[1]}])
    assert bad_id[0]["status"] == "refused" and "no province code" in bad_id[0]["reason"]
    body = b"{not json"
    headers = signing.sign(BANK, credentials(world, BANK).own, ENTRIES_PATH, body)
    async with world.session.post(f"{world.switch_url}{ENTRIES_PATH}", data=body,
                                  headers=headers) as response:
        assert response.status == 400 and "not JSON" in await response.text()


async def test_a_citizen_signs_in_as_themselves_and_nobody_else(world: World) -> None:
    assert world.citizens is not None
    wrong = await world.citizens.link([{"citizen_id": RA[0], "participant_bic": BANK,
                                        "account_id": RA[3]}])
    assert wrong[0]["status"] == "linked"
    assert world.session is not None and world.register_url is not None
    async with world.session.post(
            f"{world.register_url}/v1/citizens/{RA[0]}/link",
            json={"participant_bic": WALLET, "account_id": HOA[3]},
            headers={"Authorization": f"Bearer {world.citizens.login(HOA[0])}"}) as response:
        assert response.status == 404  # Hoa's login is not Rà's
    assert await directory(world, BANK).entry(RA[0]) is not None


async def test_the_directory_survives_a_restart_of_the_switch(world: World,
                                                              tmp_path: Path) -> None:
    await link(world, RA)
    await world.stop()
    again = World(WorldSettings(tmp_path, {BANK: Behaviour(), WALLET: Behaviour()},
                                keep_journal=True,
                                switch_settings=world.settings.switch_settings))
    await again.start(Population(seed=0, beneficiaries=[person(*RA)]))
    try:
        report = await pay_by_citizen_id(again, RA[0], RA[1], "E2E-AFTER-RESTART")
        assert report.transactions[0].status == TxStatus.SETTLED
    finally:
        await again.stop()
    world.runners, world.session = [], None  # already stopped


# ---- transfers by citizen id ------------------------------------------------------------------


async def test_a_transfer_by_citizen_id_alone_is_resolved_before_routing(world: World) -> None:
    await link(world, RA)
    report = await pay_by_citizen_id(world, RA[0], "Nguyen Thi Ra", "E2E-NIDN-1")
    assert report.transactions[0].status == TxStatus.SETTLED
    ledger = world.banks[BANK].ledger
    await until(lambda: ledger.accounts[RA[3]].balance_vnd == 1_500_000)
    _, stats = await admin(world, "GET", "/v1/admin/transfers/E2E-NIDN-1")
    assert stats["creditor_bic"] == BANK  # positions moved to the participant, not the switch


@pytest.mark.parametrize(("citizen_id", "account", "reason"), [
    (STRANGER, "", "BE23"),  # valid, but no account linked
    ("003190012345", "", "BE23"),  # not a citizen id at all
    (RA[0], RA[3], "RC01"),  # an account with the switch as its agent: the switch holds none
])
async def test_a_transfer_by_citizen_id_without_a_link_is_refused_with_a_reason(
        world: World, citizen_id: str, account: str, reason: str) -> None:
    await link(world, RA)
    report = await pay_by_citizen_id(world, citizen_id, RA[1], f"E2E-{reason}-{citizen_id}",
                                     account)
    (status,) = report.transactions
    assert (status.status, status.reason_code, status.reason_originator_bic) == (
        TxStatus.REJECTED, reason, SWITCH_BIC)
    assert status.reason_text  # AddtlInf says why in words


# ---- verification -----------------------------------------------------------------------------


async def test_verification_answers_match_or_why_not_and_masks_names(world: World) -> None:
    await link(world, RA)
    ask = VerificationItem
    results = await verify(
        world,
        ask("by-account", "NGUYỄN THỊ RÀ", RA[0], RA[3], BANK),
        ask("no-diacritics", "Nguyen Thi Ra", RA[0], RA[3], BANK),
        ask("other-name", "Nguyễn Thị Ra", RA[0], RA[3], BANK),  # Ra is not Rà
        ask("other-person", "Nguyễn Thị Rà", STRANGER, RA[3], BANK),
        ask("no-account", RA[1], RA[0], "0011000000000", BANK),
        ask("closed", MINH[1], MINH[0], MINH[3], BANK),
        ask("by-citizen-id", "Nguyen Thi Ra", RA[0]),
        ask("not-linked", DUC[1], DUC[0]),
        ask("unknown-agent", RA[1], RA[0], RA[3], "NOPEVNVX"),
        ask("account-without-agent", RA[1], RA[0], RA[3]),
        ask("the-switch-as-agent", RA[1], RA[0], RA[3], SWITCH_BIC),
    )
    answers = {r.original_id: (r.verified, r.reason_code, r.masked_name) for r in results}
    assert answers == {
        "by-account": (True, None, None), "no-diacritics": (True, None, None),
        "other-name": (False, "BE01", "N***** T** R*"),
        "other-person": (False, "BE17", None),  # nothing about a stranger's account
        "no-account": (False, "AC01", None), "closed": (False, "AC04", None),
        "by-citizen-id": (True, None, None), "not-linked": (False, "BE23", None),
        "unknown-agent": (False, "RC01", None), "account-without-agent": (False, "RC01", None),
        "the-switch-as-agent": (False, "RC01", None),
    }
    assert [r.original_id for r in results] == list(answers)  # in the asker's order


async def test_a_holder_name_is_never_handed_on_in_full(world: World,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = world.banks[BANK].ledger
    monkeypatch.setattr(ledger, "verify", lambda item: VerificationResult(
        item.verification_id, False, "BE01", RA[1]))  # a participant that leaks the name
    assert world.session is not None
    request = VerificationRequest(
        msg_id=new_id("T"), created_at=datetime.now(UTC), assigner_bic=TREASURY_BIC,
        assignee_bic=SWITCH_BIC, items=[VerificationItem("x", "Nguyễn Văn A", RA[0], RA[3],
                                                         BANK)])
    body = encode(wrap(TREASURY_BIC, SWITCH_BIC, request))
    status, _, answer = await treasury(world).exchange(body)
    assert status == 200
    assert RA[1].encode() not in answer and b"<Cd>BE01</Cd>" in answer


async def test_a_participant_that_cannot_be_asked_is_not_a_mismatch(world: World) -> None:
    await admin(world, "POST", f"/v1/admin/participants/{BANK}/sign-off")
    (result,) = await verify(world, VerificationItem("x", RA[1], RA[0], RA[3], BANK))
    assert (result.verified, result.reason_code) == (False, "AB08")


async def test_verification_requests_are_checked(world: World) -> None:
    peer = treasury(world)
    ask = VerificationItem("same", RA[1], RA[0], RA[3], BANK)
    twice = VerificationRequest(new_id("T"), datetime.now(UTC), TREASURY_BIC, SWITCH_BIC,
                                [ask, ask])
    reply = await peer.send(twice)
    assert reply.status == 400 and "appears twice" in reply.text
    many = VerificationRequest(new_id("T"), datetime.now(UTC), TREASURY_BIC, SWITCH_BIC,
                               [VerificationItem(str(n), RA[1], RA[0]) for n in range(1_001)])
    reply = await peer.send(many)
    assert reply.status == 400 and "at most 1,000" in reply.text
    as_another = VerificationRequest(new_id("T"), datetime.now(UTC), BANK, SWITCH_BIC, [ask])
    reply = await peer.send(as_another)
    assert reply.status == 403 and "Assgnr" in reply.text


async def test_the_operator_imports_links_from_the_registry(world: World) -> None:
    status, answer = await admin(world, "POST", "/v1/admin/directory/entries", {"entries": [
        {**entry(*HOA), "participant_bic": WALLET},
        {**entry(*HOA), "citizen_id": STRANGER, "participant_bic": TREASURY_BIC}]})
    assert status == 403 and "holds no customers' accounts" in json.dumps(answer)
    status, answer = await admin(world, "POST", "/v1/admin/directory/entries", {"entries": [
        {**entry(*HOA), "participant_bic": WALLET}]})
    assert status == 200 and answer["results"][0]["status"] == "linked"
    _, history = await admin(world, "GET", f"/v1/admin/directory/entries/{HOA[0]}")
    assert history["history"][0]["changed_by"] == "registry"


# ---- a citizen's own payments -----------------------------------------------------------------


async def test_a_citizen_sees_their_own_payments_and_nothing_of_anyone_else(
        world: World) -> None:
    """As VNeID shows payment status: what was paid for which programme and period, into
    which account (masked), or at which post office in cash."""
    await link(world, RA)
    table = PaymentTable.of([
        Payment(RA[0], RA[1], 2_340_000, "", "", "luong_huu", "E2E-RA-CCCD", "2026-11"),
        Payment(RA[0], RA[1], 500_000, WALLET, RA_WALLET, "tro_cap_xa_hoi", "E2E-RA-WALLET",
                "2026-11"),
        Payment(DUC[0], DUC[1], 500_000, "", "", "tro_cap_xa_hoi", "E2E-DUC", "2026-11")])
    result = await world.treasury.run(table)
    assert world.ministry is not None and world.citizens is not None
    assert await world.ministry.report_payments(payment_notices(result)) == 3
    status, mine = await world.citizens.payments(RA[0])
    assert status == 200
    assert [(p["programme"], p["period"], p["amount_vnd"], p["status"], p["paid_into"])
            for p in mine["payments"]] == [
        ("luong_huu", "2026-11", 2_340_000, "paid",
         {"participant_bic": BANK, "account": "*********5667"}),
        ("tro_cap_xa_hoi", "2026-11", 500_000, "paid",
         {"participant_bic": WALLET, "account": "******4567"})]
    status, his = await world.citizens.payments(DUC[0])
    (cash,) = his["payments"]
    assert (cash["status"], cash["reason_code"], cash["paid_into"]) == ("rejected", "BE23", None)
    assert cash["cash_at"].startswith("Bưu điện Phường ")
    # Signed in as Rà: Đức's CCCD answers as a CCCD nobody holds.
    someone_else = await world.citizens.payments(DUC[0], login=world.citizens.login(RA[0]))
    nobody = await world.citizens.payments(STRANGER, login=world.citizens.login(RA[0]))
    assert someone_else == nobody == (404, {"error": "no such citizen, or not signed in as them"})


async def test_the_register_runs_as_a_process_of_its_own(tmp_path: Path) -> None:
    """`python -m register --config register.yaml`, beside the switch: a citizen links through
    it, and its configuration and register file are checked at start."""
    lab = World(WorldSettings(tmp_path, {BANK: Behaviour()}, register=True,
                              register_process=True))
    await lab.start(Population(seed=0, beneficiaries=[person(*RA)]))
    try:
        assert lab.register_process is not None and lab.register_process.returncode is None
        assert [v["status"] for v in await link(lab, RA)] == ["linked"]
        assert (await directory(lab, BANK).entry(RA[0]) or {})["account_id"] == RA[3]
    finally:
        await lab.stop()
    assert lab.register_process.returncode is not None
    bad = tmp_path / "bad.yaml"
    bad.write_text("register: {id: nope}\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "register", "--config", str(bad)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "bad.yaml:1: register.id" in done.stderr


async def test_switchlab_link_relays_a_users_file_of_citizens_requests(
        world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert world.citizens is not None and world.register_url is not None
    requests = tmp_path / "requests.csv"
    requests.write_text(
        "citizen_id,participant_bic,account_id,login\n"
        f"{RA[0]},{BANK},{RA[3]},{world.citizens.login(RA[0])}\n"
        f"{MINH[0]},{BANK},{MINH[3]},{world.citizens.login(MINH[0])}\n"
        f"{DUC[0]},{BANK},{DUC[3]},{world.citizens.login(RA[0])}\n", encoding="utf-8")
    code = await asyncio.to_thread(main, ["link", str(requests), "--register",
                                          world.register_url])
    assert code == 1  # some refused
    assert "1 linked, 2 refused" in capsys.readouterr().out
    verdicts = (tmp_path / "requests-verdicts.csv").read_text(encoding="utf-8-sig")
    assert "acmt.024 AC04" in verdicts and "not signed in as them" in verdicts
    requests.write_text("citizen_id,account_id\n1,2\n", encoding="utf-8")
    assert await asyncio.to_thread(main, ["link", str(requests), "--register",
                                          world.register_url]) == 2
    assert "the header needs citizen_id, participant_bic" in capsys.readouterr().err


async def test_the_register_refuses_what_is_unsigned_malformed_or_too_large(
        world: World) -> None:
    assert world.session is not None and world.register_url is not None
    assert world.ministry is not None and world.citizens is not None
    url = world.register_url
    async with world.session.post(f"{url}{CHECKS_PATH}", json={"rows": []}) as response:
        assert response.status == 401  # no party's signature
    with pytest.raises(DirectoryError, match="HTTP 400") as refused:
        await world.ministry._call("POST", CHECKS_PATH, {"rows": [
            {"citizen_id": RA[0], "full_name": RA[1], "birth_date": "yesterday"}]})
    assert "rows.0.birth_date" in str(refused.value)
    with pytest.raises(DirectoryError, match="HTTP 400"):  # more than a request may hold
        await world.ministry._call("POST", CHECKS_PATH, {"rows": [
            {"citizen_id": RA[0], "full_name": RA[1]}] * (MAX_CHECK_ROWS + 1)})
    (finding,) = await world.ministry.check([{"citizen_id": "x" * 12, "full_name": RA[1]}])
    assert finding["code"] == "BE06"  # not a CCCD anyone holds: unknown, never a 500
    login = {"Authorization": f"Bearer {world.citizens.login(RA[0])}"}
    for body in (b"", b"{not json", json.dumps({"participant_bic": BANK}).encode()):
        async with world.session.post(f"{url}/v1/citizens/{RA[0]}/link", data=body,
                                      headers=login) as response:
            assert response.status == 400, await response.text()
    status, answer = await register_admin(world, "POST", "/v1/admin/deaths", {
        "deaths": [{"citizen_id": RA[0], "died_on": "2999-01-01"}]})
    assert status == 200 and "in the future" in answer["results"][0]["reason"]


async def test_the_register_signs_and_checks_in_the_ed25519_scheme_too(tmp_path: Path) -> None:
    """Each party's own key pair: the register towards the switch, the ministry towards the
    register."""
    lab = World(WorldSettings(tmp_path, {BANK: Behaviour()}, register=True,
                              switch_settings={"signing": "ed25519"}))
    await lab.start(Population(seed=0, beneficiaries=[person(*RA)]))
    try:
        assert [v["status"] for v in await link(lab, RA)] == ["linked"]
        assert lab.ministry is not None
        (finding,) = await lab.ministry.check([{"citizen_id": RA[0], "full_name": RA[1]}])
        assert finding["code"] == ""
    finally:
        await lab.stop()


async def test_issue22_obs4_a_captured_directory_request_replayed_takes_no_effect(
        world: World) -> None:
    """Observation 4: a captured unlink, replayed 200 s later, unlinked the holder again.
    Each signed request carries its id (the RFC 9421 nonce), remembered for the whole window:
    a replay is refused 401 and changes nothing; after the window its signature is stale.
    (Links are the citizen's own requests now, issue #27; a participant's unlink of its own
    entry is the directory change a bank can still sign.)"""
    assert world.session is not None
    bank, own = directory(world, BANK), credentials(world, BANK).own

    async def send(method: str, path: str, body: bytes, headers: dict[str, str]
                   ) -> tuple[int, str]:
        assert world.session is not None
        async with world.session.request(method, f"{world.switch_url}{path}", data=body,
                                          headers=headers) as response:
            return response.status, await response.text()

    assert [v["status"] for v in await link(world, RA)] == ["linked"]
    unlink_path = f"{ENTRIES_PATH}/{RA[0]}"
    captured_unlink = signing.sign(BANK, own, unlink_path, b"", method="DELETE",
                                   content_type="application/json")
    assert (await send("DELETE", unlink_path, b"", captured_unlink))[0] == 200
    assert [v["status"] for v in await link(world, RA)] == ["linked"]  # the citizen again

    status, text = await send("DELETE", unlink_path, b"", captured_unlink)
    assert status == 401 and "already used" in text
    assert (await bank.entry(RA[0]) or {}).get("account_id") == RA[3]
