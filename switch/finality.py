"""Making transfers final: the journal first, then memory, then the participants.

Between the journal write and its durability a transfer is still PENDING to everyone (a
pacs.028 answers PDNG, its money stays reserved); the moment the write is durable, memory
moves in one synchronous step (state, positions, the in-flight set, the instant answer) and the
notices go out. So nothing a participant can observe is ever ahead of the journal, and a crash
anywhere leaves the journal's word standing.

With a journal shared by several switch processes, the journal finalizes a transfer once
(`WHERE state='PENDING'`): a process whose write came second learns the first one's word and
applies it without telling anyone (`Book.learn`: the process that made it final tells the
participants), and an answer posted to a process that did not forward the transfer is made
final there (`finish_answered`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from switch.book import Applied
from switch.context import SwitchState
from switch.states import TransferState
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
        book = state.book
        finals = book.finals(outcomes)
        now_s = time.time()
        try:
            decided = await state.store.record_final(finals, now_s)
        except Exception as error:
            # A journal that heals logs its outage once (switch/cluster.py), not per write.
            if not state.store.heals or state.store.failure is None:
                log.error("%d transfers stay PENDING: the journal did not take their final"
                          " state: %s", len(finals), error)
            book.finals_failed(finals, error)
            raise
        self._tell(book.apply_finals(book.finals_decided(finals, decided)), now_s)

    async def finish_answered(self, creditor_bic: str,
                              answers: Sequence[tuple[str, TransferState, str | None]]) -> int:
        """Answers (end-to-end id, SETTLED or REJECTED, the creditor's reason) to transfers
        this process does not await, for the journal to judge: a shared journal makes final
        here those another process forwarded to `creditor_bic` and still holds PENDING; one
        process's journal takes none (this process awaits all it forwarded). Returns how many
        were taken; the participants are told from here."""
        now_s = time.time()
        finals = await self.state.store.record_answers(creditor_bic, answers, now_s)
        if finals:
            self._tell(self.state.book.apply_finals(finals), now_s)
        return len(finals)

    def _tell(self, applied: Applied, now_s: float) -> None:
        """After the write is durable and memory moved: notices and events; no await here."""
        state = self.state
        state.notifier.tell_finals(applied.to_creditors, applied.to_debtors)
        for cycle_id, transfers in applied.settled.items():
            state.events.settled.fire(transfers=transfers, now_s=now_s, cycle_id=cycle_id)
        if applied.rejected:
            state.events.rejected.fire(transfers=applied.rejected, now_s=now_s)
