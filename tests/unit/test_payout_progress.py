"""A new user's finding: `switchlab payout` showed two unlabelled bars, "0/7 row" then
"0/6 row". The bar says what it counts: verifying first, then paying (the run's rows less
those verification stopped)."""

from __future__ import annotations

import io

from tqdm import tqdm

from switchlab.payout import PAYING, VERIFYING, _show


def test_the_payout_bar_is_labelled_verifying_then_paying() -> None:
    shown = io.StringIO()
    bar = tqdm(total=7, unit="row", desc=VERIFYING, file=shown)
    bar.refresh()
    _show(bar, 0, 6)  # verification stopped one row: six are paid
    _show(bar, 6, 6)
    bar.close()
    lines = shown.getvalue().replace("\r", "\n")
    assert f"{VERIFYING}:   0%" in lines and "0/7" in lines
    assert f"{PAYING}: 100%" in lines and "6/6" in lines


def test_a_disabled_bar_takes_the_calls_too() -> None:
    """--no-progress: tqdm(disable=True) has no label to change."""
    bar = tqdm(total=7, unit="row", desc=VERIFYING, disable=True)
    _show(bar, 6, 6)
    assert (bar.total, bar.n) == (6, 6)
