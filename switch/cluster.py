"""Several switch processes on one PostgreSQL journal: who is alive, who takes over what a
dead process left, and what each process learns of the others' decisions.

The journal is the arbiter (switch/store_postgres.py): it refuses known ids, decides caps,
finalizes a transfer once and closes each cycle once, in the writes that record them. What is
left for the processes is to keep their memory near the journal's word, and to leave nothing
behind when one dies:

- each process beats every `lease_s / 5` seconds; one that has not beaten for `lease_s` is
  dead, and the first survivor to see it takes its rows over in one write: the transfers it
  held PENDING are rejected AB06 (as a restart would), and the notices it owed are queued
  here. A restarted process is a new process and takes its former self over the same way;
- a process that finds it was taken over (a pause longer than the lease) stops taking
  anything: the journal refuses its writes already; it ends (`ended`, exit status 3), and its
  supervisor starts it again as a new process;
- a process that lost the journal (the server stopped, restarted, failed over, the network
  cut; any one of its connections found closed, even with the server back already: the
  others are as dead, found only by their next use) answers 503 saying so, and heals by
  itself, every connection anew: it reconnects with bounded backoff, beats
  (or ends, when it was taken over meanwhile), learns what the journal decided about what it
  held in flight, rejects AB06 what the journal still has PENDING for it (as a restart would;
  only one write finalizes a transfer), queues again the notices it owes, and serves again.
  For one lease after healing it takes nobody over: the others lost the journal at the same
  moment and need that long to beat again;
- LISTEN/NOTIFY brings, within milliseconds, the word of another process that made one of
  this process's transfers final (its instant debtor gets the answer; the forward stops
  waiting), a participant's settings changed by the operator, a cycle closed, and a change
  to the citizen-ID directory (memory then follows the journal's changes, in their order).
  A lost notification costs time, never correctness: the forward's deadline and the
  journal's `WHERE state='PENDING'` decide anyway, and settings and the directory are read
  again on reconnecting.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass

from switch.context import SwitchState
from switch.finality import Finality
from switch.forwarding import Forwarding
from switch.recovery import resolve_in_flight
from switch.states import TransferState
from switch.store_postgres import PostgresStore, TakenOver, taken_over
from switch.transfer import Transfer

log = logging.getLogger(__name__)

BEATS_PER_LEASE = 5
MAX_OUTAGES_KEPT = 10
MAX_TAKEOVERS_PER_BEAT = 16
HEAL_FIRST_DELAY_S = 0.25  # reconnecting: the first wait, doubled after each attempt
HEAL_MAX_DELAY_S = 2.0  # and at most this: an outage is over for us within 2 s of its end
HEAL_LOG_EVERY = 10  # attempts: a long outage logs a line per ~20 s, not one per attempt


@dataclass(slots=True)
class Outage:
    """The journal out of this process's reach: since when (unix s), why, and, once healed,
    how long it lasted and what the process resolved."""

    since_s: float
    reason: str
    lasted_s: float | None = None
    attempts: int = 0
    resolved_in_flight: int = 0
    learnt: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"since": self.since_s, "reason": self.reason, "lasted_s": self.lasted_s,
                "reconnect_attempts": self.attempts,
                "resolved_in_flight": self.resolved_in_flight, "learnt_final": self.learnt}


class Cluster:
    """This process's membership of the switch: beating, taking over the dead, listening."""

    def __init__(self, state: SwitchState, finality: Finality, forwarding: Forwarding,
                 store: PostgresStore) -> None:
        self.state = state
        self.finality = finality
        self.forwarding = forwarding
        self.store = store
        self.lease_s = state.config.cluster_lease_s
        self.taken_over = 0  # dead processes this one took over
        self.outages: list[Outage] = []  # the last MAX_OUTAGES_KEPT, the newest last
        self.outage: Outage | None = None  # the journal out of reach now
        self.ended = asyncio.Event()  # taken over: the process must end (and be restarted)
        self._takeovers_from_s = 0.0  # the event loop's clock: none before (after healing)
        self._beating: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    async def join(self) -> None:
        """Before recovery: every participant has a position row with its limit."""
        await self.store.seed_positions({bic: p.position_limit_vnd
                                         for bic, p in self.state.participants.items()})

    async def start(self) -> None:
        """Listen, catch up with what changed since recovery read it (settings, the
        directory: no word of it came before listening), take over whoever is already dead,
        then beat in the background."""
        await self._listen()
        await self._catch_up()
        await self._take_over_the_dead()
        self._beating = asyncio.get_running_loop().create_task(self._beat())

    async def stop(self) -> None:
        """Stop beating (closing the journal then says this process left)."""
        if self._beating is not None:
            self._beating.cancel()
            await asyncio.gather(self._beating, return_exceptions=True)
        await asyncio.gather(*self._background, return_exceptions=True)

    async def _listen(self) -> None:
        await self.store.listen(self._on_final, self._on_settings, self._on_cycle,
                                self._on_directory)

    def _on_final(self, payload: str) -> None:
        """Another process made some of this process's transfers final: its word, as JSON
        [[end-to-end id, state, reason code, by], …]."""
        try:
            words = [(e2e, TransferState(state), reason, by)
                     for e2e, state, reason, by in json.loads(payload)]
        except (ValueError, TypeError) as error:
            log.error("unreadable word from another switch process: %s", error)
            return
        made_final = self.state.book.learn_final(words)
        self.forwarding.decided_elsewhere(made_final)

    def _on_settings(self) -> None:
        self._spawn(self._reload_settings())

    def _on_cycle(self, open_cycle_id: int) -> None:
        self.state.book.follow_cycle(open_cycle_id)

    def _on_directory(self) -> None:
        self._spawn(self.state.directory.follow(self.store))

    async def _reload_settings(self) -> None:
        self.state.book.apply_settings(await self.store.settings_now())

    async def _catch_up(self) -> None:
        """What other processes changed while this one was not listening."""
        await self._reload_settings()
        await self.state.directory.follow(self.store)

    def _spawn(self, coroutine: object) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)  # type: ignore[arg-type]
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def state_now(self) -> str:
        """Which state this process is in: serving, reconnecting (the journal out of reach;
        it heals by itself) or taken_over (it ends and is started again)."""
        if self.ended.is_set():
            return "taken_over"
        return "serving" if self.store.failure is None else "reconnecting"

    def health(self) -> dict[str, object]:
        """For /v1/health and the admin API: the state, the outage now and the last ones."""
        return {"state": self.state_now(), "process": self.store.process_id,
                "outage": None if self.outage is None else self.outage.as_dict(),
                "outages": [outage.as_dict() for outage in self.outages]}

    async def _beat(self) -> None:
        interval_s = self.lease_s / BEATS_PER_LEASE
        while True:
            await asyncio.sleep(interval_s)
            try:
                if self.store.failure is not None:
                    if taken_over(self.store.failure):
                        self._end(self.store.failure)
                        return
                    if not await self._heal():
                        return
                    continue
                closed = self.store.closed_connection()  # the server restarted, the network cut
                if closed is not None:
                    raise ConnectionError(f"its {closed}'s connection was closed")
                if not await self.store.beat():
                    self._end(TakenOver("another switch process found this one dead and"
                                        " took its work over"))
                    return
                if asyncio.get_running_loop().time() >= self._takeovers_from_s:
                    await self._take_over_the_dead()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the journal out of reach: stop writing, and heal
                log.warning("switch process %s could not beat: %s", self.store.process_id,
                            error)
                self.store.fail(ConnectionError(f"the journal is out of reach: {error}"))

    def _end(self, why: BaseException) -> None:
        """Taken over: write nothing more and end (`ended`), to be started again."""
        log.error("switch process %s ends: %s", self.store.process_id, why)
        self.store.fail(TakenOver(f"{why}; this process ends and is started again"))
        self.ended.set()

    async def _heal(self) -> bool:
        """The journal was lost: reconnect (bounded backoff) until it is back, then resolve
        what this process held and serve again. False when this process was taken over
        meanwhile (it then ends)."""
        store = self.store
        outage = self.outage = Outage(time.time(), str(store.failure))
        log.error("switch process %s lost the journal: %s; reconnecting", store.process_id,
                  outage.reason)
        delay_s = HEAL_FIRST_DELAY_S
        while True:
            outage.attempts += 1
            try:
                await store.reconnect()
                break
            except Exception as error:  # not back yet
                if outage.attempts % HEAL_LOG_EVERY == 1:
                    log.warning("switch process %s: the journal is still out of reach"
                                " (attempt %d): %s", store.process_id, outage.attempts, error)
                await asyncio.sleep(delay_s)
                delay_s = min(2 * delay_s, HEAL_MAX_DELAY_S)
        if not await store.beat():
            self._end(TakenOver("the journal was out of reach for longer than the lease and"
                                " another switch process took this one's work over"))
            return False
        # Before writing again: what the journal holds PENDING for this process now is all
        # that predates healing (what it takes from here on is in flight for real).
        pending = await store.in_flight_now()
        await self._learn_lost_words(pending)
        notices = await store.notices_due_now()
        await store.resume()
        await self._listen()
        await self._catch_up()
        _, last_id = await store.open_cycle_now()
        self.state.book.follow_cycle(last_id)
        self.state.notifier.reload(notices)
        book = self.state.book
        in_flight = [book.in_flight.get(t.end_to_end_id, t) for t in pending]
        await resolve_in_flight(self.state, self.finality, in_flight)
        self.forwarding.decided_elsewhere(in_flight)
        outage.resolved_in_flight = len(in_flight)
        outage.lasted_s = round(time.time() - outage.since_s, 3)
        self.outage = None
        self.state.events.journal_healed.fire(outage_s=outage.lasted_s)
        self.outages = [*self.outages[-(MAX_OUTAGES_KEPT - 1):], outage]
        # The others lost the journal too: give them a lease to beat before judging them.
        self._takeovers_from_s = asyncio.get_running_loop().time() + self.lease_s
        log.warning("switch process %s healed after %.1f s (%d attempts): %d in flight "
                    "rejected AB06, %d learnt final, %d notices queued again",
                    store.process_id, outage.lasted_s, outage.attempts, len(in_flight),
                    outage.learnt, len(notices.to_creditors) + len(notices.to_debtors)
                    + len(notices.returns))
        return True

    async def _learn_lost_words(self, pending: list[Transfer]) -> None:
        """Transfers in flight in memory that the journal no longer holds PENDING: made final
        by another process (its NOTIFY lost with the connection) or by this process's last
        write, whose answer the outage swallowed. Memory follows the journal's word."""
        book = self.state.book
        still = {t.end_to_end_id for t in pending}
        gone = [e2e for e2e in book.in_flight if e2e not in still]
        if not gone:
            return
        found = await self.store.lookup(gone)
        words = [(e2e, t.state, t.reason_code, t.reason_by) for e2e, t in found.items()
                 if t.state is not TransferState.PENDING]
        made_final = book.learn_final(words)
        self.forwarding.decided_elsewhere(made_final)
        assert self.outage is not None
        self.outage.learnt = len(made_final)

    async def _take_over_the_dead(self) -> None:
        for dead in (await self.store.dead(self.lease_s))[:MAX_TAKEOVERS_PER_BEAT]:
            claimed = await self.store.take_over(dead, self.lease_s)
            if claimed is None:
                continue  # another survivor was first, or it beat again
            self.taken_over += 1
            log.warning("switch process %s took over %s: %d transfers in flight, %d notices",
                        self.store.process_id, dead, len(claimed.in_flight),
                        len(claimed.notices.to_creditors) + len(claimed.notices.to_debtors)
                        + len(claimed.notices.returns))
            self.state.notifier.reload(claimed.notices)
            await resolve_in_flight(self.state, self.finality, claimed.in_flight)
