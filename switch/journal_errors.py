"""What a journal raises: why a write or a report was refused, and why a file is no journal."""

from __future__ import annotations


class JournalFailed(Exception):
    """The journal could not write: the switch takes nothing more until restarted."""


class JournalBusy(Exception):
    """More writes are queued than the journal's limit: refuse, nothing was taken."""


class WriteRefused(Exception):
    """The database refused this write (a constraint, a value out of range); nothing of it
    was stored, and the journal goes on."""


class JournalInconsistent(Exception):
    """The journal's rows break an invariant a report rests on (a cycle whose nets do not sum
    to zero, a statement that disagrees with its net): a bug, or a journal changed by hand.
    The report is refused with this sentence and the violation logged; the switch goes on."""


class NotAJournal(Exception):
    """The file is missing, unreadable, or not a switch journal; the message says which."""
