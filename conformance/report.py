"""The verdict of a conformance run, four ways: the terminal, JSON for machines, JUnit XML for
any CI (each case a test case; not applicable and not run are skipped), and one self-contained
HTML page the bank hands to the scheme. Each shows, per case, its verdict, what was expected,
what was wrong in one sentence, the steps, and the exact messages exchanged in order.

Bodies are shown pretty-printed (XML indented, JSON indented) and, in the page, escaped. The
exact bytes of every body are written to `messages/` beside the reports; the page and the JSON
show a body up to MAX_SHOWN_CHARS and say where the rest is.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from lxml import etree

from conformance.relay import Exchange
from conformance.rules import decoded_or_none
from conformance.runner import (
    CONFORMS,
    FAILED,
    NOT_APPLICABLE,
    NOT_RUN,
    NOT_TESTED,
    PARTIAL_RUN,
    PASSED,
    CaseResult,
    RunResult,
)
from protocol.messages import (
    CreditTransferMessage,
    PaymentReturn,
    PaymentStatusReport,
    VerificationReport,
    VerificationRequest,
)
from protocol.wording import count

MAX_SHOWN_CHARS = 40_000  # of one body in the page and the JSON; the file holds all of it
EXCERPT_FROM_CHARS = 4_000  # a failed case's body longer than this shows its part first
EXCERPT_LINES = 8  # lines either side of an id the failure names
MAX_EXCERPTS = 3
_ID = re.compile(r"\b(?=[A-Za-z0-9-]*\d)[A-Za-z][A-Za-z0-9-]{3,34}\b")
LABELS = {PASSED: "PASSED", FAILED: "FAILED", NOT_APPLICABLE: "NOT APPLICABLE",
          NOT_RUN: "NOT RUN"}
_PRETTY = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                          remove_blank_text=True)
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def pretty(body: bytes) -> str:
    """XML indented, JSON indented, anything else as text (bytes that are no UTF-8 shown as
    replacement characters)."""
    text = body.decode(errors="replace")
    stripped = body.lstrip()
    if stripped.startswith(b"<"):
        try:
            return etree.tostring(etree.fromstring(body, _PRETTY), pretty_print=True,
                                  encoding="unicode").rstrip()
        except etree.XMLSyntaxError:
            return text
    if stripped.startswith((b"{", b"[")):
        try:
            return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
        except ValueError:
            return text
    return text


def what(body: bytes) -> str:
    """What a body is, in a few words: "pacs.002.001.10 RJCT AC01", "pacs.008.001.08 (1,000
    transactions)", "JSON", "not well-formed XML"."""
    if not body:
        return ""
    if not body.lstrip().startswith(b"<"):
        return "JSON" if body.lstrip().startswith((b"{", b"[")) else repr(
            " ".join(body[:40].decode(errors="replace").split()))
    message = decoded_or_none(body)
    if message is None:
        return "not a readable ISO 20022 message"
    document = message.document
    if isinstance(document, PaymentStatusReport):
        counted = Counter(f"{i.status}{' ' + i.reason_code if i.reason_code else ''}"
                          for i in document.transactions)
        detail = ", ".join(f"{n:,} × {s}" if n > 1 else s for s, n in counted.items())
        detail = detail or f"group {document.group_status} {document.group_reason_code or ''}"
    elif isinstance(document, VerificationReport):
        detail = ", ".join("true" if r.verified else f"false {r.reason_code}"
                           for r in document.results[:6])
    else:
        items = getattr(document, "transactions", None) or getattr(document, "items", None)
        noun = {CreditTransferMessage: "transaction", PaymentReturn: "return",
                VerificationRequest: "question"}.get(type(document), "item")
        detail = f"({count(len(items), noun)})" if items else ""
    return f"{message.header.msg_def_id} {detail}".strip()


def _shown(text: str, file: str) -> str:
    if len(text) <= MAX_SHOWN_CHARS:
        return text
    return (text[:MAX_SHOWN_CHARS] + f"\n… "
                                     f"{count(len(text) - MAX_SHOWN_CHARS, 'more character')}: the "
            f"whole body is {file}")


def scope(result: RunResult) -> str:
    """What a verdict covers, from the bank's declaration: "as a creditor; features
    verification, bulk" (docs/conformance.md, "The test plan")."""
    declaration = result.settings.declaration
    features = ", ".join(declaration.features) or "none"
    return (f"as a {' and a '.join(declaration.roles)}; "
            f"{'feature' if len(declaration.features) == 1 else 'features'} {features}")


def headline(result: RunResult) -> str:
    """The verdict with what it covers: "CONFORMS as a creditor; features verification,
    bulk", "PARTIAL RUN: 2 of 47 cases run, 35 mandatory cases not run — not a conformance
    verdict"."""
    verdict = result.verdict
    if verdict == PARTIAL_RUN:
        ran = sum(r.chosen for r in result.results)
        return (f"{PARTIAL_RUN}: {ran:,} of {count(len(result.results), 'case')} run, "
                f"{count(len(result.left_out()), 'mandatory case')} not run (--case, --tag) "
                "— not a conformance verdict")
    return verdict if verdict == NOT_TESTED else f"{verdict} {scope(result)}"


def _verdict_line(result: RunResult) -> str:
    counts = result.counts()
    said = ", ".join(f"{n} {verdict}" for verdict, n in counts.items() if n)
    if result.stopped_because is not None:
        return f"NOT TESTED: {result.stopped_because}"
    failed_optional = sum(r.verdict == FAILED and not r.mandatory for r in result.results)
    if result.verdict == PARTIAL_RUN:
        overall = "every mandatory case chosen passed"
    elif result.passed:
        overall = "every mandatory case passed"
    elif any(r.verdict == FAILED and r.mandatory for r in result.results):
        overall = "a mandatory case FAILED"
    else:
        overall = "a mandatory case could NOT RUN"
    return (f"{said}: {overall}"
            + (f" ({count(failed_optional, 'conditional case')} failed)"
               if failed_optional else ""))


def terminal(result: RunResult) -> str:
    settings = result.settings
    lines = [f"switchlab conformance: {settings.bic} at {settings.participant_url}, "
             f"{settings.keys.signing} signing", ""]
    if result.stopped_because is not None:
        return "\n".join([*lines, "NOT TESTED: the bank cannot be tested (below)"])
    names = [r.case.name + ("" if r.mandatory else " (conditional)") for r in result.results]
    width = max(map(len, names), default=10) + 2
    for name, r in zip(names, result.results, strict=True):
        said = r.wrong or r.case.title + "".join(f"; {figure}" for figure in r.measured)
        lines.append(f"  {LABELS[r.verdict]:<15}{name:<{width}}{said}")
    lines += ["", f"Schema validation: {_schemas_line(result)}", _verdict_line(result),
              headline(result)]
    return "\n".join(lines)


def _schemas_line(result: RunResult) -> str:
    return ("every message of the bank checked against the ISO 20022 schemas in "
            f"{result.settings.schemas.folder}")


# ---- files -----------------------------------------------------------------------------------

def _body_file(case: str, number: int, part: str) -> str:
    return f"messages/{_UNSAFE_NAME.sub('_', case)}/{number:03d}-{part}.txt"


def _exchange_json(exchange: Exchange, case: str, number: int) -> dict[str, Any]:
    request_file = _body_file(case, number, "request")
    answer_file = _body_file(case, number, "answer")
    return {
        "number": number, "from": exchange.sender, "to": exchange.receiver,
        "method": exchange.method, "path": exchange.path,
        "summary": f"{what(exchange.request_body)} → {what(exchange.response_body)}",
        "started_at": exchange.started_s,
        "duration_ms": None if exchange.duration_s is None else round(exchange.duration_s
                                                                      * 1000, 1),
        "request": {"headers": exchange.request_headers,
                    "body": _shown(pretty(exchange.request_body), request_file),
                    "file": request_file},
        "answer": None if exchange.status is None else {
            "status": exchange.status, "headers": exchange.response_headers,
            "body": _shown(pretty(exchange.response_body), answer_file), "file": answer_file},
        "error": exchange.error,
    }


def as_json(result: RunResult) -> dict[str, Any]:
    settings = result.settings
    return {
        "bic": settings.bic, "participant_url": settings.participant_url,
        "signing": settings.keys.signing, "switch_url_for_bank": result.switch_url_for_bank,
        "started_at": result.started_at.isoformat(timespec="seconds"),
        "duration_s": round(result.duration_s, 2), "verdict": result.verdict,
        "headline": headline(result), "passed": result.passed, "complete": result.complete,
        "declaration": settings.declaration.model_dump(mode="json"),
        "mandatory_not_chosen": [r.case.name for r in result.left_out()],
        "stopped_because": result.stopped_because, "schema_validation": _schemas_line(result),
        "counts": result.counts(),
        "cases": [{
            "name": r.case.name, "title": r.case.title, "tags": list(r.case.tags),
            "version": r.case.version, "mandatory": r.mandatory, "verdict": r.verdict,
            "expected": r.case.expected,
            "wrong": r.wrong, "problems": r.problems, "steps": r.notes,
            "duration_s": round(r.duration_s, 3),
            "exchanges": [_exchange_json(e, r.case.name, n)
                          for n, e in enumerate(r.exchanges, start=1)],
        } for r in result.results],
        "setup_exchanges": [_exchange_json(e, "setup", n)
                            for n, e in enumerate(result.setup, start=1)],
    }


def junit(result: RunResult) -> str:
    cases = []
    for r in result.results:
        name = quoteattr(r.case.name)
        classname = quoteattr(f"conformance.{r.case.tags[0] if r.case.tags else 'case'}")
        if r.verdict == FAILED:
            detail = "\n".join([f"expected: {r.case.expected}", *r.notes, *r.problems])
            body = (f"<failure message={quoteattr(r.wrong or '')}>{html.escape(detail)}"
                    "</failure>")
        elif r.verdict in (NOT_APPLICABLE, NOT_RUN):
            why = f"{r.verdict}: {r.wrong}" + (
                f" (mandatory: the run is a {PARTIAL_RUN}, not a conformance verdict)"
                if r.mandatory and not r.chosen else "")
            body = f"<skipped message={quoteattr(why)}/>"
        else:
            body = ""
        out = "\n".join(f"{n}. {e.sender} → {e.receiver} {e.method} {e.path} "
                        f"{what(e.request_body)} → {e.status or e.error} "
                        f"{what(e.response_body)}" for n, e in enumerate(r.exchanges, start=1))
        cases.append(f"  <testcase classname={classname} name={name} "
                     f'time="{r.duration_s:.3f}">{body}<system-out>{html.escape(out)}'
                     "</system-out></testcase>")
    counts = result.counts()
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name='
            f'{quoteattr("switchlab conformance " + result.settings.bic)} '
            f'tests="{len(result.results)}" failures="{counts[FAILED]}" errors="0" '
            f'skipped="{counts[NOT_APPLICABLE] + counts[NOT_RUN]}" '
            f'time="{result.duration_s:.3f}">\n  <properties>'
            + "".join(f"<property name={quoteattr(name)} value={quoteattr(value)}/>"
                      for name, value in (("verdict", result.verdict),
                                          ("headline", headline(result)),
                                          ("complete", str(result.complete).lower()),
                                          ("passed", str(result.passed).lower())))
            + "</properties>\n" + "\n".join(cases) + "\n</testsuite>\n")


def write_reports(result: RunResult, out: Path) -> dict[str, Path]:
    """report.json, junit.xml, report.html and every body's exact bytes under messages/."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "messages", ignore_errors=True)  # a previous run's: not this one's
    (out / "signature.json").unlink(missing_ok=True)  # a previous run's signature
    for case, exchanges in [*((r.case.name, r.exchanges) for r in result.results),
                            ("setup", result.setup)]:
        for number, exchange in enumerate(exchanges, start=1):
            for part, body in (("request", exchange.request_body),
                               ("answer", exchange.response_body)):
                path = out / _body_file(case, number, part)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(body)
    paths = {"html": out / "report.html", "json": out / "report.json",
             "junit": out / "junit.xml"}
    paths["json"].write_text(json.dumps(as_json(result), indent=1, ensure_ascii=False),
                             encoding="utf-8")
    paths["junit"].write_text(junit(result), encoding="utf-8")
    paths["html"].write_text(page(result), encoding="utf-8")
    return paths


# ---- the page --------------------------------------------------------------------------------

STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1.2em;color:#1b1f24}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin:1.8em 0 .4em}
h3{font-size:1.02em;margin:.2em 0}
.meta{color:#57606a;margin:.2em 0}
table{border-collapse:collapse;width:100%;margin:.6em 0}
td,th{border-bottom:1px solid #d8dee4;padding:.35em .5em;text-align:left;vertical-align:top}
th{background:#f3f5f8;font-weight:600}
.badge{display:inline-block;border-radius:4px;padding:.05em .5em;font-size:.8em;
font-weight:700;white-space:nowrap}
.passed{background:#dafbe1;color:#116329}.failed{background:#ffebe9;color:#a40e26}
.not-applicable,.not-run{background:#eaeef2;color:#424a53}
.case{border:1px solid #d8dee4;border-radius:6px;padding:.8em 1em;margin:1em 0}
.case.failed-case{border-color:#ff8182}
.wrong{color:#a40e26;font-weight:600}
.label{color:#57606a;font-size:.85em;text-transform:uppercase;letter-spacing:.03em;
margin:.7em 0 .1em}
ol.steps{margin:.2em 0 .2em 1.2em;padding:0}
details.exchange{border-top:1px solid #eaeef2;padding:.3em 0}
details.exchange summary{cursor:pointer;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;
font-size:.88em}
pre{background:#f6f8fa;border:1px solid #eaeef2;border-radius:4px;padding:.6em;
overflow:auto;max-height:32em;font-size:.82em;white-space:pre-wrap;word-break:break-all}
.headers td{font-family:ui-monospace,monospace;font-size:.8em;padding:.1em .5em;border:0}
.dir{font-weight:700}.status-bad{color:#a40e26;font-weight:700}
.verdict{font-size:1.05em;font-weight:600}
pre.excerpt{border-color:#ff8182}
a.back{display:none}
@media print{details{display:block}pre{max-height:none}}
/* #case-…: that case alone at the top of the page, so a link (or a headless browser's
   screenshot) shows it without scrolling; "every case" goes back */
body:has(section.case:target)>:not(section.case:target){display:none}
section.case:target a.back{display:block;margin:0 0 .6em}
"""


def _badge(verdict: str) -> str:
    return f'<span class="badge {verdict.replace(" ", "-")}">{LABELS[verdict]}</span>'


def _anchor(name: str) -> str:
    return "case-" + _UNSAFE_NAME.sub("-", name)


def _headers(headers: list[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
                   for k, v in headers)
    return f'<table class="headers">{rows}</table>' if rows else "<p>(no headers)</p>"


def needles(sentence: str | None) -> list[str]:
    """The ids a failure's sentence names (end-to-end ids, RtrIds, Vrfctn ids, MsgIds): the
    words with a digit, 4 to 35 characters, that a body may contain."""
    return list(dict.fromkeys(_ID.findall(sentence or "")))


def excerpt(text: str, wanted: list[str]) -> str | None:
    """The lines of a long body around the first places it names one of `wanted`, each
    window marked with its line numbers; None when the body is short or names none."""
    if len(text) <= EXCERPT_FROM_CHARS or not wanted:
        return None
    lines = text.splitlines()
    hits = [n for n, line in enumerate(lines) if any(w in line for w in wanted)]
    if not hits:
        return None
    windows: list[tuple[int, int]] = []
    for hit in hits:
        start, end = max(0, hit - EXCERPT_LINES), min(len(lines), hit + EXCERPT_LINES + 1)
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], end)
        elif len(windows) < MAX_EXCERPTS:
            windows.append((start, end))
    parts = [f"… lines {start + 1}–{end} of {len(lines):,}:\n" + "\n".join(lines[start:end])
             for start, end in windows]
    return "\n".join(parts)


def _exchange_html(exchange: Exchange, case: str, number: int, open_: bool,
                   wanted: list[str] | None = None) -> str:
    took = "" if exchange.duration_s is None else f" in {exchange.duration_s * 1000:,.0f} ms"
    status = (f"<span class=status-bad>{html.escape(exchange.error or 'no answer')}</span>"
              if exchange.status is None else
              f"<span class={'status-bad' if exchange.status >= 400 else ''}>"
              f"{exchange.status}</span>")
    answer = ("" if exchange.status is None else
              f"<div class=label>answer: HTTP {exchange.status}{took}</div>"
              f"{_headers(exchange.response_headers)}"
              f"{_body_html(exchange.response_body, _body_file(case, number, 'answer'), wanted)}")
    asked, said = what(exchange.request_body), what(exchange.response_body)
    return (f'<details class="exchange"{" open" if open_ else ""}><summary>{number}. '
            f"<span class=dir>{exchange.sender} → {exchange.receiver}</span> "
            f"{html.escape(exchange.method)} {html.escape(exchange.path)} "
            f"<b>{html.escape(asked)}</b> → {status} <b>{html.escape(said)}</b>{took}"
            f"</summary><div class=label>request</div>{_headers(exchange.request_headers)}"
            f"{_body_html(exchange.request_body, _body_file(case, number, 'request'), wanted)}"
            f"{answer}</details>")


def _body_html(body: bytes, file: str, wanted: list[str] | None = None) -> str:
    """The body pretty-printed; for a long one that names an id of the failure, the part
    around it first, the whole (up to MAX_SHOWN_CHARS) folded below."""
    if not body:
        return "<p class=meta>(empty body)</p>"
    text = pretty(body)
    whole = f"<pre>{html.escape(_shown(text, file))}</pre>"
    part = excerpt(text, wanted or [])
    if part is None:
        return whole
    named = ", ".join(w for w in wanted or [] if w in part)
    return (f"<div class=label>the part that matters (naming {html.escape(named)})"
            f"</div><pre class=excerpt>{html.escape(part)}</pre><details><summary>the whole "
            f"body ({count(len(text), 'character')})</summary>{whole}</details>")


def _case_html(r: CaseResult) -> str:
    failed = r.verdict == FAILED
    wrong = ""
    if r.wrong:
        wrong = (f"<div class=label>{'what was wrong' if failed else 'why'}</div>"
                 f"<p class={'wrong' if failed else ''}>{html.escape(r.wrong)}</p>")
    problems = ""
    if len(r.problems) > (1 if failed and r.wrong in r.problems else 0):
        problems = ("<div class=label>every rule the bank's messages broke</div><ul>"
                    + "".join(f"<li>{html.escape(p)}</li>" for p in r.problems) + "</ul>")
    steps = ("<div class=label>steps</div><ol class=steps>"
             + "".join(f"<li>{html.escape(n)}</li>" for n in r.notes) + "</ol>") if r.notes else ""
    wanted = needles(r.wrong) if failed else []
    exchanges = "".join(_exchange_html(e, r.case.name, n, failed and (
        len(r.exchanges) <= 4 or any(w in e.request_body.decode(errors="replace")
                                     or w in e.response_body.decode(errors="replace")
                                     for w in wanted)), wanted)
                        for n, e in enumerate(r.exchanges, start=1))
    exchanged = (f"<div class=label>messages exchanged with the bank, in order "
                 f"({len(r.exchanges)})</div>{exchanges}") if r.exchanges else ""
    return (f'<section class="case{" failed-case" if failed else ""}" '
            f'id="{_anchor(r.case.name)}"><a class=back href="#">← every case</a>'
            f'<h3>{_badge(r.verdict)} {html.escape(r.case.name)}: '
            f"{html.escape(r.case.title)}</h3><p class=meta>"
            f"{r.case.plan_id} · {'mandatory' if r.mandatory else 'conditional'} · tags "
            f"{html.escape(', '.join(r.case.tags))} · {r.duration_s:.2f} s</p>"
            f"<div class=label>expected</div><p>{html.escape(r.case.expected)}</p>"
            f"{wrong}{problems}{steps}{exchanged}</section>")


def failed_first(results: list[CaseResult]) -> list[CaseResult]:
    """Failed cases first, then those that could not run, then the rest; each group in
    the plan's order."""
    rank = {FAILED: 0, NOT_RUN: 1}
    return sorted(results, key=lambda r: rank.get(r.verdict, 2) if r.chosen else 3)


def page(result: RunResult) -> str:
    settings = result.settings
    verdict = result.verdict
    badge = {CONFORMS: "passed", PARTIAL_RUN: "not-run"}.get(verdict, "failed")
    ordered = failed_first(result.results)
    rows = "".join(
        f"<tr><td>{_badge(r.verdict)}</td><td><a href='#{_anchor(r.case.name)}'>"
        f"{html.escape(r.case.name)}</a></td><td>{'mandatory' if r.mandatory else 'conditional'}"
        f"</td><td>{html.escape(r.wrong if r.verdict != PASSED and r.wrong else r.case.title)}"
        "</td></tr>" for r in ordered)
    setup = "".join(_exchange_html(e, "setup", n, False)
                    for n, e in enumerate(result.setup, start=1))
    return f"""<!doctype html><html lang=en><meta charset=utf-8>
<meta name=viewport content="width=device-width, initial-scale=1">
<title>switchlab conformance: {html.escape(settings.bic)} {verdict}</title><style>{STYLE}</style>
<h1>Conformance of {html.escape(settings.bic)}: <span class="badge {badge}"
style="font-size:.8em">{verdict}</span></h1>
<p class=verdict>{html.escape(headline(result))}</p>
<p>{html.escape(_verdict_line(result))}</p>
<p class=meta>Declared {html.escape(scope(result))}: it decides which cases are mandatory
(docs/conformance.md, "The test plan").</p>
<p class=meta>{html.escape(settings.participant_url)} · {settings.keys.signing} signing ·
run {result.started_at:%Y-%m-%d %H:%M:%S} UTC · {result.duration_s:.1f} s ·
the bank reached the switch at {html.escape(result.switch_url_for_bank or '-')}</p>
<p class=meta>Schema validation: {html.escape(_schemas_line(result))}.</p>
<table><tr><th>verdict</th><th>case</th><th>kind</th><th>what it checks, or what was wrong</th></tr>
{rows}</table>
<h2>Cases</h2>
{"".join(_case_html(r) for r in ordered)}
<h2>Before the cases</h2><p class=meta>The suite's first, harmless question (an acmt.023),
to check that the bank answers and accepts the switch's signature.</p>{setup or "<p>none</p>"}
</html>
"""
