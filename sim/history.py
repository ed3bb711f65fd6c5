"""One simulated payout day: the switch's core (service, book, intake, forwarding, finality,
returns, recovery, cycles, notices) on its real SQLite journal, a treasury and two creditors
that are code in this process, and a network between them, all on virtual time and all
drawn from one seed.

A history has a stormy part and a calm part. In the storm, messages are lost, duplicated,
delayed and reordered both ways; creditors time out, answer late, answer twice, change their
answer or answer for another's transfer; they go down for seconds (their breakers open); the
switch crashes at any step and restarts from its journal; the treasury resends, reuses ids,
reuses a MsgId with other content, and pays past its cap; a bank claims to be the treasury;
a bank pays under a TxId in the switch's namespace, another debtor's forward TxId included
(attacker report item 1); cycles close mid-flight; creditors return settled transfers. Then
the weather calms: the treasury sends each creditor a few transfers a cool-down apart, asks
about everything it does not know, and the world runs until nothing is left in flight.

The invariants of docs/design.md section 5 are checked after every step of the event loop
(memory: positions sum to zero, holds within the cap and equal to what is in flight, every
transfer final within its deadline), at every message a participant receives (nothing is
forwarded before it is durable PENDING; no ACSC before the settlement is durable), at every
restart (memory rebuilt equals the journal), and at the end (nothing lost, nothing doubled,
money conserved hop by hop, no settlement a creditor did not accept, every breaker on a
healthy creditor closed). The first broken one ends the history (`Broken`).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import aiohttp
from aiohttp import web

from protocol import reasons
from protocol.http import Reply, wrap
from protocol.ids import FORWARD_TX_PREFIX
from protocol.messages import (
    CreditTransfer,
    CreditTransferMessage,
    Document,
    PaymentReturn,
    PaymentReturnItem,
    PaymentStatusReport,
    StatusRequest,
    StatusRequestItem,
    TransactionStatus,
    TxStatus,
)
from protocol.runtime import spawn
from sim.escrow import INVARIANT as ESCROW_INVARIANT
from sim.journal import SimJournal
from switch import inquiry
from switch.app import clear_credit_transfer
from switch.config import SwitchConfig, parse_config
from switch.events import SwitchEvents
from switch.intake import ANSWER_MARGIN_S
from switch.journal import NOTICE_DUE
from switch.journal_errors import JournalBusy, JournalFailed, WriteRefused
from switch.service import Switch
from switch.transfer import scoped_key, unkeyed_forward_tx_id

T = TypeVar("T")
# The invariants a history checks, as `fail` names them (docs/design.md section 5): what
# `switchlab simulate` says held.
INVARIANTS = ("nothing lost", "nothing doubled", "money conserved", "net positions sum to zero",
              "debtor's cap", "no credit before confirmation", "no one acts for another",
              "liveness", "no crash on any input", ESCROW_INVARIANT)
SWITCH = "SWLBVNVX"
TREASURY = "SIMTVNVX"
BANK_A = "SIMAVNVX"
BANK_B = "SIMBVNVX"
CREDITORS = (BANK_A, BANK_B)
CREDITOR_TIMEOUT_S = 2.0
STORM_S = 20.0  # virtual seconds of faults
MAX_COMMIT_S = 0.004  # simulated fsync, virtual
MAX_CALM_S = 900.0  # the calm part ends with nothing in flight, or this is a liveness failure
HEAL_TRANSFERS = 4  # per creditor in the calm, a cool-down apart
MAX_RESENDS = 3
_REFUSALS = (web.HTTPException, JournalFailed, JournalBusy, WriteRefused)


class Broken(BaseException):
    """An invariant the history broke: its name, and what was seen. A BaseException, so
    that no `except Exception` of the switch's (a forward's last resort) can swallow it."""

    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Weather:
    """The history's faults, drawn once from its seed."""

    loss_p: float
    duplicate_p: float
    max_delay_s: float
    slow_p: float  # a message delayed past the creditor deadline
    reject_p: float
    never_p: float  # a creditor that never answers a transfer
    async_p: float  # answers posted later (202 first)
    twice_p: float  # an answer posted twice
    flip_p: float  # an answer posted again with the other verdict
    return_p: float
    resend_p: float
    reuse_p: float
    msg_id_reuse_p: float
    instant: int
    bulk_files: int
    crashes: int
    cycle_closes: int
    impostors: int
    cross_answers: int
    down: dict[str, list[tuple[float, float]]]  # creditor -> outage windows (from, to)
    treasury_limit_vnd: int
    breaker_failures: int
    breaker_cooldown_s: float

    @staticmethod
    def draw(rng: random.Random) -> Weather:
        down = {bic: sorted((start, start + rng.uniform(0.5, 5.0)) for start in
                            (rng.uniform(0.0, STORM_S) for _ in range(rng.randint(0, 2))))
                for bic in CREDITORS}
        return Weather(
            loss_p=rng.choice((0.0, rng.uniform(0.0, 0.1))),
            duplicate_p=rng.choice((0.0, rng.uniform(0.0, 0.1))),
            max_delay_s=rng.choice((0.001, 0.05, 0.5)),
            slow_p=rng.choice((0.0, rng.uniform(0.0, 0.05))),
            reject_p=rng.uniform(0.0, 0.3), never_p=rng.choice((0.0, rng.uniform(0.0, 0.05))),
            async_p=rng.uniform(0.0, 0.6), twice_p=rng.uniform(0.0, 0.1),
            flip_p=rng.choice((0.0, rng.uniform(0.0, 0.05))),
            return_p=rng.uniform(0.0, 0.2), resend_p=rng.uniform(0.0, 0.1),
            reuse_p=rng.uniform(0.0, 0.15), msg_id_reuse_p=rng.uniform(0.0, 0.05),
            instant=rng.randint(5, 30), bulk_files=rng.randint(0, 3),
            crashes=rng.choice((0, 0, 1, 1, 2, 3)), cycle_closes=rng.randint(0, 3),
            impostors=rng.randint(0, 2), cross_answers=rng.randint(0, 3), down=down,
            treasury_limit_vnd=rng.choice((10**12, rng.randint(2, 40) * 1_000_000)),
            breaker_failures=rng.randint(1, 3), breaker_cooldown_s=rng.uniform(0.2, 2.0),
        )


def config_for(weather: Weather, journal_path: Path) -> SwitchConfig:
    """The switch's configuration for a history: its real settings model, short deadlines."""
    participants = [(TREASURY, "treasury", weather.treasury_limit_vnd),
                    (BANK_A, "bank", 10**12), (BANK_B, "ewallet", 10**12)]
    return parse_config({
        "switch": {"bic": SWITCH, "journal_path": str(journal_path), "admin_token": "sim",
                   "creditor_timeout_s": CREDITOR_TIMEOUT_S, "notice_timeout_s": 1.0,
                   "breaker_failures": weather.breaker_failures,
                   "breaker_cooldown_s": weather.breaker_cooldown_s},
        "participants": [{"bic": bic, "kind": kind, "inbound_url": f"http://{bic}.sim/in",
                          "position_limit_vnd": limit, "secret": bic * 4}
                         for bic, kind, limit in participants],
    })


@dataclass(slots=True)
class Creditor:
    """A bank as the switch sees it from outside: holds on a forward, credits on ACSC only,
    at most once per end-to-end id; returns some of what it was credited."""

    bic: str
    held: dict[str, int] = field(default_factory=dict)  # e2e -> VND, forwarded, not final
    forwarded: dict[str, int] = field(default_factory=dict)  # e2e -> VND, ever forwarded
    tx_ids: dict[str, str] = field(default_factory=dict)  # e2e -> the TxId it was sent under
    accepted: set[str] = field(default_factory=set)  # e2e it answered ACCP at least once
    decided: dict[str, TransactionStatus | None] = field(default_factory=dict)  # None: never
    credited: dict[str, int] = field(default_factory=dict)  # e2e -> VND
    returns_sent: dict[str, PaymentReturnItem] = field(default_factory=dict)  # by RtrId
    returns_settled: dict[str, int] = field(default_factory=dict)  # RtrId -> VND


@dataclass(slots=True)
class Debtor:
    """The treasury: what it sent, and the first final status it learnt of each id."""

    sent: dict[str, CreditTransfer] = field(default_factory=dict)  # e2e -> transaction
    messages: dict[str, CreditTransferMessage] = field(default_factory=dict)  # e2e -> message
    final: dict[str, tuple[TxStatus, str | None]] = field(default_factory=dict)
    returned: dict[str, int] = field(default_factory=dict)  # RtrId -> VND


def _sha(document: object) -> bytes:
    """A stand-in for the body's SHA-256: the same content, the same digest."""
    return hashlib.sha256(repr(document).encode()).digest()


class History:
    def __init__(self, seed: int, folder: Path) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.weather = Weather.draw(self.rng)
        self.claim_rng = random.Random(f"claimer-{seed}")  # attacker report item 1's bank
        self.journal_path = folder / f"history-{seed}.sqlite"
        self.config = config_for(self.weather, self.journal_path)
        self.switch: Switch | None = None
        self.journal: SimJournal | None = None
        self.incarnation = 0
        self.calm = False
        self.creditors = {bic: Creditor(bic) for bic in CREDITORS}
        self.debtor = Debtor()
        self.trace: list[str] = []
        self.sim_tasks: set[asyncio.Task[Any]] = set()
        self.first_seen_s: dict[str, float] = {}  # e2e -> when memory first held it in flight
        self.errors: list[str] = []
        self.broken: Broken | None = None
        self.tally: Counter[str] = Counter()  # what the history exercised, for the operator
        self._ids = 0
        self._checker: sqlite3.Connection | None = None

    # ---- the driver ---------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._on_loop_error)
        current = asyncio.current_task()
        assert current is not None
        self.sim_tasks.add(current)
        await self._start_switch()
        self._checker = sqlite3.connect(f"{self.journal_path.resolve().as_uri()}?mode=ro",
                                        uri=True, isolation_level=None)
        try:
            await self._storm()
            self.calm = True
            self._log("calm")
            await self._wait_for(lambda: len(self.sim_tasks) == 1 and self.switch is not None
                                 and not self.switch.state.book.in_flight, "the storm's end")
            await self._heal()
            await self._settle_all()
            self._check_end()
        finally:
            for task in list(self.sim_tasks):
                if task is not current:
                    task.cancel()
            if self.switch is not None:
                await self.switch.stop()
            self._checker.close()

    async def _storm(self) -> None:
        weather, rng = self.weather, self.rng
        actions: list[tuple[float, Callable[[], Awaitable[None]]]] = []
        for _ in range(weather.instant):
            actions.append((rng.uniform(0, STORM_S), self._pay_instant))
        for _ in range(weather.bulk_files):
            actions.append((rng.uniform(0, STORM_S), self._pay_bulk))
        for _ in range(weather.crashes):
            actions.append((rng.uniform(0, STORM_S), self._crash))
        for _ in range(weather.cycle_closes):
            actions.append((rng.uniform(0, STORM_S), self._close_cycle))
        for _ in range(weather.impostors):
            actions.append((rng.uniform(0, STORM_S), self._impostor))
        for _ in range(weather.cross_answers):
            actions.append((rng.uniform(0, STORM_S), self._cross_answer))
        claims = self.claim_rng  # its own stream: the other faults of a seed stay as they were
        for _ in range(claims.randint(0, 2)):
            actions.append((claims.uniform(0, STORM_S), self._claimer))
        actions.sort(key=lambda action: action[0])
        loop = asyncio.get_running_loop()
        for at_s, action in actions:
            await asyncio.sleep(max(0.0, at_s - loop.time()))
            if action in (self._crash, self._close_cycle):
                await action()
            else:
                self._spawn(action())
        await asyncio.sleep(max(0.0, STORM_S - loop.time()))

    async def _heal(self) -> None:
        """A few transfers to each creditor, a cool-down apart: a healthy creditor's breaker
        must close again (liveness), whatever the storm left."""
        await self._close_cycle()  # headroom again: the treasury's cap is not the question
        for bic in CREDITORS:
            settled = False
            for _ in range(HEAL_TRANSFERS):
                await asyncio.sleep(self.weather.breaker_cooldown_s + 0.1)
                e2e = await self._pay_instant(creditor=bic, amount_vnd=1_000)
                settled = settled or self.debtor.final.get(e2e, (None, None))[0] is (
                    TxStatus.SETTLED)
                if settled:
                    break
            if not settled:
                self.fail("liveness", f"{bic} is healthy, yet none of {HEAL_TRANSFERS} "
                             f"transfers a cool-down apart settled (breaker open: "
                             f"{self._breaker_open(bic)})")

    async def _settle_all(self) -> None:
        """The treasury asks about all it does not know and resends what never arrived;
        creditors resend returns they do not know the fate of; then nothing is in flight."""
        for _ in range(MAX_RESENDS + 2):
            await self._ask_about(list(self.debtor.sent))
            for creditor in self.creditors.values():
                for return_id in [r for r in creditor.returns_sent
                                  if r not in creditor.returns_settled]:
                    await self._send_return(creditor, creditor.returns_sent[return_id])
        await self._wait_for(self._quiet, "quiescence")
        await self._ask_about(list(self.debtor.sent))  # what a lost answer left unknown

    def _quiet(self) -> bool:
        switch = self.switch
        if switch is None or len(self.sim_tasks) > 1:
            return False
        if switch.state.book.in_flight or any(
                len(outbox) for outbox in switch.state.notifier.outboxes.values()):
            return False
        assert self._checker is not None
        return self._checker.execute(  # every notice delivered and marked so
            f"SELECT (SELECT count(*) FROM transfers WHERE creditor_notice={NOTICE_DUE}"
            f" OR debtor_notice={NOTICE_DUE}) + (SELECT count(*) FROM returns"
            f" WHERE debtor_notice={NOTICE_DUE})").fetchone()[0] == 0

    async def _wait_for(self, done: Callable[[], bool], what: str) -> None:
        loop = asyncio.get_running_loop()
        until_s = loop.time() + MAX_CALM_S
        while not done():
            if loop.time() > until_s:
                self.fail("liveness", f"{what} not reached within {MAX_CALM_S:.0f} s")
            await asyncio.sleep(0.25)

    # ---- the switch, started, crashed, restarted ----------------------------------------

    async def _start_switch(self) -> None:
        self.incarnation += 1
        self.journal = SimJournal(self.journal_path, SwitchEvents(), self.rng, MAX_COMMIT_S)
        switch = Switch(self.config, self.journal.events, journal=self.journal,
                        channels=self._channel)
        switch.events.participant_down.add_listener(self._breaker_opened)
        await switch.start()
        self.switch = switch
        if self.incarnation > 1:
            self.tally["restarts"] += 1
            self.tally["in flight at a crash"] += switch.recovery["resolved_in_flight"]
        self.first_seen_s.clear()
        self._log(f"switch up ({self.incarnation}): {switch.recovery}")
        if self._checker is not None:
            self._check_memory_is_the_journal()

    def _breaker_opened(self, bic: str, reason: str) -> None:
        if reason != "signed off":
            self.tally["breakers opened"] += 1

    async def _crash(self) -> None:
        if self.calm or self.switch is None:
            return
        switch, journal = self.switch, self.journal
        assert journal is not None
        self.switch = None
        self._log("crash")
        for task in asyncio.all_tasks():
            if task not in self.sim_tasks:
                task.cancel()
        for _ in range(3):
            await asyncio.sleep(0)  # the cancelled tasks unwind
        journal.crash()
        del switch
        await asyncio.sleep(self.rng.uniform(0.0, 1.0))
        await self._start_switch()

    async def _close_cycle(self) -> None:
        outcome, closed = await self._call(lambda switch: switch.cycles.close(), lossless=True)
        self._log(f"cycle close: {outcome} {closed if outcome == 'ok' else ''}")
        self.tally["cycles closed"] += outcome == "ok"

    async def _call(self, work: Callable[[Switch], Awaitable[T]], lossless: bool = False
                    ) -> tuple[str, Any]:
        """A participant's message to the switch and its answer, through the network:
        ("ok", answer), ("refused", the error the switch answers with) or ("lost", None)."""
        if not lossless and await self._lost_on_the_way():
            return "lost", None
        switch = self.switch
        if switch is None:
            return "lost", None  # connection refused: the switch is restarting
        task = asyncio.get_running_loop().create_task(_run(work, switch))
        await asyncio.wait({task})
        if task.cancelled():
            return "lost", None  # the switch crashed meanwhile
        error = task.exception()
        if isinstance(error, _REFUSALS):
            return "refused", error
        if isinstance(error, Broken):
            raise error
        if error is not None:
            self.fail("no crash on any input", f"the switch raised {error!r}")
        if not lossless and await self._lost_on_the_way():
            return "lost", None
        return "ok", task.result()

    async def _lost_on_the_way(self) -> bool:
        """A network leg: delayed, perhaps lost."""
        if self.calm:
            return False
        await asyncio.sleep(self._delay_s())
        lost = self.rng.random() < self.weather.loss_p
        self.tally["messages lost"] += lost
        return lost

    def _delay_s(self) -> float:
        if self.calm:
            return 0.0005
        if self.rng.random() < self.weather.slow_p:
            return self.rng.uniform(CREDITOR_TIMEOUT_S, 2 * CREDITOR_TIMEOUT_S)
        return self.rng.uniform(0.0, self.weather.max_delay_s)

    # ---- the treasury -------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self.seed:x}-{self._ids}"[:35]

    def _transaction(self, creditor: str | None = None, amount_vnd: int | None = None
                     ) -> CreditTransfer:
        rng = self.rng
        reused = [e2e for e2e in self.debtor.sent]
        if amount_vnd is None:
            limit = self.weather.treasury_limit_vnd
            amount_vnd = (rng.randint(limit // 2, limit) if rng.random() < 0.2
                          else rng.randint(1, max(1, min(limit // 4, 50_000_000))))
        if creditor is None and reused and rng.random() < self.weather.reuse_p:
            e2e = rng.choice(reused)  # an id used before: DUPL
            creditor = self.debtor.sent[e2e].creditor_agent_bic
        else:
            e2e = self._new_id("E")
        return CreditTransfer(
            end_to_end_id=e2e, tx_id=self._new_id("T"), amount_vnd=amount_vnd,
            amount_text=str(amount_vnd), debtor_name="Kho bac Nha nuoc",
            debtor_account="KBNN0001", debtor_agent_bic=TREASURY,
            creditor_name="Nguyen Thi Hong", creditor_account="0011004455667",
            creditor_agent_bic=creditor or rng.choice(CREDITORS))

    def _message(self, transactions: list[CreditTransfer], msg_id: str | None = None
                 ) -> CreditTransferMessage:
        return CreditTransferMessage(
            msg_id=msg_id or self._new_id("M"), created_at=datetime(2026, 1, 1, tzinfo=UTC),
            instructing_agent_bic=TREASURY, instructed_agent_bic=SWITCH,
            transactions=transactions, declared_count=len(transactions),
            declared_control_sum=str(sum(tx.amount_vnd for tx in transactions)))

    async def _pay_instant(self, creditor: str | None = None, amount_vnd: int | None = None
                           ) -> str:
        tx = self._transaction(creditor, amount_vnd)
        message = self._message([tx])
        if not self.calm and self.debtor.messages and (
                self.rng.random() < self.weather.msg_id_reuse_p):
            message.msg_id = self.rng.choice(list(self.debtor.messages.values())).msg_id
        first = tx.end_to_end_id not in self.debtor.sent
        if first:
            self.debtor.sent[tx.end_to_end_id] = tx
            self.debtor.messages[tx.end_to_end_id] = message
        await self._send_credit_transfer(message, original=first)
        return tx.end_to_end_id

    async def _pay_bulk(self) -> None:
        count = self.rng.randint(2, 8)
        transactions: list[CreditTransfer] = []
        for _ in range(count):
            tx = self._transaction()
            if any(t.end_to_end_id == tx.end_to_end_id for t in transactions):
                continue
            transactions.append(tx)
        message = self._message(transactions)
        for tx in transactions:
            if tx.end_to_end_id not in self.debtor.sent:
                self.debtor.sent[tx.end_to_end_id] = tx
                self.debtor.messages[tx.end_to_end_id] = message
        await self._send_credit_transfer(message, original=True)

    async def _send_credit_transfer(self, message: CreditTransferMessage, original: bool
                                    ) -> None:
        sha = _sha(message)
        resends = not self.calm and self.rng.random() < self.weather.resend_p
        for attempt in range(1 + resends):
            self._log(f"pacs.008 {message.msg_id} {[t.end_to_end_id for t in message.transactions]}"
                      f" attempt {attempt}")
            outcome, answer = await self._call(
                lambda switch: clear_credit_transfer(switch, TREASURY, message, sha))
            if outcome == "refused" and isinstance(answer, WriteRefused):
                self.fail("nothing doubled", f"{message.msg_id}: the journal refused a "
                          f"well-formed message ({answer}): memory took an id it already "
                          "holds")
            if outcome != "ok":
                continue
            report, _ = answer
            self._learn(report.transactions)

    def _learn(self, statuses: list[TransactionStatus]) -> None:
        """Final statuses the treasury was told; ACSC only for what the journal holds settled
        (checked as it arrives), and never two different final words on one id."""
        for status in statuses:
            if status.status not in (TxStatus.SETTLED, TxStatus.REJECTED):
                continue
            self.tally[status.reason_code or "ACSC"] += 1
            if status.reason_code in (reasons.DUPLICATE, reasons.DUPLICATE_MESSAGE_ID,
                                      reasons.PAYMENT_NOT_RECEIVED):
                continue  # a refusal of a resend, not the transfer's status
            e2e = status.original_end_to_end_id
            if status.status is TxStatus.SETTLED:
                self._expect_durable(e2e, ("SETTLED", "RETURNED"), "ACSC to the debtor")
            word = (status.status, status.reason_code)
            known = self.debtor.final.setdefault(e2e, word)
            if known[0] is not word[0]:
                self.fail("nothing doubled", f"{e2e}: the treasury was told {known} and "
                             f"then {word}")

    async def _ask_about(self, ids: list[str]) -> None:
        """pacs.028 for what the treasury does not know; AG09 (never received) is the one
        answer that makes a resend safe, and it resends the original message."""
        unknown = [e2e for e2e in ids if e2e not in self.debtor.final]
        if not unknown:
            return
        request = StatusRequest(msg_id=self._new_id("Q"),
                                created_at=datetime(2026, 1, 1, tzinfo=UTC),
                                items=[StatusRequestItem(e2e) for e2e in unknown])
        outcome, report = await self._call(
            lambda switch: inquiry.status_report(switch.state, TREASURY, request))
        if outcome != "ok":
            return
        self._learn(report.transactions)
        for status in report.transactions:
            if status.reason_code == reasons.PAYMENT_NOT_RECEIVED:
                message = self.debtor.messages[status.original_end_to_end_id]
                await self._send_credit_transfer(message, original=True)

    # ---- hostile participants -------------------------------------------------------------

    async def _impostor(self) -> None:
        """A bank signs a pacs.008 naming the treasury as debtor agent: refused, not taken."""
        tx = self._transaction(creditor=BANK_A, amount_vnd=5_000)
        message = self._message([tx])
        message.instructing_agent_bic = BANK_B
        outcome, answer = await self._call(
            lambda switch: clear_credit_transfer(switch, BANK_B, message, _sha(message)),
            lossless=True)
        self._log(f"impostor {tx.end_to_end_id}: {outcome}")
        self.tally["impostors refused"] += outcome == "refused"
        if outcome == "ok" or (outcome == "refused" and not isinstance(answer,
                                                                        web.HTTPForbidden)):
            self.fail("no one acts for another", f"a bank's pacs.008 as the treasury was "
                      f"answered {outcome} {answer!r}")
        self._expect_durable(tx.end_to_end_id, (None,), "an impostor's transfer")

    async def _claimer(self) -> None:
        """Attacker report item 1: a bank pays under a TxId in the switch's namespace (the
        forward TxId the treasury's next id would get, or any other): refused CH16, never
        forwarded, so no creditor gets two transfers under one (EndToEndId, TxId)."""
        tx = replace(self._transaction(creditor=BANK_A, amount_vnd=1_000),
                     end_to_end_id=self._new_id("H"), debtor_agent_bic=BANK_B)
        treasury_next = f"E{self.seed:x}-{self._ids + 1}"  # the treasury's ids are predictable
        claimed = tx.tx_id = (unkeyed_forward_tx_id(scoped_key(treasury_next, TREASURY))
                              if self.claim_rng.random() < 0.5
                              else f"{FORWARD_TX_PREFIX}{self.claim_rng.getrandbits(64):x}")
        message = replace(self._message([tx]), instructing_agent_bic=BANK_B)
        outcome, answer = await self._call(
            lambda switch: clear_credit_transfer(switch, BANK_B, message, _sha(message)),
            lossless=True)
        statuses = [(item.status, item.reason_code) for item in answer[0].transactions
                    ] if outcome == "ok" else None
        self._log(f"claimer {tx.end_to_end_id} {claimed}: {outcome} {statuses}")
        if outcome == "ok" and statuses != [(TxStatus.REJECTED, reasons.RESERVED_TX_ID)]:
            self.fail("no one acts for another", f"a bank's pacs.008 under the switch's TxId "
                      f"{claimed} was answered {statuses}")
        self.tally["reserved TxIds refused"] += outcome == "ok"
        self._expect_durable(tx.end_to_end_id, (None, "REJECTED"), "a claimed TxId's transfer")

    async def _cross_answer(self) -> None:
        """A creditor posts an ACCP for a transfer forwarded to the other one."""
        victim, poser = self.rng.sample(CREDITORS, 2)
        targets = list(self.creditors[victim].held)
        if not targets:
            return
        e2e = self.rng.choice(targets)
        self._log(f"cross answer {poser} for {e2e}")
        self.tally["answers for another's transfer"] += 1
        await self._post_answers(self.creditors[poser], [TransactionStatus(  # ids it overheard
            original_end_to_end_id=e2e, original_tx_id=self.creditors[victim].tx_ids[e2e],
            status=TxStatus.ACCEPTED)])

    # ---- the creditors: the switch's channels to participants ---------------------------

    def _channel(self, bic: str) -> _Channel:
        return _Channel(self, bic)

    def deliver(self, bic: str, document: Document) -> tuple[int, Document | None]:
        """A message from the switch reaches participant `bic`: its HTTP status and answer."""
        if bic == TREASURY:
            return self._treasury_receives(document)
        creditor = self.creditors[bic]
        if isinstance(document, CreditTransferMessage):
            return self._forwarded(creditor, document)
        if isinstance(document, PaymentStatusReport):
            self._confirmed(creditor, document)
        return 200, None

    def _treasury_receives(self, document: Document) -> tuple[int, Document | None]:
        if isinstance(document, PaymentStatusReport):
            self._learn(document.transactions)
        elif isinstance(document, PaymentReturn):
            for item in document.items:
                self._expect_return_durable(item.return_id)
                self.debtor.returned.setdefault(item.return_id, item.returned_amount_vnd)
        return 200, None

    def _forwarded(self, creditor: Creditor, message: CreditTransferMessage
                   ) -> tuple[int, Document | None]:
        rng, weather = self.rng, self.weather
        answers = []
        for tx in message.transactions:
            e2e = tx.end_to_end_id
            if e2e in creditor.decided:  # delivered again: the same answer (a bank dedupes)
                answer = creditor.decided[e2e]
                if answer is not None:
                    answers.append(answer)
                continue
            self._expect_durable(e2e, ("PENDING",), f"a forward to {creditor.bic}")
            creditor.forwarded[e2e] = tx.amount_vnd
            creditor.tx_ids[e2e] = tx.tx_id
            creditor.held[e2e] = tx.amount_vnd
            if not self.calm and rng.random() < weather.never_p:
                creditor.decided[e2e] = None
                continue
            reject = not self.calm and rng.random() < weather.reject_p
            if reject:
                creditor.held.pop(e2e)  # it knows it refused: its hold goes
            else:
                creditor.accepted.add(e2e)
            answer = TransactionStatus(
                original_end_to_end_id=e2e, original_tx_id=tx.tx_id,
                status=TxStatus.REJECTED if reject else TxStatus.ACCEPTED,
                reason_code=rng.choice(("AC01", "AC04", "BE01")) if reject else None)
            creditor.decided[e2e] = answer
            answers.append(answer)
        self._log(f"forwarded to {creditor.bic}: {[t.end_to_end_id for t in message.transactions]}")
        if not self.calm and rng.random() < weather.async_p:
            self._spawn(self._answer_later(creditor, answers))
            return 202, None
        return 200, _report(message.msg_id, answers)

    async def _answer_later(self, creditor: Creditor, answers: list[TransactionStatus]) -> None:
        await asyncio.sleep(self._delay_s())
        await self._post_answers(creditor, answers)
        if answers and self.rng.random() < self.weather.twice_p:
            await self._post_answers(creditor, answers)
        if answers and self.rng.random() < self.weather.flip_p:  # changes its mind: refused
            for answer in answers:  # the other word: it may now settle, or it let go
                if answer.status is TxStatus.ACCEPTED:
                    creditor.held.pop(answer.original_end_to_end_id, None)
                else:
                    creditor.accepted.add(answer.original_end_to_end_id)
            await self._post_answers(creditor, [TransactionStatus(
                original_end_to_end_id=a.original_end_to_end_id, original_tx_id=a.original_tx_id,
                status=TxStatus.REJECTED if a.status is TxStatus.ACCEPTED
                else TxStatus.ACCEPTED, reason_code="AC04") for a in answers])

    async def _post_answers(self, creditor: Creditor, answers: list[TransactionStatus]) -> None:
        if not answers:
            return
        report = _report("POSTED", answers)
        outcome, counts = await self._call(
            lambda switch: switch.forwarding.take_posted_answers(creditor.bic, report))
        self._log(f"{creditor.bic} posted {len(answers)}: {outcome} {counts}")

    def _confirmed(self, creditor: Creditor, report: PaymentStatusReport) -> None:
        """ACSC: credit once; RJCT: release the hold."""
        for item in report.transactions:
            e2e = item.original_end_to_end_id
            if item.status is TxStatus.SETTLED:
                self._expect_durable(e2e, ("SETTLED", "RETURNED"), f"ACSC to {creditor.bic}")
                if e2e not in creditor.forwarded:
                    self.fail("no one acts for another", f"{creditor.bic} confirmed {e2e},"
                                 " a transfer never forwarded to it")
                if e2e not in creditor.credited:
                    creditor.credited[e2e] = creditor.forwarded[e2e]
                    self._log(f"{creditor.bic} credits {e2e}")
                    if not self.calm and self.rng.random() < self.weather.return_p:
                        self._spawn(self._return(creditor, e2e))
            creditor.held.pop(e2e, None)

    async def _return(self, creditor: Creditor, e2e: str) -> None:
        await asyncio.sleep(self._delay_s())
        amount = creditor.credited[e2e]
        item = PaymentReturnItem(
            return_id=self._new_id("R"), original_end_to_end_id=e2e,
            original_tx_id=creditor.tx_ids[e2e],
            returned_amount_vnd=self.rng.choice((amount, max(1, amount // 2))),
            reason_code="MD07")
        item.amount_text = str(item.returned_amount_vnd)
        creditor.returns_sent[item.return_id] = item
        await self._send_return(creditor, item)

    async def _send_return(self, creditor: Creditor, item: PaymentReturnItem) -> None:
        message = PaymentReturn(msg_id=f"MR{item.return_id}"[:35],
                                created_at=datetime(2026, 1, 1, tzinfo=UTC),
                                instructing_agent_bic=creditor.bic, instructed_agent_bic=SWITCH,
                                items=[item])
        outcome, report = await self._call(
            lambda switch: switch.returns.take(creditor.bic, message))
        self._log(f"return {item.return_id} of {item.original_end_to_end_id}: {outcome}")
        if outcome != "ok":
            return
        (status,) = report.transactions
        if status.status is TxStatus.SETTLED:
            self.tally["returns settled"] += 1
            self._expect_return_durable(item.return_id)
            creditor.returns_settled[item.return_id] = item.returned_amount_vnd
        else:
            creditor.returns_sent.pop(item.return_id, None)  # refused: nothing to find out

    # ---- checks ---------------------------------------------------------------------------

    def _state_of(self, e2e: str) -> str | None:
        assert self._checker is not None
        row = self._checker.execute("SELECT state FROM transfers WHERE end_to_end_id=?",
                                    (e2e,)).fetchone()
        return None if row is None else row[0]

    def _expect_durable(self, e2e: str, states: tuple[str | None, ...], what: str) -> None:
        """What a participant just received must already be the journal's durable word."""
        if self._checker is None:
            return
        state = self._state_of(e2e)
        if state not in states:
            invariant = ("no credit before confirmation" if "ACSC" in what
                         else "nothing lost" if "forward" in what else "no one acts for another")
            self.fail(invariant, f"{what} for {e2e} while the journal holds it "
                         f"{state or 'not at all'}")

    def _expect_return_durable(self, return_id: str) -> None:
        assert self._checker is not None
        if self._checker.execute("SELECT 1 FROM returns WHERE return_id=?",
                                 (return_id,)).fetchone() is None:
            self.fail("money conserved", f"return {return_id} settled to a participant "
                         "before the journal holds it")

    def check_step(self) -> None:
        """After every step of the loop: the book's memory against itself."""
        if self.broken is not None:
            raise self.broken
        switch = self.switch
        if switch is None:
            return
        book = switch.state.book
        net, reserved = book.positions.net_vnd, book.positions.reserved_vnd
        if sum(net.values()) != 0:
            self.fail("net positions sum to zero", f"{dict(net)}")
        held: defaultdict[str, int] = defaultdict(int)
        now_s = asyncio.get_running_loop().time()
        bound_s = CREDITOR_TIMEOUT_S + ANSWER_MARGIN_S + 0.5
        first_seen = self.first_seen_s
        for e2e, transfer in book.in_flight.items():
            held[transfer.debtor_bic] += transfer.amount_vnd
            seen = first_seen.setdefault(e2e, now_s)
            if now_s - seen > bound_s:
                self.fail("liveness", f"{e2e} in flight for {now_s - seen:.1f} s, past its "
                             f"deadline ({bound_s:.1f} s)")
        if len(first_seen) > 4 * len(book.in_flight) + 64:
            for e2e in [e for e in first_seen if e not in book.in_flight]:
                del first_seen[e2e]
        for bic, amount in reserved.items():
            if amount < held[bic] or amount < 0:
                self.fail("money conserved", f"{bic} holds {amount:,} VND for "
                             f"{held[bic]:,} VND in flight")
        treasury = book.participants[TREASURY]
        if treasury.position_limit_vnd + net[TREASURY] - reserved[TREASURY] < 0:
            self.fail("debtor's cap", f"the treasury is past its cap: net {net[TREASURY]:,}"
                         f" held {reserved[TREASURY]:,}")

    def _journal_net(self, cycle_id: int) -> dict[str, int]:
        assert self._checker is not None
        net: defaultdict[str, int] = defaultdict(int)
        for payer, payee, amount in self._checker.execute(
                "SELECT debtor_bic, creditor_bic, amount_vnd FROM transfers WHERE cycle_id=?"
                " UNION ALL SELECT creditor_bic, debtor_bic, amount_vnd FROM returns"
                " WHERE cycle_id=?", (cycle_id, cycle_id)):
            net[payer] -= amount
            net[payee] += amount
        return {bic: amount for bic, amount in net.items() if amount}

    def _check_memory_is_the_journal(self) -> None:
        """At a restart: memory rebuilt from the journal is the journal's word."""
        assert self.switch is not None
        book = self.switch.state.book
        memory = {bic: amount for bic, amount in book.positions.net_vnd.items() if amount}
        journal = self._journal_net(book.cycle_id)
        if memory != journal:
            self.fail("money conserved", f"positions after a restart {memory} are not the "
                         f"journal's {journal}")
        if any(book.positions.reserved_vnd.values()):
            self.fail("nothing lost", "holds left after the restart resolved what was in "
                         f"flight: {dict(book.positions.reserved_vnd)}")

    def _check_end(self) -> None:
        assert self._checker is not None and self.switch is not None
        rows = self._checker.execute(
            "SELECT end_to_end_id, debtor_bic, creditor_bic, amount_vnd, state, reason_code"
            " FROM transfers").fetchall()
        journal = {row[0]: row for row in rows}
        pending = [e2e for e2e, *_, state, _ in rows if state == "PENDING"]
        if pending:
            self.fail("nothing lost", f"PENDING at the end: {pending[:5]}")
        doubled = self._checker.execute(
            "SELECT end_to_end_id FROM transitions WHERE to_state='SETTLED' GROUP BY 1"
            " HAVING count(*) > 1").fetchall()
        if doubled:
            self.fail("nothing doubled", f"settled twice: {doubled[:5]}")
        returns = {return_id: (e2e, creditor, amount) for return_id, e2e, creditor, amount in
                   self._checker.execute("SELECT return_id, end_to_end_id, creditor_bic,"
                                         " amount_vnd FROM returns")}
        for bic, creditor in self.creditors.items():
            settled = {e2e: amount for e2e, _, creditor_bic, amount, state, _ in rows
                       if creditor_bic == bic and state in ("SETTLED", "RETURNED")}
            if creditor.credited != settled:
                extra = sorted(set(creditor.credited) - set(settled))[:5]
                missing = sorted(set(settled) - set(creditor.credited))[:5]
                self.fail("money conserved", f"{bic} credited what the journal did not "
                             f"settle {extra}, or was not credited what it did {missing}")
            for e2e in settled:
                if e2e not in creditor.accepted:
                    self.fail("nothing doubled", f"{e2e} settled, though {bic} never "
                                 "answered ACCP")
            if creditor.held:
                self.fail("nothing lost", f"{bic} still holds {sorted(creditor.held)[:5]}: "
                             "never confirmed nor rejected")
            mine = {r: amount for r, (_, c, amount) in returns.items() if c == bic}
            if creditor.returns_settled != mine:
                self.fail("money conserved", f"{bic}'s returns settled "
                             f"{creditor.returns_settled} but the journal's are {mine}")
        if self.debtor.returned != {r: amount for r, (_, _, amount) in returns.items()}:
            self.fail("money conserved", "the treasury was not forwarded exactly the "
                         "returns the journal holds")
        for e2e in self.debtor.sent:
            row = journal.get(e2e)
            known = self.debtor.final.get(e2e)
            if row is None:
                if known is not None and known[0] is TxStatus.SETTLED:
                    self.fail("nothing doubled", f"{e2e}: ACSC to the treasury, unknown "
                                 "to the journal")
                continue
            if known is None:
                self.fail("nothing lost", f"{e2e} is {row[4]} in the journal, and the "
                             "treasury never learnt it")
            settled = row[4] in ("SETTLED", "RETURNED")
            if settled != (known[0] is TxStatus.SETTLED):
                self.fail("money conserved", f"{e2e}: the treasury was told {known}, the "
                             f"journal holds {row[4]}")
        book = self.switch.state.book
        memory = {bic: amount for bic, amount in book.positions.net_vnd.items() if amount}
        if memory != self._journal_net(book.cycle_id):
            self.fail("money conserved", f"positions {memory} are not what the journal "
                         f"settled in the open cycle {self._journal_net(book.cycle_id)}")
        for bic in CREDITORS:
            if self._breaker_open(bic):
                self.fail("liveness", f"{bic}'s breaker is still open at the end")
        if self.errors:
            self.fail("no crash on any input", self.errors[0])

    def _breaker_open(self, bic: str) -> bool:
        return self.switch is not None and self.switch.state.book.breakers[bic].is_open

    # ---- plumbing -----------------------------------------------------------------------

    def fail(self, invariant: str, detail: str) -> NoReturn:
        """Record the first broken invariant (the loop's next step ends the history with it,
        wherever this was raised) and raise it here. `invariant` is one of INVARIANTS."""
        assert invariant in INVARIANTS, invariant
        broken = Broken(invariant, detail)
        if self.broken is None:
            self.broken = broken
        raise broken

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        spawn(self.sim_tasks, coroutine).add_done_callback(_retrieve)

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if not isinstance(context.get("exception"), Broken):
            self.errors.append(f"{context.get('message', '')} {context.get('exception')!r}")

    def _log(self, event: str) -> None:
        now_s = asyncio.get_running_loop().time()
        self.trace.append(f"{now_s:.6f} {event}")

    def digest(self) -> str:
        return hashlib.sha256("\n".join(self.trace).encode()).hexdigest()[:16]


class _Channel:
    """The switch's channel to one simulated participant: the network both ways."""

    def __init__(self, history: History, bic: str) -> None:
        self.history = history
        self.bic = bic

    async def send(self, document: Document, timeout_s: float | None = None) -> Reply:
        return await asyncio.wait_for(self._trip(document), timeout_s or 10.0)

    async def _trip(self, document: Document) -> Reply:
        history = self.history
        now_s = asyncio.get_running_loop().time()
        if not history.calm and any(start <= now_s < end for start, end in
                                    history.weather.down.get(self.bic, ())):
            raise aiohttp.ClientConnectionError(f"{self.bic} refused the connection")
        if await history._lost_on_the_way():
            await asyncio.get_running_loop().create_future()  # never answered
        status, answer = history.deliver(self.bic, document)
        if not history.calm and history.rng.random() < history.weather.duplicate_p:
            history.deliver(self.bic, document)  # the network delivered it twice
        if await history._lost_on_the_way():
            await asyncio.get_running_loop().create_future()
        message = None if answer is None else wrap(self.bic, SWITCH, answer)
        return Reply(status, message, "")


def _report(original_msg_id: str, answers: list[TransactionStatus]) -> PaymentStatusReport:
    return PaymentStatusReport(msg_id=f"R{original_msg_id}"[:35],
                               created_at=datetime(2026, 1, 1, tzinfo=UTC),
                               original_msg_id=original_msg_id, original_msg_type="pacs.008",
                               transactions=answers)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """A participant's task ended: its exception is retrieved (a Broken one is already the
    history's `broken`)."""
    if not task.cancelled():
        task.exception()


async def _run(work: Callable[[Switch], Awaitable[T]], switch: Switch) -> T:
    return await work(switch)


