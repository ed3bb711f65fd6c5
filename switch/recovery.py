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


async def recover(state: SwitchState, finality: Finality) -> dict[str, int]:
    """Rebuild cycle, positions, known ids, returns, directory, settings and due notices;
    reject what was in flight. Returns counts for the operator: known transfers, in flight
    resolved."""
    store = state.store
    open_id, last_id = store.open_cycle_now()
    if open_id is None:
        state.cycle_id = last_id + 1
        await store.open_cycle(state.cycle_id, time.time())
    else:
        state.cycle_id = open_id
    state.known_ids = set(store.known_ids_now())
    for payer_bic, payee_bic, amount_vnd in store.cycle_moves_now(state.cycle_id):
        state.positions.move(payer_bic, payee_bic, amount_vnd)
    state.returning = store.returned_ids_now()
    state.directory.load(store.directory_now())
    for bic, limit_vnd, signed_off in store.settings_now():
        participant = state.participants.get(bic)
        if participant is not None:
            if limit_vnd is not None:
                participant.position_limit_vnd = limit_vnd
            if signed_off:
                participant.sign(on=False)
    state.notifier.reload(store.notices_due_now())  # before resolving: those queue themselves
    in_flight = store.in_flight_now()
    for transfer in in_flight:  # held when the switch died: hold again, then resolve
        state.positions.reserve(transfer.debtor_bic, transfer.amount_vnd, None)
        state.in_flight[transfer.end_to_end_id] = transfer
    state.events.recovered.fire(cycle_id=state.cycle_id, net_vnd=dict(state.positions.net_vnd),
                                in_flight=in_flight)
    await finality.finish([(transfer, TransferState.REJECTED, reasons.TIMEOUT_INSTRUCTED_AGENT,
                            state.config.bic, True) for transfer in in_flight])
    return {"known_transfers": len(state.known_ids), "resolved_in_flight": len(in_flight)}
