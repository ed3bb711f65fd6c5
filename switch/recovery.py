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
    open_id, last_id = await store.open_cycle_now()
    if open_id is None:
        state.cycle_id = last_id + 1
        await store.open_cycle(state.cycle_id, time.time())
    else:
        state.cycle_id = open_id
    state.known_ids = await store.known_ids_now()
    for payer_bic, payee_bic, amount_vnd in await store.cycle_moves_now(state.cycle_id):
        state.positions.move(payer_bic, payee_bic, amount_vnd)
    state.returning = await store.returned_ids_now()
    state.directory.load(*await store.directory_now())
    apply_settings(state, await store.settings_now())
    state.notifier.reload(await store.notices_due_now())  # before resolving: those queue
    in_flight = await store.in_flight_now()
    await resolve_in_flight(state, finality, in_flight)
    return {"known_transfers": len(state.known_ids), "resolved_in_flight": len(in_flight)}


def apply_settings(state: SwitchState, settings: list[tuple[str, int | None, bool]]) -> None:
    """Limits and sign-offs as the operator last set them: (BIC, limit VND or None, off)."""
    for bic, limit_vnd, signed_off in settings:
        participant = state.participants.get(bic)
        if participant is None:
            continue
        if limit_vnd is not None:
            participant.position_limit_vnd = limit_vnd
            state.events.position_limit_set.fire(bic=bic, limit_vnd=limit_vnd)
        if participant.signed_off != signed_off:
            participant.sign(on=not signed_off)


async def resolve_in_flight(state: SwitchState, finality: Finality,
                            in_flight: list[Transfer]) -> None:
    """Transfers held PENDING by a process that died (this one before its restart, or, with a
    shared journal, another): hold again, say so (`recovered`, with the positions as the
    journal holds them), then reject AB06 and tell both sides."""
    for transfer in in_flight:
        state.positions.reserve(transfer.debtor_bic, transfer.amount_vnd, None)
        state.in_flight[transfer.end_to_end_id] = transfer
    await state.positions.refresh()  # a shared journal's book: the journal's figures
    state.events.recovered.fire(cycle_id=state.cycle_id, net_vnd=dict(state.positions.net_vnd),
                                in_flight=in_flight)
    await finality.finish([(transfer, TransferState.REJECTED, reasons.TIMEOUT_INSTRUCTED_AGENT,
                            state.config.bic, True) for transfer in in_flight])
