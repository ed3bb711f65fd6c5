"""How every participant's process runs: the switch, a bank, the load generator.

Shared here rather than in `switchlab/` so that the switch and the mock banks, which only speak
to each other over HTTP, need nothing from the tool that starts them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop where it exists (not on Windows): the servers and the load
    generator spend most of their time in the event loop and aiohttp's transport."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
