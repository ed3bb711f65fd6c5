"""Issue #24, "a batch of decisions is one statement": the takes (new messages) a batch
carries go to PostgreSQL as one statement, and each caller still gets its own word: DUPL for
an id taken earlier in the same statement, AM04 for its own hold past the cap, a repeated
MsgId refused alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from protocol import reasons
from switch.journal_errors import WriteRefused
from switch.records import Decided
from switch.states import TransferState
from switch.store_postgres import PostgresStore
from switch.transfer import Transfer
from tests.harness import BANK_A, SWITCH_BIC, TREASURY

CAP_VND = 2_500


def _pending(e2e: str, amount_vnd: int = 1_000) -> Transfer:
    return Transfer(end_to_end_id=e2e, tx_id=e2e, msg_id=f"M-{e2e}", debtor_bic=TREASURY,
                    creditor_bic=BANK_A, amount_vnd=amount_vnd, bulk=False, received_at=1.0,
                    state=TransferState.PENDING)


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[PostgresStore]:
    journal = PostgresStore(postgres_url, switch_bic=SWITCH_BIC)
    await journal.start()
    await journal.seed_positions({TREASURY: CAP_VND, BANK_A: 10**9})
    yield journal
    await journal.close()


async def test_issue_24_a_batch_of_takes_is_one_statement_each_caller_gets_its_word(
        store: PostgresStore) -> None:
    batches_before = store.batches
    # Queued before the writer runs: one batch, its takes consecutive.
    taken = [store.record_new(TREASURY, f"M{n}", b"d", [_pending(f"E{n}")], 1.0)
             for n in (1, 2)]
    taken.append(store.record_new(TREASURY, "M3", b"d", [_pending("E1"), _pending("E3")], 1.0))
    taken.append(store.record_new(TREASURY, "M4", b"d", [_pending("E4")], 1.0))
    words = await asyncio.gather(*taken)
    assert store.batches - batches_before == 1
    assert words[:2] == [None, None]
    # E1 taken earlier in the same statement; E3 is the third 1,000 against a 2,500 cap
    assert words[2] == {"E1": Decided(reason="DUPL"),
                        "E3": Decided(reason=reasons.INSUFFICIENT_FUNDS)}
    assert words[3] == {"E4": Decided(reason=reasons.INSUFFICIENT_FUNDS)}
    found = await store.lookup(["E1", "E2", "E3", "E4"])
    assert {key: transfer.state for key, transfer in found.items()} == {
        "E1": TransferState.PENDING, "E2": TransferState.PENDING,
        "E3": TransferState.REJECTED, "E4": TransferState.REJECTED}


async def test_issue_24_a_repeated_msg_id_in_a_batch_of_takes_is_refused_alone(
        store: PostgresStore) -> None:
    first = store.record_new(TREASURY, "M1", b"d", [_pending("E1")], 1.0)
    again = store.record_new(TREASURY, "M1", b"d", [_pending("E2")], 1.0)
    other = store.record_new(TREASURY, "M3", b"d", [_pending("E3")], 1.0)
    assert await first is None and await other is None
    with pytest.raises(WriteRefused):
        await again
    assert set(await store.lookup(["E1", "E2", "E3"])) == {"E1", "E3"}
