"""The treasury's final statuses, one per end-to-end id, held beside the tables it has run.

As a dict a million final statuses were ~40 bytes an entry, and ~80 more for the id string
unless a `Payment` object held it already; here each is four bytes in the row of the table
that pays it, and the ids stay in the tables' columns.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, MutableMapping

from banks.payment_table import PaymentTable
from banks.payout import Verdict


class FinalStatuses(MutableMapping[str, Verdict]):
    """Final statuses by end-to-end id. An id belongs to the first table added that pays it,
    where its status is a code into the few distinct verdicts; an id of no table added yet
    (kept by an earlier run, before this run's table came) waits in a dict until its table is
    added. `knows` says whether an id is one of the tables' at all."""

    def __init__(self) -> None:
        self._tables: list[PaymentTable] = []
        self._codes: list[array[int]] = []  # per table, per row: 0 none, else verdict + 1
        self._verdicts: list[Verdict] = []
        self._verdict_codes: dict[Verdict, int] = {}
        self._others: dict[str, Verdict] = {}
        self._count = 0  # rows with a code

    def add_table(self, table: PaymentTable) -> None:
        """Hold the statuses of `table`'s ids from now on (once: adding it again changes
        nothing), taking over those waiting for it."""
        if any(known is table for known in self._tables):
            return
        self._tables.append(table)
        self._codes.append(array("I", [0]) * len(table))
        for e2e in [e2e for e2e in self._others if table.row_of(e2e) is not None]:
            self[e2e] = self._others.pop(e2e)

    def knows(self, e2e: str) -> bool:
        """Whether a table added pays this id."""
        return self._place(e2e) is not None

    def _place(self, e2e: str) -> tuple[array[int], int] | None:
        """The codes of the first table added that pays `e2e`, and its row there."""
        for table, codes in zip(self._tables, self._codes, strict=True):
            row = table.row_of(e2e)
            if row is not None:
                return codes, row
        return None

    def __getitem__(self, e2e: str) -> Verdict:
        place = self._place(e2e)
        if place is None:
            return self._others[e2e]
        codes, row = place
        if not codes[row]:
            raise KeyError(e2e)
        return self._verdicts[codes[row] - 1]

    def __setitem__(self, e2e: str, verdict: Verdict) -> None:
        place = self._place(e2e)
        if place is None:
            self._others[e2e] = verdict
            return
        codes, row = place
        self._count += not codes[row]
        codes[row] = self._code(verdict)

    def keep_first(self, e2e: str, verdict: Verdict) -> bool:
        """Keep `verdict` for an id of a table added that has no final status yet; whether
        it was kept."""
        place = self._place(e2e)
        if place is None:
            return False
        codes, row = place
        if codes[row]:
            return False
        codes[row] = self._code(verdict)
        self._count += 1
        return True

    def _code(self, verdict: Verdict) -> int:
        code = self._verdict_codes.get(verdict)
        if code is None:
            self._verdicts.append(verdict)
            code = self._verdict_codes[verdict] = len(self._verdicts)
        return code

    def __delitem__(self, e2e: str) -> None:
        place = self._place(e2e)
        if place is None:
            del self._others[e2e]
            return
        codes, row = place
        if not codes[row]:
            raise KeyError(e2e)
        codes[row] = 0
        self._count -= 1

    def __iter__(self) -> Iterator[str]:
        for table, codes in zip(self._tables, self._codes, strict=True):
            yield from (table.end_to_end_id(row) for row, code in enumerate(codes) if code)
        yield from self._others

    def __len__(self) -> int:
        return self._count + len(self._others)

    def clear(self) -> None:
        for index, codes in enumerate(self._codes):
            self._codes[index] = array("I", [0]) * len(codes)
        self._others.clear()
        self._count = 0
