"""Issue 12, observations 15 and 16: nothing a participant holds signs as the switch or as
another participant, every answer the switch gives is signed and checked, and health tells
strangers only ok or not. Both signing modes; real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from banks.bank import INBOUND_PATH, Bank, BankConfig, create_bank_app
from banks.behaviour import Behaviour
from banks.ledger import Account
from banks.payment_table import read_payment_table
from banks.payout import PayoutStatus
from banks.population import Mix, generate_population
from banks.treasury import TreasurySettings
from lab.world import World, WorldSettings, provision
from protocol import codec, signing
from protocol.codec import new_id
from protocol.http import (
    SWITCH_MESSAGES_PATH,
    AnswerNotAuthentic,
    Peer,
    idempotency_key,
    wrap,
)
from protocol.keys import Signing
from protocol.messages import (
    MessageType,
    PaymentReturn,
    PaymentReturnItem,
    PaymentStatusReport,
    StatusRequest,
    StatusRequestItem,
    TransactionStatus,
    TxStatus,
)
from protocol.runtime import bind, serve
from protocol.settings import SettingsError
from protocol.tls import client_context, make_lab_pki, server_context
from switch.app import create_app
from switch.config import parse_config
from switch.gate import senders
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

MODES: list[Signing] = ["hmac", "ed25519"]
HOLDER = Account("0011004455667", "Nguyễn Thị Hồng Nhung", "001190012345")


@pytest.fixture(params=MODES)
async def lab(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SwitchLab]:
    lab = await SwitchLab(tmp_path / "switch.sqlite", signing=request.param).start()
    yield lab
    await lab.stop()


# ---- observation 15: no one signs as the switch or as another ------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_a_bank_cannot_sign_a_switch_acsc_that_another_bank_accepts(
        mode: Signing, tmp_path: Path) -> None:
    """BANK_B, holding everything the scheme gave it, forges the switch's ACSC for a transfer
    BANK_A holds: BANK_A refuses it (401) and credits nothing; the switch's own ACSC credits."""
    keys = provision(mode, [BANK_A, BANK_B])
    switch_config = parse_config({
        "switch": keys.switch | {"admin_token": "t"}, "participants": [
            {"bic": bic, "kind": "bank", "inbound_url": "http://127.0.0.1:9/iso20022"}
            | keys.registered[bic] for bic in (BANK_A, BANK_B)]})
    bank = Bank(BankConfig(bic=BANK_A, name="Vietcombank", kind="bank",
                           switch_url="http://127.0.0.1:9", switch_bic=SWITCH_BIC,
                           admin_token="t", **keys.handed[BANK_A]), [HOLDER])
    socket = bind()
    runner = await serve(create_bank_app(bank), socket)
    url = f"{socket.base_url}{INBOUND_PATH}"
    try:
        async with aiohttp.ClientSession() as session:
            switch = Peer(session, url, SWITCH_BIC, senders(switch_config)[BANK_A].credentials,
                          BANK_A)
            offered = credit_transfers([transfer("E2E-HELD", creditor=BANK_A)])
            offered.instructing_agent_bic, offered.instructed_agent_bic = SWITCH_BIC, BANK_A
            assert (await switch.send(offered)).status == 200
            assert bank.ledger.totals().held == 1
            acsc = PaymentStatusReport(
                msg_id=new_id("SWN"), created_at=datetime.now(UTC), original_msg_id="X",
                original_msg_type=MessageType.CREDIT_TRANSFER,
                transactions=[TransactionStatus("E2E-HELD", "TX", TxStatus.SETTLED)])
            b_holds = BankConfig(bic=BANK_B, name="BIDV", kind="bank", admin_token="t",
                                 switch_url="http://127.0.0.1:9", switch_bic=SWITCH_BIC,
                                 **keys.handed[BANK_B]).credentials()
            forger = Peer(session, url, SWITCH_BIC, b_holds, BANK_A)
            forged = await forger.send(acsc)
            assert forged.status == 401 and "signature does not match" in forged.text
            assert bank.ledger.credits() == {}
            assert (await switch.send(acsc)).status == 200
            assert set(bank.ledger.credits()) == {"E2E-HELD"}
    finally:
        await runner.cleanup()


async def test_a_participant_cannot_sign_as_another(lab: SwitchLab) -> None:
    """BANK_A signs a status request naming itself BANK_B, with its own key: 401."""
    body = codec.encode(wrap(BANK_B, SWITCH_BIC, StatusRequest(
        msg_id=new_id("Q"), created_at=datetime.now(UTC), items=[StatusRequestItem("E2E-1")])))
    headers = signing.sign(BANK_B, lab.participants[BANK_A].credentials.own,
                           SWITCH_MESSAGES_PATH, body)
    assert lab.session is not None
    async with lab.session.post(f"{lab.url}{SWITCH_MESSAGES_PATH}", data=body,
                                headers=headers) as response:
        assert response.status == 401
        assert signing.SIGNATURE_HEADER not in response.headers  # nobody to sign it for


async def test_every_answer_of_the_switch_is_signed_for_its_asker(lab: SwitchLab) -> None:
    """Instant final status, group status, pacs.028 and pacs.004 answers, a refusal: each is
    signed, checks with the asker's key, and names the request it answers."""
    creditor = lab.participants[BANK_A]
    instant = credit_transfers([transfer("E2E-SIGNED")])
    bulk = credit_transfers([transfer("E2E-BULK-1"), transfer("E2E-BULK-2")])
    status_request = StatusRequest(msg_id=new_id("Q"), created_at=datetime.now(UTC),
                                   items=[StatusRequestItem("E2E-SIGNED")])
    returned = PaymentReturn(
        msg_id=new_id("R"), created_at=datetime.now(UTC), instructing_agent_bic=BANK_A,
        instructed_agent_bic=SWITCH_BIC, items=[PaymentReturnItem(
            return_id=new_id("RT"), original_end_to_end_id="E2E-SIGNED",
            original_tx_id="TXE2E-SIGNED", returned_amount_vnd=1_500_000, reason_code="MD07",
            amount_text="1500000")])
    late_answer = creditor.answer(credit_transfers([transfer("E2E-NEVER-FORWARDED")]))
    exchanges = [(TREASURY, instant, 200), (TREASURY, bulk, 202),
                 (TREASURY, status_request, 200), (BANK_A, returned, 200),
                 (BANK_A, late_answer, 409)]
    assert lab.session is not None
    for bic, document, expected in exchanges:
        body = codec.encode(wrap(bic, SWITCH_BIC, document))
        headers = signing.sign(bic, lab.participants[bic].credentials.own, SWITCH_MESSAGES_PATH,
                               body)
        async with lab.session.post(f"{lab.url}{SWITCH_MESSAGES_PATH}", data=body,
                                    headers=headers) as response:
            answer = await response.read()
            assert response.status == expected, answer
            peer_key = lab.participants[bic].credentials.peer
            signing.verify_answer(response.headers, SWITCH_BIC, peer_key, response.status,
                                  headers, answer)
            another = signing.sign(bic, lab.participants[bic].credentials.own,
                                   SWITCH_MESSAGES_PATH, body)
            with pytest.raises(signing.SignatureError):  # not for another request
                signing.verify_answer(response.headers, SWITCH_BIC, peer_key, response.status,
                                      another, answer)
            if lab.keys.switch["signing"] == "ed25519":
                continue  # one switch key for all: the request's signature names the asker
            with pytest.raises(signing.SignatureError):  # signed with the asker's own secret
                signing.verify_answer(response.headers, SWITCH_BIC,
                                      lab.participants[BANK_B].credentials.peer,
                                      response.status, headers, answer)


async def test_an_answer_changed_on_the_way_is_refused_as_no_answer(lab: SwitchLab) -> None:
    """A relay between the treasury and the switch turns the switch's RJCT into ACSC: the
    treasury's Peer refuses the answer (AnswerNotAuthentic, an aiohttp.ClientError, which
    every caller treats as a lost answer)."""
    lab.participants[BANK_A].decide = lambda tx: Answer("RJCT", "AC04")
    assert lab.session is not None
    session = lab.session

    async def relay(request: web.Request) -> web.Response:
        async with session.post(f"{lab.url}{SWITCH_MESSAGES_PATH}", data=await request.read(),
                                headers=request.headers) as answer:
            body = (await answer.read()).replace(b"<TxSts>RJCT</TxSts>", b"<TxSts>ACSC</TxSts>")
            return web.Response(body=body, status=answer.status, headers={
                name: value for name, value in answer.headers.items()
                if name in ("Signature-Input", "Signature", "Content-Digest", "Content-Type")})

    app = web.Application()
    app.router.add_post(SWITCH_MESSAGES_PATH, relay)
    socket = bind()
    runner = await serve(app, socket)
    try:
        through_relay = Peer(session, f"{socket.base_url}{SWITCH_MESSAGES_PATH}", TREASURY,
                             lab.participants[TREASURY].credentials, SWITCH_BIC)
        with pytest.raises(AnswerNotAuthentic, match="body does not match"):
            await through_relay.send(credit_transfers([transfer("E2E-RELAYED")]))
    finally:
        await runner.cleanup()
    _, journaled = await lab.admin("GET", "/v1/admin/transfers/E2E-RELAYED")
    assert journaled["state"] == "REJECTED"


async def test_each_signing_mode_settles_and_confirms_end_to_end(lab: SwitchLab) -> None:
    """The creditor checks the switch's forward and confirmation, the switch checks the
    creditor's answer and the treasury the final status."""
    reply = await lab.peer(TREASURY).send(credit_transfers([transfer("E2E-MODE")]))
    assert reply.message.document.transactions[0].status is TxStatus.SETTLED
    creditor = lab.participants[BANK_A]
    await until(lambda: "E2E-MODE" in creditor.confirmations)
    assert [c.status for c in creditor.confirmations["E2E-MODE"]] == [TxStatus.SETTLED]


# ---- keys in configuration -----------------------------------------------------------------


def test_the_switch_configuration_holds_the_keys_of_its_mode_and_never_shows_them() -> None:
    keys = provision("ed25519", [BANK_A])
    participant = {"bic": BANK_A, "kind": "bank", "inbound_url": "http://127.0.0.1:9/x"}
    config = parse_config({"switch": keys.switch | {"admin_token": "t"},
                           "participants": [participant | keys.registered[BANK_A]]})
    assert keys.switch["private_key"] not in repr(config)
    cases = [
        ({"signing": "ed25519"}, [participant | keys.registered[BANK_A]], "private_key"),
        (keys.switch, [participant | {"secret": "s"}], "needs a public_key"),
        ({}, [participant | keys.registered[BANK_A]], "needs a secret"),
        (keys.switch | {"private_key": "-----BEGIN PRIVATE KEY-----\nTOPSECRET\n"},
         [participant | keys.registered[BANK_A]], "not an unencrypted PKCS#8 PEM key"),
    ]
    for switch, participants, named in cases:
        with pytest.raises(SettingsError, match=named) as refused:
            parse_config({"switch": switch | {"admin_token": "t"},
                          "participants": participants})
        assert "TOPSECRET" not in str(refused.value)
        assert keys.switch["private_key"][40:80] not in str(refused.value)


# ---- observation 16: health ----------------------------------------------------------------


async def test_health_tells_anyone_only_ok_or_why_not(lab: SwitchLab) -> None:
    assert lab.session is not None
    async with lab.session.get(f"{lab.url}/v1/health") as response:
        assert response.status == 200 and await response.json() == {"status": "ok"}
    status, details = await lab.admin("GET", "/v1/admin/health")
    assert status == 200 and {p["bic"] for p in details["participants"]} == {  # type: ignore[index]
        TREASURY, BANK_A, BANK_B}
    async with lab.session.get(f"{lab.url}/v1/admin/health") as response:
        assert response.status == 401
    lab.switch.state.store.failure = OSError("disk full")  # as the journal's writer records it
    async with lab.session.get(f"{lab.url}/v1/health") as response:
        body = await response.json()
        assert response.status == 503 and body["status"] == "stopped"
        assert "storage failure" in body["reason"] and "disk full" not in body["reason"]
    status, details = await lab.admin("GET", "/v1/admin/health")
    assert status == 503 and details["journal_failure"] == "disk full"  # type: ignore[index]


# ---- issue 22: mutual TLS, an option per participant ---------------------------------------


def ask(about: str) -> StatusRequest:
    return StatusRequest(msg_id=new_id("Q"), created_at=datetime.now(UTC),
                         items=[StatusRequestItem(about)])


async def test_issue22_a_participant_marked_mtls_is_taken_only_with_its_client_certificate(
        tmp_path: Path) -> None:
    """The lab's authority and certificates made at start; the treasury marked `mtls: true`.
    Its signed request is taken over TLS with its own client certificate, refused 401 with
    another participant's certificate or none; BANK_A, not marked, needs TLS alone."""
    pki = make_lab_pki(tmp_path / "pki", [SWITCH_BIC, TREASURY, BANK_A])
    lab = SwitchLab(tmp_path / "switch.sqlite", tls=pki[SWITCH_BIC].model_dump(mode="json"))
    data = lab.config_data(await lab.start_participants())
    for participant in data["participants"]:  # type: ignore[attr-defined]
        participant["mtls"] = participant["bic"] == TREASURY
    lab.config = parse_config(data)
    assert lab.switch_socket is not None
    runner = await serve(create_app(lab.config), lab.switch_socket,
                         server_context(pki[SWITCH_BIC]))
    url = f"https://127.0.0.1:{lab.port}{SWITCH_MESSAGES_PATH}"
    tls_alone = ssl.create_default_context(cafile=str(pki[SWITCH_BIC].authority))
    try:
        async with (aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                        ssl=client_context(pki[TREASURY]))) as own,
                    aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                        ssl=client_context(pki[BANK_A]))) as another,
                    aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls_alone)) as bare):
            treasury = lab.participants[TREASURY].credentials
            taken = await Peer(own, url, TREASURY, treasury, SWITCH_BIC).send(ask("E2E-T"))
            assert taken.status == 200
            for session in (another, bare):
                refused = await Peer(session, url, TREASURY, treasury, SWITCH_BIC).send(
                    ask("E2E-T"))
                assert refused.status == 401 and "mutual TLS" in refused.text
            bank = lab.participants[BANK_A].credentials
            assert (await Peer(bare, url, BANK_A, bank, SWITCH_BIC).send(ask("E2E-B"))
                    ).status == 200
    finally:
        await runner.cleanup()
        await lab.stop()


def test_issue22_mtls_needs_the_switchs_tls_files(tmp_path: Path) -> None:
    lab, socket = SwitchLab(tmp_path / "switch.sqlite"), bind()
    data = lab.config_data({TREASURY: socket})
    socket.sock.close()
    data["participants"][0]["mtls"] = True  # type: ignore[index]
    with pytest.raises(SettingsError, match="mtls: true, which needs the switch's tls"):
        parse_config(data)


async def test_issue22_an_admin_change_names_itself_and_a_replay_changes_nothing(
        tmp_path: Path) -> None:
    """A change through the admin API carries an Idempotency-Key: without one it is refused
    400; the same request again (a replay, or a retry) gets the first answer and closes no
    second cycle; the key with another request is 422."""
    lab = await SwitchLab(tmp_path / "switch.sqlite").start()
    assert lab.session is not None
    url, token = f"{lab.url}/v1/admin/settlement/close", {"Authorization": "Bearer t0ken"}
    try:
        async with lab.session.post(url, headers=token) as response:
            assert response.status == 400 and "Idempotency-Key" in await response.text()
        captured = token | idempotency_key()
        async with lab.session.post(url, headers=captured) as response:
            assert response.status == 200
            first = await response.json()
            assert first["cycle_id"] == 1
        async with lab.session.post(url, headers=captured) as response:
            assert response.status == 200 and await response.json() == first
            assert response.headers["Idempotent-Replayed"] == "true"
        async with lab.session.post(f"{lab.url}/v1/admin/participants/{BANK_A}/sign-off",
                                    headers=captured) as response:
            assert response.status == 422 and "another change" in await response.text()
        status, summary = await lab.admin("POST", "/v1/admin/settlement/close")
        assert status == 200 and summary["cycle_id"] == 2  # type: ignore[index]
    finally:
        await lab.stop()


async def test_issue22_an_admin_change_repeated_after_a_restart_is_not_made_again(
        tmp_path: Path) -> None:
    """The gap the last session left: admin Idempotency-Keys lived in the process's memory,
    so after a restart the same settlement/close closed a second cycle. The key is journaled
    with the change: after a real restart of the switch on its journal, the repeat answers
    the first answer and closes nothing; so does a repeated limit change."""
    lab = await SwitchLab(tmp_path / "switch.sqlite").start()
    assert lab.session is not None
    close_url = f"{lab.url}/v1/admin/settlement/close"
    limit_url = f"{lab.url}/v1/admin/participants/{BANK_A}/limit"
    close = {"Authorization": "Bearer t0ken"} | idempotency_key()
    limit = {"Authorization": "Bearer t0ken"} | idempotency_key()
    try:
        async with lab.session.post(close_url, headers=close) as response:
            assert response.status == 200
            first_close = await response.json()
        async with lab.session.put(limit_url, headers=limit,
                                   json={"position_limit_vnd": 5_000_000}) as response:
            assert response.status == 200
            first_limit = await response.json()
        # the operator lowers the limit again, under a new key, before the restart
        status, _ = await lab.admin("PUT", f"/v1/admin/participants/{BANK_A}/limit",
                                    json={"position_limit_vnd": 1_000_000})
        assert status == 200
        await lab.restart_switch()  # same journal, same port
        async with lab.session.post(close_url, headers=close) as response:
            assert response.status == 200 and await response.json() == first_close
        async with lab.session.put(limit_url, headers=limit,
                                   json={"position_limit_vnd": 5_000_000}) as response:
            assert response.status == 200 and await response.json() == first_limit
        status, health = await lab.admin("GET", "/v1/admin/health")
        bank_a = next(p for p in health["participants"]  # type: ignore[index]
                      if p["bic"] == BANK_A)
        assert bank_a["position_limit_vnd"] == 1_000_000  # the repeat changed nothing
        status, summary = await lab.admin("POST", "/v1/admin/settlement/close")
        assert status == 200
        assert summary["cycle_id"] == first_close["cycle_id"] + 1  # type: ignore[index]
    finally:
        await lab.stop()


async def test_issue22_a_lab_with_mutual_tls_everywhere_pays_its_table(tmp_path: Path) -> None:
    """The lab makes its authority and certificates at start; every participant is marked
    mtls, every server speaks HTTPS and every client shows its certificate: a payout (the
    directory's links, verification, bulk files, reports and returns) goes through whole."""
    population = generate_population(60, 4, Mix(participants={BANK_A: 0.5, BANK_B: 0.5}))
    population.write_payment_table(tmp_path / "table.csv")
    world = World(WorldSettings(tmp_path / "lab", {BANK_A: Behaviour(), BANK_B: Behaviour()},
                                treasury=TreasurySettings(mode="bulk", bulk_size=20),
                                mtls=True))
    await world.start(population)
    try:
        assert world.switch_url.startswith("https://")
        result = await world.treasury.run(read_payment_table(tmp_path / "table.csv"))
        assert result.by_status[PayoutStatus.UNRESOLVED] == 0
        assert result.by_status[PayoutStatus.PAID] > 0
        assert await world.reconcile(result) == []
    finally:
        await world.stop()


def inquiry() -> bytes:
    """A fresh pacs.028 from BANK_A, encoded, to sign and post as a test sees fit."""
    return codec.encode(wrap(BANK_A, SWITCH_BIC, StatusRequest(
        msg_id=new_id("Q"), created_at=datetime.now(UTC), items=[StatusRequestItem("E2E-1")])))


async def post_raw(lab: SwitchLab, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """Post bytes to the switch's message endpoint with these headers, as an attacker may."""
    assert lab.session is not None
    async with lab.session.post(f"{lab.url}{SWITCH_MESSAGES_PATH}", data=body,
                                headers=headers) as response:
        return response.status, await response.text()


async def test_issue22_a_request_captured_before_a_restart_is_refused_after_it(
        tmp_path: Path) -> None:
    """The tester's finding: the request ids a switch remembers are gone when it restarts, so
    a captured unlink replayed after a restart unlinked the citizen again. A server now
    refuses any request signed before it started (protocol/replay.py): 401, changing nothing;
    a request signed anew is taken."""
    lab = await SwitchLab(tmp_path / "switch.sqlite").start()
    own = lab.participants[BANK_A].credentials.own
    post = partial(post_raw, lab)

    try:
        await asyncio.sleep(1.1)  # `created` is whole seconds: sign after the start's second
        body = inquiry()
        captured = signing.sign(BANK_A, own, SWITCH_MESSAGES_PATH, body)
        assert (await post(body, captured))[0] == 200
        status, text = await post(body, captured)
        assert status == 401 and "already used" in text
        await asyncio.sleep(1.1)  # the restart in a later second than the signature
        await lab.restart_switch()
        status, text = await post(body, captured)
        assert status == 401 and "signed before this server started" in text, text
        fresh = inquiry()
        assert (await post(fresh, signing.sign(BANK_A, own, SWITCH_MESSAGES_PATH, fresh)))[
            0] == 200
    finally:
        await lab.stop()


async def test_issue22_a_signed_head_with_another_body_burns_no_request_id(
        tmp_path: Path) -> None:
    """The gap the last session left: the request id was taken as soon as the head's
    signature checked, before the body was read. Anyone on the path who saw a signed request
    (no key needed) could send its head first with another body: refused 401, but the id
    used up, so the participant's own request was then refused as a replay. The id now counts
    only once the whole request verified; and of two identical requests racing each other,
    exactly one is taken."""
    lab = await SwitchLab(tmp_path / "switch.sqlite").start()
    own = lab.participants[BANK_A].credentials.own
    post = partial(post_raw, lab)

    try:
        await asyncio.sleep(1.1)  # `created` is whole seconds: sign after the start's second
        body = inquiry()
        seen = signing.sign(BANK_A, own, SWITCH_MESSAGES_PATH, body)
        forged = body.replace(b"E2E-1", b"E2E-2")
        status, text = await post(forged, seen)
        assert status == 401 and "does not match" in text, text
        assert (await post(body, seen))[0] == 200  # the participant's own request is taken
        twin = inquiry()
        headers = signing.sign(BANK_A, own, SWITCH_MESSAGES_PATH, twin)
        answers = await asyncio.gather(*(post(twin, headers) for _ in range(4)))
        statuses = sorted(status for status, _ in answers)
        assert statuses == [200, 401, 401, 401], answers
        assert all("already used" in text for status, text in answers if status == 401)
    finally:
        await lab.stop()
