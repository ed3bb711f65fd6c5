"""What the switch's parts share while it runs: configuration, journal, events, participants,
positions, and the transfers in flight.

Memory follows the journal: every change here that a participant could observe (a state, a
position, an answer) is made after the journal write that records it is durable. The one
exception is a reservation, which is taken before the write that makes its transfer PENDING
(a check and a hold must be one step, so two messages cannot both pass the same headroom)
and given back if that write fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from switch.config import SwitchConfig
from switch.directory import Directory
from switch.events import SwitchEvents
from switch.notices import Notifier
from switch.participants import Participant
from switch.positions import PositionBook
from switch.store import Journal
from switch.transfer import Transfer


@dataclass(slots=True)
class SwitchState:
    config: SwitchConfig
    store: Journal
    events: SwitchEvents
    participants: dict[str, Participant]
    notifier: Notifier
    positions: PositionBook = field(default_factory=PositionBook)
    cycle_id: int = 0  # the open settlement cycle: what settles now settles in it
    known_ids: set[str] = field(default_factory=set)  # every end-to-end id ever taken
    in_flight: dict[str, Transfer] = field(default_factory=dict)  # PENDING, by end-to-end id
    # Taken from a message, their journal write not yet durable: for a resend meanwhile.
    taking: dict[str, Transfer] = field(default_factory=dict)
    returning: set[str] = field(default_factory=set)  # end-to-end ids returned or returning
    directory: Directory = field(default_factory=Directory)  # citizen id -> payout account
