"""Every conformance case, in the order a run takes them: the creditor's, its verification
and returns, the debtor's, what a hostile peer sends, and the reconciliation of the bank's
books, which ends every run. Import CASES from here: it holds every case in this order,
whatever imported what first."""

from __future__ import annotations

import importlib

from conformance import plan
from conformance.plan import Case
from scenarios.named import Registry

ORDER = ("conformance.cases", "conformance.verification_cases", "conformance.return_cases",
         "conformance.notice_cases", "conformance.debtor_cases", "conformance.hostile_cases",
         "conformance.reconciliation")
for _module in ORDER:  # each registers its cases in conformance.plan on import
    importlib.import_module(_module)
CASES: Registry[Case] = Registry("conformance case")
for _module in ORDER:
    for _case in plan.CASES.values():
        if _case.run.__module__ == _module:
            CASES.add(_case.name, _case)


def selected(names: list[str], tags: list[str]) -> list[Case]:
    """The cases named or carrying one of the tags, in the registry's order; all when both
    are empty. Raises ValueError naming an unknown case or tag."""
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise ValueError(f"no case {', '.join(unknown)}; `switchlab conformance --list` "
                         "lists them")
    known_tags = {tag for c in CASES.values() for tag in c.tags}
    strange = [t for t in tags if t not in known_tags]
    if strange:
        raise ValueError(f"no tag {', '.join(strange)}; the tags are "
                         f"{', '.join(sorted(known_tags))}")
    if not names and not tags:
        return list(CASES.values())
    return [c for c in CASES.values() if c.name in names or set(c.tags) & set(tags)]
