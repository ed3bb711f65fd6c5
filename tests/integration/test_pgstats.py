"""Issue #24: `switchlab bench --journal URL` on a user's server that does not load
pg_stat_statements says so in its output, and measures the rest; never a traceback."""

from __future__ import annotations

from lab import pgstats
from switchlab.bench import InstantResult, LoopResult, _scale_figures


async def test_issue_24_a_server_without_pg_stat_statements_is_said_so(
        postgres_url: str) -> None:
    why = await pgstats.prepare(postgres_url)  # the tests' server loads no extension
    assert why is not None and "shared_preload_libraries" in why
    said: list[str] = []
    run = InstantResult(LoopResult([]), LoopResult([]), None, None, None, locked_us=3.0,
                        batches_per_transfer=0.25)
    figures = {f.name: f.value for f in _scale_figures(run, "", said.append, why)}
    assert said == [f"  cluster: the serialised time in the database is not measured: {why}"]
    assert figures == {"cluster: serialised, switch-timed": 3.0,
                       "cluster: transfers per commit": 4.0}


async def test_issue_24_an_unreachable_server_is_a_sentence() -> None:
    why = await pgstats.prepare("postgresql://nobody@127.0.0.1:1/none")
    assert why is not None and why.startswith("cannot connect: ")
