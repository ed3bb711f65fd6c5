"""Reports of a scenario run: a terminal table for people, JSON for machines, JUnit XML for any
CI (each check a test case), and one self-contained HTML page an operator reads.

The page's charts are drawn by matplotlib as SVG and written inline: no script, no network,
and it prints. The same figures are in result.json: throughput and latency over time,
outcomes by reason with rejected and returned apart, and a line per participant.
"""

from __future__ import annotations

import html
import io
import json
import math
import traceback
from collections import Counter
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from banks.payout import PayoutStatus, percentile
from banks.registry import PARTICIPANTS
from protocol.reasons import DESCRIPTIONS
from protocol.wording import count
from scenarios.runner import RunRecord

CRASH_EXIT_STATUS = 3  # the run itself broke: not a verdict on the switch
MIN_BUCKETS, MAX_BUCKETS = 20, 150
BUCKETS_PER_S = 4
COLOURS = {"settled": "#1e8449", "rejected": "#d35400", "returned": "#7d3c98",
           "p50": "#2471a3", "p99": "#7d3c98", "fault": "#c0392b"}


def scope(record: RunRecord) -> str:
    """What the verdict covers when the run played less than the scenario: " at CI size:
    3,000 of its 100,000 beneficiaries" ("" for a run at full size)."""
    if record.size >= record.scenario_size:
        return ""
    return (f" at CI size: {record.size:,} of its "
            f"{count(record.scenario_size, 'beneficiary', 'beneficiaries')}")


def by_process(record: RunRecord) -> str:
    """'switch process p1 made 1,530 transfers final (51 %), p2 1,470 (49 %)': each process's
    own count (its /metrics), for a run of several."""
    total = sum(record.final_by_process.values()) or 1
    return ", ".join(f"{process} {made:,} ({made / total:.0%})"
                     for process, made in sorted(record.final_by_process.items()))


def terminal(record: RunRecord) -> str:
    lines = [record.result.summary(), "", f"Scenario {record.scenario}: "
             f"{'HELD' if record.passed else 'FAILED'}{scope(record)}"]
    if len(record.final_by_process) > 1:
        lines.insert(1, f"Made final by each switch process: {by_process(record)}")
    for check in record.checks:
        kind = "invariant" if check.invariant else "expect"
        lines.append(f"  {'PASS' if check.passed else 'FAIL'}  {kind:<9} {check.name:<32} "
                     f"{check.detail}")
    return "\n".join(lines)


# ---- figures, shared by result.json and report.html -----------------------------------------

def _buckets(span_s: float) -> int:
    return int(min(MAX_BUCKETS, max(MIN_BUCKETS, span_s * BUCKETS_PER_S)))


def throughput(record: RunRecord) -> list[dict[str, float]]:
    """Final statuses per second at the treasury over the run, settled and rejected apart:
    [{t_s (bucket end, s from the start), settled_per_s, rejected_per_s}]."""
    log = record.latencies
    if not log:
        return []
    finished = np.frombuffer(log.finished_s, dtype=np.float64) - record.started_s
    settled = np.frombuffer(log.settled, dtype=np.uint8).astype(bool)
    span_s = max(float(finished.max()), 1e-3)
    edges = np.linspace(0.0, span_s, _buckets(span_s) + 1)
    width_s = edges[1] - edges[0]
    ok, _ = np.histogram(finished[settled], edges)
    no, _ = np.histogram(finished[~settled], edges)
    return [{"t_s": round(float(end), 3), "settled_per_s": round(float(a) / width_s, 1),
             "rejected_per_s": round(float(b) / width_s, 1)}
            for end, a, b in zip(edges[1:], ok, no, strict=True)]


def outcomes_by_reason(record: RunRecord) -> dict[str, dict[str, dict[str, int]]]:
    """{"rejected": {code: {count, amount_vnd}}, "returned": {…}}: an MD07 refused before
    payment and an MD07 sent back after it are different figures."""
    figures: dict[str, dict[str, dict[str, int]]] = {"rejected": {}, "returned": {}}
    for outcome in record.result.outcomes:
        if outcome.status not in (PayoutStatus.REJECTED, PayoutStatus.RETURNED):
            continue
        entry = figures[outcome.status.value].setdefault(
            outcome.reason_code or "NARR", {"count": 0, "amount_vnd": 0})
        entry["count"] += 1
        entry["amount_vnd"] += (outcome.returned_vnd if outcome.status == PayoutStatus.RETURNED
                                else outcome.payment.amount_vnd)
    return {kind: dict(sorted(codes.items(), key=lambda kv: -kv[1]["count"]))
            for kind, codes in figures.items()}


def participants(record: RunRecord) -> list[dict[str, Any]]:
    """One line per creditor participant: transfers and VND by outcome, rejections and
    returns by reason, latency to final status (p50, p99, ms). `paid` counts transfers
    settled and kept; `paid_vnd` is what beneficiaries kept, as in banks/payout.py."""
    lines: dict[str, dict[str, Any]] = {}
    for o in record.result.outcomes:
        bic = o.payment.creditor_bic
        line = lines.setdefault(bic, {
            "bic": bic, "name": PARTICIPANTS[bic].name if bic in PARTICIPANTS else bic,
            "transfers": 0, "submitted_vnd": 0, "paid": 0, "paid_vnd": 0, "rejected": 0,
            "rejected_vnd": 0, "returned": 0, "returned_vnd": 0, "unresolved": 0,
            "rejected_by_reason": Counter(), "returned_by_reason": Counter()})
        amount = o.payment.amount_vnd
        line["transfers"] += 1
        line["submitted_vnd"] += amount
        if o.status in (PayoutStatus.PAID, PayoutStatus.RETURNED):
            line["paid_vnd"] += amount - o.returned_vnd
        if o.status == PayoutStatus.PAID:
            line["paid"] += 1
        elif o.status == PayoutStatus.REJECTED:
            line["rejected"] += 1
            line["rejected_vnd"] += amount
            line["rejected_by_reason"][o.reason_code or "NARR"] += 1
        elif o.status == PayoutStatus.RETURNED:
            line["returned"] += 1
            line["returned_vnd"] += o.returned_vnd
            line["returned_by_reason"][o.reason_code or "NARR"] += 1
        else:
            line["unresolved"] += 1
    latencies = record.latencies.by_creditor()
    for bic, line in lines.items():
        values = latencies.get(bic, [])
        line["latency_ms_p50"] = round(percentile(values, 50), 1)
        line["latency_ms_p99"] = round(percentile(values, 99), 1)
        line["rejected_by_reason"] = dict(line["rejected_by_reason"].most_common())
        line["returned_by_reason"] = dict(line["returned_by_reason"].most_common())
    return [lines[bic] for bic in sorted(lines)]


def as_json(record: RunRecord) -> dict[str, object]:
    values = list(record.latencies.latency_ms)
    return {
        "scenario": record.scenario, "passed": record.passed, "beneficiaries": record.size,
        "scenario_beneficiaries": record.scenario_size,
        "final_by_process": record.final_by_process,
        "result": record.result.as_dict(),
        "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail,
                    "invariant": c.invariant} for c in record.checks],
        "outcomes_by_reason": outcomes_by_reason(record),
        "latency_ms": {"p50": round(percentile(values, 50), 1),
                       "p99": round(percentile(values, 99), 1), "count": len(values),
                       "dropped": record.latencies.dropped,
                       "over_time": record.latencies.over_time(record.started_s)},
        "throughput": throughput(record),
        "participants": participants(record),
        "faults": record.faults, "settlement": record.settlement, "samples": record.samples,
        "duplicates_refused": record.duplicates_refused, "bank_totals": record.bank_totals,
    }


def junit(record: RunRecord) -> str:
    failures = sum(not c.passed for c in record.checks)
    cases = []
    for check in record.checks:
        body = "" if check.passed else (
            f"<failure message={quoteattr(check.detail)}>{html.escape(check.detail)}</failure>")
        cases.append(f"  <testcase classname={quoteattr('scenario.' + record.scenario)} "
                     f"name={quoteattr(check.name)} time=\"0\">{body}</testcase>")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name={quoteattr(record.scenario)}'
            f' tests="{len(record.checks)}" failures="{failures}" errors="0" '
            f'time="{record.result.elapsed_s:.3f}">\n' + "\n".join(cases) + "\n</testsuite>\n")


def write_crash_reports(scenario: str, error: BaseException, out: Path) -> dict[str, Path]:
    """When the run itself broke (not a check): junit.xml with the error as a test case, so
    CI shows it, and result.json saying so. Exit with CRASH_EXIT_STATUS."""
    out.mkdir(parents=True, exist_ok=True)
    text = "".join(traceback.format_exception(error))
    message = f"{type(error).__name__}: {error}"
    paths = {"json": out / "result.json", "junit": out / "junit.xml"}
    paths["junit"].write_text(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name={quoteattr(scenario)} '
        f'tests="1" failures="0" errors="1" time="0">\n'
        f"  <testcase classname={quoteattr('scenario.' + scenario)} name=\"the run\" "
        f'time="0"><error message={quoteattr(message)}>{html.escape(text)}</error></testcase>'
        "\n</testsuite>\n", encoding="utf-8")
    paths["json"].write_text(json.dumps({"scenario": scenario, "passed": False,
                                         "error": message, "traceback": text}, indent=1,
                                        ensure_ascii=False), encoding="utf-8")
    return paths


# ---- the page --------------------------------------------------------------------------------

def _svg(figure: Figure) -> str:
    """The figure as inline SVG, its text left as text (smaller, selectable, the page's
    font) and no date in it (the same run gives the same page)."""
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "switchlab"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _with_gaps(points: list[dict[str, float]], key: str, width_s: float
               ) -> tuple[list[float], list[float]]:
    """Times and values with a break (NaN) where no transfer became final for a while, so
    that a line does not bridge an outage."""
    times: list[float] = []
    values: list[float] = []
    for point in points:
        if times and point["t_s"] - times[-1] > 1.5 * width_s:
            times.append(times[-1] + width_s)
            values.append(math.nan)
        times.append(point["t_s"])
        values.append(point[key])
    return times, values


def _time_axis(axes: Any, span_s: float) -> None:
    """Seconds on short runs, minutes:seconds past two minutes."""
    axes.set_xlim(0, span_s * 1.01)
    axes.xaxis.set_major_locator(MaxNLocator(nbins=10, steps=[1, 2, 2.5, 5, 10]))
    if span_s > 120:
        axes.xaxis.set_major_formatter(FuncFormatter(
            lambda s, _: f"{int(s) // 60}:{int(s) % 60:02d}"))
        axes.set_xlabel("time since the start (min:s)")
    else:
        axes.set_xlabel("time since the start (s)")
    axes.grid(True, color="#e6e9ef")
    axes.spines[["top", "right"]].set_visible(False)


def _faults(axes: Any, faults: list[dict[str, Any]]) -> None:
    """A dashed red line where each fault was injected, named above the plot (labels of
    faults close together are staggered so that they do not overlap)."""
    for index, fault in enumerate(faults):
        axes.axvline(fault["at_s"], color=COLOURS["fault"], linestyle="--", linewidth=1.2)
        axes.annotate(f"{fault['action']} {fault['participant']}".rstrip(),
                      (fault["at_s"], 1.02 + 0.09 * (index % 3)),
                      xycoords=("data", "axes fraction"), ha="center", va="bottom",
                      fontsize=9, color=COLOURS["fault"], annotation_clip=False)


def _span_s(record: RunRecord, rates: list[dict[str, float]]) -> float:
    ends = [rates[-1]["t_s"]] if rates else []
    ends += [f["at_s"] for f in record.faults] + [s["t_s"] for s in record.samples[-1:]]
    return max(ends, default=1.0) or 1.0


def throughput_chart(record: RunRecord, rates: list[dict[str, float]], span_s: float) -> str:
    figure = Figure(figsize=(10, 3.2))
    axes = figure.subplots()
    times = [r["t_s"] for r in rates]
    axes.step(times, [r["settled_per_s"] for r in rates], where="pre",
              color=COLOURS["settled"], label="settled per second")
    axes.step(times, [r["rejected_per_s"] for r in rates], where="pre",
              color=COLOURS["rejected"], label="rejected per second")
    axes.set_ylabel("final statuses per second")
    axes.set_ylim(bottom=0)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    _time_axis(axes, span_s)
    _faults(axes, record.faults)
    _legend(axes)
    return _svg(figure)


def throughput_note(rates: list[dict[str, float]], average_per_s: float) -> str:
    """A sentence under the throughput chart when its steps are shorter than a second: there a
    bulk file's status report, which makes a thousand lines final at once, reads as a rate
    many times the run's; the note says how wide a step is and what the average was."""
    width_s = rates[0]["t_s"] if rates else 1.0
    if width_s >= 1.0:
        return ""
    peak_per_s = max(max(r["settled_per_s"], r["rejected_per_s"]) for r in rates)
    return (f"<p class=note>Each step is {width_s * 1000:,.0f} ms wide: transfers that become "
            "final together (a bulk file's status report makes its lines final at once) show "
            f"as a burst over one step, up to {peak_per_s:,.0f} per second here, where the "
            f"run's average was {average_per_s:,.0f} per second.</p>")


def _legend(axes: Any) -> None:
    """Below the time axis, where it hides no data."""
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, frameon=False,
                fontsize=9)


def latency_chart(record: RunRecord, span_s: float) -> str:
    buckets = _buckets(span_s)
    points = record.latencies.over_time(record.started_s, buckets)
    width_s = max(p["t_s"] for p in points) / buckets
    figure = Figure(figsize=(10, 3.2))
    axes = figure.subplots()
    for key in ("p50", "p99"):
        axes.plot(*_with_gaps(points, key, width_s), color=COLOURS[key], marker=".", label=key)
    axes.set_ylabel("ms, submission to final")
    axes.set_yscale("log")
    axes.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1
                                                 else f"{v:g}"))
    axes.yaxis.set_minor_formatter(NullFormatter())
    _time_axis(axes, span_s)
    _faults(axes, record.faults)
    _legend(axes)
    return _svg(figure)


def reasons_chart(reasons: dict[str, dict[str, dict[str, int]]]) -> str:
    bars = [(f"{kind} {code}", figures["count"], COLOURS[kind])
            for kind in ("rejected", "returned") for code, figures in reasons[kind].items()]
    figure = Figure(figsize=(10, 0.45 * len(bars) + 0.8))
    axes = figure.subplots()
    labels = [label for label, _, _ in bars]
    axes.barh(labels, [n for _, n, _ in bars], color=[c for _, _, c in bars])
    axes.invert_yaxis()
    for index, (_, n, _) in enumerate(bars):
        axes.annotate(f" {n:,}", (n, index), va="center", fontsize=9)
    axes.set_xlabel("transfers")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure)


def _reason_rows(reasons: dict[str, dict[str, dict[str, int]]]) -> str:
    rows = [f"<tr><td>{kind}</td><td>{html.escape(code)}</td><td>{figures['count']:,}</td>"
            f"<td>{figures['amount_vnd']:,}</td>"
            f"<td class=text>{html.escape(DESCRIPTIONS.get(code, ''))}</td></tr>"
            for kind in ("rejected", "returned") for code, figures in reasons[kind].items()]
    return "".join(rows) or "<tr><td class=text colspan=5>none</td></tr>"


def _ms(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _participant_rows(lines: list[dict[str, Any]]) -> str:
    def count_by_reason(count: int, counts: dict[str, int]) -> str:
        reasons = "".join(f"<br><small>{html.escape(code)} {n:,}</small>"
                          for code, n in counts.items())
        return f"{count:,}{reasons}"

    return "".join(
        f"<tr><td class=text>{html.escape(p['bic'])}<br><small>{html.escape(p['name'])}</small>"
        f"</td><td>{p['transfers']:,}</td><td>{p['submitted_vnd']:,}</td><td>{p['paid']:,}</td>"
        f"<td>{p['paid_vnd']:,}</td><td>{count_by_reason(p['rejected'], p['rejected_by_reason'])}"
        f"</td><td>{count_by_reason(p['returned'], p['returned_by_reason'])}</td>"
        f"<td>{p['unresolved']:,}</td><td>{_ms(p['latency_ms_p50'])}</td>"
        f"<td>{_ms(p['latency_ms_p99'])}</td></tr>"
        for p in lines)


STYLE = """body{font-family:system-ui,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;
color:#1d2430}h1{font-size:1.5em}h2{font-size:1.1em;margin-top:1.8em}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:.92em}
td,th{padding:3px 9px;border-bottom:1px solid #edf0f4;text-align:right;vertical-align:top}
th{background:#f5f7fa}td.text,th.text{text-align:left}
.pass td:first-child{color:#1e8449}.fail td:first-child{color:#c0392b;font-weight:bold}
.verdict-held{color:#1e8449}.verdict-failed{color:#c0392b}.note{color:#5b6576;font-size:.9em}
.summary td:first-child{text-align:left}svg{max-width:100%;height:auto}
svg text{font-family:system-ui,sans-serif}td{white-space:nowrap}small{color:#5b6576}"""


def html_report(record: RunRecord) -> str:
    outcome = record.result
    rates = throughput(record)
    span_s = _span_s(record, rates)
    reasons = outcomes_by_reason(record)
    checks = "".join(
        f"<tr class=\"{'pass' if c.passed else 'fail'}\"><td class=text>"
        f"{'PASS' if c.passed else 'FAIL'}</td><td class=text>"
        f"{'invariant' if c.invariant else 'expect'}</td><td class=text>{html.escape(c.name)}"
        f"</td><td class=text>{html.escape(c.detail)}</td></tr>" for c in record.checks)
    faults = "".join(
        f"<tr><td>{f['at_s']:,.2f}</td><td class=text>{html.escape(f['trigger'])}</td>"
        f"<td class=text>{html.escape(f['action'])}</td>"
        f"<td class=text>{html.escape(f['participant'])}</td>"
        f"<td class=text>{html.escape(f['note'])}</td></tr>"
        for f in record.faults) or "<tr><td class=text colspan=5>none</td></tr>"
    summary = "".join(
        f"<tr><td>{label}</td><td>{count:,}</td><td>{amount:,}</td></tr>" for label, count, amount
        in (("submitted", len(outcome.outcomes), outcome.submitted_vnd),
            ("paid (settled and kept)", outcome.by_status[PayoutStatus.PAID], outcome.paid_vnd),
            ("rejected", outcome.by_status[PayoutStatus.REJECTED], outcome.rejected_vnd),
            ("returned after settlement", outcome.by_status[PayoutStatus.RETURNED],
             outcome.returned_vnd),
            ("unresolved", outcome.by_status[PayoutStatus.UNRESOLVED], outcome.unresolved_vnd)))
    values = list(record.latencies.latency_ms)
    verdict = "held" if record.passed else "FAILED"
    processes = (f"<p>Transfers made final by each switch process (its own /metrics): "
                 f"{html.escape(by_process(record))}.</p>"
                 if len(record.final_by_process) > 1 else "")
    latency = (f"<h2>Latency to final status over time</h2>{latency_chart(record, span_s)}"
               if record.latencies else "")
    return f"""<!doctype html><html lang="en"><meta charset="utf-8">
<title>switchlab: {html.escape(record.scenario)} {verdict}</title><style>{STYLE}</style>
<h1>{html.escape(record.scenario)}: <span class="verdict-{verdict.lower()}">{verdict}</span>
{html.escape(scope(record))}</h1>
<p>{html.escape(record.description)}</p>{processes}
<p>{count(record.size, "beneficiary", "beneficiaries")};
{count(len(outcome.outcomes), "transfer")} in
{outcome.elapsed_s:,.2f} s ({outcome.transfers_per_s:,.0f} per second); latency from submission
to final status p50 {_ms(percentile(values, 50))} ms, p99 {_ms(percentile(values, 99))} ms over
{count(len(values), "transfer")}. The treasury was debited {outcome.settled_vnd:,} VND.</p>
<table class=summary><tr><th class=text>outcome</th><th>transfers</th><th>VND</th></tr>
{summary}</table>
<h2>Checks</h2><table>{checks}</table>
<h2>Throughput: final statuses per second (faults dashed red)</h2>
{throughput_chart(record, rates, span_s) if rates else "<p>no transfer became final</p>"}
{throughput_note(rates, outcome.transfers_per_s)}
{latency}
<h2>Outcomes by reason</h2>
{reasons_chart(reasons) if any(reasons.values()) else ""}
<table><tr><th class=text>outcome</th><th class=text>reason</th><th>transfers</th><th>VND</th>
<th class=text>meaning</th></tr>{_reason_rows(reasons)}</table>
<h2>Per participant (creditor)</h2>
<p>Paid: settled and kept; paid VND is what the beneficiaries kept. Latency: from the
treasury's submission to the final status it received, in ms.</p>
<table><tr><th class=text>participant</th><th>transfers</th><th>submitted VND</th>
<th>paid</th><th>paid VND</th><th>rejected, by reason</th><th>returned, by reason</th>
<th>unresolved</th><th>p50 ms</th><th>p99 ms</th></tr>
{_participant_rows(participants(record))}</table>
<h2>Injected faults</h2><table><tr><th>at s</th><th class=text>trigger</th>
<th class=text>action</th><th class=text>participant</th><th class=text>note</th></tr>
{faults}</table></html>
"""


def write_reports(record: RunRecord, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "result.json", "junit": out / "junit.xml", "html": out / "report.html"}
    paths["json"].write_text(json.dumps(as_json(record), indent=1, ensure_ascii=False),
                             encoding="utf-8")
    paths["junit"].write_text(junit(record), encoding="utf-8")
    paths["html"].write_text(html_report(record), encoding="utf-8")
    record.result.write(out / "results.csv")
    return paths
