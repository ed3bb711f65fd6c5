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
  anything (fail-stop): the journal refuses its writes already;
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

from switch.finality import Finality
from switch.forwarding import Forwarding
from switch.recovery import resolve_in_flight
from switch.state import SwitchState
from switch.states import TransferState
from switch.store_postgres import PostgresStore

log = logging.getLogger(__name__)

BEATS_PER_LEASE = 5
MAX_TAKEOVERS_PER_BEAT = 16


class TakenOver(Exception):
    """Another process found this one dead and took its work over: this one stops."""


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

    async def _beat(self) -> None:
        interval_s = self.lease_s / BEATS_PER_LEASE
        while True:
            await asyncio.sleep(interval_s)
            try:
                if not self.store.listening():  # lost: notifications missed meanwhile
                    await self.store.reconnect_listener()
                    await self._listen()
                    await self._catch_up()
                if not await self.store.beat():
                    self.store.fail(TakenOver(
                        "another switch process found this one dead and took its work over;"
                        " restart it"))
                    return
                await self._take_over_the_dead()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the journal unreachable: the writer fails on its own
                log.warning("switch process %s could not beat: %s", self.store.process_id,
                            error)

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
