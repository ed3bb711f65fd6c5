"""Reports of a scenario run: a terminal table for people, JSON for machines, JUnit XML for any
CI (each check a test case), and one self-contained HTML page with the curves and the faults."""

from __future__ import annotations

import html
import json
from pathlib import Path
from xml.sax.saxutils import quoteattr

from protocol.reasons import DESCRIPTIONS
from scenarios.runner import RunRecord

WIDTH, HEIGHT, PAD = 760, 240, 40


def terminal(record: RunRecord) -> str:
    lines = [record.result.summary(), "", f"Scenario {record.scenario}: "
             f"{'HELD' if record.passed else 'FAILED'}"]
    for check in record.checks:
        kind = "invariant" if check.invariant else "expect"
        lines.append(f"  {'PASS' if check.passed else 'FAIL'}  {kind:<9} {check.name:<32} "
                     f"{check.detail}")
    return "\n".join(lines)


def as_json(record: RunRecord) -> dict[str, object]:
    return {
        "scenario": record.scenario, "passed": record.passed, "beneficiaries": record.size,
        "result": record.result.as_dict(),
        "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail,
                    "invariant": c.invariant} for c in record.checks],
        "faults": record.faults, "settlement": record.settlement, "samples": record.samples,
        "duplicates_refused": record.duplicates_refused,
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


def _polyline(points: list[tuple[float, float]], max_x: float, max_y: float, color: str) -> str:
    if not points:
        return ""
    scaled = " ".join(
        f"{PAD + x / max_x * (WIDTH - 2 * PAD):.1f},"
        f"{HEIGHT - PAD - y / max_y * (HEIGHT - 2 * PAD):.1f}" for x, y in points)
    return f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{scaled}"/>'


def _chart(title: str, series: dict[str, tuple[str, list[tuple[float, float]]]],
           faults: list[dict[str, object]], unit: str) -> str:
    xs = [x for _, points in series.values() for x, _ in points] or [1.0]
    ys = [y for _, points in series.values() for _, y in points] or [1.0]
    max_x, max_y = max(max(xs), 1e-9), max(max(ys), 1e-9)
    marks = "".join(
        f'<line x1="{PAD + float(f["at_s"]) / max_x * (WIDTH - 2 * PAD):.1f}" y1="{PAD}" '
        f'x2="{PAD + float(f["at_s"]) / max_x * (WIDTH - 2 * PAD):.1f}" y2="{HEIGHT - PAD}" '
        f'stroke="#c0392b" stroke-dasharray="4"><title>{html.escape(str(f["action"]))} '
        f'{html.escape(str(f["participant"]))} at {f["at_s"]} s</title></line>'
        for f in faults if float(str(f["at_s"])) <= max_x)
    legend = " ".join(f'<tspan fill="{color}">■ {html.escape(name)}</tspan>'
                      for name, (color, _) in series.items())
    lines = "".join(_polyline(points, max_x, max_y, color) for color, points in series.values())
    return (
        f'<h2>{html.escape(title)}</h2><svg width="{WIDTH}" height="{HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="11">'
        f'<rect x="{PAD}" y="{PAD}" width="{WIDTH - 2 * PAD}" height="{HEIGHT - 2 * PAD}" '
        f'fill="#fafafa" stroke="#ccc"/>{marks}{lines}'
        f'<text x="{PAD}" y="{PAD - 8}">{legend}</text>'
        f'<text x="{PAD - 4}" y="{PAD + 4}" text-anchor="end">{max_y:,.0f}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - PAD + 16}" text-anchor="end">{max_x:.1f} s</text>'
        f'<text x="{PAD - 4}" y="{HEIGHT - PAD}" text-anchor="end">0 {html.escape(unit)}</text>'
        "</svg>"
    )


def _rates(record: RunRecord) -> dict[str, tuple[str, list[tuple[float, float]]]]:
    settled, rejected = [], []
    for before, after in zip(record.samples, record.samples[1:], strict=False):
        span_s = max(after["t_s"] - before["t_s"], 1e-6)
        settled.append((after["t_s"], (after["settled"] - before["settled"]) / span_s))
        rejected.append((after["t_s"], (after["rejected"] - before["rejected"]) / span_s))
    return {"settled/s": ("#27ae60", settled), "rejected/s": ("#e67e22", rejected)}


def html_report(record: RunRecord) -> str:
    started = record.latencies_ms[0][0] if record.latencies_ms else 0.0
    latency = {"latency ms": ("#2980b9", [(t - started, ms) for t, ms in record.latencies_ms])}
    rows = "".join(
        f"<tr class=\"{'pass' if c.passed else 'fail'}\"><td>{'PASS' if c.passed else 'FAIL'}"
        f"</td><td>{html.escape(c.name)}</td><td>{html.escape(c.detail)}</td></tr>"
        for c in record.checks)
    reasons = "".join(
        f"<tr><td>{code}</td><td>{count:,}</td><td>{html.escape(DESCRIPTIONS.get(code, ''))}"
        f"</td></tr>" for code, count in record.result.by_reason.most_common())
    faults = "".join(f"<li>{f['at_s']} s: {html.escape(str(f['action']))} "
                     f"{html.escape(str(f['participant']))} {html.escape(str(f['note']))}</li>"
                     for f in record.faults) or "<li>none</li>"
    outcome = record.result.as_dict()
    return f"""<!doctype html><html lang="en"><meta charset="utf-8">
<title>switchlab: {html.escape(record.scenario)}</title>
<style>body{{font-family:sans-serif;max-width:820px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{padding:2px 10px;border-bottom:1px solid #eee}}
.pass td:first-child{{color:#27ae60}}.fail td:first-child{{color:#c0392b;font-weight:bold}}</style>
<h1>{html.escape(record.scenario)}: {'held' if record.passed else 'FAILED'}</h1>
<p>{html.escape(record.description)}</p>
<p>{record.size:,} beneficiaries; {outcome['transfers']:,} transfers in {outcome['elapsed_s']} s
({outcome['transfers_per_s']:,} per second); paid {outcome['by_status'].get('paid', 0):,},
rejected {outcome['by_status'].get('rejected', 0):,}, returned
{outcome['by_status'].get('returned', 0):,}, unresolved
{outcome['by_status'].get('unresolved', 0):,}.</p>
<h2>Checks</h2><table>{rows}</table>
{_chart("Throughput over time (faults dashed red)", _rates(record), record.faults, "/s")}
{_chart("Instant transfer latency over time", latency, [], "ms") if record.latencies_ms else ""}
<h2>Outcomes by reason</h2><table><tr><th>code</th><th>transfers</th><th>meaning</th></tr>
{reasons}</table><h2>Injected faults</h2><ul>{faults}</ul></html>
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
