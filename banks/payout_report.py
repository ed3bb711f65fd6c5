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
from banks.registry import PARTICIPANTS
from protocol.wording import VIETNAM_TIME_NAME, count

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.8em; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.bar { background: #2471a3; height: 0.8em; display: inline-block; }
.bad { color: #c0392b; font-weight: bold; } .good { color: #1e8449; font-weight: bold; }
"""
# Vietnamese beside the English, where a clerk reads the report
VI = {"rows": "số dòng", "refused": "dòng lỗi", "earlier": "đã xử lý ở lần chạy trước",
      "stopped": "dừng trước khi chuyển", "sent": "đã gửi", "resent": "gửi lại",
      "paid": "đã chi trả", "returned": "bị trả lại", "rejected": "bị từ chối",
      "unresolved": "chưa có kết quả", "cash": "chi tiền mặt", "deceased": "đã qua đời",
      "Counts": "Số liệu", "Outcomes by reason": "Kết quả theo lý do",
      "By bank": "Theo ngân hàng", "By programme": "Theo chương trình"}
STATUSES = ("paid", "returned", "rejected", "stopped", "unresolved", "earlier", "refused")
DEFINITIONS = {
    "rows": "rows of the table (good and refused)",
    "refused": "refused by the table's check: table_errors.csv, back to the ministry",
    "earlier": "paid, listed or being paid by another run of this treasury (the register)",
    "stopped": "never sent: verification said no (acmt.024), the bank's answer (closed, "
               "blocked, another holder, deceased) or the switch's for a bank it does not "
               "admit (RC01) or a citizen id with no linked account (BE23), or, with "
               "--register, the population register's check stopped it (MD07 dead since the "
               "list, BE06 an unknown CCCD, C601 another name, C602 another birth date); each "
               "code under 'Outcomes by reason'",
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
    table = summary.get("table", "")
    written = summary.get("written_at", "")
    named = f"{table}, {written[:10]}" if table else summary["run_id"]
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>Payout report: {e(named)}</title><style>{STYLE}</style>"
             f"</head><body><h1>Payout report: {e(table or 'payment table')} "
             f"<small lang='vi'>(Báo cáo chi trả)</small></h1>",
             f"<p>Table <b>{e(table)}</b>, paid by {e(summary.get('treasury', ''))}; report "
             f"written {e(written[:19].replace('T', ' '))} ({VIETNAM_TIME_NAME}). Run "
             f"<code>{e(summary['run_id'])}</code>"
             f", table SHA-256 <code>{e(summary['table_sha256'])}</code>; register <code>"
             f"{e(summary['register'])}</code>.</p>"]
    ignored = summary.get("ignored_columns") or []
    if ignored:  # the table's columns switchlab does not read: a typo'd name is one
        parts.append("<p class='bad'>Columns of the table ignored <small lang='vi'>(cột bị bỏ "
                     f"qua)</small>: {', '.join(f'<code>{e(name)}</code>' for name in ignored)}"
                     " (not a column switchlab reads: docs/payment-table.md).</p>")
    mismatches = summary["reconciliation"]
    not_reconciled, unreached = summary.get("not_reconciled"), summary.get("unresolved_because")
    if not_reconciled:  # the switch's books could not be read: no mismatch proves nothing
        parts.append(f"<p class='bad'>Not reconciled: {e(not_reconciled)}.</p>")
    parts.append("<p class='bad'>Reconciliation failed: " + "; ".join(
        e(m["text"]) for m in mismatches) + "</p>" if mismatches else
        "" if not_reconciled else "<p class='good'>No reconciliation mismatch.</p>")
    if unreached:
        parts.append(f"<p class='bad'>Unresolved rows: {e(unreached)}.</p>")
    parts.append(f"<p>Debited (settled) {summary['settled_vnd']:,} VND, of which returned "
                 f"{summary['returned_vnd']:,} VND.</p>")
    parts.append(f"<h2>Counts {_vi('Counts')}</h2><table><tr><th>count</th><th class='n'>rows</th>"
                 "<th class='n'>VND</th><th>share of the table</th><th>what it is</th></tr>")
    for name in COUNTS:
        share = counts[name] / rows
        amount = f"{amounts[name]:,}" if name in amounts else ""
        parts.append(f"<tr><td>{name} {_vi(name)}</td><td class='n'>{counts[name]:,}</td>"
                     "<td class='n'>"
                     f"{amount}</td><td><span class='bar' style='width:"
                     f"{share * 12:.2f}em'></span> {share:.1%}</td>"
                     f"<td>{e(definition(name, summary['by_reason']))}</td></tr>")
    parts.append(f"</table><h2>Outcomes by reason {_vi('Outcomes by reason')}</h2><table><tr>"
                 "<th>status</th><th>code</th>"
                 "<th>reason</th><th class='n'>rows</th><th class='n'>VND</th></tr>")
    for reason in summary["by_reason"]:
        parts.append(f"<tr><td>{e(reason['status'])} {_vi(reason['status'])}</td>"
                     f"<td>{e(reason['reason_code'] or '-')}"
                     f"</td><td>{e(reason['reason_text'][:300])}</td><td class='n'>"
                     f"{reason['count']:,}</td><td class='n'>{reason['amount_vnd']:,}</td></tr>")
    parts.append("</table>")
    for title, key, what in (("By bank", "by_bank", "bank (BIC)"),
                             ("By programme", "by_programme", "programme")):
        parts.append(f"<h2>{title} {_vi(title)}</h2><p>Rows, and VND below them (none for "
                     "refused rows: their amount is as the table wrote it).</p><table>"
                     f"<tr><th>{what}</th>" + "".join(
                         f"<th class='n'>{s}<br>{_vi(s)}</th>" for s in STATUSES)
                     + "</tr>")
        for name, group in summary[key].items():
            shown = programme_vi(name) if key == "by_programme" else bank_name(name)
            parts.append(f"<tr><td>{e(shown)}</td>" + "".join(
                f"<td class='n'>{group.get(s, 0):,}<br><small>"
                + ("" if s == "refused" else f"{group.get(s + '_vnd', 0):,}")
                + "</small></td>" for s in STATUSES) + "</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    path.write_text("".join(parts), encoding="utf-8")


def definition(status: str, by_reason: list[Mapping[str, Any]]) -> str:
    """What a count is; for one made of reasons (stopped, rejected, returned), the codes this
    run gave it, each with its meaning, so that no code of the run goes unexplained."""
    codes = [f"{r['reason_code']} {r['reason_text']} ({count(r['count'], 'row')})"
             for r in by_reason if r["status"] == status and r["reason_code"]]
    return DEFINITIONS[status] + (f". This run: {'; '.join(codes)}" if codes else "")


def _vi(english: str) -> str:
    """The Vietnamese label beside an English heading or status, if there is one."""
    text = VI.get(english)
    return f"<small lang='vi'>({html.escape(text)})</small>" if text else ""


def bank_name(bic: str) -> str:
    """`Vietcombank (BFTVVNVX)`: a lab participant's name beside its BIC; the BIC alone for
    one the lab does not know."""
    participant = PARTICIPANTS.get(bic)
    return f"{participant.name} ({bic})" if participant is not None else bic
