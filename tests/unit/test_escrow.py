"""Issue #24: escrow slices of a debtor's cap (switch/escrow.py): holds that need no shared row
while a slice has room, refusals as exact as the one-process book's, and the invariant kept
through settlements, releases, closes, new limits and takeovers."""

from __future__ import annotations

import random

import pytest

from switch.escrow import Debtor, take_vnd
from switch.positions import PositionBook


def test_issue_24_a_refill_takes_what_is_short_and_a_share_of_the_rest() -> None:
    assert take_vnd(1_000, 100, 2) == 100 + 900 // 4
    assert take_vnd(1_000, 100, 1) == 100 + 450
    assert take_vnd(50, 100, 2) == 50  # never more than is free
    assert take_vnd(0, 100, 2) == 0
    assert take_vnd(-30, 100, 2) == 0  # a close left the holds above the cap
    assert take_vnd(1_000, 100, 0) == take_vnd(1_000, 100, 1)


def test_issue_24_holds_after_a_refill_need_no_shared_row() -> None:
    debtor = Debtor(limit_vnd=1_000_000)
    assert debtor.hold("a", [10_000], processes=2) == [True]
    assert debtor.refills == 1
    for _ in range(20):
        assert debtor.hold("a", [1_000], processes=2) == [True]
    assert debtor.refills == 1 and debtor.revocations == 0
    assert debtor.held_vnd() == 30_000


def test_issue_24_a_refusal_is_exact_though_another_process_holds_room() -> None:
    """Process b's slice holds room it does not use; a's hold that fits only with it is
    admitted (b's room revoked), and one past the cap is refused, as the one-process book."""
    debtor = Debtor(limit_vnd=100)
    assert debtor.hold("b", [10], processes=2) == [True]
    assert debtor.slice("b").room_vnd > 0
    assert debtor.hold("a", [90], processes=2) == [True]
    assert debtor.revocations == 1 and debtor.slice("b").room_vnd == 0
    assert debtor.hold("a", [1], processes=2) == [False]
    assert debtor.held_vnd() == 100


@pytest.mark.parametrize("seed", range(20))
def test_issue_24_slices_admit_and_refuse_exactly_what_the_one_process_book_does(
        seed: int) -> None:
    rng = random.Random(seed)
    debtor, book = Debtor(limit_vnd=10_000), PositionBook()
    held: list[tuple[str, int]] = []
    for _ in range(300):
        process = rng.choice("abc")
        action = rng.random()
        if action < 0.5:
            amount = rng.randint(1, 3_000)
            expected = book.reserve("D", amount, 10_000)
            assert debtor.hold(process, [amount], processes=3) == [expected]
            if expected:
                held.append((process, amount))
        elif action < 0.8 and held:
            _, amount = held.pop(rng.randrange(len(held)))
            settled = rng.random() < 0.5
            debtor.unhold(rng.choice("abc"), amount, settled)  # any process may end it
            book.release("D", amount)
            if settled:
                book.move("D", "C", amount)
        elif action < 0.9:
            amount = rng.randint(1, 2_000)
            debtor.credit(process, amount)
            book.move("C", "D", amount)
        else:
            debtor.close_cycle()
            book.net_vnd.clear()
        assert debtor.headroom_vnd() == book.headroom_vnd("D", 10_000)


def test_issue_24_a_close_revokes_room_before_zeroing_a_creditors_net() -> None:
    debtor = Debtor(limit_vnd=100)
    debtor.credit("a", 500)
    assert debtor.hold("a", [550], processes=1) == [True]
    debtor.close_cycle()  # held 550 now above the limit 100: no room may stay promised
    assert debtor.room_vnd() == 0
    debtor.unhold("a", 550, settled=False)
    assert debtor.hold("b", [100], processes=2) == [True]
    assert debtor.hold("b", [1], processes=2) == [False]


def test_issue_24_a_lower_limit_and_a_takeover_give_back_the_room() -> None:
    debtor = Debtor(limit_vnd=1_000)
    debtor.hold("dead", [100], processes=2)
    debtor.set_limit(200)
    assert debtor.room_vnd() == 0
    debtor.hold("dead", [50], processes=2)
    debtor.take_over("dead", "survivor")
    assert "dead" not in debtor.slices and debtor.held_vnd() == 150
    assert debtor.slice("survivor").room_vnd == 0
    assert debtor.hold("survivor", [50], processes=1) == [True]
    assert debtor.hold("survivor", [1], processes=1) == [False]


def test_issue_24_a_return_is_refused_exactly_at_the_creditors_cap() -> None:
    debtor = Debtor(limit_vnd=100)
    debtor.hold("b", [10], processes=2)  # b's slice keeps room it does not use
    assert debtor.pay_back("a", 90)
    assert not debtor.pay_back("a", 1)
    assert debtor.headroom_vnd() == 0


def test_issue_24_the_invariant_check_catches_room_promised_past_the_cap() -> None:
    debtor = Debtor(limit_vnd=100)
    debtor.slice("a").room_vnd = 101
    with pytest.raises(AssertionError, match="room promised past the cap"):
        debtor.check()
