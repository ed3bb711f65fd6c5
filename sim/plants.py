"""Bugs planted on purpose, one at a time, to prove that the simulator finds them (issue #21).
Each is a context manager that patches the switch's core for its duration and restores it;
`switchlab simulate --plant NAME` runs histories with it. None is ever active otherwise."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from protocol.messages import CreditTransfer, PaymentStatusReport, TransactionStatus, TxStatus
from switch.book import Applied, Book
from switch.escrow import Debtor, take_vnd
from switch.finality import Finality
from switch.forwarding import Forwarding
from switch.participants import Breaker, Call
from switch.records import Final
from switch.states import TransferState
from switch.transfer import Transfer


@contextlib.contextmanager
def _patched(owner: type, **replacements: Callable[..., Any]) -> Iterator[None]:
    saved = {name: owner.__dict__[name] for name in replacements}
    try:
        for name, replacement in replacements.items():
            setattr(owner, name, replacement)
        yield
    finally:
        for name, original in saved.items():
            setattr(owner, name, original)


def lost_probe() -> contextlib.AbstractContextManager[None]:
    """Issue #21 as it was: intake takes the breaker's one probe when it asks (before the
    cap is checked), the forward does not ask again; a transfer refused after the ask never
    gives the probe back."""
    def allows(self: Breaker, now_s: float) -> bool:
        if self.consecutive_failures < self.failures_to_open:
            return True
        if now_s < self.open_until_s or self.probing:
            return False
        self.probing = True
        return True

    def begin(self: Breaker, now_s: float) -> Call:
        return Call.PROBE if self.is_open else Call.ORDINARY

    return _patched(Breaker, admits=allows, begin=begin)


def settle_before_durable() -> contextlib.AbstractContextManager[None]:
    """Memory moves and the participants are told before the final state is durable."""
    async def finish(self: Finality, outcomes: Sequence[tuple[Transfer, TransferState,
                                                             str | None, str | None, bool]]
                     ) -> None:
        if not outcomes:
            return
        book = self.state.book
        finals = book.finals(outcomes)
        now_s = time.time()
        written = self.state.store.record_final(finals, now_s)
        self._tell(book.apply_finals(finals), now_s)
        await written

    return _patched(Finality, finish=finish)


def confirm_on_accp() -> contextlib.AbstractContextManager[None]:
    """The creditor is sent ACSC (and so credits) as soon as it answers ACCP, before the
    switch has settled anything."""
    take_answers = Forwarding.take_answers

    def confirming(self: Forwarding, creditor_bic: str, report: PaymentStatusReport,
                   elsewhere: list[TransactionStatus] | None = None) -> tuple[int, int]:
        awaited = [item for item in report.transactions if item.status is TxStatus.ACCEPTED
                   and item.original_end_to_end_id in self.awaiting]
        counts = take_answers(self, creditor_bic, report, elsewhere)
        self.state.notifier.confirm_to_creditor(creditor_bic, [TransactionStatus(
            original_end_to_end_id=item.original_end_to_end_id,
            original_tx_id=item.original_tx_id, status=TxStatus.SETTLED) for item in awaited])
        return counts

    return _patched(Forwarding, take_answers=confirming)


def release_twice() -> contextlib.AbstractContextManager[None]:
    """A rejected transfer's hold is released twice."""
    apply_finals = Book.apply_finals

    def releasing(self: Book, finals: Iterable[Final]) -> Applied:
        finals = list(finals)
        for final in finals:
            if final.state is TransferState.REJECTED:
                self._release(final.transfer.debtor_bic, final.transfer.amount_vnd)
        return apply_finals(self, finals)

    return _patched(Book, apply_finals=releasing)


def forward_refused() -> contextlib.AbstractContextManager[None]:
    """A transfer refused at intake (AM04, AB08…) is forwarded all the same."""
    taken = Book.taken

    def forwarding_all(self: Book, *args: Any) -> tuple[list[Transfer], list[Transfer]]:
        accepted, _ = taken(self, *args)
        return accepted, accepted

    def as_given(self: Book, transfers: Iterable[Transfer]) -> list[Transfer]:
        return list(transfers)

    with contextlib.ExitStack() as stack:
        stack.enter_context(_patched(Book, taken=forwarding_all, still_pending=as_given))
        return stack.pop_all()


def duplicate_after_restart() -> contextlib.AbstractContextManager[None]:
    """A restarted switch forgets the end-to-end ids it took before: a reused id is taken
    again instead of refused DUPL."""
    recover = Book.recover

    def forgetting(self: Book, cycle_id: int, known_ids: set[str], *rest: Any) -> None:
        recover(self, cycle_id, set(), *rest)

    return _patched(Book, recover=forgetting)


def refill_ignores_others() -> contextlib.AbstractContextManager[None]:
    """Issue #24: a process refills its escrow slice from the debtor's limit and net less its
    own slice alone, blind to the room and holds of the other processes' slices."""
    def blind(self: Debtor, process: str, short_vnd: int, processes: int) -> int:
        own = self.slice(process)
        free_vnd = self.limit_vnd + self.total_net_vnd() - own.held_vnd - own.room_vnd
        return take_vnd(free_vnd, short_vnd, processes)

    return _patched(Debtor, refill=blind)


def reserved_tx_id_taken() -> contextlib.AbstractContextManager[None]:
    """Attacker report item 1: a debtor's TxId in the switch's namespace is taken like any
    other, so it may be another debtor's forward TxId."""
    refusal = Book._refusal

    def blind(self: Book, tx: CreditTransfer, *rest: Any) -> str | None:
        return refusal(self, replace(tx, tx_id="T" + tx.tx_id), *rest)

    return _patched(Book, _refusal=blind)


PLANTS: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {
    "lost-probe": lost_probe,
    "settle-before-durable": settle_before_durable,
    "confirm-on-accp": confirm_on_accp,
    "release-twice": release_twice,
    "forward-refused": forward_refused,
    "duplicate-after-restart": duplicate_after_restart,
    "refill-ignores-others": refill_ignores_others,
    "reserved-tx-id-taken": reserved_tx_id_taken,
}
