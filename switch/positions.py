"""Participants' positions in the open settlement cycle, held in memory, rebuilt from the journal.
Changed by the book alone (switch/book.py).

A position is credits minus debits settled in the cycle. A debtor's position after reservations
may not fall below minus its limit (a net debit cap for a bank, the prefunded balance for the
treasury): a transfer that would breach it is refused with AM04 before it is forwarded.
"""

from __future__ import annotations

from collections import defaultdict


class PositionBook:
    def __init__(self) -> None:
        self.net_vnd: defaultdict[str, int] = defaultdict(int)
        self.reserved_vnd: defaultdict[str, int] = defaultdict(int)

    def headroom_vnd(self, bic: str, limit_vnd: int) -> int:
        return limit_vnd + self.net_vnd[bic] - self.reserved_vnd[bic]

    def reserve(self, bic: str, amount_vnd: int, limit_vnd: int | None) -> bool:
        """Hold `amount_vnd` of the debtor's headroom; False when it would breach the limit.
        A limit of None holds without checking: a restarted switch restoring what was held."""
        if limit_vnd is not None and amount_vnd > self.headroom_vnd(bic, limit_vnd):
            return False
        assert amount_vnd > 0, f"{bic}: a hold of {amount_vnd} VND"
        self.reserved_vnd[bic] += amount_vnd
        assert limit_vnd is None or self.headroom_vnd(bic, limit_vnd) >= 0, (
            f"{bic} reserved past its cap")
        return True

    def release(self, bic: str, amount_vnd: int) -> None:
        self.reserved_vnd[bic] -= amount_vnd
        assert self.reserved_vnd[bic] >= 0, f"{bic} released more than it reserved"

    def move(self, payer_bic: str, payee_bic: str, amount_vnd: int) -> None:
        self.net_vnd[payer_bic] -= amount_vnd
        self.net_vnd[payee_bic] += amount_vnd

    def close_cycle(self) -> dict[str, int]:
        """Net positions of the cycle being closed; the next cycle starts from zero."""
        closing = {bic: net for bic, net in self.net_vnd.items() if net}
        assert sum(closing.values()) == 0, f"net positions do not sum to zero: {closing}"
        self.net_vnd.clear()
        return closing
