"""One way to retry: exponential backoff with a cap, bounded in attempts.

Built on tenacity rather than our own loops: retrying is not what the scheme is about, and a
well-kept library gets the corner cases (jitter, cancellation, attempt accounting) right.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
)

T = TypeVar("T")


async def with_backoff(
    attempt: Callable[[], Awaitable[T]],
    *,
    attempts: int,
    first_backoff_s: float,
    max_backoff_s: float,
    retry_on: tuple[type[BaseException], ...] = (),
    done: Callable[[T], bool] = lambda _: True,
) -> T | None:
    """Call `attempt` until `done(result)`, at most `attempts` times, sleeping
    first_backoff_s, then twice that, up to max_backoff_s between tries.

    Exceptions of the `retry_on` types count as a failed try; any other propagates.
    Returns the last result, or None when every try raised.
    """
    assert attempts >= 1 and 0 < first_backoff_s <= max_backoff_s
    # The first try outside tenacity: it is the one that nearly always succeeds (a notice per
    # instant transfer on the switch), and tenacity's machinery cost ~3 % of the switch's CPU.
    try:
        result = await attempt()
    except retry_on:
        result, failed = None, True
    else:
        failed = False
        if done(result):
            return result
    if attempts == 1:
        return None if failed else result
    await asyncio.sleep(first_backoff_s)
    retrying = AsyncRetrying(  # the tries after the first: waits 2 x first_backoff_s, 4 x, …
        stop=stop_after_attempt(attempts - 1),
        wait=wait_exponential(multiplier=2 * first_backoff_s, min=first_backoff_s,
                              max=max_backoff_s),
        retry=retry_if_exception_type(retry_on) | retry_if_result(lambda r: not done(r)),
        reraise=False,
    )
    try:
        return await retrying(attempt)
    except RetryError as error:
        last = error.last_attempt
        return None if last.failed else last.result()
