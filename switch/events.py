"""What happens in the switch, as events an observer can hang on (in the spirit of Locust's
`Events`): metrics, live views, the scenario runner and the bench observe the switch through
these, never through its internals.

Events fire after the fact is durable: `settled` fires once the journal holds the transfer as
settled, never before. Payloads are batches (a list of transfers), because a bulk file settles
a thousand transfers at once and one call per batch keeps the hot path cheap. A listener runs
on the switch's event loop, inline: it must be quick and must not raise (an exception in a
listener is logged and swallowed, so an observer can never stop the scheme).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Listener = Callable[..., None]


class EventHook:
    """One kind of event: listeners are called with the event's keyword arguments."""

    __slots__ = ("_listeners", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> Listener:
        """Register `listener`; returns it, so that this works as a decorator."""
        self._listeners.append(listener)
        return listener

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def fire(self, **kwargs: Any) -> None:
        for listener in self._listeners:
            try:
                listener(**kwargs)
            except Exception:
                log.exception("a listener of %s failed; the switch goes on", self.name)


class SwitchEvents:
    """Every event the switch fires, with its keyword arguments.

    - received(debtor_bic, transfers, bulk): transfers journaled as PENDING (their amount
      reserved on the debtor's position) or REJECTED at intake.
    - refused(debtor_bic, statuses): refusals that were not journaled (a resent id, DUPL).
    - forwarded(creditor_bic, transfers): a pacs.008 sent to the creditor.
    - answered(creditor_bic, taken, refused): a creditor's pacs.002 items, counted.
    - settled(transfers, now_s, cycle_id): PENDING transfers durable as SETTLED in settlement
      cycle `cycle_id`; each moved its amount (VND) from debtor to creditor in that cycle.
    - rejected(transfers, now_s): PENDING transfers durable as REJECTED (by a creditor, a
      timeout, recovery); each released its reservation.
    - returned(returns, now_s, cycle_id): pacs.004 items durable as settled returns in cycle
      `cycle_id`; `returns` holds SettledReturn items (original transfer, returned amount in
      VND, reason code), each moving its amount from the creditor back to the debtor.
    - recovered(cycle_id, net_vnd, in_flight): a restarted switch rebuilt its memory from the
      journal, before serving anyone: the open cycle, its net positions (BIC -> VND, credits
      minus debits) and the transfers found PENDING (reserved again; `rejected` follows with
      AB06). Positions and the in-flight count move only by events after this one. With a
      journal shared by several switch processes, it fires again when this process took over
      a dead one's work: `in_flight` is what that one held, `net_vnd` the journal's positions.
    - participant_down(bic, reason) / participant_up(bic): breaker or sign-off changes; a
      restarted switch fires participant_down for each participant the journal has signed off.
    - position_limit_set(bic, limit_vnd): the operator set a participant's position limit (or a
      restarted switch read the one the journal holds).
    - cycle_closed(cycle_id): a settlement cycle closed, its net positions final; the next
      cycle starts from zero.
    - notice_delivered(bic, items) / notice_failed(bic, items): pushes to participants.
    - journal_committed(writes, seconds): one group commit and what it cost.
    - journal_failed(error): the journal stopped on a storage failure.
    - directory_changed(changes): directory entries linked, updated or unlinked, durable.
    - verified(asker_bic, results): an acmt.023 answered; `results` are the acmt.024 items.
    """

    def __init__(self) -> None:
        self.received = EventHook("received")
        self.refused = EventHook("refused")
        self.forwarded = EventHook("forwarded")
        self.answered = EventHook("answered")
        self.settled = EventHook("settled")
        self.rejected = EventHook("rejected")
        self.returned = EventHook("returned")
        self.recovered = EventHook("recovered")
        self.participant_down = EventHook("participant_down")
        self.participant_up = EventHook("participant_up")
        self.position_limit_set = EventHook("position_limit_set")
        self.cycle_closed = EventHook("cycle_closed")
        self.notice_delivered = EventHook("notice_delivered")
        self.notice_failed = EventHook("notice_failed")
        self.journal_committed = EventHook("journal_committed")
        self.journal_failed = EventHook("journal_failed")
        self.directory_changed = EventHook("directory_changed")
        self.verified = EventHook("verified")
