"""The performance targets `switchlab bench` checks its figures against (`--check` makes a
missed one exit 1, so that a pipeline can gate on it).

Ratios are to floors measured in the same run, so they hold on any hour; the absolute bounds
(bulk rate, latency, memory) are the scheme's needs on this class of machine: a
1,000,000-beneficiary payout in under 85 s is 12,000 transfers/s, and NAPAS' stated capacity is
about 3,500 instant transfers/s for the whole country.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from protocol.wording import count

MET_EXIT, MISSED_EXIT, PARTIAL_EXIT = 0, 1, 4  # --check's exit statuses (`gate`)


class Measured(Protocol):
    name: str
    value: float
    floor: float | None


@dataclass(frozen=True, slots=True)
class Target:
    """A bound on one figure: its `value` or its `ratio` to the floor of the same run. The
    figure is the one whose name starts with `measure` and ends with `ending` (bulk figures
    carry their transfer count in the middle)."""

    measure: str
    on: Literal["value", "ratio"]
    at_least: float | None = None
    at_most: float | None = None
    ending: str = ""

    @property
    def label(self) -> str:
        """The target's name in the table when the run did not measure its figure: the
        figure's name without the part that varies ("bulk: transfers end to end")."""
        return f"{self.measure}{self.ending.strip()}" if self.ending else self.measure

    def names(self, figure: Measured) -> bool:
        return figure.name.startswith(self.measure) and figure.name.endswith(self.ending)

    def wants(self) -> str:
        what = "ratio" if self.on == "ratio" else "value"
        return (f"{what} ≥ {self.at_least:,g}" if self.at_least is not None
                else f"{what} ≤ {self.at_most:,g}")

    def reading(self, figure: Measured) -> float | None:
        if self.on == "value":
            return figure.value
        return figure.value / figure.floor if figure.floor else None

    def met_by(self, got: float) -> bool:
        return ((self.at_least is None or got >= self.at_least)
                and (self.at_most is None or got <= self.at_most))


TARGETS = (
    Target("instant: end to end, durable journal", "ratio", at_least=0.5),
    Target("instant: switch process CPU per transfer", "ratio", at_most=2.1),
    Target("instant: p99 at half rate", "value", at_most=25.0),
    Target("bulk: ", "value", at_least=12_000.0, ending=" transfers end to end"),
    Target("bulk: peak memory of the switch process", "value", at_most=512.0),
    Target("bulk: peak memory, largest participant process", "value", at_most=512.0),
    Target("peak memory of the treasury and load generator", "value", at_most=512.0),
    Target("codec µs per transaction (decode+encode)", "ratio", at_most=2.0),
    # Issue #24, with --journal: the shared rows serialise at most 25 µs a transfer (a ceiling
    # of 40,000/s); several processes at least as fast as one; one process on PostgreSQL
    # within 20 % of SQLite (the floor of its row).
    Target("cluster: serialised, in the database", "value", at_most=25.0),
    Target("cluster: instant, ", "ratio", at_least=1.0, ending=" processes against 1"),
    Target("cluster: instant, 1 process, PostgreSQL", "ratio", at_least=0.8),
)


@dataclass(frozen=True, slots=True)
class Verdict:
    target: Target
    figure: str | None  # the figure's full name; None when this run did not measure it
    got: float | None

    @property
    def met(self) -> bool | None:
        return None if self.got is None else self.target.met_by(self.got)

    def row(self) -> str:
        outcome = {True: "met", False: "MISSED", None: "not measured"}[self.met]
        got = "" if self.got is None else f"{self.got:,.2f}"
        name = self.figure or self.target.label
        return f"  {name:<48} {self.target.wants():>16} {got:>12} {outcome}"


def check(figures: Iterable[Measured], targets: Iterable[Target] = TARGETS) -> list[Verdict]:
    """Each target beside the first figure it names; a target this run did not measure (no
    bulk payout, no CPU figure where /proc is missing) is neither met nor missed."""
    figures = list(figures)
    verdicts = []
    for target in targets:
        figure = next((f for f in figures if target.names(f)), None)
        got = None if figure is None else target.reading(figure)
        verdicts.append(Verdict(target, None if figure is None else figure.name, got))
    return verdicts


def verdict_table(verdicts: list[Verdict]) -> str:
    header = f"  {'target':<48} {'wants':>16} {'got':>12} outcome"
    return "\n".join([header, "  " + "-" * (len(header) + 6)] + [v.row() for v in verdicts])


def gate(verdicts: list[Verdict]) -> tuple[int, str]:
    """--check's exit status and its sentence: MISSED_EXIT when a target was missed,
    PARTIAL_EXIT when none was but some were not measured (the gate judged only part of the
    targets: not a verdict on the others), MET_EXIT when every target was measured and met."""
    missed = [v.target.label for v in verdicts if v.met is False]
    unmeasured = [v.target.label for v in verdicts if v.met is None]
    partial = (f"; {count(len(unmeasured), 'target')} not measured by this run "
               f"({', '.join(unmeasured)})" if unmeasured else "")
    if missed:
        return MISSED_EXIT, f"{count(len(missed), 'target')} missed: {', '.join(missed)}{partial}"
    if unmeasured:
        return PARTIAL_EXIT, (f"PARTIAL: {len(verdicts) - len(unmeasured)} of "
                              f"{count(len(verdicts), 'target')} measured, all met{partial}: "
                              "not a verdict on those")
    return MET_EXIT, f"every one of the {count(len(verdicts), 'target')} measured and met"
