"""Issue #23's evidence: a run's report lists failed cases first, its `#case-…` anchors show
the case in headless Chromium, a failure's evidence shows the part of a long message that
matters, and the folder is signed so that `switchlab conformance verify` accepts it untouched
and refuses it edited."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from conformance import credentials, evidence
from conformance.command import EXITS, PARTIAL_EXIT
from conformance.report import write_reports
from conformance.runner import FAILED, PARTIAL_RUN, RunResult
from protocol.keys import public_key_text
from switchlab.cli import main
from tests.conformance_harness import run_in_process
from tests.faulty_banks import FAULTY_BANKS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TWICE = next(bank for bank in FAULTY_BANKS if bank.defect.startswith("a bulk answer naming"))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, Path]:
    """A run of three cases against the bank whose bulk answer names one id twice (once for
    the module: about 3 s), its report written and signed as the command does."""
    folder = tmp_path_factory.mktemp("conformance")
    result = asyncio.run(run_in_process(
        folder / "work", ["creditor.accept", "creditor.bulk", "creditor.verification"],
        TWICE.patch, behaviour=TWICE.behaviour))
    out = folder / "report"
    write_reports(result, out)
    shutil.copytree(folder / "work" / "run", out / "switch")  # the command's run_dir
    keys = credentials.load(folder / "work" / "keys", "hmac")
    evidence.sign(out, credentials.report_key(folder / "work" / "keys", keys))
    return result, out


def test_the_page_lists_failed_cases_first(report: tuple[RunResult, Path]) -> None:
    result, out = report
    page = (out / "report.html").read_text(encoding="utf-8")
    first_row = page.index("<tr><td><span class=\"badge")
    assert page.index("FAILED", first_row) < page.index("PASSED", first_row)
    sections = [page.index(f'id="case-{name}"') for name in ("creditor.bulk", "creditor.accept")]
    assert sections == sorted(sections)  # bulk failed: before accept, which ran first
    assert [r.verdict for r in result.results if r.case.name == "creditor.bulk"] == [FAILED]


def test_a_failure_shows_the_part_of_the_long_answer_that_names_its_ids(
        report: tuple[RunResult, Path]) -> None:
    result, out = report
    bulk = next(r for r in result.results if r.case.name == "creditor.bulk")
    page = (out / "report.html").read_text(encoding="utf-8")
    section = page[page.index('id="case-creditor.bulk"'):]
    excerpt = section[section.index("<pre class=excerpt>"):]
    excerpt = excerpt[:excerpt.index("</pre>")]
    twice = next(word for word in (bulk.wrong or "").split() if "twice" in (bulk.wrong or "")
                 and word.startswith("CNF") and (bulk.wrong or "").count(word) == 1
                 and f"{word} twice" in (bulk.wrong or ""))
    assert twice in excerpt and "lines " in excerpt and len(excerpt) < 4_000


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine: Debian's "
                    "`chromium` package draws the page")
def test_a_case_anchor_shows_the_case_in_headless_chromium(report: tuple[RunResult, Path],
                                                           tmp_path: Path) -> None:
    """Issue #23: report.html#case-… rendered a blank page in headless Chromium."""
    _, out = report
    shot = tmp_path / "case.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                    "--window-size=1000,700", f"--screenshot={shot}",
                    f"{(out / 'report.html').as_uri()}#case-creditor.bulk"],
                   capture_output=True, timeout=60, check=True)
    pixels = image.imread(str(shot))[..., :3]
    drawn = float(np.mean(np.any(pixels < 0.9, axis=-1)))
    assert drawn > 0.01, f"{drawn:.2%} of the screenshot is drawn: a blank page"


def test_verify_accepts_the_untouched_report_and_refuses_an_edited_one(
        report: tuple[RunResult, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
        ) -> None:
    _, signed = report
    out = tmp_path / "copy"
    shutil.copytree(signed, out)
    assert main(["conformance", "verify", str(out)]) == 0
    assert "unchanged since signed" in capsys.readouterr().out
    record = json.loads((out / "signature.json").read_text(encoding="utf-8"))
    assert main(["conformance", "verify", str(out / "report.html"), "--public-key",
                 str(_written(tmp_path, record["public_key"]))]) == 0
    capsys.readouterr()
    answer = next(path for path in sorted((out / "messages" / "creditor.bulk").glob(
        "*-answer.txt")) if b"<TxSts>ACCP</TxSts>" in path.read_bytes())
    answer.write_bytes(answer.read_bytes().replace(b"<TxSts>ACCP</TxSts>",
                                                   b"<TxSts>RJCT</TxSts>", 1))
    assert main(["conformance", "verify", str(out)]) == 1
    assert f"messages/creditor.bulk/{answer.name} was changed" in capsys.readouterr().err
    shutil.rmtree(out)
    shutil.copytree(signed, out)
    report_json = json.loads((out / "report.json").read_text(encoding="utf-8"))
    report_json["passed"] = True
    (out / "report.json").write_text(json.dumps(report_json), encoding="utf-8")
    assert main(["conformance", "verify", str(out)]) == 1
    assert "report.json was changed" in capsys.readouterr().err


def test_issue_newuser3_the_journal_is_signed_as_one_closed_file(
        report: tuple[RunResult, Path]) -> None:
    """The lab switch's journal is in the signed folder, checkpointed and out of WAL mode:
    no -wal/-shm beside it, and reading it makes none (in WAL mode a reader creates both)."""
    _, signed = report
    record = json.loads((signed / "signature.json").read_text(encoding="utf-8"))
    assert "switch/switch.sqlite" in record["files"]
    assert not [name for name in record["files"] if name.endswith(("-wal", "-shm"))]
    connection = sqlite3.connect(f"file:{signed / 'switch' / 'switch.sqlite'}?mode=ro",
                                 uri=True)
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert connection.execute("SELECT count(*) FROM transfers").fetchone()[0] > 0
    connection.close()
    assert sorted(p.name for p in (signed / "switch").iterdir()) == ["switch.sqlite"]


@pytest.mark.parametrize("where", ["", "messages/creditor.bulk/", "switch/", "extra/"])
def test_issue_newuser3_verify_refuses_a_file_added_removed_or_changed_anywhere(
        report: tuple[RunResult, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        where: str) -> None:
    """The verifier walks the folder, not the manifest: a file added in any subfolder (a new
    one too), a signed file removed, or one changed is refused, exit 1, naming it."""
    _, signed = report
    out = tmp_path / "copy"
    shutil.copytree(signed, out)
    added = out / where / "notes.txt"
    added.parent.mkdir(parents=True, exist_ok=True)
    added.write_text("seen by the bank's QA", encoding="utf-8")
    assert main(["conformance", "verify", str(out)]) == 1
    assert f"{where}notes.txt was added after signing" in capsys.readouterr().err
    added.unlink()
    assert main(["conformance", "verify", str(out)]) == 0
    capsys.readouterr()
    if where == "extra/":
        return
    victim = next(path for path in sorted((out / where).glob("*"))
                  if path.is_file() and path.name != "signature.json")
    name = victim.relative_to(out).as_posix()
    original = victim.read_bytes()
    victim.write_bytes(original + b"junk")
    assert main(["conformance", "verify", str(out)]) == 1
    assert f"{name} was changed after signing" in capsys.readouterr().err
    victim.unlink()
    assert main(["conformance", "verify", str(out)]) == 1
    assert f"{name} was signed and is missing" in capsys.readouterr().err


def test_leftovers3_verify_finds_the_report_folder_from_a_deep_file_and_caps_its_walk(
        report: tuple[RunResult, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`verify` on a file two folders deep looked for signature.json beside it only; a file in
    no report is told which folder to pass; a folder of more files than a report holds is
    refused, saying so, before it is hashed."""
    _, signed = report
    deep = next((signed / "messages").glob("*/*.txt"))
    assert main(["conformance", "verify", str(deep)]) == 0
    assert f"{signed}: " in capsys.readouterr().out
    stray = tmp_path / "elsewhere" / "note.txt"
    stray.parent.mkdir()
    stray.write_text("not a report", encoding="utf-8")
    assert main(["conformance", "verify", str(stray)]) == 1
    assert "pass the report folder (the one holding signature.json" in capsys.readouterr().err
    signed_files = len(json.loads((signed / "signature.json").read_text())["files"])
    monkeypatch.setattr(evidence, "MAX_REPORT_ENTRIES", signed_files - 1)
    assert main(["conformance", "verify", str(signed)]) == 1
    assert f"signs over {signed_files - 1:,} files" in capsys.readouterr().err
    flooded = tmp_path / "flooded"
    shutil.copytree(signed, flooded)
    for number in range(len(list(flooded.rglob("*")))):
        (flooded / f"junk-{number}").touch()
    monkeypatch.setattr(evidence, "MAX_REPORT_ENTRIES", len(list(signed.rglob("*"))) + 10)
    assert main(["conformance", "verify", str(flooded)]) == 1
    assert "files and folders: not a report of this suite" in capsys.readouterr().err


def test_verify_refuses_a_report_signed_by_another_key(report: tuple[RunResult, Path],
                                                       tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    _, signed = report
    other = credentials.report_key(tmp_path / "elsewhere", credentials.SuiteKeys(
        "hmac", secret=b"x"))
    pinned = _written(tmp_path, public_key_text(other.verify_key()))
    assert main(["conformance", "verify", str(signed), "--public-key", str(pinned)]) == 1
    assert "does not check under the given public key" in capsys.readouterr().err


@pytest.fixture(scope="module")
def partial(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, Path]:
    """One case (--case creditor.accept) against the correct mock bank, reported and signed
    as the command does: about 1 s."""
    folder = tmp_path_factory.mktemp("partial")
    result = asyncio.run(run_in_process(folder / "work", ["creditor.accept"]))
    out = folder / "report"
    write_reports(result, out)
    keys = credentials.load(folder / "work" / "keys", "hmac")
    evidence.sign(out, credentials.report_key(folder / "work" / "keys", keys))
    return result, out


def test_issue_newuser3_finding1_a_run_of_some_cases_is_a_partial_run_not_conforms(
        partial: tuple[RunResult, Path]) -> None:
    """A signed report said CONFORMS, `passed: true`, exit 0 after 2 of 47 cases: now every
    shape of the report says PARTIAL RUN, and the command exits 4 (3 is a run that crashed)."""
    result, out = partial
    assert [r.verdict for r in result.results if r.chosen] == ["passed", "passed"]
    assert result.verdict == PARTIAL_RUN and EXITS[result.verdict] == PARTIAL_EXIT == 4
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    left_out = report["mandatory_not_chosen"]
    assert (report["passed"], report["complete"], report["verdict"]) == (False, False,
                                                                         PARTIAL_RUN)
    assert "creditor.bulk" in left_out and len(left_out) > 30
    assert report["headline"] == (f"PARTIAL RUN: 2 of {len(result.results)} cases run, "
                                  f"{len(left_out)} mandatory cases not run (--case, --tag) "
                                  "— not a conformance verdict")
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "CONFORMS" not in page and report["headline"] in page
    suite = (out / "junit.xml").read_text(encoding="utf-8")
    assert '<property name="verdict" value="PARTIAL RUN"/>' in suite
    assert '<property name="passed" value="false"/>' in suite
    assert suite.count("the run is a PARTIAL RUN") == len(left_out)
    assert "unchanged since signed" in evidence.verify(out)  # still evidence, of what it is


def test_issue_newuser3_finding2_the_report_records_the_declaration_it_was_judged_by(
        partial: tuple[RunResult, Path], report: tuple[RunResult, Path]) -> None:
    """The scope of a verdict (roles and features declared) is in report.json and on the
    page, and the headline names the roles."""
    for _, out in (partial, report):
        written = json.loads((out / "report.json").read_text(encoding="utf-8"))
        assert written["declaration"] == {"roles": ["creditor", "debtor"],
                                          "features": ["returns", "verification", "bulk"]}
        page = (out / "report.html").read_text(encoding="utf-8")
        assert ("Declared as a creditor and a debtor; features returns, verification, bulk"
                in page)
    failed, _ = report
    assert failed.verdict == "DOES NOT CONFORM"
    assert json.loads((report[1] / "report.json").read_text())["headline"] == (
        "DOES NOT CONFORM as a creditor and a debtor; features returns, verification, bulk")


def _written(folder: Path, text: str) -> Path:
    path = folder / "pinned.pub"
    path.write_text(text, encoding="utf-8")
    return path
