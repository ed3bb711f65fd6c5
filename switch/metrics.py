"""The switch's Prometheus metrics, kept by listening to its events and nothing else.

Every figure here moves on an event of `switch/events.py`, so it never runs ahead of the
journal, and an observer in another process sees the same through `GET /metrics`. Each switch
has a registry of its own (several switches run in one test process); the official client
(prometheus_client) keeps the values and writes the exposition.

Listeners work per batch: a counter moves once per batch and per label, and only what must be
per transfer is (a latency observation, a position sum). Child series are resolved once, up
front, because a label lookup costs more than the observation itself. Labels are bounded: a
participant's BIC from the switch's configuration, a journal state, a mode, and a reason code
from the scheme's list (`protocol/reasons.py`), anything else a participant sends counted as
`other`, so that no participant can create series at will. No end-to-end id is ever a label.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.metrics import MetricWrapperBase

from protocol import reasons
from protocol.exposition import reason_label
from protocol.messages import TransactionStatus
from switch.events import SwitchEvents
from switch.records import SettledReturn
from switch.states import TransferState
from switch.transfer import Transfer

# The creditor has 5 s from the forward (creditor_timeout_s) and the instant answer waits at
# most 2 s more: fine steps where instant transfers settle, and around 5 s, so that AB05
# timeouts stand apart from slow answers.
INSTANT_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0,
                             4.9, 5.1, 5.5, 7.0)
# A bulk transfer waits behind the rest of its file: seconds to an hour for a million lines.
BULK_LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                          600.0, 1_800.0, 3_600.0)
# A group commit costs ~0.2-0.3 ms of fsync on this project's machine.
COMMIT_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                    0.25, 1.0)
COMMIT_WRITES_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)  # the journal's max_batch
MODES = {False: "instant", True: "bulk"}


def observe_all(histogram: Any, values: Sequence[float]) -> None:
    """`histogram.observe(value)` for each value (a labelled child of a Histogram without
    exemplars), with one increment of each bucket touched and one of the sum instead of two
    locked increments a value: the client has no batch observe, and a payout's settlements
    come a thousand at a time. The exposition reads the same (tests/unit/test_metrics.py)."""
    histogram._raise_if_not_observable()
    bounds = histogram._upper_bounds
    counts: dict[int, int] = {}
    for value in values:
        index = bisect_left(bounds, value)  # the first bound >= value, as observe's loop
        counts[index] = counts.get(index, 0) + 1
    histogram._sum.inc(sum(values))
    buckets = histogram._buckets
    for index, count in counts.items():
        buckets[index].inc(count)


class SwitchMetrics:
    """The metrics of one switch, hung on its events; `registry` is what GET /metrics serves.

    `participants` are the admitted BICs: the only values the `bic` label takes. The rest is
    the configuration the alert rules compare with (switch/monitoring/rules.yml): each
    participant's position limit in VND as configured (the `position_limit_set` event moves
    it), the instant deadline in seconds (creditor_timeout_s and the answer's margin), and the
    settlement cycle's length in seconds (None: cycles close on command only).
    """

    def __init__(self, events: SwitchEvents, participants: Iterable[str], *,
                 position_limits_vnd: Mapping[str, int] | None = None,
                 instant_deadline_s: float = 7.0,
                 settlement_cycle_s: float | None = None) -> None:
        self.registry = CollectorRegistry()
        self._bics = frozenset(participants)
        counter = partial(Counter, registry=self.registry)
        gauge = partial(Gauge, registry=self.registry)
        histogram = partial(Histogram, registry=self.registry)
        vnd = {"unit": "vnd"}
        seconds = {"unit": "seconds"}
        self.transfers = counter(
            "switchlab_transfers", "Transfers that became final (SETTLED or REJECTED, at intake "
            "or later) or were RETURNED, by state, mode and ISO 20022 reason code",
            ["state", "mode", "reason"])
        self.settled_vnd = counter(
            "switchlab_settled_vnd", "Amount of the transfers settled, in VND", **vnd)
        self.returned_vnd = counter(
            "switchlab_returned_vnd", "Amount sent back by settled returns (pacs.004), in VND",
            **vnd)
        self.received = counter(
            "switchlab_transfers_received", "Transactions journaled at intake (PENDING or "
            "REJECTED), by debtor and mode", ["bic", "mode"])
        self.duplicates = counter(
            "switchlab_duplicates", "Transactions with an end-to-end id the switch already "
            "held, answered without journaling: DUPL, or resent (the same message again, "
            "answered with the known outcome)", ["bic", "kind"])
        self.forwards = counter(
            "switchlab_forwards", "pacs.008 messages sent to a creditor", ["bic"])
        self.forwarded = counter(
            "switchlab_transfers_forwarded", "Transfers sent to a creditor", ["bic"])
        self.answers = counter(
            "switchlab_creditor_answers", "A creditor's pacs.002 items: taken, or refused "
            "(late, duplicate, unknown id or another's transfer)", ["bic", "outcome"])
        latency = "Seconds from intake to the durable final status of transfers that were " \
                  "forwarded, by final state"
        self.instant_latency = histogram(
            "switchlab_instant_latency_seconds", f"{latency}: instant", ["state"],
            buckets=INSTANT_LATENCY_BUCKETS_S, **seconds)
        self.bulk_latency = histogram(
            "switchlab_bulk_latency_seconds", f"{latency}: bulk", ["state"],
            buckets=BULK_LATENCY_BUCKETS_S, **seconds)
        self.in_flight = gauge(
            "switchlab_transfers_in_flight", "Transfers journaled PENDING, not yet final")
        self.oldest_in_flight = gauge(
            "switchlab_transfers_in_flight_oldest_seconds", "Age of the oldest transfer in "
            "flight, to the second, by mode; 0 when none", ["mode"], **seconds)
        self.instant_deadline = gauge(
            "switchlab_instant_deadline_seconds", "Time an instant transfer has to become "
            "final: the creditor's deadline and the answer's margin", **seconds)
        self.net_position = gauge(
            "switchlab_net_position_vnd", "Net position in the open settlement cycle: "
            "credits minus debits settled, in VND", ["bic"], **vnd)
        self.reserved_position = gauge(
            "switchlab_reserved_position_vnd", "Amount of the participant's transfers in "
            "flight as debtor, held against its position limit, in VND", ["bic"], **vnd)
        self.position_limit = gauge(
            "switchlab_position_limit_vnd", "The participant's position limit: how far its "
            "net position less its reservations may fall below zero, in VND", ["bic"], **vnd)
        self.cycle = Info(
            "switchlab_settlement_cycle", "The open settlement cycle, the one the net "
            "positions are for", registry=self.registry)
        self.cycle_opened = gauge(
            "switchlab_settlement_cycle_opened_timestamp_seconds", "When the open settlement "
            "cycle opened (unix time; after a restart, when this process recovered it)")
        self.cycle_scheduled = gauge(
            "switchlab_settlement_cycle_scheduled_seconds", "Configured length of a settlement "
            "cycle (settlement_cycle_s); 0 when cycles close on command only", **seconds)
        self.cycles_closed = counter(
            "switchlab_settlement_cycles_closed", "Settlement cycles closed")
        self.participant_up = gauge(
            "switchlab_participant_up", "1 when the switch forwards to the participant, 0 when "
            "it is signed off or its circuit breaker is open", ["bic"])
        self.participant_downs = counter(
            "switchlab_participant_downs", "Times the participant was signed off or its "
            "breaker opened", ["bic"])
        self.notices_delivered = counter(
            "switchlab_notices_delivered", "Items (confirmations, reports, returns) delivered "
            "to the participant", ["bic"])
        self.auth_failures = counter(
            "switchlab_auth_failures", "Requests refused before they authenticated, by reason "
            "(protocol.http.AUTH_FAILURE_REASONS) and the signer they claimed: a participant's "
            "BIC, (operator) for the admin token, unknown for any keyid no participant has, "
            "none when they named none", ["reason", "claimed_signer"])
        self.notice_failures = counter(
            "switchlab_notice_failures", "Failed attempts to deliver a notice message to the "
            "participant (each is retried)", ["bic"])
        self.commit_seconds = histogram(
            "switchlab_journal_commit_seconds", "Duration of one journal group commit",
            buckets=COMMIT_BUCKETS_S, **seconds)
        self.commit_writes = histogram(
            "switchlab_journal_commit_writes", "Writes committed together in one group commit",
            buckets=COMMIT_WRITES_BUCKETS, unit="writes")
        self.journal_failed = gauge(
            "switchlab_journal_failed", "1 while the journal is stopped on a storage failure: "
            "the switch takes nothing until restarted, or until it heals (PostgreSQL)")

        # Positions, the cycle and the in-flight count are plain numbers the listeners keep;
        # the gauges read them when scraped, so an event costs no gauge update.
        self._net_vnd: defaultdict[str, int] = defaultdict(int)
        self._reserved_vnd: defaultdict[str, int] = defaultdict(int)
        self._open_cycle = -1  # none yet: _start_cycle(0) below opens the first
        self._in_flight = 0
        # Transfers in flight by mode (bulk or not) and the second they were received in, so
        # that the oldest is found at a scrape without a record per transfer.
        self._pending_since: dict[bool, dict[int, int]] = {False: {}, True: {}}
        self.in_flight.set_function(lambda: self._in_flight)
        for bulk, mode in MODES.items():
            self.oldest_in_flight.labels(mode).set_function(partial(self._oldest_s, bulk))
        self.instant_deadline.set(instant_deadline_s)
        self.cycle_scheduled.set(settlement_cycle_s or 0)
        self._start_cycle(0)
        limits_vnd = position_limits_vnd or {}
        for bic in self._bics:
            self.participant_up.labels(bic).set(1)
            if bic in limits_vnd:
                self.position_limit.labels(bic).set(limits_vnd[bic])
            self.net_position.labels(bic).set_function(lambda bic=bic: self._net_vnd[bic])
            self.reserved_position.labels(bic).set_function(
                lambda bic=bic: self._reserved_vnd[bic])
        self._latency = {(bulk, state): histogram.labels(state) for bulk, histogram in (
            (False, self.instant_latency), (True, self.bulk_latency))
            for state in (TransferState.SETTLED, TransferState.REJECTED)}
        self._children: dict[tuple[object, ...], Any] = {}
        self._hang_on(events)

    def _hang_on(self, events: SwitchEvents) -> None:
        events.received.add_listener(self._received)
        events.refused.add_listener(self._refused)
        events.forwarded.add_listener(self._forwarded)
        events.answered.add_listener(self._answered)
        events.settled.add_listener(self._settled)
        events.rejected.add_listener(self._rejected)
        events.returned.add_listener(self._returned)
        events.recovered.add_listener(self._recovered)
        events.participant_down.add_listener(self._participant_down)
        events.participant_up.add_listener(self._participant_up)
        events.position_limit_set.add_listener(self._position_limit_set)
        events.cycle_closed.add_listener(self._cycle_closed)
        events.notice_delivered.add_listener(self._notice_delivered)
        events.notice_failed.add_listener(self._notice_failed)
        events.journal_committed.add_listener(self._journal_committed)
        events.journal_failed.add_listener(self._journal_failed)
        events.journal_healed.add_listener(lambda outage_s: self.journal_failed.set(0))

    def auth_failed(self, reason: str, claimed_signer: str) -> None:
        """A request refused before it authenticated (protocol.http.AUTH_FAILED): the label
        values come bounded from there."""
        self.auth_failures.labels(reason, claimed_signer).inc()

    def _known(self, bic: str) -> bool:
        return bic in self._bics

    def _child(self, metric: MetricWrapperBase, *labels: str) -> Any:
        """`metric.labels(*labels)`, resolved once: a label lookup costs more than an
        increment. The cache is as bounded as the label values are."""
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # ---- transfers ------------------------------------------------------------------------

    def _received(self, debtor_bic: str, transfers: Sequence[Transfer], bulk: bool) -> None:
        reserved_vnd = 0
        pending: list[Transfer] = []
        rejected: list[Transfer] = []
        for transfer in transfers:
            if transfer.state is TransferState.PENDING:
                pending.append(transfer)
                reserved_vnd += transfer.amount_vnd
            else:
                rejected.append(transfer)
        self._reserved_vnd[debtor_bic] += reserved_vnd
        self._in_flight += len(pending)
        self._pending(pending)
        if self._known(debtor_bic):
            self._child(self.received, debtor_bic, MODES[bulk]).inc(len(transfers))
        if rejected:
            self._count(TransferState.REJECTED, [(t.bulk, t.reason_code) for t in rejected])

    def _refused(self, debtor_bic: str, statuses: Sequence[TransactionStatus]) -> None:
        if not self._known(debtor_bic):
            return
        duplicates = sum(1 for s in statuses if s.reason_code == reasons.DUPLICATE)
        if duplicates:
            self._child(self.duplicates, debtor_bic, "DUPL").inc(duplicates)
        if len(statuses) > duplicates:
            self._child(self.duplicates, debtor_bic, "resent").inc(len(statuses) - duplicates)

    def _forwarded(self, creditor_bic: str, transfers: Sequence[Transfer]) -> None:
        if self._known(creditor_bic):
            self._child(self.forwards, creditor_bic).inc()
            self._child(self.forwarded, creditor_bic).inc(len(transfers))

    def _answered(self, creditor_bic: str, taken: int, refused: int) -> None:
        if not self._known(creditor_bic):
            return
        if taken:
            self._child(self.answers, creditor_bic, "taken").inc(taken)
        if refused:
            self._child(self.answers, creditor_bic, "refused").inc(refused)

    def _count(self, state: TransferState, outcomes: Iterable[tuple[bool, str | None]]
               ) -> None:
        """Count transfers that reached `state`, from (bulk, reason code) per transfer."""
        tally: dict[tuple[bool, str | None], int] = {}
        for outcome in outcomes:
            tally[outcome] = tally.get(outcome, 0) + 1
        for (bulk, code), count in tally.items():
            self._child(self.transfers, state, MODES[bulk], reason_label(code)).inc(count)

    def _finished(self, transfers: Sequence[Transfer], now_s: float, state: TransferState
                  ) -> None:
        """What settling and rejecting share: latency, outcomes, the in-flight count,
        reservations released."""
        reserved = self._reserved_vnd
        outcomes = []
        latencies_s: dict[bool, list[float]] = {False: [], True: []}
        for transfer in transfers:
            latencies_s[transfer.bulk].append(now_s - transfer.received_at)
            reserved[transfer.debtor_bic] -= transfer.amount_vnd
            outcomes.append((transfer.bulk, transfer.reason_code))
        for bulk, values_s in latencies_s.items():
            if values_s:
                observe_all(self._latency[bulk, state], values_s)
        self._count(state, outcomes)
        self._in_flight -= len(transfers)
        self._pending(transfers, -1)

    def _pending(self, transfers: Iterable[Transfer], sign: int = 1) -> None:
        """Count transfers into (sign 1) or out of (-1) flight by mode and received second;
        a second with none left is dropped, so the tally is as long as the seconds in flight."""
        tally: dict[tuple[bool, int], int] = {}
        for transfer in transfers:
            key = (transfer.bulk, int(transfer.received_at))
            tally[key] = tally.get(key, 0) + 1
        for (bulk, second), count in tally.items():
            since = self._pending_since[bulk]
            left = since.get(second, 0) + sign * count
            if left > 0:
                since[second] = left
            else:
                since.pop(second, None)

    def _oldest_s(self, bulk: bool) -> float:
        since = self._pending_since[bulk]
        return max(0.0, time.time() - min(since)) if since else 0.0

    def _settled(self, transfers: Sequence[Transfer], now_s: float, cycle_id: int) -> None:
        self._finished(transfers, now_s, TransferState.SETTLED)
        net = self._net_of(cycle_id)
        total_vnd = 0
        for transfer in transfers:
            amount_vnd = transfer.amount_vnd
            total_vnd += amount_vnd
            if net is not None:
                net[transfer.debtor_bic] -= amount_vnd
                net[transfer.creditor_bic] += amount_vnd
        self.settled_vnd.inc(total_vnd)

    def _rejected(self, transfers: Sequence[Transfer], now_s: float) -> None:
        self._finished(transfers, now_s, TransferState.REJECTED)

    def _returned(self, returns: Sequence[SettledReturn], now_s: float, cycle_id: int) -> None:
        self._count(TransferState.RETURNED, [(r.original.bulk, r.reason_code) for r in returns])
        net = self._net_of(cycle_id)
        total_vnd = 0
        for settled in returns:
            total_vnd += settled.amount_vnd
            if net is not None:
                net[settled.original.creditor_bic] -= settled.amount_vnd
                net[settled.original.debtor_bic] += settled.amount_vnd
        self.returned_vnd.inc(total_vnd)

    def _recovered(self, cycle_id: int, net_vnd: Mapping[str, int],
                   in_flight: Sequence[Transfer]) -> None:
        self._start_cycle(cycle_id)
        self._net_vnd.update(net_vnd)
        for transfer in in_flight:
            self._reserved_vnd[transfer.debtor_bic] += transfer.amount_vnd
        self._in_flight += len(in_flight)
        self._pending(in_flight)

    # ---- positions and cycles -------------------------------------------------------------

    def _net_of(self, cycle_id: int) -> defaultdict[str, int] | None:
        """The net positions that what settled in `cycle_id` moves: None for a cycle
        already closed (its figures are the journal's); a newer cycle starts afresh (its
        settlements can be seen before the close's own event)."""
        if cycle_id < self._open_cycle:
            return None
        if cycle_id > self._open_cycle:
            self._start_cycle(cycle_id)
        return self._net_vnd

    def _start_cycle(self, cycle_id: int) -> None:
        if cycle_id != self._open_cycle:  # not a takeover's recovery of the same cycle
            self.cycle.info({"cycle_id": str(cycle_id)})
            self.cycle_opened.set(time.time())
        self._open_cycle = cycle_id
        self._net_vnd.clear()

    def _cycle_closed(self, cycle_id: int) -> None:
        self.cycles_closed.inc()
        if cycle_id >= self._open_cycle:
            self._start_cycle(cycle_id + 1)

    # ---- participants, notices, journal ---------------------------------------------------

    def _participant_down(self, bic: str, reason: str) -> None:
        if self._known(bic):
            self._child(self.participant_up, bic).set(0)
            self._child(self.participant_downs, bic).inc()

    def _participant_up(self, bic: str) -> None:
        if self._known(bic):
            self._child(self.participant_up, bic).set(1)

    def _position_limit_set(self, bic: str, limit_vnd: int) -> None:
        if self._known(bic):
            self._child(self.position_limit, bic).set(limit_vnd)

    def _notice_delivered(self, bic: str, items: int) -> None:
        if self._known(bic):
            self._child(self.notices_delivered, bic).inc(items)

    def _notice_failed(self, bic: str, items: int) -> None:
        if self._known(bic):
            self._child(self.notice_failures, bic).inc()

    def _journal_committed(self, writes: int, seconds: float) -> None:
        self.commit_seconds.observe(seconds)
        self.commit_writes.observe(writes)

    def _journal_failed(self, error: BaseException) -> None:
        self.journal_failed.set(1)
