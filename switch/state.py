"""What the switch's parts share while it runs: configuration, journal, events, participants,
the notifier, the directory, and the book (switch/book.py), which alone holds and changes the
memory of transfers, positions, cycles and breakers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from switch.book import Book
from switch.config import SwitchConfig
from switch.directory import Directory
from switch.events import SwitchEvents
from switch.journal import Journal
from switch.notices import Notifier
from switch.participants import Participant


@dataclass(slots=True)
class SwitchState:
    config: SwitchConfig
    store: Journal
    events: SwitchEvents
    participants: dict[str, Participant]
    notifier: Notifier
    book: Book
    directory: Directory = field(default_factory=Directory)  # citizen id -> payout account
