"""What the live page is sent (lab/live.py): the whole day within its bound, merged and
never dropped, and rates a second that a terminal's transfers a second can be set beside
(issue #26, frictions 2 and 3)."""

from __future__ import annotations

import asyncio
import io
import itertools
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from banks.registry import TREASURY_BIC
from lab.live import (
    MAX_SAMPLES,
    PAGE_POINTS,
    Monitor,
    _bound,
    _last_with_peak,
    _latency_span,
    by_reason,
    merged,
    outcomes,
    percentiles,
    rates,
)
from lab.progress import Progress
from lab.world import World, WorldSettings
from protocol import reasons


def day(samples: int, every_s: float = 0.25) -> list[dict[str, float]]:
    return [{"t_s": i * every_s, "settled": 10 * i, "rejected": i // 10, "returned": 0,
             "in_flight": 500 if i == samples // 3 else 7} for i in range(samples)]


def test_issue_26_a_day_longer_than_the_page_is_sent_whole_from_its_start() -> None:
    held = day(5_000)  # 21 minutes at 4 samples a second; the page kept the last 600
    sent = merged(held, PAGE_POINTS)
    assert len(sent) <= PAGE_POINTS
    assert sent[0] == held[0]  # the start of the day
    assert sent[-1]["t_s"] == held[-1]["t_s"] and sent[-1]["settled"] == held[-1]["settled"]
    assert max(s["in_flight"] for s in sent) == 500  # a peak merged in, not dropped
    assert [s["t_s"] for s in sent] == sorted(s["t_s"] for s in sent)


def test_issue_26_the_monitor_s_memory_is_bounded_by_merging_the_older_half() -> None:
    held = day(MAX_SAMPLES + 1)
    _bound(held, _last_with_peak)
    assert len(held) <= MAX_SAMPLES * 3 // 4 + 1
    assert held[0]["t_s"] == 0 and held[-1]["settled"] == 10 * MAX_SAMPLES
    assert max(s["in_flight"] for s in held) == 500


def test_issue_26_rates_are_over_a_second_so_a_bulk_report_is_no_spike() -> None:
    """A 2-second day whose 8,476 transfers settle in two bulk reports: a quarter second's
    rate said 17,904/s against the terminal's 4,238/s."""
    settled = [0, 0, 4_000, 4_000, 4_000, 4_000, 4_000, 8_476, 8_476]
    samples = [{"t_s": i * 0.25, "settled": n, "rejected": 0} for i, n in enumerate(settled)]
    peak = max(rate[1] for rate in rates(samples))
    assert peak == 4_476  # the most that settled within one second
    assert peak <= 8_476 / 2 * 1.1  # beside the day's 4,238 a second


def test_issue_26_merged_latency_spans_give_the_percentiles_of_their_whole_span() -> None:
    log = np.arange(1, 1_001, dtype=np.float64)
    assert percentiles(log) == {"p50": 500.5, "p99": 990.01}
    assert percentiles(log[:0]) == {"p50": 0.0, "p99": 0.0}


def test_issue_26_merged_latency_spans_still_cover_the_whole_log_end_to_end() -> None:
    spans = [{"t_s": i * 0.25, "start": 3 * i, "end": 3 * i + 3} for i in range(MAX_SAMPLES + 1)]
    _bound(spans, _latency_span)
    sent = merged(spans, PAGE_POINTS, _latency_span)
    for kept in (spans, sent):
        assert kept[0]["start"] == 0 and kept[-1]["end"] == 3 * (MAX_SAMPLES + 1)
        assert all(a["end"] == b["start"] for a, b in itertools.pairwise(kept))


def test_the_live_pages_tiles_add_up_to_the_table_in_the_terminals_words() -> None:
    """A new user saw "settled 9,639 · rejected 154 · returned 11" against a table of 9,793:
    settled counted the returned ones too. The tiles are paid, returned, rejected (adding up
    with in flight to the transfers), settled (debited) their paid + returned."""
    by_state = {"SETTLED": {"count": 9_628}, "RETURNED": {"count": 11, "count_AC04": 11},
                "REJECTED": {"count": 154, "count_AB05": 4, "count_AC04": 150}}
    shown = outcomes(by_state, in_flight=0)
    assert shown == {"paid": 9_628, "returned": 11, "rejected": 154, "in_flight": 0,
                     "settled": 9_639}
    assert shown["paid"] + shown["returned"] + shown["rejected"] == 9_793


def test_the_live_page_gives_each_reason_code_its_meaning_and_returns_by_reason() -> None:
    rejected = by_reason({"count": 154, "count_AB05": 4, "count_AC04": 150, "count_ZZ99": 0})
    assert [(r["code"], r["count"]) for r in rejected] == [("AC04", 150), ("AB05", 4),
                                                          ("ZZ99", 0)]
    assert rejected[0]["text"] == reasons.DESCRIPTIONS["AC04"]
    assert rejected[-1]["text"] == "reason not described"


def test_the_scenario_bar_ends_at_100_percent_when_every_row_is_final() -> None:
    """`switchlab run switch-crash-mid-run --ci` ended its bar at 97 % ("3.83k/3.93k") while
    its summary said all 3,928 were final: the switch's last sample missed rows the treasury
    stopped or resolved. The treasury's final count ends the bar."""
    shown = io.StringIO()
    treasury = SimpleNamespace(elapsed_s=1.0, latencies=[0.0] * 3_928)
    monitor = Monitor(SimpleNamespace(treasury=treasury), total=3_928)  # type: ignore[arg-type]
    monitor.progress = Progress("switch-crash-mid-run", 3_928, stream=shown)
    monitor.progress.update_to(3_830)  # the switch's last sample
    asyncio.run(monitor.finish(final_rows=3_928))
    assert "100%" in shown.getvalue() and "3928/3928" in shown.getvalue().replace("3.93k", "3928")
    assert monitor.progress is None and monitor.finished


def test_issue_24_a_postgresql_run_names_its_real_journal_not_a_sqlite_file(
        tmp_path: Path) -> None:
    """The banner and the switch's configuration named run/switch.sqlite on PostgreSQL runs,
    where no such file exists; they name the database (without its password) instead."""

    sockets = {TREASURY_BIC: SimpleNamespace(base_url="http://127.0.0.1:9")}

    url = "postgresql://switch:s3cret@127.0.0.1:5433/switchlab"
    on_postgres = World(WorldSettings(run_dir=tmp_path, behaviours={}, switch_processes=2,
                                      switch_settings={"journal_url": url}))
    assert on_postgres.journal_named() == (
        "journal postgresql://switch@127.0.0.1:5433/switchlab, 2 switch processes")
    assert "journal_path" not in on_postgres._switch_config(sockets)["switch"]
    on_sqlite = World(WorldSettings(run_dir=tmp_path, behaviours={}))
    assert on_sqlite.journal_named() == f"journal {tmp_path.resolve() / 'switch.sqlite'}"
    assert on_sqlite._switch_config(sockets)["switch"]["journal_path"] == str(
        tmp_path.resolve() / "switch.sqlite")
