"""Prometheus metrics of the switch and the mock participants, scraped over HTTP as Prometheus
would, while transfers settle, are rejected, time out, and the switch restarts."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from banks.behaviour import Behaviour
from banks.metrics import BankMetrics
from banks.payment_table import read_payment_table
from banks.population import Mix, generate_population
from banks.treasury import TreasurySettings
from lab.world import World, WorldSettings
from protocol import codec, reasons, signing
from protocol.http import SWITCH_MESSAGES_PATH, wrap
from protocol.messages import CreditTransferMessage
from switch.states import TransferState
from switch.transfer import Transfer
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

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"
TOKEN = "t0ken"  # the harness's admin token
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


class Samples:
    """One scrape: sample values by name and labels; a series not served reads as None."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = list(text_string_to_metric_families(text))
        self.values = {(s.name, frozenset(s.labels.items())): s.value
                       for family in self.families for s in family.samples}

    def get(self, name: str, **labels: str) -> float | None:
        return self.values.get((name, frozenset(labels.items())))

    def __call__(self, name: str, **labels: str) -> float:
        """A value the scrape must hold."""
        value = self.get(name, **labels)
        assert value is not None, f"{name}{labels} not served"
        return value

    def by_label(self, name: str, label: str) -> dict[str, float]:
        return {dict(labels)[label]: value for (sample, labels), value in self.values.items()
                if sample == name}

    def types(self) -> dict[str, str]:
        """Metric name as served in the text format (counters with _total) -> type."""
        return dict(re.findall(r"^# TYPE (\S+) (\S+)$", self.text, re.MULTILINE))


async def scrape(session: aiohttp.ClientSession, base_url: str, token: str = TOKEN
                 ) -> Samples:
    async with session.get(f"{base_url}/metrics",
                           headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 200, await response.text()
        return Samples(await response.text())


@pytest.fixture
async def lab(journal: dict[str, str], tmp_path: Path) -> AsyncIterator[SwitchLab]:
    """On either journal: the events the metrics hang on fire the same on both."""
    lab = await SwitchLab(tmp_path / "switch.sqlite", **journal).start()
    yield lab
    await lab.stop()


async def metrics_of(lab: SwitchLab, token: str = TOKEN) -> Samples:
    assert lab.session is not None
    return await scrape(lab.session, lab.url, token)


async def pay(lab: SwitchLab, *transactions, msg_id: str | None = None):
    return await lab.peer(TREASURY).send(credit_transfers(list(transactions), msg_id=msg_id))


def documented_types() -> dict[str, str]:
    """The metrics docs/operations.md lists under Metrics, with the type it gives each."""
    section = OPERATIONS.read_text(encoding="utf-8").split("## Metrics", 1)[1].split("\n## ")[0]
    return dict(re.findall(r"^\| `(switchlab_\w+)` \| (counter|gauge|histogram) \|", section,
                           re.MULTILINE))


# ---- the switch ---------------------------------------------------------------------------


async def test_outcomes_latency_and_positions_move_as_transfers_settle_and_reject(
        lab: SwitchLab) -> None:
    before = await metrics_of(lab)
    assert before("switchlab_transfers_in_flight") == 0
    assert before.get("switchlab_transfers_total", state="SETTLED", mode="instant",
                      reason="") is None
    answers = {"E2E-1": Answer(), "E2E-2": Answer("RJCT", reasons.CLOSED_ACCOUNT),
               "E2E-3": Answer("RJCT", "XZ99"), "E2E-4": Answer()}
    lab.participants[BANK_A].decide = lambda tx: answers.get(tx.end_to_end_id, Answer())
    for e2e, amount in (("E2E-1", 1_000_000), ("E2E-2", 2_000), ("E2E-3", 3_000)):
        await pay(lab, transfer(e2e, amount))
    await pay(lab, transfer("E2E-4", 4_000_000, creditor=BANK_B),
              transfer("E2E-5", 5, currency="USD"))
    await until(lambda: lab.switch.state.book.in_flight == {})

    after = await metrics_of(lab)
    assert after.by_label("switchlab_transfers_total", "reason") == {
        "": 1, reasons.CLOSED_ACCOUNT: 1, "other": 1, reasons.NOT_ALLOWED_CURRENCY: 1}
    assert after("switchlab_transfers_total", state="SETTLED", mode="bulk", reason="") == 1
    assert after("switchlab_transfers_total", state="REJECTED", mode="bulk",
                 reason=reasons.NOT_ALLOWED_CURRENCY) == 1
    assert after("switchlab_settled_vnd_total") == 5_000_000
    assert after("switchlab_net_position_vnd", bic=TREASURY) == -5_000_000
    assert after("switchlab_net_position_vnd", bic=BANK_A) == 1_000_000
    assert after("switchlab_net_position_vnd", bic=BANK_B) == 4_000_000
    assert after("switchlab_reserved_position_vnd", bic=TREASURY) == 0
    assert after("switchlab_transfers_in_flight") == 0
    assert after("switchlab_instant_latency_seconds_count", state="SETTLED") == 1
    assert after("switchlab_instant_latency_seconds_count", state="REJECTED") == 2
    assert after("switchlab_bulk_latency_seconds_count", state="SETTLED") == 1
    assert after("switchlab_transfers_received_total", bic=TREASURY, mode="instant") == 3
    assert after("switchlab_transfers_received_total", bic=TREASURY, mode="bulk") == 2
    assert after("switchlab_transfers_forwarded_total", bic=BANK_A) == 3
    assert after("switchlab_creditor_answers_total", bic=BANK_A, outcome="taken") == 3
    assert after("switchlab_journal_commit_writes_count") >= 6
    assert after("switchlab_journal_commit_seconds_sum") > 0
    # The creditors' confirmations and the bulk report are delivered in the background.
    await until(lambda: lab.participants[BANK_B].confirmations != {})
    delivered = await metrics_of(lab)
    assert delivered("switchlab_notices_delivered_total", bic=BANK_A) == 1  # E2E-1's ACSC
    # The positions agree with the admin API's.
    _, participants = await lab.admin("GET", "/v1/admin/participants")
    assert {p["bic"]: p["net_vnd"] for p in participants} == after.by_label(
        "switchlab_net_position_vnd", "bic")


async def test_a_transfer_in_flight_is_counted_and_reserved_until_final(lab: SwitchLab
                                                                        ) -> None:
    creditor = lab.participants[BANK_A]
    creditor.decide = lambda tx: Answer("never", asynchronous=True)  # until the test answers
    sent = asyncio.get_running_loop().create_task(pay(lab, transfer("E2E-SLOW", 7_000_000)))
    await until(lambda: bool(creditor.received))
    during = await metrics_of(lab)
    assert during("switchlab_transfers_in_flight") == 1
    assert during("switchlab_reserved_position_vnd", bic=TREASURY) == 7_000_000
    assert during("switchlab_net_position_vnd", bic=TREASURY) == 0
    forwarded = creditor.received[0].document
    assert isinstance(forwarded, CreditTransferMessage)
    await lab.peer(BANK_A).send(creditor.answer(forwarded, [Answer()]))
    await sent
    after = await metrics_of(lab)
    assert after("switchlab_transfers_in_flight") == 0
    assert after("switchlab_reserved_position_vnd", bic=TREASURY) == 0
    assert after("switchlab_net_position_vnd", bic=TREASURY) == -7_000_000


async def test_timeouts_and_late_answers_show(tmp_path: Path) -> None:
    lab = await SwitchLab(tmp_path / "s.sqlite", creditor_timeout_s=0.2).start()
    try:
        lab.participants[BANK_A].decide = lambda tx: Answer(asynchronous=True, delay_s=0.5)
        await pay(lab, transfer("E2E-LATE"))
        await until(lambda: bool(lab.participants[BANK_A].received), 5)
        # The late ACCP arrives after the AB05: refused 409, counted as refused.
        await until(lambda: lab.switch.forwarding.refused_answers == 1, 5)
        samples = await metrics_of(lab)
        assert samples("switchlab_transfers_total", state="REJECTED", mode="instant",
                       reason=reasons.TIMEOUT_CREDITOR_AGENT) == 1
        assert samples("switchlab_creditor_answers_total", bic=BANK_A, outcome="refused") == 1
        # The rejection came at the 0.2 s deadline: not in the buckets below it.
        assert samples("switchlab_instant_latency_seconds_bucket", state="REJECTED",
                       le="0.1") == 0
        assert samples("switchlab_instant_latency_seconds_bucket", state="REJECTED",
                       le="+Inf") == 1
    finally:
        await lab.stop()


async def test_duplicates_are_counted_by_kind(lab: SwitchLab) -> None:
    body = codec.encode(wrap(TREASURY, SWITCH_BIC, credit_transfers([transfer("E2E-D1")])))
    for _ in range(2):  # the same bytes again: a resend, answered with the known outcome
        assert (await lab.peer(TREASURY).post(body)).status == 200
    await pay(lab, transfer("E2E-D1"))  # another message reusing the id: DUPL
    samples = await metrics_of(lab)
    assert samples("switchlab_duplicates_total", bic=TREASURY, kind="resent") == 1
    assert samples("switchlab_duplicates_total", bic=TREASURY, kind="DUPL") == 1
    assert samples("switchlab_transfers_received_total", bic=TREASURY, mode="instant") == 1


async def test_participant_up_follows_sign_off_and_the_breaker(tmp_path: Path) -> None:
    lab = await SwitchLab(tmp_path / "s.sqlite", breaker_failures=1,
                          breaker_cooldown_s=60).start()
    try:
        await lab.admin("POST", f"/v1/admin/participants/{BANK_A}/sign-off")
        off = await metrics_of(lab)
        assert off("switchlab_participant_up", bic=BANK_A) == 0
        assert off("switchlab_participant_up", bic=BANK_B) == 1
        await lab.admin("POST", f"/v1/admin/participants/{BANK_A}/sign-on")
        await lab.runners[2].cleanup()  # BANK_B's server goes away: its breaker opens
        await pay(lab, transfer("E2E-B1", creditor=BANK_B))
        after = await metrics_of(lab)
        assert after("switchlab_participant_up", bic=BANK_A) == 1
        assert after("switchlab_participant_up", bic=BANK_B) == 0
        assert after.by_label("switchlab_participant_downs_total", "bic") == {
            BANK_A: 1, BANK_B: 1}
        assert after("switchlab_transfers_total", state="REJECTED", mode="instant",
                     reason=reasons.OFFLINE_CREDITOR_AGENT) == 1
    finally:
        await lab.stop()


async def test_closing_a_cycle_starts_positions_from_zero(lab: SwitchLab) -> None:
    await pay(lab, transfer("E2E-C1", 1_000))
    status, _ = await lab.admin("POST", "/v1/admin/settlement/close")
    assert status == 200
    closed = await metrics_of(lab)
    assert closed("switchlab_settlement_cycle_info", cycle_id="2") == 1
    assert closed("switchlab_settlement_cycles_closed_total") == 1
    assert set(closed.by_label("switchlab_net_position_vnd", "bic").values()) == {0}
    await pay(lab, transfer("E2E-C2", 5))
    assert (await metrics_of(lab))("switchlab_net_position_vnd", bic=BANK_A) == 5


async def test_issue_26_a_limit_the_operator_sets_is_shown_and_kept_over_a_restart(
        lab: SwitchLab) -> None:
    assert (await metrics_of(lab))("switchlab_position_limit_vnd", bic=BANK_A) == 10**12
    status, _ = await lab.admin("PUT", f"/v1/admin/participants/{BANK_A}/limit",
                                json={"position_limit_vnd": 7_000})
    assert status == 200
    assert (await metrics_of(lab))("switchlab_position_limit_vnd", bic=BANK_A) == 7_000
    assert lab.switch_runner is not None
    await lab.switch_runner.cleanup()
    await lab.start_switch()
    assert (await metrics_of(lab))("switchlab_position_limit_vnd", bic=BANK_A) == 7_000


async def test_a_restarted_switch_shows_the_journal_s_positions_and_resolves_in_flight(
        lab: SwitchLab) -> None:
    await pay(lab, transfer("E2E-R1", 1_000_000))
    await lab.admin("POST", f"/v1/admin/participants/{BANK_B}/sign-off")
    # A transfer the switch journaled PENDING and never forwarded: its stop leaves it in
    # flight, as a crash would (on a shared journal, the stopped process's to take over).
    await lab.switch.state.store.record_new(TREASURY, "M-LEFT", b"digest", [Transfer(
        end_to_end_id="E2E-R2", tx_id="TX", msg_id="M-LEFT", debtor_bic=TREASURY,
        creditor_bic=BANK_A, amount_vnd=300, bulk=False, received_at=time.time(),
        state=TransferState.PENDING)], time.time())
    assert lab.switch_runner is not None
    await lab.switch_runner.cleanup()
    await lab.start_switch()
    samples = await metrics_of(lab)
    assert samples("switchlab_net_position_vnd", bic=BANK_A) == 1_000_000
    assert samples("switchlab_net_position_vnd", bic=TREASURY) == -1_000_000
    assert samples("switchlab_transfers_in_flight") == 0
    assert samples("switchlab_reserved_position_vnd", bic=TREASURY) == 0
    assert samples("switchlab_transfers_total", state="REJECTED", mode="instant",
                   reason=reasons.TIMEOUT_INSTRUCTED_AGENT) == 1
    assert samples("switchlab_participant_up", bic=BANK_B) == 0
    assert samples("switchlab_settlement_cycle_info", cycle_id="1") == 1


async def test_metrics_need_the_token_and_a_metrics_token_replaces_the_admin_token(
        tmp_path: Path) -> None:
    lab = await SwitchLab(tmp_path / "s.sqlite", metrics_token="scrape-only").start()
    assert lab.session is not None
    try:
        for headers in ({}, {"Authorization": f"Bearer {TOKEN}"},
                        {"Authorization": "Bearer scrape-onl"}, {"Authorization": "Bearer ñ"}):
            async with lab.session.get(f"{lab.url}/metrics", headers=headers) as response:
                assert response.status == 401
                assert "Authorization: Bearer" in await response.text()
        async with lab.session.get(f"{lab.url}/metrics", headers={
                "Authorization": "Bearer scrape-only", "Accept": OPENMETRICS}) as response:
            assert response.status == 200
            assert response.content_type == "application/openmetrics-text"
            assert (await response.text()).endswith("# EOF\n")
        # The metrics token opens nothing else.
        async with lab.session.get(f"{lab.url}/v1/admin/stats",
                                   headers={"Authorization": "Bearer scrape-only"}) as response:
            assert response.status == 401
    finally:
        await lab.stop()


async def test_every_metric_is_served_with_its_documented_name_and_type(lab: SwitchLab
                                                                         ) -> None:
    await pay(lab, transfer("E2E-N1"))
    served = (await metrics_of(lab)).types()
    documented = documented_types()
    switch_metrics = {name: kind for name, kind in served.items()
                      if not name.endswith("_created")}
    assert switch_metrics == {name: kind for name, kind in documented.items()
                              if not name.startswith("switchlab_bank_")}
    for name, kind in switch_metrics.items():
        assert name.startswith("switchlab_")
        assert name.endswith("_total") == (kind == "counter"), name


# ---- a whole payout: the switch's and the participants' metrics against their books -------


async def test_metrics_agree_with_the_books_after_a_payout(tmp_path: Path) -> None:
    population = generate_population(300, 5, Mix(participants={BANK_A: 0.6, BANK_B: 0.4},
                                                  closed=0.05, name_mismatch=0.05))
    population.write_payment_table(tmp_path / "table.csv")
    payments = read_payment_table(tmp_path / "table.csv")
    world = World(WorldSettings(tmp_path, {BANK_A: Behaviour(), BANK_B: Behaviour()},
                                treasury=TreasurySettings(mode="bulk", bulk_size=100)))
    await world.start(population)
    try:
        result = await world.treasury.run(payments)
        assert world.session is not None
        stats = await world.switch_totals()
        switch = await scrape(world.session, world.switch_url, world.admin_token)
        settled = stats.by_state["SETTLED"]
        assert switch("switchlab_transfers_total", state="SETTLED", mode="bulk",
                      reason="") == settled.count == result.by_status["paid"]
        assert switch("switchlab_settled_vnd_total") == settled.amount_vnd
        rejected = switch.by_label("switchlab_transfers_total", "reason")
        del rejected[""]
        assert sum(rejected.values()) == stats.by_state["REJECTED"].count > 0
        assert switch("switchlab_transfers_in_flight") == 0
        await credited_everywhere(world, settled.count)
        totals = {t["bic"]: t for t in await world.bank_totals()}
        for bic, url in world.bank_urls.items():
            bank = await scrape(world.session, url, world.admin_token)
            assert bank("switchlab_bank_transfers_accepted_total") + sum(
                bank.by_label("switchlab_bank_transfers_rejected_total", "reason").values()
            ) == switch("switchlab_transfers_forwarded_total", bic=bic)
            assert bank("switchlab_bank_answers_sent_total", channel="response") == switch(
                "switchlab_forwards_total", bic=bic)
            assert bank("switchlab_bank_credits_total") == totals[bic]["credited"]
            assert bank("switchlab_bank_credited_vnd_total") == totals[bic]["credited_vnd"]
            assert bank("switchlab_bank_pending_sends") == 0
            assert switch("switchlab_net_position_vnd", bic=bic) == totals[bic]["credited_vnd"]
    finally:
        await world.stop()


async def credited_everywhere(world: World, settled: int, timeout_s: float = 10.0) -> None:
    """Wait until the participants' metrics show every settled transfer credited: the
    switch confirms to creditors in the background."""
    assert world.session is not None
    deadline_s = time.monotonic() + timeout_s
    while True:
        credits = [(await scrape(world.session, url, world.admin_token))(
            "switchlab_bank_credits_total") for url in world.bank_urls.values()]
        if sum(credits) == settled:
            return
        assert time.monotonic() < deadline_s, f"credits {credits}, settled {settled}"
        await asyncio.sleep(0.05)


async def test_a_bank_counts_its_rejections_and_answers_posted_later(tmp_path: Path) -> None:
    population = generate_population(40, 9, Mix(
        participants={BANK_A: 1.0}, closed=0.2, blocked=0, name_mismatch=0, deceased=0,
        dies_after_payment=0))
    population.write_payment_table(tmp_path / "table.csv")
    payments = read_payment_table(tmp_path / "table.csv")
    world = World(WorldSettings(tmp_path, {BANK_A: Behaviour(answer_mode="async")},
                                treasury=TreasurySettings(mode="bulk", bulk_size=20)))
    await world.start(population)
    try:
        await world.treasury.run(payments)
        assert world.session is not None
        bank = await scrape(world.session, world.bank_urls[BANK_A], world.admin_token)
        closed = sum(1 for p in population.payable() if p.status == "closed")
        assert bank.by_label("switchlab_bank_transfers_rejected_total", "reason") == {
            reasons.CLOSED_ACCOUNT: closed}
        switch = await scrape(world.session, world.switch_url, world.admin_token)
        assert bank("switchlab_bank_answers_sent_total", channel="posted") == switch(
            "switchlab_forwards_total", bic=BANK_A) > 0
        assert bank("switchlab_bank_answers_sent_total", channel="response") == 0
        async with aiohttp.ClientSession() as anonymous, anonymous.get(
                f"{world.bank_urls[BANK_A]}/metrics") as response:
            assert response.status == 401
    finally:
        await world.stop()


# ---- promtool -------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool is not installed (Debian: apt-get install prometheus)")
async def test_promtool_accepts_what_the_switch_and_a_bank_serve(tmp_path: Path) -> None:
    population = generate_population(60, 7, Mix(participants={BANK_A: 1.0}, closed=0.1))
    population.write_payment_table(tmp_path / "table.csv")
    world = World(WorldSettings(tmp_path, {BANK_A: Behaviour()},
                                treasury=TreasurySettings(mode="instant")))
    await world.start(population)
    try:
        await world.treasury.run(read_payment_table(tmp_path / "table.csv"))
        assert world.session is not None
        for url in (world.switch_url, world.bank_urls[BANK_A]):
            samples = await scrape(world.session, url, world.admin_token)
            checked = subprocess.run(["promtool", "check", "metrics"], input=samples.text,
                                     capture_output=True, text=True, timeout=30)
            assert checked.returncode == 0, f"{url}: {checked.stdout}{checked.stderr}"
            assert samples.families
    finally:
        await world.stop()


def test_every_bank_metric_is_documented_with_its_type() -> None:
    served = Samples(generate_latest(BankMetrics(lambda: 0).registry).decode()).types()
    documented = {name: kind for name, kind in documented_types().items()
                  if name.startswith("switchlab_bank_")}
    assert {n: k for n, k in served.items() if not n.endswith("_created")} == documented


async def test_issue22_auth_failures_are_counted_by_reason_and_claimed_signer(
        tmp_path: Path) -> None:
    """The attacker's finding left open: no metric counted authentication failures. Each
    refusal before authentication counts by reason and the signer claimed; keyids no
    participant has share one label value, however many are made up."""
    lab = await SwitchLab(tmp_path / "switch.sqlite").start()
    assert lab.session is not None
    url = f"{lab.url}{SWITCH_MESSAGES_PATH}"
    body = codec.encode(wrap(BANK_A, SWITCH_BIC, credit_transfers([transfer("E2E-AUTH")])))
    wrong_key = lab.participants[BANK_B].credentials.own  # BANK_A's name, BANK_B's key
    try:
        async def post(headers: dict[str, str]) -> None:
            assert lab.session is not None
            async with lab.session.post(url, data=body, headers=headers) as response:
                assert response.status == 401

        await post(signing.sign(BANK_A, wrong_key, SWITCH_MESSAGES_PATH, body))
        for n in range(5):
            await post(signing.sign(f"EVIL{n:04}", wrong_key, SWITCH_MESSAGES_PATH, body))
        await post({"Content-Type": "application/xml"})
        async with lab.session.post(f"{lab.url}/v1/admin/settlement/close",
                                    headers={"Authorization": "Bearer guess"}) as response:
            assert response.status == 401
        samples = await metrics_of(lab)
        failures = {tuple(sorted(labels)): value
                    for (name, labels), value in samples.values.items()
                    if name == "switchlab_auth_failures_total"}
        assert failures == {
            (("claimed_signer", BANK_A), ("reason", "bad_signature")): 1,
            (("claimed_signer", "unknown"), ("reason", "unknown_signer")): 5,
            (("claimed_signer", "none"), ("reason", "unsigned")): 1,
            (("claimed_signer", "(operator)"), ("reason", "admin_token")): 1,
        }
    finally:
        await lab.stop()


async def test_issue22_a_mock_bank_counts_its_auth_failures_too(tmp_path: Path) -> None:
    """Every server that authenticates counts what it refused (the class, not the switch
    alone): a mock bank's metric by reason and claimed signer, unknown keyids in one label."""
    world = World(WorldSettings(tmp_path / "lab", {BANK_A: Behaviour()}))
    await world.start(generate_population(4, 1, Mix(participants={BANK_A: 1.0})))
    try:
        bank_url = world.bank_urls[BANK_A]
        async with aiohttp.ClientSession() as session:
            body = b"<Envelope/>"
            for keyid in ("SWLBVNVX", "EVIL0001", "EVIL0002"):
                headers = signing.sign(keyid, signing.HmacKey(b"x" * 32), "/iso20022", body)
                async with session.post(f"{bank_url}/iso20022", data=body,
                                        headers=headers) as response:
                    assert response.status == 401
            samples = await scrape(session, bank_url, world.banks[BANK_A].config.admin_token)
        failures = {tuple(sorted(labels)): value
                    for (name, labels), value in samples.values.items()
                    if name == "switchlab_bank_auth_failures_total"}
        assert failures == {
            (("claimed_signer", SWITCH_BIC), ("reason", "bad_signature")): 1,
            (("claimed_signer", "unknown"), ("reason", "unknown_signer")): 2}
    finally:
        await world.stop()
