"""Running the suite: start the lab, check that the bank answers at all, run the chosen cases
one after another, and give each its verdict with its evidence.

Verdicts: passed; failed (the case's own sentence, or the first rule a message of the bank
broke); not applicable (the scheme never does what the case is about, or the bank never, in
the whole run, takes the path it tests: confirm_not_applicable); not run (not chosen,
or something the bank must supply is missing: an account role, an optional hook).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from banks.accounts_file import TestAccount
from banks.registry import SWITCH_BIC
from conformance.catalogue import CASES, Case
from conformance.context import CaseFailed, Context, NotApplicable, NotRun, Roles
from conformance.credentials import SuiteKeys
from conformance.declaration import Declaration
from conformance.lab import Lab, LabSettings
from conformance.plan import exchanges_of
from conformance.reconciliation import take_opening_balances
from conformance.relay import Exchange
from conformance.rules import Rules, Schemas
from protocol.codec import new_id
from protocol.keys import read_private_key
from protocol.messages import VerificationItem, VerificationRequest
from protocol.runtime import BoundSocket

PASSED, FAILED, NOT_APPLICABLE, NOT_RUN = "passed", "failed", "not applicable", "not run"
# The run's verdict (RunResult.verdict), each with its exit status in conformance/command.py
CONFORMS, DOES_NOT_CONFORM, PARTIAL_RUN, NOT_TESTED = (
    "CONFORMS", "DOES NOT CONFORM", "PARTIAL RUN", "NOT TESTED")
CASE_TIMEOUT_S = 180.0  # the bulk case's deadline and its confirmations fit well inside
QUIET_TIMEOUT_S = 15.0  # after a case, for the bank's late messages to land in it
SETUP = "(before the cases)"
ALWAYS_RUN = ("reconciliation.books",)  # ends every run, whatever --case and --tag chose


@dataclass
class CaseResult:
    case: Case
    verdict: str
    wrong: str | None = None  # what was wrong, in one sentence
    problems: list[str] = field(default_factory=list)  # every rule a message broke
    notes: list[str] = field(default_factory=list)
    measured: list[str] = field(default_factory=list)  # e.g. "p50 12 ms", on its line
    exchanges: list[Exchange] = field(default_factory=list)
    duration_s: float = 0.0
    chosen: bool = True  # by --case and --tag (all when neither is given)
    mandatory: bool = True  # by the bank's declaration: otherwise conditional
    # why it is not applicable, when that is a choice the bank made during the case: the
    # whole run must agree (confirm_not_applicable)
    not_applicable: NotApplicable | None = None


@dataclass
class SuiteSettings:
    participant_url: str
    bic: str
    keys: SuiteKeys
    accounts: list[TestAccount]
    cases: list[Case]
    run_dir: Path
    schemas: Schemas
    burst: int = 20
    declaration: Declaration = field(default_factory=Declaration)
    creditor_timeout_s: float = 5.0  # the switch's deadline for the bank's answer
    switch_host: str = "127.0.0.1"
    switch_port: int = 0
    switch_socket: BoundSocket | None = None  # bound already (LabSettings)


@dataclass
class RunResult:
    settings: SuiteSettings
    started_at: datetime
    switch_url_for_bank: str = ""
    duration_s: float = 0.0
    results: list[CaseResult] = field(default_factory=list)
    setup: list[Exchange] = field(default_factory=list)
    stopped_because: str | None = None  # the bank could not be tested at all

    @property
    def complete(self) -> bool:
        """Every case the declaration makes mandatory was run: none left out by --case or
        --tag, none not run for want of an account or a hook."""
        return self.stopped_because is None and all(
            r.verdict != NOT_RUN for r in self.results if r.mandatory)

    @property
    def passed(self) -> bool:
        """The run is complete and every mandatory case passed (or does not apply): a run of
        some cases proves nothing of the others, so it never passes."""
        return self.complete and all(r.verdict in (PASSED, NOT_APPLICABLE)
                                     for r in self.results if r.mandatory)

    @property
    def verdict(self) -> str:
        """One of VERDICTS: NOT TESTED (the bank could not be tested at all), DOES NOT
        CONFORM (a mandatory case failed, or could not run for want of what the bank must
        supply), PARTIAL RUN (no mandatory case failed, but some were not chosen: not a
        conformance verdict) or CONFORMS."""
        if self.stopped_because is not None:
            return NOT_TESTED
        if any(r.mandatory and (r.verdict == FAILED or (r.chosen and r.verdict == NOT_RUN))
               for r in self.results):
            return DOES_NOT_CONFORM
        return CONFORMS if self.passed else PARTIAL_RUN

    def left_out(self) -> list[CaseResult]:
        """The mandatory cases --case and --tag did not choose."""
        return [r for r in self.results if r.mandatory and not r.chosen]

    def counts(self) -> dict[str, int]:
        return {verdict: sum(r.verdict == verdict for r in self.results)
                for verdict in (PASSED, FAILED, NOT_APPLICABLE, NOT_RUN)}


def rules_for(settings: SuiteSettings) -> Rules:
    credentials = settings.keys.credentials()
    switch_key = (credentials.own if settings.keys.signing == "hmac"
                  else read_private_key(settings.keys.switch_private_key or "").verify_key())
    return Rules(settings.bic, SWITCH_BIC, credentials.peer, switch_key,  # type: ignore[arg-type]
                 settings.schemas)


async def run_suite(settings: SuiteSettings, started: asyncio.Event | None = None
                    ) -> RunResult:
    """Run the chosen cases against the bank; `started` is set once the lab listens (so a
    caller can print where the bank reaches the switch). Raises LabError when the lab cannot
    start."""
    result = RunResult(settings, datetime.now(UTC))
    lab = Lab(LabSettings(settings.participant_url, settings.bic, settings.keys,
                          settings.run_dir, settings.switch_host, settings.switch_port,
                          settings.switch_socket, settings.creditor_timeout_s))
    clock_s = time.monotonic()
    try:
        await lab.start()
        result.switch_url_for_bank = lab.switch_url_for_bank
        if started is not None:
            started.set()
        roles = Roles.of(settings.accounts)
        lab.set_case(SETUP)
        result.stopped_because = await preflight(lab, roles)
        rules = rules_for(settings)
        if result.stopped_because is None:
            with contextlib.suppress(CaseFailed):  # no hook: the reconciliation says so
                await take_opening_balances(Context(lab, roles, settings.burst, rules))
        await lab.quiet(timeout_s=QUIET_TIMEOUT_S)
        result.setup = exchanges_of(SETUP, lab.exchanges())
        if result.stopped_because is None:
            for case in CASES.values():
                if case in settings.cases or case.name in ALWAYS_RUN:
                    ran = await _run_case(lab, roles, settings, rules, case)
                else:
                    ran = CaseResult(case, NOT_RUN, "not chosen (--case, --tag)", chosen=False)
                ran.mandatory = settings.declaration.requires(case.role, case.feature)
                result.results.append(ran)
            confirm_not_applicable(result.results)
    finally:
        await lab.stop()
        result.duration_s = time.monotonic() - clock_s
    return result


async def preflight(lab: Lab, roles: Roles) -> str | None:
    """Why the bank cannot be tested at all (unreachable, or refusing the switch's
    signature), or None. Asks one harmless question: an acmt.023 about its open account."""
    account = next(iter(roles.by_status.values()))
    request = VerificationRequest(
        msg_id=new_id("CNP"), created_at=datetime.now(UTC), assigner_bic=SWITCH_BIC,
        assignee_bic=lab.bic, items=[VerificationItem(
            "P1", account.holder_name, account.citizen_id, account.account_id, lab.bic)])
    url = lab.settings.participant_url
    try:
        answer = await lab.post_to_bank(lab.encode(request))
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        return f"the bank at {url} did not answer: {error or type(error).__name__}"
    assert lab.to_bank is not None
    last = lab.to_bank.exchanges[-1] if lab.to_bank.exchanges else None
    if last is not None and last.error is not None:
        return f"cannot reach the bank at {url}: {last.error}"
    if answer.status == 401:
        hint = (" (in hmac signing the secret is the text of secret.txt without its final "
                "newline)" if lab.settings.keys.signing == "hmac" else "")
        return (f"the bank refused the switch's signature (HTTP 401 "
                f"{answer.body[:160].decode(errors='replace').strip()!r}): configure it with "
                f"the credentials printed above{hint}, then run again")
    if answer.status == 404:
        return f"the bank answers 404 at {url}: is that its inbound URL?"
    return None


async def _run_case(lab: Lab, roles: Roles, settings: SuiteSettings, rules: Rules,
                    case: Case) -> CaseResult:
    lab.set_case(case.name)
    context = Context(lab, roles, settings.burst, rules)
    result = CaseResult(case, PASSED, notes=context.notes, measured=context.measured)
    clock_s = time.monotonic()
    try:
        await asyncio.wait_for(case.run(context), CASE_TIMEOUT_S)
    except CaseFailed as failure:
        result.verdict, result.wrong = FAILED, str(failure)
    except NotApplicable as why:
        result.verdict, result.wrong, result.not_applicable = NOT_APPLICABLE, str(why), why
    except NotRun as why:
        result.verdict, result.wrong = NOT_RUN, str(why)
    except TimeoutError:
        result.verdict = FAILED
        result.wrong = f"the case did not finish within {CASE_TIMEOUT_S:g} s"
    except (aiohttp.ClientError, OSError) as error:
        result.verdict = FAILED
        result.wrong = f"the suite lost the bank: {error or type(error).__name__}"
    result.duration_s = time.monotonic() - clock_s
    await lab.quiet(timeout_s=QUIET_TIMEOUT_S)
    lab.set_case(None)
    result.exchanges = exchanges_of(case.name, lab.exchanges())
    result.problems = [f"{problem} (exchange {number})"
                       for number, exchange in enumerate(result.exchanges, start=1)
                       for problem in rules.check(exchange)]
    if result.problems and result.verdict in (PASSED, NOT_RUN, NOT_APPLICABLE):
        result.verdict, result.wrong = FAILED, result.problems[0]
    await lab.reset_breaker()
    return result


def confirm_not_applicable(results: list[CaseResult]) -> None:
    """Fail each case found not applicable for a choice the bank made while it ran
    (NotApplicable.path_seen) when an exchange of another case shows the bank taking that
    path after all: the path exists for this bank and the case never tried it. Judged once
    every case has run, from what the relays recorded (docs/conformance.md, "Verdicts"; the
    attacker's report 3, finding 6: a bank answered creditor.late-answer's one transfer 200
    and its 202 path went untested, yet the run said CONFORMS)."""
    for result in results:
        why = result.not_applicable
        if result.verdict != NOT_APPLICABLE or why is None or why.path_seen is None:
            continue
        seen = next(((other.case.name, number) for other in results
                     for number, exchange in enumerate(other.exchanges, start=1)
                     if why.path_seen(exchange)), None)
        if seen is not None:
            result.verdict = FAILED
            result.wrong = (f"the bank {why.path} in {seen[0]} (exchange {seen[1]}) but not "
                            "in this case, so the path exists for it and this case did not "
                            "exercise it (not applicable only to a bank that never does)")
