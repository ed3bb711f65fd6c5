"""The running switch: its parts wired together, started and stopped as one."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from functools import partial

from protocol.hotclient import LeanClient, LeanPeer
from protocol.http import Peer
from protocol.tls import client_context
from switch.book import Book, SharedBook
from switch.cluster import Cluster
from switch.config import SwitchConfig
from switch.context import SwitchState
from switch.cycles import Cycles
from switch.directory import Registrations
from switch.events import SwitchEvents
from switch.finality import Finality
from switch.forwarding import Forwarding
from switch.gate import register_senders, senders
from switch.intake import ANSWER_MARGIN_S, Intake
from switch.journal import Journal
from switch.metrics import SwitchMetrics
from switch.notices import Notifier
from switch.participants import Channel, Participant
from switch.recovery import recover
from switch.returns import Returns
from switch.store import SqliteJournal
from switch.store_postgres import PostgresStore
from switch.verification import Verification

log = logging.getLogger(__name__)
MAX_CONNECTIONS_PER_CREDITOR = 256
HEALTH_REASONS = {
    "stopped": "the journal stopped after a storage failure; the operator must restart the "
               "switch",
    "reconnecting": "the journal is out of reach; the switch reconnects by itself, retry "
                    "later",
    "taken_over": "this switch process was taken over by another; it ends and is started "
                  "again, retry later",
}


class Switch:
    """The scheme as one object: configuration, journal, participants and the parts that
    move transfers. `events` is where observers hang; nothing else is for them."""

    def __init__(self, config: SwitchConfig, events: SwitchEvents | None = None,
                 journal: Journal | None = None,
                 channels: Callable[[str], Channel] | None = None) -> None:
        """`journal` and `channels` (a participant's channel by BIC) replace the configured
        journal and HTTP for a caller that brings its own: the simulator (sim/)."""
        self.config = config
        self._journal = journal
        self._channels = channels
        self.events = events or SwitchEvents()
        self.senders = senders(config)
        self.register_senders = register_senders(config)  # the population register's key
        self.started_at_s = time.time()
        self.recovery: dict[str, int] = {}
        self.journal_commits = 0
        self.events.journal_committed.add_listener(self._count_commit)
        self.metrics = SwitchMetrics(
            self.events, config.participants,
            position_limits_vnd={bic: p.position_limit_vnd
                                 for bic, p in config.participants.items()},
            instant_deadline_s=config.creditor_timeout_s + ANSWER_MARGIN_S,
            settlement_cycle_s=config.settlement_cycle_s)
        self._client: LeanClient | None = None
        self._cycle_task: asyncio.Task[None] | None = None
        self.cluster: Cluster | None = None  # with a journal shared by several processes

    async def start(self) -> None:
        """Open the journal, recover from it, and start delivering notices."""
        config = self.config
        store: Journal  # first: a journal that cannot open leaves nothing else to close
        shared: PostgresStore | None = None
        if self._journal is not None:
            store = self._journal
        elif config.journal_url is None:
            store = SqliteJournal(config.journal_path, self.events)
        else:
            store = shared = PostgresStore(config.journal_url, self.events, config.bic,
                                           lease_s=config.cluster_lease_s)
        await store.start()
        channels = self._channels
        if channels is None:
            client = self._client = LeanClient(
                MAX_CONNECTIONS_PER_CREDITOR,
                None if config.tls is None else client_context(config.tls))
            channels = partial(self._peer, client)
        participants = {bic: Participant(p, channels(bic))
                        for bic, p in config.participants.items()}
        # The one place that chooses between the two deployments: the book and the cluster.
        book = (Book(config, participants, self.events, store.forward_ids) if shared is None
                else SharedBook(config, participants, self.events, store.forward_ids, shared))
        self.state = SwitchState(config=config, store=store, events=self.events,
                                 participants=participants, book=book,
                                 notifier=Notifier(config, participants, store, self.events))
        self.finality = Finality(self.state)
        self.forwarding = Forwarding(self.state, self.finality)
        self.intake = Intake(self.state, self.forwarding)
        self.returns = Returns(self.state)
        self.cycles = Cycles(self.state)
        self.verification = Verification(self.state)
        self.registrations = Registrations(self.state.directory, store, self.events,
                                           self.verification.ask)
        if shared is not None:
            self.cluster = Cluster(self.state, self.finality, self.forwarding, shared)
            await self.cluster.join()
        self.recovery = await recover(self.state, self.finality)
        if self.cluster is not None:
            await self.cluster.start()
        self.state.notifier.start()
        if config.settlement_cycle_s:
            self._cycle_task = asyncio.get_running_loop().create_task(self._close_cycles())
        log.info("switch %s recovered %s", config.bic, self.recovery)

    async def stop(self) -> None:
        if self._cycle_task is not None:
            self._cycle_task.cancel()
        await self.forwarding.drain()
        await self.state.notifier.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        await self.state.store.close()
        if self._client is not None:
            await self._client.close()

    def _peer(self, client: LeanClient, bic: str) -> Peer:
        """The signed HTTP channel to a participant's inbound URL (the lean client: it is on
        the hot path, protocol/hotclient.py)."""
        participant = self.config.participants[bic]
        return LeanPeer(client, str(participant.inbound_url), self.config.bic,
                    self.senders[bic].credentials, bic, timeout_s=self.config.creditor_timeout_s)

    def process_info(self) -> dict[str, object]:
        """Which switch process this is (several may share a journal and a port)."""
        info: dict[str, object] = {"pid": os.getpid()}
        if self.cluster is not None:
            info |= {"id": self.cluster.store.process_id,
                     "taken_over": self.cluster.taken_over} | self.cluster.health()
        return info

    def health(self) -> tuple[str, str | None]:
        """The state this process is in and, unless serving, why in general terms (the
        failure itself is the operator's: /v1/admin/health): serving; reconnecting (the
        journal out of reach: it heals by itself); taken_over (it ends, to be started again);
        stopped (a storage failure of the SQLite journal: the operator restarts it)."""
        if self.state.store.failure is None:
            return "serving", None
        state = "stopped" if self.cluster is None else self.cluster.state_now()
        return state, HEALTH_REASONS[state]

    async def ended(self) -> None:
        """Return when this process must end by itself (taken over by another, with a shared
        journal): its supervisor starts it again. Never returns for one on SQLite."""
        if self.cluster is None:
            await asyncio.Event().wait()
        else:
            await self.cluster.ended.wait()

    def _count_commit(self, writes: int, seconds: float) -> None:
        self.journal_commits += 1

    async def _close_cycles(self) -> None:
        assert self.config.settlement_cycle_s is not None
        while True:
            await asyncio.sleep(self.config.settlement_cycle_s)
            await self.cycles.close(min_age_s=self.config.settlement_cycle_s)
