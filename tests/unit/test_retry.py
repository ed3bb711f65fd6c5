"""protocol/retry.py: the first try runs outside tenacity (issue #28: its machinery cost ~3 %
of the switch's CPU, one notice per instant transfer); the tries, the waits and what comes
back must be what they were."""

from __future__ import annotations

import asyncio

import pytest

from protocol.retry import with_backoff


def run(outcomes: list[object], attempts: int, monkeypatch: pytest.MonkeyPatch
        ) -> tuple[object, int, list[float]]:
    """with_backoff over `outcomes` (an exception is raised, anything else returned); the
    result, the number of tries and the waits asked for."""
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    tries = iter(outcomes)
    calls = 0

    async def attempt() -> object:
        nonlocal calls
        calls += 1
        outcome = next(tries)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    result = asyncio.run(with_backoff(attempt, attempts=attempts, first_backoff_s=0.5,
                                      max_backoff_s=3.0, retry_on=(OSError,),
                                      done=lambda r: r == "ok"))
    return result, calls, waits


def test_issue28_a_first_try_that_succeeds_waits_for_nothing(monkeypatch) -> None:
    assert run(["ok"], 5, monkeypatch) == ("ok", 1, [])


def test_retries_double_the_wait_up_to_the_cap(monkeypatch) -> None:
    outcomes: list[object] = [OSError(), "no", OSError(), "no", "no", "ok"]
    assert run(outcomes, 6, monkeypatch) == ("ok", 6, [0.5, 1.0, 2.0, 3.0, 3.0])


def test_every_try_spent_gives_the_last_result_or_none(monkeypatch) -> None:
    assert run(["no", "no", "no"], 3, monkeypatch) == ("no", 3, [0.5, 1.0])
    assert run(["no", OSError()], 2, monkeypatch) == (None, 2, [0.5])
    assert run([OSError()], 1, monkeypatch) == (None, 1, [])
    assert run(["no"], 1, monkeypatch) == ("no", 1, [])


def test_an_error_not_retried_propagates_from_any_try(monkeypatch) -> None:
    with pytest.raises(ValueError):
        run([ValueError()], 3, monkeypatch)
    with pytest.raises(ValueError):
        run(["no", ValueError()], 3, monkeypatch)
