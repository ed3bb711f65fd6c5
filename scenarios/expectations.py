"""A scenario's own expectations, on top of the invariants every run is held to.

Each expectation is registered by name with `@expectation`, with the type of the value a
scenario file gives it; the file's `expect:` section is a model made from the registry, so
what a file may expect is exactly what is written here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, create_model

from banks.behaviour import ReasonCode
from banks.config_types import LabParticipantBic
from banks.payout import LatencyLog, PayoutResult, PayoutStatus, percentile
from banks.population import Population, Share
from protocol import reasons
from protocol.wording import count
from scenarios.named import Registry

MAX_COUNT = 10_000_000  # a payout day's transfers
MAX_REASONS = 50
MAX_BUGS = 20
Count = Annotated[int, Field(ge=0, le=MAX_COUNT, strict=True)]

# Protocol bugs a run can find in a participant, each by the ledger total that counts it
# (`GET /admin/ledger` of the mock participant).
BUG_COUNTERS: dict[str, str] = {
    "credit_before_confirmation": "credited_before_confirmation",  # credited on ACCP
}
BugKind = Literal[tuple(BUG_COUNTERS)]  # type: ignore[valid-type]


class Bug(BaseModel):
    """A protocol bug in one participant, as a scenario expects it to be found."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    participant: LabParticipantBic
    kind: BugKind


def bugs_in(bank_totals: list[Mapping[str, Any]]) -> dict[Bug, int]:
    """Every protocol bug the participants' ledgers show, with how many transfers it hit."""
    return {Bug(participant=totals["bic"], kind=kind): int(totals.get(counter, 0))
            for totals in bank_totals for kind, counter in BUG_COUNTERS.items()
            if totals.get(counter)}


@dataclass(frozen=True, slots=True)
class Check:
    """One pass-or-fail line of a run's verdict; invariants hold on every run."""

    name: str
    passed: bool
    detail: str
    invariant: bool = False


@dataclass(frozen=True, slots=True)
class Observed:
    """What a run produced that expectations look at."""

    result: PayoutResult
    latencies: LatencyLog  # submission to final status, every transfer
    duplicates_refused: int
    bank_totals: list[dict[str, Any]] = field(default_factory=list)  # GET /admin/ledger each
    # End-to-end ids of payments aimed at an account someone else holds (the population's
    # ground truth, which the scheme itself never sees).
    wrong_holders: frozenset[str] = frozenset()
    population: Population | None = None  # the ground truth, for the identity expectations
    # The post office's list of those without an account, as the ministry checked it against
    # the population register (None: not checked).
    cash_without_account: list[dict[str, object]] | None = None
    # Transfers each switch process made final, by process id (World.final_by_process), and
    # how many processes the run started.
    final_by_process: Mapping[str, int] = field(default_factory=dict)
    switch_processes: int = 1

    @property
    def paid_share(self) -> float:
        """Beneficiaries with an account who were paid (and kept it), 0 to 1."""
        return self.result.by_status[PayoutStatus.PAID] / (len(self.result.outcomes) or 1)


Judge = Callable[[Any, Observed], list[Check]]


@dataclass(frozen=True, slots=True)
class Expectation:
    name: str
    value_type: Any  # what the scenario file writes after the name
    judge: Judge


EXPECTATIONS: Registry[Expectation] = Registry("expectation")


def expectation(name: str, value_type: Any) -> Callable[[Judge], Judge]:
    """Register an expectation under `name`; raises ValueError if the name is taken."""
    def register(judge: Judge) -> Judge:
        EXPECTATIONS.add(name, Expectation(name, value_type, judge))
        return judge
    return register


@expectation("paid_by_account_min", Share)
def paid_by_account_min(want: float, run: Observed) -> list[Check]:
    """At least this share of beneficiaries with an account paid (0 to 1)."""
    return [Check("paid by account at least", run.paid_share >= want,
                  f"{run.paid_share:.2%} paid (want ≥ {want:.2%})")]


@expectation("paid_by_account_max", Share)
def paid_by_account_max(want: float, run: Observed) -> list[Check]:
    """At most this share of beneficiaries with an account paid (0 to 1)."""
    return [Check("paid by account at most", run.paid_share <= want,
                  f"{run.paid_share:.2%} paid (want ≤ {want:.2%})")]


@expectation("latency_ms_p99_max", Annotated[float, Field(gt=0, le=3_600_000)])
def latency_ms_p99_max(want: float, run: Observed) -> list[Check]:
    """The 99th percentile of end-to-end latency (a transfer's first submission to its final
    status at the treasury, bulk or instant), in ms, at most this."""
    p99 = percentile(list(run.latencies.latency_ms), 99)
    return [Check("p99 end-to-end latency", bool(run.latencies) and p99 <= want,
                  f"p99 {p99:.1f} ms over {count(len(run.latencies), 'transfer')} "
                  f"(want ≤ {want} ms)")]


@expectation("max_unresolved", Count)
def max_unresolved(want: int, run: Observed) -> list[Check]:
    """At most this many transfers without a final status."""
    unresolved = run.result.by_status[PayoutStatus.UNRESOLVED]
    return [Check("unresolved at most", unresolved <= want, f"{unresolved} unresolved")]


@expectation("reasons_present", Annotated[list[ReasonCode], Field(max_length=MAX_REASONS)])
def reasons_present(want: list[str], run: Observed) -> list[Check]:
    """Each of these ISO 20022 reason codes seen on at least one transfer."""
    return [Check(f"reason {code} seen", run.result.by_reason[code] > 0,
                  f"{run.result.by_reason[code]} transfers with {code}") for code in want]


@expectation("returns_min", Count)
def returns_min(want: int, run: Observed) -> list[Check]:
    """At least this many transfers returned (pacs.004)."""
    returned = run.result.by_status[PayoutStatus.RETURNED]
    return [Check("returns at least", returned >= want, f"{returned} returned")]


@expectation("duplicates_refused_min", Count)
def duplicates_refused_min(want: int, run: Observed) -> list[Check]:
    """At least this many resubmitted transfers refused as duplicates (DUPL)."""
    return [Check("duplicates refused", run.duplicates_refused >= want,
                  f"{count(run.duplicates_refused, 'resubmitted transfer')} refused DUPL")]


@expectation("bugs_found", Annotated[list[Bug], Field(min_length=1, max_length=MAX_BUGS)])
def bugs_found(want: list[Bug], run: Observed) -> list[Check]:
    """Protocol bugs this run must find, each naming the participant and the kind (e.g.
    `{participant: ICBVVNVX, kind: credit_before_confirmation}`): found is a pass, not found
    a failure. The invariant the bug breaks then excuses that participant for that bug."""
    found = bugs_in(run.bank_totals)
    return [Check(f"bug found: {bug.kind} at {bug.participant}", found.get(bug, 0) > 0,
                  f"{bug.participant} did it on {count(found.get(bug, 0), 'transfer')} "
                  f"(expected: the run must find it)") for bug in want]
@expectation("each_process_final_share_min", Share)
def each_process_final_share_min(want: float, run: Observed) -> list[Check]:
    """Several switch processes on one port: each made final at least this share of an even
    split of the transfers made final (0.1: a tenth of total/processes), counted by each
    process's own /metrics. Where the rule comes from: SO_REUSEPORT gives each new
    connection to any process, and a kept-alive connection has a bounded life
    (switch/app.py: MAX_REQUESTS_PER_CONNECTION, MAX_CONNECTION_AGE_S), so a process that
    serves gets its share of the connections; one left idle, or that took none, fails."""
    counts = run.final_by_process
    total = sum(counts.values())
    floor = want * total / max(run.switch_processes, 1)
    answered = Check("every switch process answered", len(counts) == run.switch_processes,
                     f"{len(counts)} of {count(run.switch_processes, 'process', 'processes')}"
                     " answered GET /metrics")
    return [answered, *(Check(f"share made final by {process}", made >= floor and made > 0,
                              f"{made:,} of {total:,} ({made / (total or 1):.0%}); want ≥ "
                              f"{floor:,.0f}, {want:.0%} of an even split")
                        for process, made in sorted(counts.items()))]


@expectation("wrong_holders_stopped", StrictBool)
def wrong_holders_stopped(want: bool, run: Observed) -> list[Check]:
    """Every payment aimed at an account whose holder is someone else is stopped by
    verification (acmt.023), none is paid, and each is on the cash list with its reason."""
    if not want:
        return []
    outcomes = [o for o in run.result.outcomes if o.payment.end_to_end_id in run.wrong_holders]
    paid = [o for o in outcomes if o.status in (PayoutStatus.PAID, PayoutStatus.RETURNED)]
    stopped = [o for o in outcomes if o.status == PayoutStatus.STOPPED]
    listed = {row["end_to_end_id"] for row in run.result.cash_list_rows()
              if row["reason_vi"] and row["reason_en"] and row["reason_code"]}
    unlisted = [o for o in outcomes if o.payment.end_to_end_id not in listed]
    return [
        Check("none paid to someone else's account", bool(outcomes) and not paid,
              f"{len(paid)} of {count(len(outcomes), 'payment')} to another holder's account paid"),
        Check("verification stopped every one", len(stopped) == len(outcomes),
              f"{len(stopped)} of {len(outcomes)} stopped before paying"),
        Check("each on the cash list with its reason", bool(outcomes) and not unlisted,
              f"{len(outcomes) - len(unlisted)} of {len(outcomes)} listed with a reason"),
    ]


@expectation("died_since_list_stopped", StrictBool)
def died_since_list_stopped(want: bool, run: Observed) -> list[Check]:
    """Everyone who died after the ministry's list was made (the population register knows)
    is found before paying: none paid, each stopped MD07 and on the list back to the
    ministry, none on the post office's cash list (with or without an account)."""
    if not want:
        return []
    population = run.population
    assert population is not None
    dead = {b.end_to_end_id for b in population.beneficiaries if b.died_after_list}
    outcomes = [o for o in run.result.outcomes if o.payment.end_to_end_id in dead]
    paid = [o for o in outcomes if o.status in (PayoutStatus.PAID, PayoutStatus.RETURNED)]
    stopped = [o for o in outcomes if o.status == PayoutStatus.STOPPED
               and o.reason_code == reasons.CREDITOR_DECEASED]
    reported = {row["end_to_end_id"] for row in run.result.deceased_rows()}
    on_cash = {row["end_to_end_id"] for row in run.result.cash_list_rows(
        run.cash_without_account or [])} & dead
    return [
        Check("died since the list: some in the run", bool(dead),
              f"{len(dead):,} died since the list, {len(outcomes):,} of them in the table"),
        Check("died since the list: none paid", not paid,
              f"{len(paid)} of {len(outcomes)} paid"),
        Check("died since the list: each stopped MD07 before paying",
              len(stopped) == len(outcomes),
              f"{len(stopped)} of {len(outcomes)} stopped MD07"),
        Check("died since the list: each reported to the ministry",
              all(o.payment.end_to_end_id in reported for o in outcomes),
              f"{len(reported & dead)} of {len(outcomes)} on the deceased list"),
        Check("died since the list: none on the cash list", run.cash_without_account is not None
              and not on_cash, f"{len(on_cash)} on the post office's cash list"),
    ]


@expectation("households_paid_once", StrictBool)
def households_paid_once(want: bool, run: Observed) -> list[Check]:
    """A household payout (population.household_gift_vnd): one payment per household, to
    its head, for the gift times its members; the households without a linked account on the
    cash list, each for the same amount; none paid twice, none left out."""
    if not want:
        return []
    population = run.population
    assert population is not None
    size = Counter(m.household_id for m in population.members)
    due = {b.end_to_end_id: b.amount_vnd for b in population.beneficiaries}
    gift = population.household_gift_vnd
    wrong_amount = [b for b in population.beneficiaries
                    if b.amount_vnd != gift * (1 + size[b.household_id])
                    or b.household_head != b.citizen_id]
    outcomes = run.result.outcomes
    paid = [o for o in outcomes if o.status == PayoutStatus.PAID
            and o.payment.amount_vnd == due.get(o.payment.end_to_end_id)]
    heads = Counter(o.payment.citizen_id for o in outcomes)
    cash = run.cash_without_account or []
    cash_right = [row for row in cash if due.get(str(row["end_to_end_id"])) == row["amount_vnd"]]
    households = len(population.beneficiaries)
    return [
        Check("households: each row its head's, for the gift times its members",
              not wrong_amount and gift > 0,
              f"{count(households, 'household')}, "
              f"{count(sum(size.values()) + households, 'citizen')}, "
              f"{gift:,} VND each; {count(len(wrong_amount), 'row')} wrong"),
        Check("households: one payment each", all(n == 1 for n in heads.values()),
              f"{count(sum(n > 1 for n in heads.values()), 'household')} paid more than once"),
        Check("households: every linked household paid", len(paid) == len(outcomes),
              f"{len(paid):,} of {len(outcomes):,} paid into the head's linked account"),
        Check("households: the others in cash, for the same amount",
              len(cash_right) == len(cash) == households - len(outcomes),
              f"{len(cash_right):,} of {households - len(outcomes):,} on the cash list"),
    ]


# The `expect:` section of a scenario file: one optional field per registered expectation.
Expect: type[BaseModel] = create_model(
    "Expect", __config__=ConfigDict(extra="forbid", frozen=True),
    **{name: (e.value_type | None, Field(None, description=e.judge.__doc__))
       for name, e in EXPECTATIONS.items()})


def judge(expect: BaseModel, run: Observed) -> list[Check]:
    """The checks of every expectation the scenario names, in the registry's order."""
    checks = []
    for name, entry in EXPECTATIONS.items():
        want = getattr(expect, name)
        if want is not None:
            checks += entry.judge(want, run)
    return checks

