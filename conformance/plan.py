"""The test plan: every conformance case registered under a stable id with its version, its
tags, the role and optional feature that make it mandatory (conformance/declaration.py), what
the bank must do and the defect it exists to catch (as scenarios/timeline.py registers
actions). `--case` and `--tag` choose among them; `switchlab conformance --plan` prints the
plan docs/conformance.md publishes.

The cases themselves are in conformance/cases.py (the creditor's), debtor_cases.py,
hostile_cases.py and reconciliation.py; conformance/catalogue.py imports them in the order a
run takes them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from banks.registry import PARTICIPANTS
from conformance.relay import Exchange
from scenarios.named import Registry

if TYPE_CHECKING:
    from conformance.context import Context

Run = Callable[["Context"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Case:
    name: str  # the case's id in the test plan, never reused for another check
    title: str
    tags: tuple[str, ...]
    expected: str  # what the bank must do, as the report shows it
    run: Run
    version: int = 1  # raised whenever what the case asks of the bank changes
    role: str = "creditor"  # creditor, debtor or any: mandatory when the bank declares it
    feature: str | None = None  # an optional feature (declaration.FEATURES) it needs
    catches: str = ""  # the defect it exists to catch, as the test plan says it

    @property
    def plan_id(self) -> str:
        """`creditor.accept@1`: the id and version a report and the test plan name."""
        return f"{self.name}@{self.version}"


CASES: Registry[Case] = Registry("conformance case")


def case(name: str, title: str, tags: tuple[str, ...], expected: str, *, version: int = 1,
         role: str | None = None, feature: str | None = None, catches: str = ""
         ) -> Callable[[Run], Run]:
    """Register a case under `name`; its role is its first of the tags creditor and debtor,
    else any. Raises ValueError if the name is taken."""
    role = role or next((t for t in tags if t in ("creditor", "debtor")), "any")

    def register(run: Run) -> Run:
        CASES.add(name, Case(name, title, tags, " ".join(expected.split()), run, version,
                             role, feature, " ".join(catches.split())))
        return run
    return register


def other_bank(bic: str) -> str:
    """A BIC of the lab that is not `bic`: the receiver a misaddressed message names."""
    return next(other for other in PARTICIPANTS if other != bic)


def exchanges_of(name: str, exchanges: list[Exchange]) -> list[Exchange]:
    return [e for e in exchanges if e.case == name]
