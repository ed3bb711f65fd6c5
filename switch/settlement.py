"""Settlement reports: what each participant owes or is owed for a closed cycle.

Each participant gets a camt.053 statement of its settlement account for the cycle (we chose
camt.053 over camt.052/054 because a closed cycle is a statement: opening balance, every booked
entry, closing balance); the operator gets a summary of net positions, which sum to zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from protocol.codec import new_id
from protocol.messages import Statement, StatementEntry
from switch.journal import Journal


@dataclass(frozen=True, slots=True)
class CycleSummary:
    cycle_id: int
    opened_at: float
    closed_at: float | None
    net_vnd: dict[str, int]
    transfers: int
    transfers_vnd: int
    returns: int
    returns_vnd: int

    def as_dict(self) -> dict[str, object]:
        return {
            "cycle_id": self.cycle_id,
            "opened_at": _iso(self.opened_at),
            "closed_at": _iso(self.closed_at) if self.closed_at else None,
            "net_vnd": self.net_vnd,
            "transfers": self.transfers,
            "transfers_vnd": self.transfers_vnd,
            "returns": self.returns,
            "returns_vnd": self.returns_vnd,
        }

    def text(self) -> str:
        lines = [
            f"Settlement cycle {self.cycle_id}  {_iso(self.opened_at)} → "
            f"{_iso(self.closed_at) if self.closed_at else 'open'}",
            f"  transfers settled: {self.transfers:,}  ({self.transfers_vnd:,} VND)",
            f"  returns settled:   {self.returns:,}  ({self.returns_vnd:,} VND)",
            "  net positions (credit + / debit -):",
        ]
        lines += [f"    {bic:<11} {net:>+22,} VND" for bic, net in sorted(self.net_vnd.items())]
        lines.append(f"    {'sum':<11} {sum(self.net_vnd.values()):>+22,} VND")
        return "\n".join(lines)


def _iso(timestamp_s: float) -> str:
    return datetime.fromtimestamp(timestamp_s, UTC).isoformat(timespec="seconds")


async def summarize(journal: Journal, cycle_id: int) -> CycleSummary | None:
    cycle = await journal.read("SELECT opened_at, closed_at FROM cycles WHERE cycle_id=?",
                               (cycle_id,))
    if not cycle:
        return None
    net: dict[str, int] = {}
    transfers = await journal.read(
        "SELECT debtor_bic, creditor_bic, count(*), sum(amount_vnd) FROM transfers"
        " WHERE cycle_id=? GROUP BY debtor_bic, creditor_bic", (cycle_id,))
    returns = await journal.read(
        "SELECT creditor_bic, debtor_bic, count(*), sum(amount_vnd) FROM returns"
        " WHERE cycle_id=? GROUP BY creditor_bic, debtor_bic", (cycle_id,))
    for payer, payee, _, amount in transfers + returns:
        net[payer] = net.get(payer, 0) - amount
        net[payee] = net.get(payee, 0) + amount
    assert sum(net.values()) == 0, f"cycle {cycle_id} does not balance: {net}"
    return CycleSummary(
        cycle_id=cycle_id,
        opened_at=cycle[0][0],
        closed_at=cycle[0][1],
        net_vnd={bic: amount for bic, amount in net.items() if amount},
        transfers=sum(row[2] for row in transfers),
        transfers_vnd=sum(row[3] for row in transfers),
        returns=sum(row[2] for row in returns),
        returns_vnd=sum(row[3] for row in returns),
    )


async def statement(journal: Journal, cycle_id: int, bic: str) -> Statement | None:
    """The participant's camt.053 for the cycle: every settled transfer and return it took part
    in, booked on its settlement account, from a zero opening balance (cycles settle to zero)."""
    summary = await summarize(journal, cycle_id)
    if summary is None:
        return None
    rows = await journal.read(
        "SELECT end_to_end_id, amount_vnd, creditor_bic = ?, final_at,"
        " CASE WHEN creditor_bic = ? THEN debtor_bic ELSE creditor_bic END, 'transfer'"
        " FROM transfers WHERE cycle_id=? AND (debtor_bic=? OR creditor_bic=?)"
        " UNION ALL SELECT return_id, amount_vnd, debtor_bic = ?, settled_at,"
        " CASE WHEN debtor_bic = ? THEN creditor_bic ELSE debtor_bic END, 'return'"
        " FROM returns WHERE cycle_id=? AND (debtor_bic=? OR creditor_bic=?) ORDER BY 4",
        (bic, bic, cycle_id, bic, bic, bic, bic, cycle_id, bic, bic),
    )
    entries = [
        StatementEntry(
            entry_ref=ref, amount_vnd=amount, credit=bool(credit),
            booked_at=datetime.fromtimestamp(at, UTC), counterparty_bic=other, kind=kind,
        )
        for ref, amount, credit, at, other, kind in rows
    ]
    closing = sum(e.amount_vnd if e.credit else -e.amount_vnd for e in entries)
    assert closing == summary.net_vnd.get(bic, 0), f"{bic} statement disagrees with its net"
    now = datetime.now(UTC)
    return Statement(
        msg_id=new_id("SWC"),
        created_at=now,
        participant_bic=bic,
        cycle_id=cycle_id,
        opened_at=datetime.fromtimestamp(summary.opened_at, UTC),
        closed_at=datetime.fromtimestamp(summary.closed_at, UTC) if summary.closed_at else now,
        opening_balance_vnd=0,
        closing_balance_vnd=closing,
        entries=entries,
    )
