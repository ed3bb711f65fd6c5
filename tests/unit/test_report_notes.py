"""The scenario report's throughput chart says how to read a short run (issue #26 friction 7:
a short bulk run peaked at ~15,000/s for an average of 1,205/s, with no note)."""

from __future__ import annotations

from scenarios.report import throughput_note


def steps(width_s: float, settled: list[float]) -> list[dict[str, float]]:
    return [{"t_s": width_s * (i + 1), "settled_per_s": n, "rejected_per_s": 0.0}
            for i, n in enumerate(settled)]


def test_issue_26_a_short_bulk_run_s_chart_says_its_peak_is_a_burst_beside_the_average(
) -> None:
    note = throughput_note(steps(0.05, [0, 15_000, 0, 9_000, 0]), 1_205)
    assert "Each step is 50 ms wide" in note
    assert "up to 15,000 per second here, where the run's average was 1,205 per second" in note


def test_issue_26_a_chart_of_steps_a_second_or_wider_needs_no_note() -> None:
    assert throughput_note(steps(2.0, [1_000, 1_200]), 1_100) == ""
    assert throughput_note([], 0) == ""
