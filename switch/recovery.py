"""Recovery: a restarted switch rebuilds its memory from the journal and resolves what a crash
left in flight, before it serves anyone.

A PENDING transfer may have been forwarded, and its creditor may even have answered ACCP, but
nothing was settled (ACCP and settlement are one journal write) and creditors credit only on
ACSC: rejecting it (AB06) and telling both sides is always safe.
"""

from __future__ import annotations

import time

from protocol import reasons
from switch.finality import Finality
from switch.state import SwitchState
from switch.states import TransferState
from switch.transfer import Transfer


async def recover(state: SwitchState, finality: Finality) -> dict[str, int]:
    """Rebuild cycle, positions, known ids, returns, directory, settings and due notices;
    reject what was in flight. Returns counts for the operator: known transfers, in flight
    resolved.

    With a journal shared by several processes, what was in flight and the notices due are
    this process's own (none, for a process just started): what a dead process left is
    taken over by a survivor (`switch/cluster.py`)."""
    store = state.store
    book = state.book
    open_id, last_id = await store.open_cycle_now()
    cycle_id = open_id
    if cycle_id is None:
        cycle_id = last_id + 1
        await store.open_cycle(cycle_id, time.time())
    known_ids = await store.known_ids_now()
    book.recover(cycle_id, known_ids, await store.cycle_moves_now(cycle_id),
                 await store.returned_ids_now())
    state.directory.load(*await store.directory_now())
    book.apply_settings(await store.settings_now())
    state.notifier.reload(await store.notices_due_now())  # before resolving: those queue
    in_flight = await store.in_flight_now()
    await resolve_in_flight(state, finality, in_flight)
    return {"known_transfers": len(known_ids), "resolved_in_flight": len(in_flight)}


async def resolve_in_flight(state: SwitchState, finality: Finality,
                            in_flight: list[Transfer]) -> None:
    """Transfers held PENDING by a process that died (this one before its restart, or, with a
    shared journal, another): hold again, say so (`recovered`, with the positions as the
    journal holds them), then reject AB06 and tell both sides."""
    book = state.book
    book.hold_in_flight(in_flight)
    await book.refresh_positions()  # a shared journal's book: the journal's figures
    state.events.recovered.fire(cycle_id=book.cycle_id, net_vnd=dict(book.positions.net_vnd),
                                in_flight=in_flight)
    await finality.finish([(transfer, TransferState.REJECTED, reasons.TIMEOUT_INSTRUCTED_AGENT,
                            state.config.bic, True) for transfer in in_flight])
