"""Issue #28: a bulk transfer's two notices (the creditor's confirmation, the debtor's report)
are journaled as sent in one write once both are delivered; a notice whose pair is not
delivered is journaled alone soon after, so nothing stays due that was told."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from protocol.http import Reply
from protocol.messages import TransactionStatus, TxStatus
from switch import notices
from switch.events import SwitchEvents
from switch.notices import Notifier

TREASURY, BANK = "TRSYVNV1", "BFTVVNVX"


class Journal:
    """Records what is marked sent, as the journal would take it."""

    heals, failure = False, None

    def __init__(self) -> None:
        self.marked: list[tuple[str, list[str]]] = []

    async def mark_sent(self, kind: str, keys: list[str]) -> None:
        self.marked.append((kind, sorted(keys)))


def participant(status: int, answer_after_s: float = 0.0) -> SimpleNamespace:
    async def send(document: object, timeout_s: float) -> Reply:
        await asyncio.sleep(answer_after_s)
        return Reply(status, None, "")
    return SimpleNamespace(peer=SimpleNamespace(send=send))


def told(e2e: str, status: TxStatus = TxStatus.SETTLED) -> TransactionStatus:
    return TransactionStatus(e2e, e2e, status, original_msg_id="M1")


async def deliver(treasury_answers: int, after_s: float = 0.0) -> list[tuple[str, list[str]]]:
    config = SimpleNamespace(bic="SWTCVNV1", notice_timeout_s=1.0, notice_max_attempts=1)
    journal = Journal()
    treasury = participant(treasury_answers, after_s)
    notifier = Notifier(config, {TREASURY: treasury, BANK: participant(200)},  # type: ignore[arg-type]
                        journal, SwitchEvents())
    notifier.start()
    refused_by_bank = told("E3", TxStatus.REJECTED)  # the debtor only is told of it
    notifier.tell_finals({BANK: [told("E1"), told("E2")]},
                         {TREASURY: [told("E1"), told("E2"), refused_by_bank]})
    for _ in range(100):
        await asyncio.sleep(0.01)
        if sum(len(keys) for _, keys in journal.marked) >= (3 if treasury_answers == 200
                                                             else 2):
            break
    marked = list(journal.marked)  # before the stop, which marks whatever waits
    await notifier.stop()
    return marked


async def test_issue28_a_bulk_transfer_s_two_notices_are_journaled_sent_in_one_write() -> None:
    marked = await deliver(200)
    assert sorted(marked) == [("both", ["E1", "E2"]), ("debtor", ["E3"])]


async def test_issue28_a_notice_whose_pair_is_given_up_is_journaled_alone() -> None:
    marked = await deliver(503)  # the treasury is not told: its reports stay due
    assert marked == [("creditor", ["E1", "E2"])]


async def test_issue28_a_notice_whose_pair_is_slow_is_journaled_alone_in_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notices, "PAIR_WAIT_S", 0.05)
    marked = await deliver(200, after_s=2.0)  # the treasury answers long after the bank
    assert marked == [("creditor", ["E1", "E2"])]
