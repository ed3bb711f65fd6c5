"""A mock participant's Prometheus metrics: what it accepted, credited, refused and returned,
and what it still has to send the switch.

One registry per participant (the lab runs several in one process). They are the
participant's own view, to set beside the switch's (`switch/metrics.py`): a bank that credits
what the switch never settled, or answers what the switch refuses, shows here first.
Labels are bounded: a reason code from the scheme's list or `other`, and how an answer went.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable
from functools import partial

from prometheus_client import CollectorRegistry, Counter, Gauge

from protocol.exposition import reason_label

RESPONSE, POSTED = "response", "posted"


class BankMetrics:
    def __init__(self, pending_sends: Callable[[], int]) -> None:
        """`pending_sends` counts the answers and returns scheduled and not yet done."""
        self.registry = CollectorRegistry()
        counter = partial(Counter, registry=self.registry)
        self.accepted = counter(
            "switchlab_bank_transfers_accepted", "Transfers accepted (ACCP) and held until the "
            "switch confirms")
        self.rejected = counter(
            "switchlab_bank_transfers_rejected", "Transfers refused (RJCT), by ISO 20022 reason "
            "code", ["reason"])
        self.credits = counter(
            "switchlab_bank_credits", "Transfers credited to a customer, once per end-to-end id")
        self.credited_vnd = counter(
            "switchlab_bank_credited_vnd", "Amount credited to customers, in VND")
        self.credits_before_confirmation = counter(
            "switchlab_bank_credits_before_confirmation", "Credits made on ACCP, before the "
            "switch confirmed settlement: a protocol bug (counted in credits too)")
        self.releases = counter(
            "switchlab_bank_releases", "Holds released because the switch rejected the transfer")
        self.answers = counter(
            "switchlab_bank_answers_sent", "pacs.002 answers to the switch's pacs.008: in the "
            "HTTP response, or posted to the switch later", ["channel"])
        self.answers_lost = counter(
            "switchlab_bank_answers_lost", "Asynchronous answers never sent (an injected fault)")
        self.returns = counter(
            "switchlab_bank_returns", "Returns (pacs.004 items) of its credits the switch "
            "settled")
        self.returned_vnd = counter(
            "switchlab_bank_returned_vnd", "Amount sent back by settled returns, in VND")
        self.returns_received = counter(
            "switchlab_bank_returns_received", "Returns of transfers it sent as debtor agent")
        self.send_failures = counter(
            "switchlab_bank_send_failures", "Failed attempts to post to the switch (retried with "
            "backoff)")
        self.auth_failures = counter(
            "switchlab_bank_auth_failures", "Requests refused before they authenticated, by "
            "reason and the signer they claimed (the switch's BIC, (operator) for the admin "
            "token, unknown, none), as the switch counts its own", ["reason", "claimed_signer"])
        self.pending_sends = Gauge(
            "switchlab_bank_pending_sends", "Answers and returns scheduled for the switch and "
            "not yet done", registry=self.registry)
        self.pending_sends.set_function(pending_sends)
        for channel in (RESPONSE, POSTED):
            self.answers.labels(channel)

    def auth_failed(self, reason: str, claimed_signer: str) -> None:
        """A request refused before it authenticated (protocol.http.AUTH_FAILED)."""
        self.auth_failures.labels(reason, claimed_signer).inc()

    def decided(self, accepted: int, rejection_reasons: Iterable[str]) -> None:
        """A pacs.008 answered: how many accepted, and the reason of each refusal."""
        self.accepted.inc(accepted)
        for reason, count in Tally(reason_label(r) for r in rejection_reasons).items():
            self.rejected.labels(reason).inc(count)

    def credited(self, amounts_vnd: Iterable[int], before_confirmation: bool = False) -> None:
        amounts = list(amounts_vnd)
        self.credits.inc(len(amounts))
        self.credited_vnd.inc(sum(amounts))
        if before_confirmation:
            self.credits_before_confirmation.inc(len(amounts))

    def returned(self, amounts_vnd: Iterable[int]) -> None:
        amounts = list(amounts_vnd)
        self.returns.inc(len(amounts))
        self.returned_vnd.inc(sum(amounts))
