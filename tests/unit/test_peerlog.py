"""Clients' failures are logged one line each, bounded per peer and per interval, and what is
held back is summarised with its count (issue #22, observation 6)."""

from __future__ import annotations

import logging

import pytest

from protocol.peerlog import FailureLog


class Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def test_a_peers_repeated_failures_are_counted_not_written(caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    clock = Clock()
    failures = FailureLog(logging.getLogger("test.peers"), interval_s=10.0, lines_per_peer=3,
                          lines_per_interval=5, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.peers"):
        for n in range(50):
            failures.client("10.0.0.1", f"401 bad signature\nnumber {n}")
        for peer in ("10.0.0.2", "10.0.0.3", "10.0.0.5"):
            failures.client(peer, "401 unknown participant")
        assert len(caplog.records) == 5  # 3 of the first peer's, then the interval's bound
        assert all("\n" not in r.getMessage() and r.exc_info is None for r in caplog.records)
        clock.now_s = 10.0
        failures.client("10.0.0.4", "401 missing Signature-Input header")
    said = [r.getMessage() for r in caplog.records[5:]]
    assert said == ["client 10.0.0.1: 47 more failures in the last 10 s, not logged one by one",
                    "client 10.0.0.5: 1 more failures in the last 10 s, not logged one by one",
                    "client 10.0.0.4: 401 missing Signature-Input header"]


def test_a_servers_own_defect_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    failures = FailureLog(logging.getLogger("test.peers"))
    with caplog.at_level(logging.ERROR, logger="test.peers"):
        failures.defect("10.0.0.1", "Error handling request", KeyError("x"))
    assert caplog.records[0].exc_info is not None


def test_issue22_the_summary_line_names_the_claimed_signer(caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    """The attacker's finding: the line that sums up the failures held back named the address
    only, not whose credentials were tried; it names the claimed signers now (bounded, and a
    made-up keyid is quoted so it cannot pass for a BIC or break the line)."""
    clock = Clock()
    failures = FailureLog(logging.getLogger("test.peers"), interval_s=10.0, lines_per_peer=1,
                          lines_per_interval=100, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.peers"):
        failures.client("10.0.0.9", "401 the signature does not match", "BANKAVNX")
        for n in range(20):
            failures.client("10.0.0.9", "401 unknown participant", "BANKAVNX" if n % 2 else
                            f"EV IL{n % 6}")
        clock.now_s = 10.0
        failures.client("10.0.0.8", "401 bad", None)
    said = [r.getMessage() for r in caplog.records]
    assert said[0] == "client 10.0.0.9: 401 the signature does not match (claimed signer " \
        "BANKAVNX)"
    assert said[1] == ("client 10.0.0.9: 20 more failures in the last 10 s (claimed signer "
                       "'EV?IL0', 'EV?IL2', BANKAVNX), not logged one by one")
    assert said[2] == "client 10.0.0.8: 401 bad"
