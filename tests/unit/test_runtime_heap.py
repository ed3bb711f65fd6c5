"""Issue #28: the bench's load generator holds every message of its run; a full collection of
that heap paused it for 300 ms, which the p99 at half rate charged to the switch. Its timed
loops run with the heap settled (`settled_heap`), and the process's collector is as it was
after them (the bulk payout runs next in the same process)."""

from __future__ import annotations

import gc

from protocol.runtime import settled_heap


def test_issue_28_no_full_collection_within_the_timed_loops_and_the_collector_back_after(
) -> None:
    made_before = [{"message": n} for n in range(1_000)]
    thresholds = gc.get_threshold()
    full_collections = gc.get_stats()[2]["collections"]
    young_collected_before = sum(stats["collected"] for stats in gc.get_stats()[:2])
    with settled_heap():
        assert gc.get_freeze_count() >= len(made_before)
        kept = []  # what the generator keeps: an answer per transfer
        for _ in range(200_000):
            cycle: list[object] = []  # garbage in a cycle: the young generations collect it
            cycle.append(cycle)
            kept.append([])
        young_collected = sum(stats["collected"] for stats in gc.get_stats()[:2])
        assert young_collected >= young_collected_before + 100_000
        assert gc.get_stats()[2]["collections"] == full_collections + 1  # settling's own
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds
