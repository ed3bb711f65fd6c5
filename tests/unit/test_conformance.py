"""The conformance suite's parts that need no server: the accounts file, the rules every
message of a bank is held to, the registry of cases and the command's arguments."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from banks.accounts_file import AccountsFileError, read_accounts
from conformance import credentials
from conformance.catalogue import CASES, selected
from conformance.context import NotApplicable
from conformance.declaration import Declaration
from conformance.notice_cases import answered_later
from conformance.plan import Case
from conformance.relay import Exchange
from conformance.report import excerpt, needles, terminal
from conformance.rules import Rules, Schemas, unmasked
from conformance.runner import (
    CONFORMS,
    DOES_NOT_CONFORM,
    FAILED,
    NOT_APPLICABLE,
    PASSED,
    CaseResult,
    RunResult,
    SuiteSettings,
    confirm_not_applicable,
)
from protocol import codec, signing
from protocol.http import wrap
from protocol.keys import Signing, private_key_text, read_public_key
from protocol.messages import (
    CreditTransfer,
    CreditTransferMessage,
    MessageType,
    PaymentStatusReport,
    TransactionStatus,
    TxStatus,
)
from protocol.runtime import CODE_ROOT
from protocol.signing import Ed25519SigningKey, HmacKey
from switchlab.cli import main

BANK, SWITCH = "BANKVNVX", "SWLBVNVX"
KEY = HmacKey(b"a secret only the bank and the switch hold")
HEADER = "account_id,holder_name,citizen_id,status\n"


def accounts_file(tmp_path: Path, rows: str) -> Path:
    path = tmp_path / "accounts.csv"
    path.write_text(HEADER + rows, encoding="utf-8")
    return path


def test_an_accounts_file_gives_each_account_its_status(tmp_path: Path) -> None:
    path = accounts_file(tmp_path, "0011,Nguyễn Thị Rà,001190012345,open\n"
                                   "0012,Phạm Văn Mất,048145000111,deceased\n")
    open_, deceased = read_accounts(path)
    assert (open_.status, deceased.status) == ("open", "deceased")
    ledger = deceased.ledger_account()
    assert (ledger.status, ledger.deceased, ledger.balance_vnd) == ("active", True, 0)


@pytest.mark.parametrize(("rows", "said"), [
    ("0011,Nguyễn Thị Rà,001190012345,dormant\n", "line 2: status 'dormant'"),
    ("0011,Nguyễn Thị Rà,12345,open\n", "line 2: citizen_id '12345'"),
    ("0011,Nguyễn Thị Rà,001190012345,open\n0011,Lê Văn B,001190012346,open\n",
     "line 3: account_id 0011 appears twice"),
    ("00 11,Nguyễn Thị Rà,001190012345,open\n", "line 2: account_id '00 11'"),
    ("0011,Nguyễn Thị Rà,001190012345\n", "line 2: expected 4 fields"),
    ("", "no accounts"),
])
def test_a_bad_accounts_file_is_refused_naming_line_and_field(tmp_path: Path, rows: str,
                                                              said: str) -> None:
    with pytest.raises(AccountsFileError, match=said):
        read_accounts(accounts_file(tmp_path, rows))


def test_an_accounts_file_without_the_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("account,name\n1,x\n", encoding="utf-8")
    with pytest.raises(AccountsFileError, match="line 1: the header needs the columns"):
        read_accounts(path)


def forward() -> CreditTransferMessage:
    return CreditTransferMessage(
        msg_id="SWF-1", created_at=datetime.now(UTC), instructing_agent_bic=SWITCH,
        instructed_agent_bic=BANK, transactions=[CreditTransfer(
            end_to_end_id=f"E2E-{n}", tx_id=f"TX-{n}", amount_vnd=1_000, debtor_name="Kho bạc",
            debtor_account="KBNN", debtor_agent_bic="TRSYVNV1", creditor_name="Nguyễn Thị Rà",
            creditor_account="0011", creditor_agent_bic=BANK, amount_text="1000")
            for n in (1, 2)])


def answer(original_msg_id: str = "SWF-1", items: int = 2, sender: str = BANK,
           numbers: list[int] | None = None) -> bytes:
    """The bank's pacs.002 ACCP for the forward's transactions 1 to `items` (or `numbers`)."""
    return codec.encode(wrap(sender, SWITCH, PaymentStatusReport(
        msg_id="BKA-1", created_at=datetime.now(UTC), original_msg_id=original_msg_id,
        original_msg_type=MessageType.CREDIT_TRANSFER, transactions=[TransactionStatus(
            f"E2E-{n}", f"TX-{n}", TxStatus.ACCEPTED)
            for n in numbers or range(1, items + 1)])))


def exchange(body: bytes, signed: bool = True, status: int = 200) -> Exchange:
    """The switch's forward and the bank's `body` in answer, as the relay records them."""
    request = codec.encode(wrap(SWITCH, BANK, forward()))
    headers = signing.sign(SWITCH, KEY, "/iso20022", request)
    answered = (signing.sign_answer(BANK, KEY, status, signing.request_signature(headers), body,
                                    "application/xml") | {"Content-Type": "application/xml"}
                if signed else {})
    return Exchange(1, "switch", "bank", "POST", "/iso20022", list(headers.items()), request,
                    0.0, "case", status, list(answered.items()), body, 0.1)


def rules(tmp_path: Path) -> Rules:
    return Rules(BANK, SWITCH, KEY, KEY, Schemas())


def test_a_correct_answer_breaks_no_rule(tmp_path: Path) -> None:
    assert rules(tmp_path).check(exchange(answer())) == []


@pytest.mark.parametrize(("body", "signed", "said"), [
    (answer(), False, "breaks the signing rule: the answer (HTTP 200) is not signed"),
    (answer(original_msg_id="SWI-OTHER"), True, "names OrgnlMsgId SWI-OTHER, not the MsgId SWF-1"),
    (answer(items=1), True, "leaves 1 of the 2 transactions unanswered"),
    (answer(sender="ICBVVNVX"), True, "head.001 Fr names ICBVVNVX, not the bank BANKVNVX"),
    (answer()[:200], True, "is not a well-formed ISO 20022 message"),
])
def test_each_broken_rule_is_said_in_a_sentence(tmp_path: Path, body: bytes, signed: bool,
                                                said: str) -> None:
    problems = rules(tmp_path).check(exchange(body, signed))
    assert any(said in problem for problem in problems), problems


def test_a_refusal_before_authentication_need_not_be_signed(tmp_path: Path) -> None:
    assert rules(tmp_path).check(exchange(b"401 unauthenticated\n", False, 401)) == []


def test_a_folder_without_the_schemas_is_refused_not_reported_as_validation_not_run(
        tmp_path: Path) -> None:
    """Issue #23: a run without schemas said CONFORMS with one grey line; now there is no
    such run."""
    with pytest.raises(ValueError, match=r"holds no head\.001\.001\.02\.xsd"):
        Schemas(tmp_path)


def test_a_message_outside_its_schema_is_caught() -> None:
    """An element the codec does not read, which the schema does not allow."""
    body = answer().replace(b"</GrpHdr>", b"<Remark>ok</Remark></GrpHdr>", 1)
    problems = Rules(BANK, SWITCH, KEY, KEY, Schemas()).check(exchange(body))
    assert any("not valid against the pacs.002.001.10 schema" in p and "Remark" in p
               for p in problems), problems


def test_a_name_shown_in_full_is_found_with_or_without_diacritics() -> None:
    assert unmasked("Nguyễn Thị Rà", "<Nm>NGUYEN THI RA</Nm>")
    assert unmasked("Nguyễn Thị Rà", "<Nm>nguyễn thị rà</Nm>")
    assert not unmasked("Nguyễn Thị Rà", "<Nm>N***** T** R*</Nm>")


def test_cases_are_chosen_by_name_or_tag_in_the_registry_order() -> None:
    assert [c.name for c in selected(["creditor.bulk", "creditor.accept"], [])] == [
        "creditor.accept", "creditor.bulk"]
    assert {c.name for c in selected([], ["security"])} == {
        name for name in CASES if name.startswith("security.")}
    with pytest.raises(ValueError, match="no case nope"):
        selected(["nope"], [])
    with pytest.raises(ValueError, match="no tag nope; the tags are"):
        selected([], ["nope"])
    assert all(c.expected and c.tags for c in CASES.values())
    creditor_bank = Declaration()
    assert {c.role for c in CASES.values()
            if not creditor_bank.requires(c.role, c.feature)} == {"debtor"}


def test_the_command_lists_the_cases_mandatory_by_the_declaration(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue #23: a case is mandatory or conditional by the roles and features the bank
    declares; a creditor-only bank sees the debtor cases conditional."""
    assert main(["conformance", "--list"]) == 0
    listed = capsys.readouterr().out
    creditor_only = {line.split()[0]: line.split()[1] for line in listed.splitlines()[1:]}
    assert set(creditor_only) == {case.plan_id for case in CASES.values()}
    assert creditor_only["debtor.transfer@1"] == "conditional"
    both = tmp_path / "declaration.json"
    both.write_text('{"roles": ["creditor", "debtor"], "features": []}', encoding="utf-8")
    assert main(["conformance", "--list", "--declaration", str(both)]) == 0
    lines = {line.split()[0]: line.split()[1] for line in
             capsys.readouterr().out.splitlines()[1:]}
    assert lines["debtor.transfer@1"] == "mandatory"
    assert lines["creditor.bulk@1"] == "conditional"  # the bulk feature is not declared
    assert lines["creditor.accept@1"] == "mandatory"


def test_a_bad_declaration_exits_2_naming_the_field(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "declaration.json"
    bad.write_text('{"roles": ["acquirer"]}', encoding="utf-8")
    assert main(["conformance", "--list", "--declaration", str(bad)]) == 2
    assert "roles.0" in capsys.readouterr().err


def test_the_published_test_plan_is_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/conformance.md carries `switchlab conformance --plan` verbatim: every case with
    its id and version; a case added or changed without the plan fails here."""
    assert main(["conformance", "--plan"]) == 0
    plan = capsys.readouterr().out.strip()
    docs = (CODE_ROOT / "docs" / "conformance.md").read_text(encoding="utf-8")
    assert plan in docs


@pytest.mark.parametrize(("arguments", "said"), [
    ([], "--participant-url, --bic, --accounts needed"),
    (["--participant-url", "ftp://x", "--bic", BANK, "--accounts", "a.csv"],
     "is not an http(s) URL"),
    (["--participant-url", "http://127.0.0.1:1/x", "--bic", "bank", "--accounts", "a.csv"],
     "is not a BIC"),
    (["--participant-url", "http://127.0.0.1:1/x", "--bic", BANK, "--accounts", "a.csv",
      "--case", "creditor.nope"], "no case creditor.nope"),
    (["--participant-url", "http://127.0.0.1:1/x", "--bic", BANK, "--accounts",
      "missing.csv"], "missing.csv: cannot be read"),
])
def test_bad_arguments_exit_2_with_a_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str],
                                              arguments: list[str], said: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.csv").write_text(HEADER + "0011,Nguyễn Thị Rà,001190012345,open\n",
                                    encoding="utf-8")
    assert main(["conformance", *arguments]) == 2
    error = capsys.readouterr().err
    assert said in error and "Traceback" not in error


@pytest.mark.parametrize(("answered", "signed", "said"), [
    ([1, 2], True, None),
    ([1, 1], True, "the bank's pacs.002 does not answer E2E-2; it answers E2E-1 twice"),
    ([1], True, "the bank's pacs.002 does not answer E2E-2"),
    ([1, 2], False, "the bank's answer breaks the signing rule: the answer (HTTP 200) is not "
     "signed"),
])
def test_what_the_switch_could_not_take_is_said_with_the_ids(
        answered: list[int], signed: bool, said: str | None) -> None:
    """Issue #23: a bulk answer naming one id twice was diagnosed 'answered after 0.2 s, past
    the 5 s deadline', an unsigned one 'not a signed, well-formed pacs.002'."""
    forward_answered = exchange(answer(numbers=answered), signed)
    problem = Rules(BANK, SWITCH, KEY, KEY, Schemas()).answer_problem(forward_answered, "E2E-2")
    assert problem == said


def test_a_failure_names_its_ids_and_the_long_body_shows_them_first() -> None:
    sentence = ("the bank's pacs.002 does not answer CNF1A2B000002; it answers CNF1A2B000001 "
                "twice (exchange 2, HTTP 200 in 83 ms)")
    assert needles(sentence) == ["CNF1A2B000002", "CNF1A2B000001"]
    body = "\n".join(f"<TxInfAndSts><OrgnlEndToEndId>CNF1A2B{n:06d}</OrgnlEndToEndId>"
                     "</TxInfAndSts>" for n in range(5, 1_000))
    body += "\n<OrgnlEndToEndId>CNF1A2B000001</OrgnlEndToEndId>"
    part = excerpt(body, needles(sentence))
    assert part is not None and "CNF1A2B000001" in part and part.startswith("… lines 988–996")
    assert excerpt("short", ["CNF1A2B000001"]) is None


@pytest.mark.parametrize("signing", ["hmac", "ed25519"])
def test_issue_newuser4_the_report_key_public_half_is_where_the_docs_say(
        tmp_path: Path, signing: Signing) -> None:
    """docs/conformance.md's `verify … --public-key conformance-credentials/report.pub` runs
    in either mode: the run writes the public half of the key that signs the report there
    (in hmac the folder held only secret.txt and the private suite.pem)."""
    folder = tmp_path / "conformance-credentials"
    credentials.create(folder, signing)
    key = credentials.report_key(folder, credentials.load(folder, signing))
    written = read_public_key((folder / credentials.REPORT_PUBLIC).read_text(encoding="utf-8"))
    assert written.verify(b"report", key.sign(b"report"))
    brought = tmp_path / "brought.pem"  # a switch key of the bank's own replaces it
    brought.write_text(private_key_text(Ed25519SigningKey.generate()), encoding="utf-8")
    if signing == "ed25519":
        other = credentials.report_key(folder, credentials.load(
            folder, signing, switch_private_key_file=brought))
        written = read_public_key((folder / credentials.REPORT_PUBLIC).read_text())
        assert written.verify(b"report", other.sign(b"report"))


def test_issue_newuser14_conformance_help_shows_verify_as_a_command(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conformance", "--help"]) == 0
    shown = capsys.readouterr().out
    assert "switchlab conformance verify REPORT [--public-key PEM]" in shown
    assert "[verify REPORT ...]" not in shown
    assert main(["conformance", "verify", "no-such-report"]) == 1
    assert "no-such-report: no such file or folder" in capsys.readouterr().err


def settings_for(cases: list[Case]) -> SuiteSettings:
    return SuiteSettings(participant_url="http://127.0.0.1:1/x", bic=BANK,
                         keys=credentials.SuiteKeys("hmac", secret=b"s"), accounts=[],
                         cases=cases, run_dir=Path("run"), schemas=Schemas())


def test_issue_newuser14_the_sustained_line_shows_its_p50_and_p99() -> None:
    case = CASES["creditor.sustained"]
    result = CaseResult(case, PASSED, measured=["p50 12 ms, p99 31 ms"])
    shown = terminal(RunResult(settings_for([case]), datetime.now(UTC), results=[result]))
    line = next(line for line in shown.splitlines() if "creditor.sustained" in line)
    assert line.endswith(f"{case.title}; p50 12 ms, p99 31 ms")


@pytest.mark.parametrize(("accept_answered", "late_answer", "verdict"), [
    (202, FAILED, DOES_NOT_CONFORM),  # the bank takes the 202 path elsewhere in the run
    (200, NOT_APPLICABLE, CONFORMS),  # every forward answered in the response
])
def test_attacker3_finding6_late_answer_is_not_applicable_only_if_no_forward_got_202(
        accept_answered: int, late_answer: str, verdict: str) -> None:
    """A bank answered creditor.late-answer's one transfer 200 to dodge its 202 path (the 409
    to a late pacs.002): the case stays not applicable only when the whole run shows the
    bank never answers a forward 202, else it fails and the run does not conform."""
    results = [CaseResult(case, PASSED) for case in CASES.values()]
    by_name = {r.case.name: r for r in results}
    by_name["creditor.accept"].exchanges = [exchange(b"accepted", status=accept_answered)]
    dodged = by_name["creditor.late-answer"]
    dodged.verdict = NOT_APPLICABLE
    dodged.not_applicable = NotApplicable("answered 200", answered_later,
                                          "answered a forward 202")
    dodged.exchanges = [exchange(answer(), status=200)]
    confirm_not_applicable(results)
    run = RunResult(settings_for(list(CASES.values())), datetime.now(UTC), results=results)
    assert (dodged.verdict, run.verdict) == (late_answer, verdict)
    if late_answer == FAILED:
        assert dodged.wrong == (
            "the bank answered a forward 202 in creditor.accept (exchange 1) but not in this "
            "case, so the path exists for it and this case did not exercise it (not "
            "applicable only to a bank that never does)")


def test_attacker3_finding6_not_applicable_by_the_scheme_needs_no_run_evidence() -> None:
    """creditor.status-inquiry is not applicable whatever the bank does (the switch never
    sends a pacs.028): a 202 elsewhere in the run leaves it so."""
    results = [CaseResult(CASES["creditor.accept"], PASSED,
                          exchanges=[exchange(b"accepted", status=202)]),
               CaseResult(CASES["creditor.status-inquiry"], NOT_APPLICABLE,
                          not_applicable=NotApplicable("the scheme never sends it"))]
    confirm_not_applicable(results)
    assert results[1].verdict == NOT_APPLICABLE
