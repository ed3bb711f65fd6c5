"""Escrow slices of a debtor's cap (issue #24; O'Neil, "The Escrow Transactional Method",
1986): the arithmetic, apart from any I/O, that lets several switch processes hold against
one debtor's cap without taking a shared lock per transfer.

Each process holds, per debtor, a slice: `room_vnd` (headroom promised to it alone), `held_vnd`
(holds it took, less those it released or settled) and `net_vnd` (what it settled, debits
negative). A hold takes from its own slice's room; settling, releasing and crediting touch
only the process's own slice. The shared position keeps the limit (and the net that returns
move); only a refill, a revocation, a close, a return, a new limit or a takeover touch it.

The invariant, per debtor, through every operation (checked in pairs: `check` before and after
each operation of `Debtor` and by the simulator after every step, sim/escrow.py):

    Σroom = 0   or   Σroom + Σheld ≤ limit + net + Σnet      (`free_vnd` ≥ 0)

so a hold taken from room (room → held) never lifts Σheld past `limit + net`, the cap rule of
the one-process book (switch/positions.py). A release and a credit raise the free headroom
and give no room (room is granted only by a refill, which sees every slice); a settlement
lowers both sides alike; a close, a lower limit and a takeover revoke room first. AM04 is
exact: before refusing, a process revokes every other slice's room and refuses only what
`limit + net − Σheld` cannot hold, the one-process book's refusal.

PostgreSQL plays the same rules in `switch_flush` (switch/store_postgres.py), whose refill
amount is `switch_escrow_take`, held equal to `take_vnd` by a test on both.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def take_vnd(free_vnd: int, short_vnd: int, processes: int) -> int:
    """What a refill takes from a debtor's free headroom (VND): what the batch is short of,
    plus a 1/(2 × processes) share of what is left, so refills grow rare while headroom is
    wide and the last of it is not hoarded by one process; never more than is free (0 when
    nothing is). `processes` is the live switch processes (at least 1 counted)."""
    if free_vnd <= 0:
        return 0
    share_vnd = max(0, free_vnd - short_vnd) // (2 * max(1, processes))
    return min(free_vnd, short_vnd + share_vnd)


@dataclass(slots=True)
class Slice:
    """One process's part of one debtor's position (VND)."""

    room_vnd: int = 0
    held_vnd: int = 0
    net_vnd: int = 0


@dataclass(slots=True)
class Debtor:
    """One participant's position as every process's slices and the shared row hold it.
    `refills`, `revocations` count the operations that needed the shared row (what limits
    scale); the rest touch one process's slice."""

    limit_vnd: int
    net_vnd: int = 0  # the shared row's: moved by returns, zeroed by a close
    slices: dict[str, Slice] = field(default_factory=dict)
    refills: int = 0
    revocations: int = 0

    # ---- the figures ----------------------------------------------------------------------

    def room_vnd(self) -> int:
        return sum(s.room_vnd for s in self.slices.values())

    def held_vnd(self) -> int:
        return sum(s.held_vnd for s in self.slices.values())

    def total_net_vnd(self) -> int:
        return self.net_vnd + sum(s.net_vnd for s in self.slices.values())

    def free_vnd(self) -> int:
        """Headroom granted to no slice: limit + net − Σheld − Σroom (negative after a close
        that zeroed a creditor's net while holds stay)."""
        return self.limit_vnd + self.total_net_vnd() - self.held_vnd() - self.room_vnd()

    def headroom_vnd(self) -> int:
        """What the one-process book would still admit: limit + net − Σheld."""
        return self.limit_vnd + self.total_net_vnd() - self.held_vnd()

    def check(self) -> None:
        """The invariant; raises AssertionError naming the figures."""
        assert all(s.room_vnd >= 0 for s in self.slices.values()), (
            f"a slice's room below zero: {self.slices}")
        assert self.room_vnd() == 0 or self.free_vnd() >= 0, (
            f"room promised past the cap: limit {self.limit_vnd}, net "
            f"{self.total_net_vnd()}, held {self.held_vnd()}, room {self.room_vnd()}")

    def slice(self, process: str) -> Slice:
        return self.slices.setdefault(process, Slice())

    # ---- the operations (each checked in pairs) ----------------------------------------------

    def hold(self, process: str, amounts_vnd: list[int], processes: int) -> list[bool]:
        """Holds of one batch for this debtor, in order, taken by `process`: from its room;
        when that is short, a refill (`take_vnd`); when still short, every other slice's room
        revoked and the exact headroom taken. Returns admitted (True) or AM04 (False) per
        amount; an amount fits or not on its own, in order, as in the one-process book."""
        self.check()
        own = self.slice(process)
        wanted_vnd = sum(amounts_vnd)
        if own.room_vnd < wanted_vnd:
            self.refills += 1
            own.room_vnd += self.refill(process, wanted_vnd - own.room_vnd, processes)
            if own.room_vnd < wanted_vnd:
                self.revocations += 1
                self.revoke(but=process)
                own.room_vnd += max(0, self.free_vnd())
        admitted = []
        for amount_vnd in amounts_vnd:
            assert amount_vnd > 0, f"a hold of {amount_vnd} VND"
            fits = amount_vnd <= own.room_vnd
            if fits:
                own.room_vnd -= amount_vnd
                own.held_vnd += amount_vnd
            admitted.append(fits)
        self.check()
        return admitted

    def refill(self, process: str, short_vnd: int, processes: int) -> int:
        """What `process`'s slice, short of `short_vnd`, takes from the free headroom (every
        slice seen)."""
        return take_vnd(self.free_vnd(), short_vnd, processes)

    def revoke(self, but: str | None = None) -> None:
        """Every slice's room back to the free headroom (but `but`'s): before an exact
        refusal, a close, a lower limit."""
        for process, part in self.slices.items():
            if process != but:
                part.room_vnd = 0

    def unhold(self, process: str, amount_vnd: int, settled: bool) -> None:
        """A hold ended by `process` (whichever process took it): released, or settled (the
        debtor's net falls by it). The released amount goes to the free headroom, not to the
        slice's room."""
        self.check()
        part = self.slice(process)
        part.held_vnd -= amount_vnd
        if settled:
            part.net_vnd -= amount_vnd
        self.check()

    def credit(self, process: str, amount_vnd: int) -> None:
        """A settlement to this participant as creditor, recorded by `process`."""
        self.check()
        self.slice(process).net_vnd += amount_vnd
        self.check()

    def pay_back(self, process: str, amount_vnd: int) -> bool:
        """A return paid by this participant as creditor (its net falls), under the shared row:
        admitted within the free headroom, every other slice's room revoked before a refusal
        (exact, like a hold)."""
        self.check()
        if amount_vnd > self.free_vnd():
            self.revocations += 1
            self.revoke()
        fits = amount_vnd <= self.free_vnd()
        if fits:
            self.net_vnd -= amount_vnd
        self.check()
        return fits

    def set_limit(self, limit_vnd: int) -> None:
        """A new limit (the operator's): every slice's room revoked first."""
        self.check()
        self.revoke()
        self.limit_vnd = limit_vnd
        self.check()

    def close_cycle(self) -> None:
        """The cycle closed: nets to zero, room revoked first (a creditor's net, zeroed, could
        otherwise leave room promised past the cap); holds stay with their transfers."""
        self.check()
        self.revoke()
        self.net_vnd = 0
        for part in self.slices.values():
            part.net_vnd = 0
        self.check()

    def take_over(self, dead: str, survivor: str) -> None:
        """`dead` was taken over by `survivor`: its room is dropped (back to the free
        headroom), its held and net become the survivor's."""
        self.check()
        gone = self.slices.pop(dead, None)
        if gone is not None:
            mine = self.slice(survivor)
            mine.held_vnd += gone.held_vnd
            mine.net_vnd += gone.net_vnd
        self.check()
