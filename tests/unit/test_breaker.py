"""The circuit breaker alone, on a clock the test holds (switch/participants.py)."""

from __future__ import annotations

from switch.participants import Breaker, Call


def _opened(now_s: float = 0.0) -> Breaker:
    breaker = Breaker(failures_to_open=2, cooldown_s=2.0)
    for _ in range(2):
        breaker.end(breaker.begin(now_s), False, now_s)
    assert breaker.is_open
    return breaker


def test_issue_21_a_transfer_let_in_after_the_cool_down_and_refused_at_intake_holds_no_probe(
) -> None:
    """Issue #21: the breaker handed out its one probe when intake asked, before the debtor's
    cap was checked; a transfer then refused AM04 (or DUPL, or a refused write) never gave it
    back, and the healthy creditor got AB08 for good. Asking now takes nothing."""
    breaker = _opened()
    assert not breaker.admits(1.0)  # cooling down
    for now_s in (2.0, 10.0, 100.0, 10_000.0):  # each transfer refused for another reason
        assert breaker.admits(now_s)
    probe = breaker.begin(10_000.0)
    assert probe is Call.PROBE
    assert not breaker.admits(10_000.0) and breaker.begin(10_000.0) is Call.REFUSED
    breaker.end(probe, True, 10_000.1)
    assert not breaker.is_open and breaker.begin(10_000.2) is Call.ORDINARY


def test_a_probe_that_ends_without_a_verdict_is_given_back() -> None:
    """A forward that sent nothing or hit a bug gives its probe back: the next call probes."""
    breaker = _opened()
    breaker.end(breaker.begin(2.0), None, 2.0)
    assert breaker.is_open and breaker.begin(2.0) is Call.PROBE


def test_a_failed_probe_opens_the_breaker_for_another_cool_down() -> None:
    breaker = _opened()
    breaker.end(breaker.begin(2.0), False, 2.5)
    assert not breaker.admits(4.0) and breaker.begin(4.0) is Call.REFUSED
    assert breaker.begin(4.5) is Call.PROBE


def test_ordinary_calls_ending_do_not_free_a_probe_under_way() -> None:
    """Calls begun while the breaker was closed may end after it opened: only the probe's own
    end gives the probe back, so two probes never run at once."""
    breaker = Breaker(failures_to_open=1, cooldown_s=1.0)
    late = breaker.begin(0.0)
    breaker.end(breaker.begin(0.0), False, 0.0)
    probe = breaker.begin(1.0)
    assert probe is Call.PROBE
    breaker.end(late, False, 1.1)
    assert breaker.begin(2.5) is Call.REFUSED  # the probe still runs
    breaker.end(probe, True, 2.6)
    assert breaker.begin(2.6) is Call.ORDINARY
