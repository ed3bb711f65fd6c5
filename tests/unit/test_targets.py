"""`switchlab bench`'s targets: which figure each bound reads and when `--check` fails."""

from __future__ import annotations

from conformance import command as conformance_command
from switchlab.bench import Figure
from switchlab.targets import (
    MET_EXIT,
    MISSED_EXIT,
    PARTIAL_EXIT,
    TARGETS,
    Target,
    check,
    gate,
    verdict_table,
)


def run_figures(instant_per_s: float, bulk_per_s: float) -> list[Figure]:
    return [
        Figure("instant: end to end, durable journal", instant_per_s, "transfers/s", 6_000.0),
        Figure("instant: p99 at half rate (1,500/s)", 21.0, "ms"),
        Figure("bulk: 979,905 transfers end to end", bulk_per_s, "transfers/s", 6_000.0),
        Figure("bulk: time for the whole payout", 80.0, "s"),
    ]


def test_a_ratio_reads_value_over_the_floor_of_the_same_run() -> None:
    verdicts = {v.target.measure: v for v in check(run_figures(3_300.0, 12_500.0))}
    instant = verdicts["instant: end to end, durable journal"]
    assert instant.got == 3_300.0 / 6_000.0 and instant.met is True
    assert verdicts["instant: p99 at half rate"].met is True
    assert verdicts["instant: p99 at half rate"].figure == "instant: p99 at half rate (1,500/s)"


def test_bulk_rate_is_the_end_to_end_figure_whatever_the_count() -> None:
    bulk = next(v for v in check(run_figures(3_300.0, 9_000.0)) if v.target.measure == "bulk: ")
    assert (bulk.figure, bulk.got, bulk.met) == ("bulk: 979,905 transfers end to end", 9_000.0,
                                                 False)


def test_what_a_run_did_not_measure_is_neither_met_nor_missed() -> None:
    verdicts = check(run_figures(2_000.0, 12_500.0))
    unmeasured = {v.target.measure for v in verdicts if v.met is None}
    assert "bulk: peak memory of the switch process" in unmeasured
    assert [v.target.measure for v in verdicts if v.met is False] == [
        "instant: end to end, durable journal"]
    assert "MISSED" in verdict_table(verdicts) and "not measured" in verdict_table(verdicts)


def test_an_upper_bound_is_met_up_to_and_including_it() -> None:
    at_most = Target("x", "value", at_most=25.0)
    assert at_most.met_by(25.0) and not at_most.met_by(25.01)
    assert all((t.at_least is None) != (t.at_most is None) for t in TARGETS)


def test_issue_26_a_bulk_target_not_measured_is_named_without_a_placeholder() -> None:
    """`switchlab bench --bulk-beneficiaries 0` showed a row named `bulk: … transfers end to
    end`, with a literal '…'."""
    table = verdict_table(check(run_figures(3_300.0, 0.0)[:2]))
    bulk = next(line for line in table.splitlines() if "end to end" in line
                and line.strip().startswith("bulk"))
    assert "…" not in table
    assert bulk.split()[:5] == ["bulk:", "transfers", "end", "to", "end"]
    assert bulk.endswith("not measured")


def test_issue_newuser3_finding1_a_check_over_some_targets_says_it_is_partial() -> None:
    """`--check` passed (exit 0) when the run measured only some targets (no bulk payout):
    a gate over part of the targets now says so and exits 4, as a partial conformance run."""
    measured_all = [Figure(f"{t.measure}x{t.ending}", 1.0, "", 1.0) for t in TARGETS]
    every = [Target(t.measure, t.on, 0.0 if t.at_least is not None else None,
                    2.0 if t.at_most is not None else None, t.ending) for t in TARGETS]
    assert gate(check(measured_all, every)) == (
        MET_EXIT, f"every one of the {len(TARGETS)} targets measured and met")
    status, said = gate(check(measured_all[:2], every))
    assert status == PARTIAL_EXIT == conformance_command.PARTIAL_EXIT
    assert said.startswith(f"PARTIAL: 2 of {len(TARGETS)} targets measured, all met; "
                           f"{len(TARGETS) - 2} targets not measured by this run (")
    status, said = gate(check(run_figures(2_000.0, 12_500.0)))
    assert status == MISSED_EXIT and said.startswith("1 target missed: instant: end to end")
