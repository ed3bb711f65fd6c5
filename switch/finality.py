"""Making transfers final: the journal first, then memory, then the participants.

Between the journal write and its durability a transfer is still PENDING to everyone (a
pacs.028 answers PDNG, its money stays reserved); the moment the write is durable, memory
moves in one synchronous step (state, positions, the in-flight set, the instant answer) and the
notices go out. So nothing a participant can observe is ever ahead of the journal, and a crash
anywhere leaves the journal's word standing.

With a journal shared by several switch processes, the journal finalizes a transfer once
(`WHERE state='PENDING'`): a process whose write came second learns the first one's word and
applies it without telling anyone (`learn`: the process that made it final tells the
participants), and an answer posted to a process that did not forward the transfer is made
final there (`finish_answered`).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import cast

from protocol.messages import TransactionStatus
from switch.state import SwitchState
from switch.states import TransferState
from switch.store import Decided, Final, SharedJournal
from switch.transfer import Transfer

log = logging.getLogger(__name__)


class Finality:
    def __init__(self, state: SwitchState) -> None:
        self.state = state

    async def finish(
        self, outcomes: Sequence[tuple[Transfer, TransferState, str | None, str | None, bool]]
    ) -> None:
        """Make PENDING transfers final: (transfer, SETTLED or REJECTED, reason code, BIC of
        who gave it, whether the creditor must be told). Returns once durable and applied.

        Raises JournalFailed or WriteRefused when the journal did not take the write; the
        transfers then stay PENDING (a restarted switch resolves them) and an instant
        transfer's waiting debtor is told so.
        """
        if not outcomes:
            return
        state = self.state
        cycle_id = state.cycle_id  # decided with the write's place in the journal's order
        finals = [Final(transfer, target, reason, by, cycle_id if target is
                        TransferState.SETTLED else None, tell)
                  for transfer, target, reason, by, tell in outcomes]
        now_s = time.time()
        try:
            decided = await state.store.record_final(finals, now_s)
        except Exception as error:
            log.error("%d transfers stay PENDING: the journal did not take their final state:"
                      " %s", len(finals), error)
            for final in finals:
                outcome = final.transfer.outcome
                if outcome is not None and not outcome.done():
                    outcome.set_exception(error)
            raise
        if decided:  # a shared journal: made final elsewhere first, or settled in another cycle
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
            finals = kept
        self._apply(finals, now_s)

    async def finish_answered(self, creditor_bic: str,
                              answers: Sequence[tuple[str, TransferState, str | None]]) -> int:
        """A shared journal only: answers (end-to-end id, SETTLED or REJECTED, the creditor's
        reason) to transfers another process forwarded to `creditor_bic` and still PENDING,
        made final here; returns how many the journal took (the rest were final already, or
        not this creditor's). The participants are told from here."""
        now_s = time.time()
        store = cast(SharedJournal, self.state.store)  # only a shared journal gets here
        finals = await store.record_answers(creditor_bic, answers, now_s)
        self._apply(finals, now_s)
        return len(finals)

    def learn(self, decided: Sequence[tuple[Transfer, Decided]]) -> None:
        """Transfers another process made final in a shared journal: memory follows its word
        (state, the in-flight set, an instant debtor's answer); the notices are its to send."""
        for transfer, word in decided:
            if transfer.state is not TransferState.PENDING or word.state is None:
                continue
            self.state.positions.release(transfer.debtor_bic, transfer.amount_vnd)
            transfer.advance(word.state, word.reason_code, word.reason_by)
            self.state.in_flight.pop(transfer.end_to_end_id, None)
            if transfer.outcome is not None and not transfer.outcome.done():
                transfer.outcome.set_result(None)
            transfer.source = None

    def _apply(self, finals: list[Final], now_s: float) -> None:
        """After the write is durable: memory, answers, notices, events; no await here."""
        state = self.state
        positions = state.positions
        current_cycle = state.cycle_id
        to_creditors: dict[str, list[TransactionStatus]] = defaultdict(list)
        to_debtors: dict[str, list[TransactionStatus]] = defaultdict(list)
        settled: dict[int | None, list[Transfer]] = defaultdict(list)  # by cycle
        rejected: list[Transfer] = []
        for final in finals:
            transfer = final.transfer
            positions.release(transfer.debtor_bic, transfer.amount_vnd)
            if final.state is TransferState.SETTLED:
                # A cycle closed while this was being written: it counts in the closed one,
                # whose figures come from the journal; the new cycle starts without it.
                if final.cycle_id == current_cycle:
                    positions.move(transfer.debtor_bic, transfer.creditor_bic,
                                   transfer.amount_vnd)
                settled[final.cycle_id].append(transfer)
            else:
                rejected.append(transfer)
            transfer.advance(final.state, final.reason_code, final.reason_by)
            state.in_flight.pop(transfer.end_to_end_id, None)
            status = transfer.status()
            if final.tell_creditor:
                to_creditors[transfer.creditor_bic].append(status)
            if transfer.bulk:
                to_debtors[transfer.debtor_bic].append(status)
            elif transfer.outcome is not None and not transfer.outcome.done():
                transfer.outcome.set_result(None)
            transfer.source = None
        notifier = state.notifier
        for bic, statuses in to_creditors.items():
            notifier.confirm_to_creditor(bic, statuses)
        for bic, statuses in to_debtors.items():
            notifier.report_to_debtor(bic, statuses)
        for cycle_id, transfers in settled.items():
            state.events.settled.fire(transfers=transfers, now_s=now_s, cycle_id=cycle_id)
        if rejected:
            state.events.rejected.fire(transfers=rejected, now_s=now_s)
