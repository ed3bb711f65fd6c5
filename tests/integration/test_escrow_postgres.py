"""Issue #24: the PostgreSQL journal plays switch/escrow.py's rules: its refill amount is the
module's, and a batch that a slice's room covers leaves the shared position row alone."""

from __future__ import annotations

import itertools

from switch.escrow import take_vnd
from switch.store_postgres import PostgresStore


async def test_issue_24_the_journal_s_refill_is_the_escrow_module_s(postgres_url: str) -> None:
    store = PostgresStore(postgres_url, switch_bic="SWITCHVN")
    await store.start()
    try:
        grid = list(itertools.product((-5, 0, 1, 999, 10**15), (1, 7, 10**12), (0, 1, 2, 8)))
        rows = await store.read(
            "SELECT switch_escrow_take(f, s, p) FROM unnest($1::bigint[], $2::bigint[],"
            " $3::bigint[]) AS u(f, s, p)", ([f for f, _, _ in grid], [s for _, s, _ in grid],
                                             [p for _, _, p in grid]))
        assert [row[0] for row in rows] == [take_vnd(*point) for point in grid]
    finally:
        await store.close()
