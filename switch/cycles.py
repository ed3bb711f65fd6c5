"""Settlement cycles: closing one, and what each participant owes or is owed for it.

Each participant gets a camt.053 statement of its settlement account for the cycle (camt.053
rather than camt.052/054 because a closed cycle is a statement: opening balance, every booked
entry, closing balance), pushed to its inbound URL when the cycle closes and served to it on a
signed request (switch/statements.py); the operator gets a summary of net positions, which
sum to zero.

Which cycle a settlement counts in is decided with the journal write's place in the journal's
order: the close is taken by the journal and the open cycle switches in the same synchronous
step, so every settlement written before the close counts in the closed cycle and every one
after in the next, whatever finishes first. A journal shared by several switch processes
decides it itself: it closes whatever cycle is open when its write runs, counts each
settlement in the cycle open at that settlement's write, and says which cycle it closed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from protocol.codec import new_id
from protocol.messages import Statement, StatementEntry
from switch.context import SwitchState
from switch.journal import iso_utc
from switch.journal_errors import JournalInconsistent
from switch.records import AdminChange
from switch.transfer import wire_id

log = logging.getLogger(__name__)

# A camt.053 page: ~420 bytes an entry, so ~4 MB, within a bank's 8 MiB body limit.
MAX_ENTRIES_PER_PAGE = 10_000


@dataclass(frozen=True, slots=True)
class CycleSummary:
    cycle_id: int
    opened_at: float  # unix time, s
    closed_at: float | None
    net_vnd: dict[str, int]  # per participant: credits minus debits settled in the cycle
    transfers: int
    transfers_vnd: int
    returns: int
    returns_vnd: int

    def as_dict(self) -> dict[str, object]:
        return {
            "cycle_id": self.cycle_id,
            "opened_at": iso_utc(self.opened_at),
            "closed_at": iso_utc(self.closed_at) if self.closed_at else None,
            "net_vnd": self.net_vnd,
            "transfers": self.transfers,
            "transfers_vnd": self.transfers_vnd,
            "returns": self.returns,
            "returns_vnd": self.returns_vnd,
        }

    def text(self) -> str:
        lines = [
            f"Settlement cycle {self.cycle_id}  {iso_utc(self.opened_at)} → "
            f"{iso_utc(self.closed_at) if self.closed_at else 'open'}",
            f"  transfers settled: {self.transfers:,}  ({self.transfers_vnd:,} VND)",
            f"  returns settled:   {self.returns:,}  ({self.returns_vnd:,} VND)",
            "  net positions (credit + / debit -):",
        ]
        lines += [f"    {bic:<11} {net:>+22,} VND" for bic, net in sorted(self.net_vnd.items())]
        lines.append(f"    {'sum':<11} {sum(self.net_vnd.values()):>+22,} VND")
        return "\n".join(lines)


def _inconsistent(what: str) -> JournalInconsistent:
    """An invariant the journal's rows break, logged for the operator once found."""
    log.error("journal invariant broken: %s", what)
    return JournalInconsistent(what)


class Cycles:
    def __init__(self, state: SwitchState) -> None:
        self.state = state

    async def close(self, min_age_s: float | None = None, change: AdminChange | None = None
                    ) -> int | None:
        """Close the open cycle and open the next; returns the closed cycle's id once the
        journal holds the close. `min_age_s` (a timer's close): with a journal shared by
        several processes, close only a cycle open that long, and return None otherwise, so
        that each process's timer does not close a cycle another one just opened. `change`:
        the operator's request that asked, journaled with the close."""
        state = self.state
        book = state.book
        written = state.store.close_cycle(book.cycle_id, time.time(), min_age_s, change)
        asked_id = book.close_cycle()  # in the same step as the write: see the module's doc
        closed_id = book.cycle_close_decided(asked_id, await written)
        if closed_id is None:
            return None
        state.events.cycle_closed.fire(cycle_id=closed_id)
        state.notifier.push_statements(partial(self.statements, closed_id))
        return closed_id

    async def summarize(self, cycle_id: int) -> CycleSummary | None:
        """Net positions and totals of a cycle, from the journal; None for an unknown cycle."""
        flows = await self.state.store.cycle_flows(cycle_id)
        if flows is None:
            return None
        net: dict[str, int] = {}
        for payer, payee, _, amount in flows.transfers + flows.returns:
            net[payer] = net.get(payer, 0) - amount
            net[payee] = net.get(payee, 0) + amount
        if sum(net.values()) != 0:
            raise _inconsistent(f"settlement cycle {cycle_id} does not balance: its net "
                                f"positions sum to {sum(net.values()):+,} VND, not zero")
        return CycleSummary(
            cycle_id=cycle_id, opened_at=flows.opened_at, closed_at=flows.closed_at,
            net_vnd={bic: amount for bic, amount in net.items() if amount},
            transfers=sum(row[2] for row in flows.transfers),
            transfers_vnd=sum(row[3] for row in flows.transfers),
            returns=sum(row[2] for row in flows.returns),
            returns_vnd=sum(row[3] for row in flows.returns),
        )

    async def statements(self, cycle_id: int, bic: str) -> AsyncIterator[Statement]:
        """The participant's camt.053 for the cycle, page by page: every settled transfer and
        return it took part in, booked on its settlement account, MAX_ENTRIES_PER_PAGE to a
        page (Stmt/StmtPgntn), each page opening where the last closed, the first from zero
        (cycles settle to zero). A page stays within every participant's body limit however
        large the cycle: a million credits are a hundred pages, not one message nobody would
        take. Nothing for an unknown cycle."""
        summary = await self.summarize(cycle_id)
        if summary is None:
            return
        now = datetime.now(UTC)
        opened_at = datetime.fromtimestamp(summary.opened_at, UTC)
        closed_at = (datetime.fromtimestamp(summary.closed_at, UTC) if summary.closed_at
                     else now)
        balance_vnd, after, page = 0, (0.0, ""), 1
        while True:
            rows = await self.state.store.statement_entries(cycle_id, bic, after,
                                                            MAX_ENTRIES_PER_PAGE + 1)
            last = len(rows) <= MAX_ENTRIES_PER_PAGE
            rows = rows[:MAX_ENTRIES_PER_PAGE]
            entries = [StatementEntry(entry_ref=wire_id(ref), amount_vnd=amount, credit=credit,
                                      booked_at=datetime.fromtimestamp(at, UTC),
                                      counterparty_bic=other, kind=kind)
                       for ref, amount, credit, at, other, kind in rows]
            closing_vnd = balance_vnd + sum(e.amount_vnd if e.credit else -e.amount_vnd
                                            for e in entries)
            if last and closing_vnd != summary.net_vnd.get(bic, 0):
                raise _inconsistent(
                    f"{bic}'s statement of cycle {cycle_id} closes at {closing_vnd:+,} VND "
                    f"but its net position is {summary.net_vnd.get(bic, 0):+,} VND")
            yield Statement(
                msg_id=new_id("SWC"), created_at=now, participant_bic=bic, cycle_id=cycle_id,
                opened_at=opened_at, closed_at=closed_at, opening_balance_vnd=balance_vnd,
                closing_balance_vnd=closing_vnd, entries=entries, page_number=page,
                last_page=last)
            if last:
                return
            balance_vnd, after, page = closing_vnd, (rows[-1][3], rows[-1][0]), page + 1

    async def statement(self, cycle_id: int, bic: str, page: int = 1) -> Statement | None:
        """One page of the participant's camt.053 for the cycle (`statements`); None for an
        unknown cycle or a page past the last."""
        async for statement in self.statements(cycle_id, bic):
            if statement.page_number == page:
                return statement
        return None
