"""Issue #23: no defective bank passes the conformance suite. Each faulty bank of
tests/faulty_banks.py (the correct mock bank with one defect) fails exactly the case that
names its defect, with a sentence that says what the bank did, and the reconciliation only
where the defect put its books wrong. In process, with a 1 s creditor deadline, a few runs at
a time (the correct bank's whole runs, both signing modes: tests/e2e/test_conformance.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from conformance.catalogue import CASES
from conformance.runner import PASSED, RunResult
from protocol.replay import RequestIds
from tests.conformance_harness import failures, run_in_process
from tests.faulty_banks import FAULTY_BANKS, RECONCILIATION, FaultyBank

RUNS_AT_ONCE = 4
pytestmark = pytest.mark.slow  # 35 runs of the lab: about 40 s on two cores


def test_the_library_covers_every_case_that_catches_a_defect_of_the_issue() -> None:
    named = {bank.case for bank in FAULTY_BANKS}
    assert named <= set(CASES)
    assert len(FAULTY_BANKS) >= 36 and len({b.defect for b in FAULTY_BANKS}) == len(FAULTY_BANKS)


async def test_each_faulty_bank_fails_exactly_the_case_that_names_its_defect(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    room = asyncio.Semaphore(RUNS_AT_ONCE)

    async def run(number: int, bank: FaultyBank) -> RunResult:
        async with room:
            folder = tmp_path / f"bank-{number}"
            folder.mkdir()
            return await run_in_process(folder, [bank.case, *bank.alongside], bank.patch,
                                        behaviour=bank.behaviour)

    async def alone(number: int, bank: FaultyBank) -> RunResult | BaseException:
        """A bank whose server keeps no request ids: run by itself, every server of its run
        (the bank's and the in-process switch's) forgetting them."""
        with monkeypatch.context() as patched:
            patched.setattr(RequestIds, "take", lambda *_args, **_kwargs: True)
            try:
                return await run(number, bank)
            except Exception as error:
                return error

    together = [(n, b) for n, b in enumerate(FAULTY_BANKS) if not b.forgets_request_ids]
    results_of = dict(zip([b.defect for _, b in together], await asyncio.gather(
        *(run(n, bank) for n, bank in together), return_exceptions=True), strict=True))
    for n, bank in enumerate(FAULTY_BANKS):
        if bank.forgets_request_ids:
            results_of[bank.defect] = await alone(n, bank)
    results = [results_of[bank.defect] for bank in FAULTY_BANKS]
    wrong: dict[str, object] = {}
    for bank, result in zip(FAULTY_BANKS, results, strict=True):
        if isinstance(result, BaseException):
            wrong[bank.defect] = repr(result)
            continue
        failed = failures(result)
        sentence = failed.get(bank.case) or ""
        if set(failed) != {bank.case, *bank.also_fails} or bank.says not in sentence or (
                "\n" in sentence) or result.passed:
            wrong[bank.defect] = failed
    assert not wrong, f"defect -> the cases that failed and why: {wrong}"


async def test_a_bank_keyed_with_the_secret_files_newline_is_told_so(tmp_path: Path) -> None:
    """Issue #23: secret.txt ends in a newline; a bank that used the file's bytes as they are
    was stopped with 'bad signature' and no hint."""
    result = await run_in_process(tmp_path, ["creditor.accept"], secret_suffix="\n")
    assert result.stopped_because is not None
    assert "HTTP 401" in result.stopped_because
    assert "without its final newline" in result.stopped_because


async def test_the_correct_bank_answering_202_passes_the_late_answer_case(tmp_path: Path
                                                                          ) -> None:
    """The late-202 path (the switch's 409) is tried on a bank that answers 202; one that
    answers in the HTTP response is not applicable to it."""
    result = await run_in_process(tmp_path, ["creditor.late-answer", "creditor.accept"],
                                  behaviour={"answer_mode": "async"})
    assert {r.case.name: r.verdict for r in result.results if r.chosen} == {
        "creditor.accept": PASSED, "creditor.late-answer": PASSED, RECONCILIATION: PASSED}


async def test_the_correct_bank_refuses_an_oversized_body_and_stays_up(tmp_path: Path) -> None:
    """The case the last session left out for want of a documented limit: a bank takes at
    most 8 MiB from the switch (docs/participants.md); the mock bank refuses 9 MiB 413 from
    the headers and takes the next transfer."""
    result = await run_in_process(tmp_path, ["security.oversized-body"])
    assert {r.case.name: r.verdict for r in result.results if r.chosen} == {
        "security.oversized-body": PASSED, RECONCILIATION: PASSED}


async def test_the_correct_bank_passes_a_switch_crash_with_a_transfer_in_flight(
        tmp_path: Path) -> None:
    """The case the last session left out (it needs the lab's switch as its own process):
    the switch is killed with its pacs.008 on the way, started again, and rejects it AB06;
    the mock bank acknowledges, releases and never credits."""
    result = await run_in_process(tmp_path, ["creditor.switch-restart"])
    verdicts = {r.case.name: r.verdict for r in result.results if r.chosen}
    assert verdicts == {"creditor.switch-restart": PASSED, RECONCILIATION: PASSED}, failures(
        result)
