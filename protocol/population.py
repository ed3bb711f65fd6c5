"""The population register's wire (register/service.py): paths, limits, and the signed client
a party (the labour ministry, the treasury) uses, signed as messages to the switch are."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from protocol.directory import SignedJsonClient

CHECKS_PATH = "/v1/population/checks"
PAYMENTS_PATH = "/v1/population/payments"
CITIZEN_LINKS_PATH = "/v1/citizens/links"  # signed-in citizens' requests, relayed
MAX_CHECK_ROWS = 10_000  # ~1.5 MB of JSON; a million-row list is 100 requests
MAX_PAYMENTS_PER_REQUEST = 10_000


class RegisterClient(SignedJsonClient):
    """A party's signed channel to the population register."""

    async def check(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
        """The register's finding for each (citizen_id, full_name, birth_date or None) row,
        in order: `code` empty when alive and matching, else MD07, BE06, C601 or C602 with a
        text naming every problem. Sent MAX_CHECK_ROWS at a time. Raises DirectoryError when
        the register refuses a request as a whole."""
        findings: list[dict[str, str]] = []
        for start in range(0, len(rows), MAX_CHECK_ROWS):
            _, answer = await self._call("POST", CHECKS_PATH, {
                "rows": [dict(row) for row in rows[start:start + MAX_CHECK_ROWS]]})
            findings += answer["findings"]
        return findings

    async def report_payments(self, payments: Iterable[Mapping[str, Any]]) -> int:
        """Outcomes for citizens to look up (register/service.py PaymentIn's fields), taken
        MAX_PAYMENTS_PER_REQUEST at a time (a million outcomes are never all in memory as
        dicts); how many the register recorded (those of citizens it knows)."""
        recorded = 0
        iterator = iter(payments)
        while batch := list(itertools.islice(iterator, MAX_PAYMENTS_PER_REQUEST)):
            _, answer = await self._call("POST", PAYMENTS_PATH, {"payments": batch})
            recorded += answer["recorded"]
        return recorded
