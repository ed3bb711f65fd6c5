"""Issue #24 in the simulator: several virtual switch processes share debtors' caps through
escrow slices (switch/escrow.py), the rules the PostgreSQL journal's switch_flush plays.

A seeded history of batches of holds taken by random processes, holds ended (settled or
released) by any process, credits, returns, cycle closes mid-flight, new limits, debtors
driven to their cap, and a process crashed and taken over by a survivor. A one-process book
(switch/positions.py, the SQLite deployment's) plays the same operations beside it. After
every step: the escrow invariant (`Debtor.check`), the cap (Σheld ≤ limit + net whenever a
hold was admitted) and exactness (each hold and return admitted or refused AM04 exactly as
the one-process book decides it; a refusal only past `limit + net − Σheld`).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from switch.escrow import Debtor
from switch.positions import PositionBook

INVARIANT = "every cap exact across processes"
PARTICIPANTS = ("TREASURY", "BANK_A", "BANK_B")
STEPS = 120
MAX_PROCESSES = 4


class EscrowBroken(Exception):
    """An escrow history broke an invariant; `detail` says which figures."""

    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail


@dataclass(slots=True)
class EscrowHistory:
    """One seeded history; `trace` is what happened, `tally` what it exercised."""

    seed: int
    trace: list[str] = field(default_factory=list)
    tally: Counter[str] = field(default_factory=Counter)

    def play(self) -> None:
        """Raises EscrowBroken (or the core's AssertionError) at the first broken rule."""
        rng = random.Random(f"escrow-{self.seed}")
        limits = {bic: rng.choice((5_000, 20_000, 10**6)) for bic in PARTICIPANTS}
        debtors = {bic: Debtor(limit_vnd=limit) for bic, limit in limits.items()}
        book = PositionBook()
        processes = [f"p{n}" for n in range(rng.randint(2, MAX_PROCESSES))]
        born = len(processes)
        in_flight: list[tuple[str, str, int]] = []  # debtor, creditor, amount
        for step in range(STEPS):
            action = rng.random()
            process = rng.choice(processes)
            if action < 0.45:
                self._batch(rng, step, process, len(processes), debtors, book, limits, in_flight)
            elif action < 0.75 and in_flight:
                debtor_bic, creditor_bic, amount = in_flight.pop(rng.randrange(len(in_flight)))
                settled = rng.random() < 0.7
                debtors[debtor_bic].unhold(process, amount, settled)
                book.release(debtor_bic, amount)
                if settled:
                    debtors[creditor_bic].credit(process, amount)
                    book.move(debtor_bic, creditor_bic, amount)
                self.tally["escrow settled" if settled else "escrow released"] += 1
                self._log(step, f"{process} {'settles' if settled else 'releases'} "
                          f"{debtor_bic}->{creditor_bic} {amount}")
            elif action < 0.82:
                creditor_bic, debtor_bic = rng.sample(PARTICIPANTS, 2)
                amount = rng.randint(1, limits[creditor_bic] // 4)
                expected = amount <= book.headroom_vnd(creditor_bic, limits[creditor_bic])
                if debtors[creditor_bic].pay_back(process, amount) != expected:
                    raise EscrowBroken(INVARIANT, f"step {step}: a return of {amount} by "
                                       f"{creditor_bic} decided {not expected}, one process "
                                       f"would decide {expected}")
                if expected:
                    debtors[debtor_bic].credit(process, amount)
                    book.move(creditor_bic, debtor_bic, amount)
                self.tally["escrow returns" if expected else "escrow returns AM04"] += 1
                self._log(step, f"{process} return {creditor_bic}->{debtor_bic} {amount} "
                          f"{'taken' if expected else 'AM04'}")
            elif action < 0.88:
                for debtor in debtors.values():
                    debtor.close_cycle()
                book.close_cycle()
                self.tally["escrow cycles closed"] += 1
                self._log(step, f"cycle closed with {len(in_flight)} in flight")
            elif action < 0.93:
                bic = rng.choice(PARTICIPANTS)
                limits[bic] = rng.choice((1_000, 5_000, 20_000, 10**6))
                debtors[bic].set_limit(limits[bic])
                self.tally["escrow limits set"] += 1
                self._log(step, f"limit of {bic} set to {limits[bic]}")
            elif len(processes) > 1:
                dead = process
                processes.remove(dead)
                survivor = rng.choice(processes)
                for debtor in debtors.values():
                    debtor.take_over(dead, survivor)
                processes.append(f"p{born}")  # its supervisor starts a new one
                born += 1
                self.tally["escrow takeovers"] += 1
                self._log(step, f"{dead} crashed, taken over by {survivor}")
            self._check(step, debtors, book, limits)
        self.tally["escrow refills"] += sum(debtor.refills for debtor in debtors.values())
        self.tally["escrow revocations"] += sum(d.revocations for d in debtors.values())

    def _batch(self, rng: random.Random, step: int, process: str, processes: int,
               debtors: dict[str, Debtor], book: PositionBook, limits: dict[str, int],
               in_flight: list[tuple[str, str, int]]) -> None:
        """A batch of holds on one debtor, some near or past its cap."""
        debtor_bic = rng.choice(PARTICIPANTS)
        creditor_bic = rng.choice([bic for bic in PARTICIPANTS if bic != debtor_bic])
        top = max(1, limits[debtor_bic] // rng.choice((3, 10, 50)))
        amounts = [rng.randint(1, top) for _ in range(rng.randint(1, 5))]
        expected = [book.reserve(debtor_bic, amount, limits[debtor_bic]) for amount in amounts]
        decided = debtors[debtor_bic].hold(process, amounts, processes)
        if decided != expected:
            raise EscrowBroken(INVARIANT, f"{process}'s holds {amounts} on {debtor_bic} "
                               f"decided {decided}, one process would decide {expected}")
        for amount, admitted in zip(amounts, decided, strict=True):
            if admitted:
                in_flight.append((debtor_bic, creditor_bic, amount))
        self.tally["escrow holds"] += decided.count(True)
        self.tally["escrow AM04"] += decided.count(False)
        self._log(step, f"{process} holds {amounts} on {debtor_bic}: {decided}")

    def _check(self, step: int, debtors: dict[str, Debtor], book: PositionBook,
               limits: dict[str, int]) -> None:
        for bic, debtor in debtors.items():
            debtor.check()
            if debtor.held_vnd() != book.reserved_vnd[bic] or (
                    debtor.total_net_vnd() != book.net_vnd[bic]):
                raise EscrowBroken(INVARIANT, f"step {step}: {bic}'s slices hold "
                                   f"{debtor.held_vnd()} net {debtor.total_net_vnd()}, the "
                                   f"book {book.reserved_vnd[bic]} net {book.net_vnd[bic]}")
            if debtor.limit_vnd != limits[bic]:
                raise EscrowBroken(INVARIANT, f"step {step}: {bic}'s limit lost")

    def _log(self, step: int, event: str) -> None:
        self.trace.append(f"escrow {step} {event}")
