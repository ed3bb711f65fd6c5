"""The citizen-id directory, verification (acmt.023/024) and transfers by citizen id, against
a real switch and real mock participants on 127.0.0.1 (switchlab/world.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from banks.behaviour import Behaviour
from banks.ledger import CLOSED
from banks.population import Beneficiary, Population
from banks.registry import SWITCH_BIC, TREASURY_BIC
from protocol import signing
from protocol.codec import encode, new_id
from protocol.directory import ENTRIES_PATH, DirectoryClient, DirectoryError
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
from protocol.signing import Credentials
from switchlab.world import World, WorldSettings
from tests.harness import until

BANK, WALLET = "BFTVVNVX", "EWLAVNV1"
RA = ("001190012345", "Nguyễn Thị Rà", BANK, "0011004455667")
DUC = ("079090054321", "Trần Văn Đức", BANK, "0011009999999")
HOA = ("036190011111", "Lê Thị Hoa", WALLET, "0912345678")
MINH = ("038090022222", "Phạm Văn Minh", BANK, "0011000000003")  # account closed
RA_SAVINGS = "0011004455668"  # Rà's second account at the bank
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
                              switch_settings=journal))
    await lab.start(Population(seed=0, beneficiaries=[
        person(*RA), person(*DUC), person(*HOA), person(*MINH, status=CLOSED),
        person(RA[0], RA[1], BANK, RA_SAVINGS)]))
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


async def test_a_participant_links_only_accounts_its_own_ledger_confirms(world: World) -> None:
    bank = directory(world, BANK)
    results = await bank.register([
        entry(*RA),
        {**entry(*DUC), "holder_name": "Trần Thị Đào"},  # not the holder's name
        {**entry(*MINH), "citizen_id": STRANGER},  # the account is someone else's
        entry(*HOA),  # an account the wallet holds, not this bank
    ])
    assert [r["status"] for r in results] == ["linked", "refused", "refused", "refused"]
    assert "acmt.024 BE01" in results[1]["reason"]
    assert "acmt.024 BE17" in results[2]["reason"]
    assert "acmt.024 AC01" in results[3]["reason"]
    # Closed, but Minh's: a link is about whose the account is; paying is asked later.
    assert (await bank.register([entry(*MINH)]))[0]["status"] == "linked"
    assert (await bank.entry(RA[0]) or {})["account_id"] == RA[3]
    assert await directory(world, WALLET).entry(RA[0]) is None  # another's entry stays hidden
    assert (await bank.register([entry(*RA)]))[0]["status"] == "unchanged"


async def test_one_citizen_id_has_one_active_account_and_an_account_one_citizen(
        world: World) -> None:
    bank, wallet = directory(world, BANK), directory(world, WALLET)
    assert [r["status"] for r in await bank.register([entry(*RA)])] == ["linked"]
    moved = await wallet.register([{**entry(*HOA), "citizen_id": RA[0], "holder_name": RA[1]}])
    assert moved[0]["status"] == "refused"
    assert "another participant, which must unlink it first" in moved[0]["reason"]
    taken = await bank.register([{**entry(*DUC), "account_id": RA[3]}])
    assert taken[0]["status"] == "refused"
    assert "the account is linked to another citizen id" in taken[0]["reason"]
    twice = await bank.register([entry(*DUC), entry(*DUC)])
    assert [r["status"] for r in twice] == ["linked", "refused"]
    assert f"citizen id {DUC[0]} appears twice in the request" in twice[1]["reason"]
    # The holder moves the payout account within the bank: an update, verified again.
    assert (await bank.register([{**entry(*RA), "account_id": DUC[3]}]))[0][
        "status"] == "refused"  # Đức's account: the ledger says BE17 (and it is linked)
    assert (await bank.register([{**entry(*RA), "account_id": RA_SAVINGS}]))[0][
        "status"] == "updated"
    assert (await bank.entry(RA[0]) or {})["account_id"] == RA_SAVINGS


async def test_unlink_and_every_change_is_journaled_with_who_and_when(world: World) -> None:
    bank, wallet = directory(world, BANK), directory(world, WALLET)
    await bank.register([entry(*RA)])
    assert not await wallet.unlink(RA[0])  # not the wallet's entry: nothing happens
    assert await bank.unlink(RA[0])
    assert await bank.entry(RA[0]) is None
    assert not await bank.unlink(RA[0])
    assert (await wallet.register([{**entry(*HOA), "citizen_id": RA[0],
                                    "holder_name": RA[1]}]))[0]["status"] == "refused"
    status, history = await admin(world, "GET", f"/v1/admin/directory/entries/{RA[0]}")
    assert status == 200 and history["entry"] is None
    assert [(c["action"], c["changed_by"], c["account_id"]) for c in history["history"]] == [
        ("link", BANK, RA[3]), ("unlink", BANK, RA[3])]
    assert all(c["at"] > 0 for c in history["history"])
    assert [c["action"] for c in await bank.changes()] == ["link", "unlink"]
    assert await wallet.changes() == []
    _, listed = await admin(world, "GET", f"/v1/admin/directory/changes?participant={BANK}")
    assert len(listed["changes"]) == 2
    for query in ("after_seq=-1", "limit=1001", "after_seq=" + "9" * 5_000, "limit=x"):
        status, text = await admin(world, "GET", f"/v1/admin/directory/changes?{query}")
        assert status == 400 and "must be a whole number" in text


async def test_directory_requests_are_signed_bounded_and_checked(world: World) -> None:
    with pytest.raises(DirectoryError) as refused:
        await directory(world, TREASURY_BIC).register([entry(*RA)])
    assert refused.value.status == 403  # a treasury holds no customers' accounts
    forged = DirectoryClient(world.session, world.switch_url, BANK,
                             Credentials.shared(b"guessed"), SWITCH_BIC)
    with pytest.raises(DirectoryError, match="HTTP 401"):
        await forged.register([entry(*RA)])
    bank = directory(world, BANK)
    for bad, says in [
        ([{**entry(*RA), "account_id": "0011 004455667"}], "entries.0.account_id"),
        ([{**entry(*RA), "holder_name": " "}], "entries.0.holder_name"),
        ([{**entry(*RA), "participant_bic": WALLET}], "Extra inputs are not permitted"),
        ([entry(*RA)] * 1_001, "at most 1000 items"),
        ([], "at least 1 item"),
    ]:
        with pytest.raises(DirectoryError, match="HTTP 400") as error:
            await bank.register(bad)
        assert says in str(error.value)
    bad_id = await bank.register([{**entry(*RA), "citizen_id": "003190012345"}])
    assert bad_id[0]["status"] == "refused" and "no province code" in bad_id[0]["reason"]
    assert world.session is not None
    body = b"{not json"
    headers = signing.sign(BANK, credentials(world, BANK).own, ENTRIES_PATH, body)
    async with world.session.post(f"{world.switch_url}{ENTRIES_PATH}", data=body,
                                  headers=headers) as response:
        assert response.status == 400 and "not JSON" in await response.text()


async def test_the_directory_survives_a_restart_of_the_switch(world: World,
                                                              tmp_path: Path) -> None:
    await directory(world, BANK).register([entry(*RA)])
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
    await directory(world, BANK).register([entry(*RA)])
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
    await directory(world, BANK).register([entry(*RA)])
    report = await pay_by_citizen_id(world, citizen_id, RA[1], f"E2E-{reason}-{citizen_id}",
                                     account)
    (status,) = report.transactions
    assert (status.status, status.reason_code, status.reason_originator_bic) == (
        TxStatus.REJECTED, reason, SWITCH_BIC)
    assert status.reason_text  # AddtlInf says why in words


# ---- verification -----------------------------------------------------------------------------


async def test_verification_answers_match_or_why_not_and_masks_names(world: World) -> None:
    await directory(world, BANK).register([entry(*RA)])
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


async def test_issue22_obs4_a_captured_directory_request_replayed_takes_no_effect(
        world: World) -> None:
    """Observation 4: after a holder moved to account B, the captured "link to account A" put
    them back on A, and a captured unlink replayed 200 s later unlinked them again. Each
    signed request carries its id (the RFC 9421 nonce), remembered for the whole window: a
    replay is refused 401 and changes nothing; after the window its signature is stale."""
    assert world.session is not None
    bank, own = directory(world, BANK), credentials(world, BANK).own

    async def send(method: str, path: str, body: bytes, headers: dict[str, str]
                   ) -> tuple[int, str]:
        assert world.session is not None
        async with world.session.request(method, f"{world.switch_url}{path}", data=body,
                                          headers=headers) as response:
            return response.status, await response.text()

    link_a = json.dumps({"entries": [entry(*RA)]}).encode()
    captured_link = signing.sign(BANK, own, ENTRIES_PATH, link_a,
                                 content_type="application/json")
    assert (await send("POST", ENTRIES_PATH, link_a, captured_link))[0] == 200
    unlink_path = f"{ENTRIES_PATH}/{RA[0]}"
    captured_unlink = signing.sign(BANK, own, unlink_path, b"", method="DELETE",
                                   content_type="application/json")
    assert (await send("DELETE", unlink_path, b"", captured_unlink))[0] == 200
    moved = await bank.register([{**entry(*RA), "account_id": RA_SAVINGS}])
    assert moved[0]["status"] == "linked"

    status, text = await send("POST", ENTRIES_PATH, link_a, captured_link)
    assert status == 401 and "already used" in text
    status, text = await send("DELETE", unlink_path, b"", captured_unlink)
    assert status == 401 and "already used" in text
    assert (await bank.entry(RA[0]) or {}).get("account_id") == RA_SAVINGS
