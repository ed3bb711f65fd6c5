"""Property test: random interleavings of answers, timeouts, duplicates, inquiries and returns.

After every round of concurrent operations the invariants of docs/design.md must hold: nothing
settled twice, no ACSC confirmation for a transfer that is not settled, positions that sum to
zero and equal what the journal says moved, reservations equal to what is in flight; and at
the end every transfer is final.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab import postgres
from protocol.codec import new_id
from protocol.messages import (
    PaymentReturn,
    PaymentReturnItem,
    StatusRequest,
    StatusRequestItem,
)
from tests.conftest import new_database
from tests.harness import (
    BANK_A,
    BANK_B,
    SWITCH_BIC,
    TREASURY,
    Answer,
    SwitchLab,
    check_invariants,
    credit_transfers,
    transfer,
    until,
)

DEADLINE_S = 0.3
ANSWERS = st.sampled_from([
    Answer(),
    Answer("RJCT", "AC04"),
    Answer(asynchronous=True, delay_s=0.01),
    Answer(asynchronous=True, delay_s=DEADLINE_S + 0.1),  # late: must never settle
    Answer(delay_s=DEADLINE_S + 0.1),  # too slow in the HTTP answer
    Answer("never"),
])
OPERATION = st.one_of(
    st.tuples(st.just("pay"), ANSWERS, st.sampled_from([BANK_A, BANK_B]),
              st.integers(1, 5_000_000)),
    st.tuples(st.just("resend"), st.integers(0, 50), st.booleans()),
    st.tuples(st.just("inquire"), st.integers(0, 50)),
    st.tuples(st.just("return"), st.integers(0, 50), st.integers(1, 5_000_000)),
    st.tuples(st.just("stray_answer"), st.integers(0, 50)),
)
ROUNDS = st.lists(st.lists(OPERATION, min_size=1, max_size=6), min_size=1, max_size=4)


class Model:
    """What the test sent, to aim resends, inquiries and returns at real transfers."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str, int]] = []  # e2e, msg id, creditor, amount
        self.plans: dict[str, Answer] = {}

    def pick(self, index: int) -> tuple[str, str, str, int] | None:
        return self.sent[index % len(self.sent)] if self.sent else None


async def run(lab: SwitchLab, model: Model, operation: tuple) -> None:
    kind = operation[0]
    if kind == "pay":
        _, answer, creditor, amount = operation
        e2e, msg_id = new_id("P"), new_id("M")
        model.plans[e2e] = answer
        model.sent.append((e2e, msg_id, creditor, amount))
        await lab.peer(TREASURY).send(credit_transfers(
            [transfer(e2e, amount, creditor=creditor)], msg_id=msg_id))
        return
    target = model.pick(operation[1])
    if target is None:
        return
    e2e, msg_id, creditor, amount = target
    if kind == "resend":
        same_message = operation[2]
        await lab.peer(TREASURY).send(credit_transfers(
            [transfer(e2e, amount, creditor=creditor)],
            msg_id=msg_id if same_message else new_id("M")))
    elif kind == "inquire":
        request = StatusRequest(msg_id=new_id("Q"), created_at=datetime.now(UTC),
                                items=[StatusRequestItem(e2e)])
        reply = await lab.peer(TREASURY).send(request)
        assert reply.status == 200
    elif kind == "return":
        message = PaymentReturn(
            msg_id=new_id("R"), created_at=datetime.now(UTC), instructing_agent_bic=creditor,
            instructed_agent_bic=SWITCH_BIC, items=[PaymentReturnItem(
                return_id=new_id("RT"), original_end_to_end_id=e2e, original_tx_id=f"TX{e2e}",
                returned_amount_vnd=operation[2], reason_code="MD07",
                amount_text=str(operation[2]))])
        reply = await lab.peer(creditor).send(message)
        assert reply.status == 200
    elif kind == "stray_answer":
        stray = lab.participants[creditor].answer(
            credit_transfers([transfer(e2e, amount, creditor=creditor)]), [Answer()])
        reply = await lab.peer(creditor).send(stray)
        assert reply.status in (202, 409)


async def play(rounds: list[list[tuple]], **journal: object) -> None:
    """The rounds against a switch on SQLite, or on the `journal_url` given."""
    with tempfile.TemporaryDirectory() as directory:
        lab = await SwitchLab(Path(directory) / "switch.sqlite", creditor_timeout_s=DEADLINE_S,
                              **journal).start()
        model = Model()
        for participant in lab.participants.values():
            participant.decide = lambda tx: model.plans.get(tx.end_to_end_id, Answer())
        try:
            for operations in rounds:
                await asyncio.gather(*(run(lab, model, op) for op in operations))
                await check_invariants(lab, all_final=False)
            await until(lambda: not lab.switch.state.book.in_flight, timeout_s=5)
            await until(lambda: lab.switch.state.notifier.backlog() == 0, timeout_s=5)
            await check_invariants(lab, all_final=True)
        finally:
            await lab.stop()


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(rounds=ROUNDS)
def test_invariants_hold_under_random_interleavings(rounds: list[list[tuple]]) -> None:
    asyncio.run(play(rounds))


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(rounds=ROUNDS)
def test_invariants_hold_under_random_interleavings_on_postgresql(
        rounds: list[list[tuple]], postgres_server: postgres.Server) -> None:
    asyncio.run(play(rounds, journal_url=new_database(postgres_server)))
