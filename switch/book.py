"""The book: the switch's memory and its one writer.

Positions and reservations, the transfers in flight and being taken, the end-to-end ids
known, the ids returned or returning, the open settlement cycle, each participant's breaker,
limit and sign-off: only this module changes them (tests/unit/test_architecture.py holds
it). Intake, forwarding, finality, returns, recovery, cycles and the cluster are protocol
handling around it: they check a message, ask the book to decide, journal the decision,
apply the journal's answer here, and notify. Every operation is synchronous (no await), a
function of its arguments, the memory and, where the journal decides, the journal's word: as
TigerBeetle's state machine prefetches and then commits without I/O.

Two books, chosen once when the switch starts (`book_for`), as Locust chooses its runner:

- `Book`, one switch process on SQLite: memory decides duplicates, caps and cycles, and the
  journal records what it decided.
- `SharedBook`, several processes on one PostgreSQL journal: the journal decides caps,
  duplicates across processes, finality and cycle closes in its writes (`Decided`), and this
  book holds no money between them; it follows the journal's word. Nothing else in the switch
  asks which book it has.

The invariants of docs/design.md section 5 are asserted here, in pairs on the way into the
journal and back out of it: a transfer moves only along the state machine (switch/states.py)
when its final state is made for the journal (`finals`) and again when memory takes it
(`apply_finals`); positions sum to zero after every settlement and return, and when rebuilt
from the journal (`recover`); no hold is negative or past its cap (switch/positions.py); a
transfer is held only when new (`take`), or again at recovery only while the journal holds it
PENDING (`hold_in_flight`); a return only of a settled transfer (`hold_return`).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from protocol import reasons
from protocol.ids import FORWARD_TX_PREFIX
from protocol.messages import (
    MAX_AMOUNT_VND,
    SCHEME_CURRENCY,
    CreditTransfer,
    CreditTransferMessage,
    TransactionStatus,
)
from switch.config import SwitchConfig
from switch.events import SwitchEvents
from switch.participants import Breaker, Call, Participant
from switch.positions import PositionBook
from switch.records import Decided, Final, SettledReturn
from switch.states import TransferState, check_transition
from switch.transfer import ForwardIds, Transfer, scoped_key

# The scheme's cap on any one transaction, whatever the mode (AM02 above it), is
# protocol.messages.MAX_AMOUNT_VND. An amount of more than 18 digits is no
# ActiveCurrencyAndAmount at all (totalDigits 18): AM12.
MAX_AMOUNT_DIGITS = 18
MAX_ADMIN_CHANGES = 64  # admin changes made at once by one process: the operator's, few


def _whole_dong(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts "١٢" and other scripts' digits."""
    return text.isascii() and text.isdigit()


class JournalPositions(Protocol):
    """A journal that holds the positions itself (switch/store_postgres.py)."""

    async def positions_now(self) -> tuple[dict[str, int], dict[str, int]]: ...


@dataclass(slots=True)
class Applied:
    """What making transfers final changed, for the participants and observers to hear:
    statuses owed per creditor and per bulk debtor, settled transfers per cycle, rejected."""

    to_creditors: dict[str, list[TransactionStatus]] = field(
        default_factory=lambda: defaultdict(list))
    to_debtors: dict[str, list[TransactionStatus]] = field(
        default_factory=lambda: defaultdict(list))
    settled: dict[int | None, list[Transfer]] = field(default_factory=lambda: defaultdict(list))
    rejected: list[Transfer] = field(default_factory=list)


class Book:
    """The memory of one switch process on its own journal (SQLite): it decides, the journal
    records. See the module's docstring for who may call what."""

    def __init__(self, config: SwitchConfig, participants: Mapping[str, Participant],
                 events: SwitchEvents, forward_ids: ForwardIds) -> None:
        self.config = config
        self.participants = participants
        self.events = events
        self.forward_ids = forward_ids  # the journal's: the TxIds scoped transfers go under
        self.positions = PositionBook()
        self.cycle_id = 0  # the open settlement cycle: what settles now settles in it
        self.known_ids: set[str] = set()  # every end-to-end id ever taken
        self.in_flight: dict[str, Transfer] = {}  # PENDING, by end-to-end id
        # Taken from a message, their journal write not yet durable: for a resend meanwhile.
        self.taking: dict[str, Transfer] = {}
        self.returning: set[str] = set()  # end-to-end ids returned or returning
        self.breakers = {bic: Breaker(config.breaker_failures, config.breaker_cooldown_s)
                         for bic in participants}
        # Idempotency-Keys of admin changes being made by this process (switch/admin.py).
        self.admin_changing: set[str] = set()

    # ---- taking a submission (switch/intake.py) ---------------------------------------------

    def knows_any(self, transactions: Iterable[CreditTransfer]) -> bool:
        """Whether any of these end-to-end ids was taken before, by anyone (a resend, a reuse,
        or another debtor's id: `owners_wanted` says whose to ask the journal)."""
        known_ids = self.known_ids
        return any(tx.end_to_end_id in known_ids for tx in transactions)

    def owners_wanted(self, transactions: Iterable[CreditTransfer]) -> list[str]:
        """The known end-to-end ids among these whose debtor memory does not hold (settled or
        refused before): intake asks the journal, then `take` keys each by its debtor."""
        known_ids = self.known_ids
        return [tx.end_to_end_id for tx in transactions
                if tx.end_to_end_id in known_ids and self._owner(tx.end_to_end_id) is None]

    def key_for(self, debtor_bic: str, end_to_end_id: str, owners: Mapping[str, str]) -> str:
        """The key of `debtor_bic`'s transfer under `end_to_end_id` (issue #22: ids belong to
        their sender): the id itself unless another debtor used it first (`owners`: the
        debtor of each known id memory does not hold), then switch.transfer.scoped_key."""
        if end_to_end_id not in self.known_ids:
            return end_to_end_id
        owner = self._owner(end_to_end_id) or owners.get(end_to_end_id, debtor_bic)
        return end_to_end_id if owner == debtor_bic else scoped_key(end_to_end_id, debtor_bic)

    def _owner(self, key: str) -> str | None:
        transfer = self.taking.get(key) or self.in_flight.get(key)
        return None if transfer is None else transfer.debtor_bic

    def take(self, debtor_bic: str, message: CreditTransferMessage, bulk: bool,
             resolve: Callable[[CreditTransfer], str | None],
             loop: asyncio.AbstractEventLoop, now_s: float, owners: Mapping[str, str]
             ) -> tuple[list[Transfer], list[CreditTransfer]]:
        """Each new id checked and its amount reserved, in one synchronous step: the new
        transfers (PENDING, or REJECTED with the reason), and the transactions whose id this
        debtor used already (`key_for`, with `owners`). `resolve` points a transfer by citizen
        id at its account (a reason when it cannot); `now_s` is unix time. The new transfers
        are being taken until the journal answers (`taken`, or `untake` when it did not take
        them)."""
        known_ids = self.known_ids
        config = self.config
        limit_vnd = self.participants[debtor_bic].position_limit_vnd
        max_amount_vnd = config.max_bulk_amount_vnd if bulk else config.max_instant_amount_vnd
        clock_s = loop.time()
        accepted: list[Transfer] = []
        duplicates: list[CreditTransfer] = []
        for tx in message.transactions:
            key = self.key_for(debtor_bic, tx.end_to_end_id, owners)
            if key in known_ids:
                duplicates.append(tx)
                continue
            known_ids.add(key)
            refusal = resolve(tx)  # first: it points the transaction at its creditor
            transfer = Transfer(
                end_to_end_id=key, tx_id=tx.tx_id, msg_id=message.msg_id,
                debtor_bic=debtor_bic, creditor_bic=tx.creditor_agent_bic,
                amount_vnd=tx.amount_vnd, bulk=bulk, received_at=now_s, source=tx,
            )
            reason = refusal or self._refusal(tx, max_amount_vnd, clock_s)
            if reason is None and not self._hold(debtor_bic, tx.amount_vnd, limit_vnd):
                reason = reasons.INSUFFICIENT_FUNDS
            if reason is None:
                transfer.advance(TransferState.PENDING)
                if not bulk:
                    transfer.outcome = loop.create_future()
            else:
                transfer.advance(TransferState.REJECTED, reason, config.bic)
            accepted.append(transfer)
        self.taking.update((t.end_to_end_id, t) for t in accepted)
        return accepted, duplicates

    def _refusal(self, tx: CreditTransfer, max_amount_vnd: int | None, clock_s: float
                 ) -> str | None:
        """Why the transaction is refused at intake, or None; `clock_s` is the event loop's
        clock (the breaker's)."""
        if tx.tx_id.startswith(FORWARD_TX_PREFIX):  # the switch's own TxIds (attacker #1)
            return reasons.RESERVED_TX_ID
        if tx.currency != SCHEME_CURRENCY:
            return reasons.NOT_ALLOWED_CURRENCY
        if (not _whole_dong(tx.amount_text) or len(tx.amount_text) > MAX_AMOUNT_DIGITS
                or tx.amount_vnd <= 0):
            return reasons.INVALID_AMOUNT
        if tx.amount_vnd > min(MAX_AMOUNT_VND, max_amount_vnd or MAX_AMOUNT_VND):
            return reasons.NOT_ALLOWED_AMOUNT
        creditor = self.participants.get(tx.creditor_agent_bic)
        if creditor is None or creditor.config.kind == "treasury":
            return reasons.WRONG_BIC
        if tx.creditor_agent_bic == tx.debtor_agent_bic:  # on-us: nothing to clear (AG03)
            return reasons.NOT_SUPPORTED
        if not self.admits(creditor.bic, clock_s):
            return reasons.OFFLINE_CREDITOR_AGENT
        return None

    def taken(self, accepted: list[Transfer], duplicates: list[CreditTransfer],
              decided: Mapping[str, Decided] | None) -> tuple[list[Transfer], list[Transfer]]:
        """The journal holds them: PENDING ones are in flight from now. A shared journal may
        have decided otherwise for some (`decided`): an id another process took first is a
        duplicate (added to `duplicates`, not journaled here); a cap the other processes'
        holds left too small is AM04. Returns the transfers this process journaled, and those
        of them to forward (PENDING: in flight from now)."""
        taking = self.taking
        for transfer in accepted:
            taking.pop(transfer.end_to_end_id, None)
        if decided:
            kept = []
            for transfer in accepted:
                word = decided.get(transfer.end_to_end_id)
                if word is not None and word.reason == reasons.DUPLICATE:
                    assert transfer.source is not None
                    duplicates.append(transfer.source)
                    continue
                if word is not None:
                    transfer.advance(TransferState.REJECTED, word.reason, self.config.bic)
                    transfer.outcome = None
                kept.append(transfer)
            accepted = kept
        in_flight = self.in_flight
        pending = [t for t in accepted if t.state is TransferState.PENDING]
        for transfer in pending:
            in_flight[transfer.end_to_end_id] = transfer
        return accepted, pending

    def still_pending(self, transfers: Iterable[Transfer]) -> list[Transfer]:
        """Those not made final meanwhile (a shared journal's word): what may be forwarded."""
        return [t for t in transfers if t.state is TransferState.PENDING]

    def untake(self, transfers: Iterable[Transfer]) -> None:
        """The journal did not take them: forget them (a resend's outcome is then the
        journal's, never theirs), give back what they held."""
        for transfer in transfers:
            self.known_ids.discard(transfer.end_to_end_id)
            self.taking.pop(transfer.end_to_end_id, None)
            if transfer.state is TransferState.PENDING:
                self._release(transfer.debtor_bic, transfer.amount_vnd)

    # ---- making transfers final (switch/finality.py) ----------------------------------------

    def finals(self, outcomes: Iterable[tuple[Transfer, TransferState, str | None, str | None,
                                              bool]]) -> list[Final]:
        """Final states to journal, each settlement in the open cycle: the write's place in
        the journal's order decides the cycle, so the cycle is read with the write."""
        cycle_id = self.cycle_id
        finals = []
        for transfer, target, reason, by, tell in outcomes:
            check_transition(transfer.state, target)  # its pair: `advance` when applied
            finals.append(Final(transfer, target, reason, by,
                                cycle_id if target is TransferState.SETTLED else None, tell))
        return finals

    def finals_failed(self, finals: Iterable[Final], error: BaseException) -> None:
        """The journal did not take them: they stay PENDING (a restarted switch resolves them);
        a waiting instant debtor is told so."""
        for final in finals:
            outcome = final.transfer.outcome
            if outcome is not None and not outcome.done():
                outcome.set_exception(error)

    def finals_decided(self, finals: list[Final], decided: Mapping[str, Decided] | None
                       ) -> list[Final]:
        """A shared journal's word on the write: those another process made final first are
        learnt (`learn`); those it took in another cycle than asked count there. Returns the
        finals this process made."""
        if not decided:
            return finals
        kept, lost = [], []
        for final in finals:
            word = decided.get(final.transfer.end_to_end_id)
            if word is None:
                kept.append(final)
            elif word.state is None:  # taken, in the cycle the journal had open
                kept.append(replace(final, cycle_id=word.cycle_id))
            else:
                lost.append((final.transfer, word))
        self.learn(lost)
        return kept

    def apply_finals(self, finals: Iterable[Final]) -> Applied:
        """After the write is durable: state, positions, the in-flight set and instant
        answers move in one step. Returns what the participants and observers must hear."""
        positions_moved = False
        current_cycle = self.cycle_id
        in_flight = self.in_flight
        applied = Applied()
        for final in finals:
            transfer = final.transfer
            self._release(transfer.debtor_bic, transfer.amount_vnd)
            if final.state is TransferState.SETTLED:
                # A cycle closed while this was being written: it counts in the closed one,
                # whose figures come from the journal; the new cycle starts without it.
                if final.cycle_id == current_cycle:
                    self._move(transfer.debtor_bic, transfer.creditor_bic, transfer.amount_vnd)
                    positions_moved = True
                applied.settled[final.cycle_id].append(transfer)
            else:
                applied.rejected.append(transfer)
            transfer.advance(final.state, final.reason_code, final.reason_by)
            in_flight.pop(transfer.end_to_end_id, None)
            status = transfer.status()
            if final.tell_creditor:
                applied.to_creditors[transfer.creditor_bic].append(
                    transfer.status(self.forward_ids) if transfer.scoped else status)
            if transfer.bulk:
                applied.to_debtors[transfer.debtor_bic].append(status)
            elif transfer.outcome is not None and not transfer.outcome.done():
                transfer.outcome.set_result(None)
            transfer.source = None
        if positions_moved:
            self._assert_balanced()
        return applied

    def learn(self, decided: Iterable[tuple[Transfer, Decided]]) -> None:
        """Transfers another process made final in a shared journal: memory follows its word
        (state, the in-flight set, an instant debtor's answer); the notices are its to send."""
        for transfer, word in decided:
            if transfer.state is not TransferState.PENDING or word.state is None:
                continue
            self._release(transfer.debtor_bic, transfer.amount_vnd)
            transfer.advance(word.state, word.reason_code, word.reason_by)
            self.in_flight.pop(transfer.end_to_end_id, None)
            if transfer.outcome is not None and not transfer.outcome.done():
                transfer.outcome.set_result(None)
            transfer.source = None

    def learn_final(self, words: Iterable[tuple[str, TransferState, str | None, str | None]]
                    ) -> list[Transfer]:
        """Another process's word on some of this process's transfers, by end-to-end id:
        (id, state, reason code, by). Returns the transfers it made final."""
        in_flight = self.in_flight
        decided = [(in_flight[e2e], Decided(state=state, reason_code=reason, reason_by=by))
                   for e2e, state, reason, by in words if e2e in in_flight]
        self.learn(decided)
        return [transfer for transfer, _ in decided]

    # ---- returns (switch/returns.py) --------------------------------------------------------

    def hold_return(self, creditor_bic: str, original: Transfer, amount_vnd: int) -> bool:
        """Reserve a return's amount against the returning creditor's cap and mark the
        original as returning; False (nothing held) when the cap is too small (AM04)."""
        assert original.state is TransferState.SETTLED, original.end_to_end_id
        limit_vnd = self.participants[creditor_bic].position_limit_vnd
        if not self._hold(creditor_bic, amount_vnd, limit_vnd):
            return False
        self.returning.add(original.end_to_end_id)
        return True

    def returns_failed(self, creditor_bic: str, returns: Iterable[SettledReturn]) -> None:
        """The journal did not take them: nothing is returning, nothing held."""
        for settled in returns:
            self.returning.discard(settled.original.end_to_end_id)
            self._release(creditor_bic, settled.amount_vnd)

    def returns_settled(self, creditor_bic: str, returns: Sequence[SettledReturn],
                        cycle_id: int, decided: Mapping[str, Decided] | None
                        ) -> tuple[dict[str, Decided], dict[int, list[SettledReturn]]]:
        """The journal holds them: positions move back and the originals are RETURNED. A
        shared journal may have refused some (`decided`, by return id: another process was
        first) or settled them in a newer cycle than `cycle_id`. Returns (the refused, the
        settled by the cycle they count in)."""
        words = decided or {}
        refused = {key: word for key, word in words.items() if word.reason is not None}
        by_cycle: dict[int, list[SettledReturn]] = defaultdict(list)
        for settled in returns:
            word = words.get(settled.return_id)
            if settled.return_id in refused:
                assert word is not None
                self._release(creditor_bic, settled.amount_vnd)
                if word.reason != reasons.DUPLICATE:
                    self.returning.discard(settled.original.end_to_end_id)
                continue
            original = settled.original
            settled_in = cycle_id if word is None or word.cycle_id is None else word.cycle_id
            self._release(creditor_bic, settled.amount_vnd)
            if settled_in == self.cycle_id:
                self._move(creditor_bic, original.debtor_bic, settled.amount_vnd)
            original.advance(TransferState.RETURNED, settled.reason_code)
            by_cycle[settled_in].append(settled)
        self._assert_balanced()
        return refused, by_cycle

    # ---- settlement cycles (switch/cycles.py, switch/cluster.py) ----------------------------

    def close_cycle(self) -> int:
        """The open cycle closes (its close just handed to the journal, in the same
        synchronous step) and the next opens; returns the closed cycle's id. Its net
        positions sum to zero; the next starts from zero."""
        closed_id = self.cycle_id
        self.cycle_id = closed_id + 1
        self._close_positions()
        return closed_id

    def cycle_close_decided(self, closed_id: int, word: int | None) -> int | None:
        """The journal's word on a close: one process's journal closes what it is asked."""
        return closed_id

    def follow_cycle(self, open_cycle_id: int) -> None:
        """Another process closed a cycle: `open_cycle_id` is open now."""
        self.cycle_id = max(self.cycle_id, open_cycle_id)

    # ---- recovery (switch/recovery.py, switch/cluster.py) -----------------------------------

    def recover(self, cycle_id: int, known_ids: set[str],
                moves: Iterable[tuple[str, str, int]], returned_ids: set[str]) -> None:
        """Memory rebuilt from the journal at start: the open cycle, every id taken, what
        settled in the cycle (payer, payee, VND), the ids returned."""
        self.cycle_id = cycle_id
        self.known_ids = known_ids
        for payer_bic, payee_bic, amount_vnd in moves:
            self._move(payer_bic, payee_bic, amount_vnd)
        self._assert_balanced()  # the pair of the assertion made as the journal took them
        self.returning = returned_ids

    def hold_in_flight(self, transfers: Iterable[Transfer]) -> None:
        """Transfers a dead process held PENDING (this one before its restart, or another):
        held again and in flight here, until they are resolved (AB06)."""
        for transfer in transfers:
            assert transfer.state is TransferState.PENDING, transfer.end_to_end_id
            self._hold(transfer.debtor_bic, transfer.amount_vnd, None)
            self.in_flight[transfer.end_to_end_id] = transfer

    async def refresh_positions(self) -> None:
        """Nothing to read: this book is the positions."""

    # ---- participants: limits, sign-off, breakers -------------------------------------------

    def apply_settings(self, settings: Iterable[tuple[str, int | None, bool]]) -> None:
        """Limits and sign-offs as the operator last set them: (BIC, limit VND or None, off)."""
        for bic, limit_vnd, signed_off in settings:
            if bic not in self.participants:
                continue
            if limit_vnd is not None:
                self.set_limit(bic, limit_vnd)
            if self.participants[bic].signed_off != signed_off:
                self.sign(bic, on=not signed_off)

    def set_limit(self, bic: str, limit_vnd: int) -> None:
        self.participants[bic].position_limit_vnd = limit_vnd
        self.events.position_limit_set.fire(bic=bic, limit_vnd=limit_vnd)

    def sign(self, bic: str, on: bool) -> None:
        """The operator signs the participant on (its breaker closes) or off the scheme."""
        self.participants[bic].signed_off = not on
        if on:
            self.breakers[bic].close()
            self.events.participant_up.fire(bic=bic)
        else:
            self.events.participant_down.fire(bic=bic, reason="signed off")

    def begin_admin_change(self, key: str) -> bool | None:
        """An admin change under Idempotency-Key `key` starts (True); False when one under the
        same key is still being made here (the journal decides between processes); None when
        MAX_ADMIN_CHANGES are being made."""
        if key in self.admin_changing:
            return False
        if len(self.admin_changing) >= MAX_ADMIN_CHANGES:
            return None
        self.admin_changing.add(key)
        return True

    def end_admin_change(self, key: str) -> None:
        self.admin_changing.discard(key)

    def admits(self, bic: str, clock_s: float) -> bool:
        """Whether a transfer to the participant may be taken now (`clock_s`: the event
        loop's clock): not signed off and its breaker admits. Takes nothing (see Breaker)."""
        return not self.participants[bic].signed_off and self.breakers[bic].admits(clock_s)

    def begin_call(self, bic: str, clock_s: float) -> Call:
        """A call to the participant is about to be sent: what its breaker grants."""
        return self.breakers[bic].begin(clock_s)

    def end_call(self, bic: str, call: Call, succeeded: bool | None, why: str | None,
                 clock_s: float) -> None:
        """The call `begin_call` granted is over (None: without a verdict); the breaker opens
        or closes, and observers hear when it does."""
        breaker = self.breakers[bic]
        was_open = breaker.is_open
        breaker.end(call, succeeded, clock_s)
        if breaker.is_open and not was_open:
            self.events.participant_down.fire(bic=bic, reason=why)
        elif was_open and not breaker.is_open and not self.participants[bic].signed_off:
            self.events.participant_up.fire(bic=bic)

    def health(self, bic: str) -> dict[str, object]:
        """A participant as the operator sees it: settings and breaker."""
        participant = self.participants[bic]
        breaker = self.breakers[bic]
        return {
            "bic": bic,
            "name": participant.config.name,
            "kind": participant.config.kind,
            "signed_off": participant.signed_off,
            "breaker_open": breaker.is_open,
            "consecutive_failures": breaker.consecutive_failures,
            "position_limit_vnd": participant.position_limit_vnd,
        }

    # ---- what differs between the two books -------------------------------------------------

    def _hold(self, bic: str, amount_vnd: int, limit_vnd: int | None) -> bool:
        return self.positions.reserve(bic, amount_vnd, limit_vnd)

    def _release(self, bic: str, amount_vnd: int) -> None:
        self.positions.release(bic, amount_vnd)

    def _move(self, payer_bic: str, payee_bic: str, amount_vnd: int) -> None:
        self.positions.move(payer_bic, payee_bic, amount_vnd)

    def _close_positions(self) -> None:
        self.positions.close_cycle()

    def _assert_balanced(self) -> None:
        net = self.positions.net_vnd
        assert sum(net.values()) == 0, f"net positions do not sum to zero: {dict(net)}"


class SharedBook(Book):
    """The memory of one of several switch processes on a PostgreSQL journal: the journal
    decides caps, duplicates across processes, finality and closes in its writes, and holds
    the positions; this book follows its word and holds no money between writes."""

    def __init__(self, config: SwitchConfig, participants: Mapping[str, Participant],
                 events: SwitchEvents, forward_ids: ForwardIds, journal: JournalPositions
                 ) -> None:
        super().__init__(config, participants, events, forward_ids)
        self.journal = journal

    def cycle_close_decided(self, closed_id: int, word: int | None) -> int | None:
        """The journal closes whatever cycle is open when its write runs, or none (a timer's
        close of a cycle younger than asked): memory follows. Returns the closed id or None."""
        if word is None:
            self.cycle_id = closed_id
            return None
        self.cycle_id = word + 1
        return word

    async def refresh_positions(self) -> None:
        """The journal's figures, for the operator (positions are held in the journal)."""
        net_vnd, reserved_vnd = await self.journal.positions_now()
        positions = self.positions
        positions.net_vnd.clear()
        positions.net_vnd.update(net_vnd)
        positions.reserved_vnd.clear()
        positions.reserved_vnd.update(reserved_vnd)

    def _hold(self, bic: str, amount_vnd: int, limit_vnd: int | None) -> bool:
        return True  # decided by the journal, in the write that makes the transfer PENDING

    def _release(self, bic: str, amount_vnd: int) -> None:
        """Released by the journal, in the write that makes the transfer final."""

    def _move(self, payer_bic: str, payee_bic: str, amount_vnd: int) -> None:
        """Moved by the journal, in the write that settles."""

    def _close_positions(self) -> None:
        """The journal's close sets the new cycle's positions to zero."""

    def _assert_balanced(self) -> None:
        """The journal holds the positions; it checks them (tests read them back)."""
