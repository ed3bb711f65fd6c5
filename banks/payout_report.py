"""A payout's report as one self-contained HTML page a treasurer reads (no script, nothing
fetched; it prints): the counts, outcomes by reason, by bank and by programme, with amounts.

It is drawn from the summary.json it sits beside, figure for figure, so the two cannot
disagree.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from banks.cash_list import programme_vi
from banks.payout_trace import COUNTS

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.8em; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.bar { background: #2471a3; height: 0.8em; display: inline-block; }
.bad { color: #c0392b; font-weight: bold; } .good { color: #1e8449; font-weight: bold; }
"""
STATUSES = ("paid", "returned", "rejected", "stopped", "unresolved", "earlier", "refused")
DEFINITIONS = {
    "rows": "rows of the table (good and refused)",
    "refused": "refused by the table's check: table_errors.csv, back to the ministry",
    "earlier": "paid, listed or being paid by another run of this treasury (the register)",
    "stopped": "verification said no: never sent",
    "sent": "sent at least once by this run",
    "resent": "sent again under a new end-to-end id after a transient rejection",
    "paid": "settled and kept by the beneficiary",
    "returned": "settled, then returned by the bank",
    "rejected": "refused by the switch or the bank: no money moved",
    "unresolved": "no final status yet: run the same command again",
    "cash": "on the post office's cash list",
    "deceased": "on the ministry's deceased list",
}


def write_report(path: Path, summary: Mapping[str, Any]) -> None:
    """The page for a run's summary (switchlab/payout.py's summary.json)."""
    e = html.escape
    counts, amounts = summary["counts"], summary["amounts_vnd"]
    rows = max(counts["rows"], 1)
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>Payout report {e(summary['run_id'])}</title><style>{STYLE}</style>"
             "</head><body><h1>Payout report</h1>",
             f"<p>Run <code>{e(summary['run_id'])}</code> of the table with SHA-256 "
             f"<code>{e(summary['table_sha256'])}</code>; register <code>"
             f"{e(summary['register'])}</code>.</p>"]
    mismatches = summary["reconciliation"]
    parts.append("<p class='bad'>Reconciliation failed: " + "; ".join(
        e(m["text"]) for m in mismatches) + "</p>" if mismatches else
        "<p class='good'>No reconciliation mismatch.</p>")
    parts.append(f"<p>Debited (settled) {summary['settled_vnd']:,} VND, of which returned "
                 f"{summary['returned_vnd']:,} VND.</p>")
    parts.append("<h2>Counts</h2><table><tr><th>count</th><th class='n'>rows</th>"
                 "<th class='n'>VND</th><th>share of the table</th><th>what it is</th></tr>")
    for name in COUNTS:
        share = counts[name] / rows
        amount = f"{amounts[name]:,}" if name in amounts else ""
        parts.append(f"<tr><td>{name}</td><td class='n'>{counts[name]:,}</td><td class='n'>"
                     f"{amount}</td><td><span class='bar' style='width:"
                     f"{share * 12:.2f}em'></span> {share:.1%}</td>"
                     f"<td>{e(DEFINITIONS[name])}</td></tr>")
    parts.append("</table><h2>Outcomes by reason</h2><table><tr><th>status</th><th>code</th>"
                 "<th>reason</th><th class='n'>rows</th><th class='n'>VND</th></tr>")
    for reason in summary["by_reason"]:
        parts.append(f"<tr><td>{e(reason['status'])}</td><td>{e(reason['reason_code'] or '-')}"
                     f"</td><td>{e(reason['reason_text'][:300])}</td><td class='n'>"
                     f"{reason['count']:,}</td><td class='n'>{reason['amount_vnd']:,}</td></tr>")
    parts.append("</table>")
    for title, key, what in (("By bank", "by_bank", "bank (BIC)"),
                             ("By programme", "by_programme", "programme")):
        parts.append(f"<h2>{title}</h2><p>Rows, and VND below them.</p><table><tr>"
                     f"<th>{what}</th>" + "".join(f"<th class='n'>{s}</th>" for s in STATUSES)
                     + "</tr>")
        for name, group in summary[key].items():
            shown = programme_vi(name) if key == "by_programme" else name
            parts.append(f"<tr><td>{e(shown)}</td>" + "".join(
                f"<td class='n'>{group.get(s, 0):,}<br><small>{group.get(s + '_vnd', 0):,}"
                "</small></td>" for s in STATUSES) + "</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    path.write_text("".join(parts), encoding="utf-8")
