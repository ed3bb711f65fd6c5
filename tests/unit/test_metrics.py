"""The switch's metrics as events arrive in the orders the switch can fire them, and with what a
hostile participant can put in them: positions stay those of the open cycle, series stay few."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from prometheus_client.openmetrics.exposition import generate_latest

from switch.events import SwitchEvents
from switch.metrics import SwitchMetrics
from switch.states import TransferState
from switch.transfer import Transfer

TREASURY, BANK = "TRSYVNV1", "BFTVVNVX"


def pending(n: int, amount_vnd: int = 1_000, creditor: str = BANK, bulk: bool = False
            ) -> Transfer:
    transfer = Transfer(end_to_end_id=f"E2E-{n}", tx_id="TX", msg_id="M", debtor_bic=TREASURY,
                        creditor_bic=creditor, amount_vnd=amount_vnd, bulk=bulk,
                        received_at=time.time())
    transfer.advance(TransferState.PENDING)
    return transfer


def observed() -> tuple[SwitchEvents, SwitchMetrics]:
    events = SwitchEvents()
    metrics = SwitchMetrics(events, [TREASURY, BANK])
    events.recovered.fire(cycle_id=1, net_vnd={}, in_flight=[])
    return events, metrics


def value(metrics: SwitchMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_a_settlement_written_before_a_close_but_applied_after_it_stays_in_the_closed_cycle(
) -> None:
    events, metrics = observed()
    late, early = pending(1, 700), pending(2, 5)
    events.received.fire(debtor_bic=TREASURY, transfers=[late, early], bulk=False)
    events.cycle_closed.fire(cycle_id=1)
    events.settled.fire(transfers=[late], now_s=time.time(), cycle_id=1)
    assert value(metrics, "switchlab_net_position_vnd", bic=BANK) == 0
    assert value(metrics, "switchlab_reserved_position_vnd", bic=TREASURY) == 5
    events.settled.fire(transfers=[early], now_s=time.time(), cycle_id=2)
    assert value(metrics, "switchlab_net_position_vnd", bic=BANK) == 5
    assert value(metrics, "switchlab_settlement_cycle_info", cycle_id="2") == 1
    assert value(metrics, "switchlab_settlement_cycle_info", cycle_id="1") is None
    assert value(metrics, "switchlab_transfers_in_flight") == 0


def test_a_settlement_in_the_next_cycle_seen_before_the_close_starts_that_cycle() -> None:
    events, metrics = observed()
    old, new = pending(1, 700), pending(2, 5)
    events.received.fire(debtor_bic=TREASURY, transfers=[old, new], bulk=True)
    events.settled.fire(transfers=[old], now_s=time.time(), cycle_id=1)
    events.settled.fire(transfers=[new], now_s=time.time(), cycle_id=2)
    events.cycle_closed.fire(cycle_id=1)  # the close's own event comes last
    assert value(metrics, "switchlab_net_position_vnd", bic=BANK) == 5
    assert value(metrics, "switchlab_net_position_vnd", bic=TREASURY) == -5
    assert value(metrics, "switchlab_settlement_cycles_closed_total") == 1


def test_made_up_reason_codes_and_unknown_bics_create_no_series() -> None:
    events, metrics = observed()
    transfers = [pending(n) for n in range(1_000)]
    events.received.fire(debtor_bic=TREASURY, transfers=transfers, bulk=False)
    for n, transfer in enumerate(transfers):
        transfer.advance(TransferState.REJECTED, f"X{n:03d}", BANK)
    events.rejected.fire(transfers=transfers, now_s=time.time())
    for n in range(100):
        stranger = f"STRANGE{n}"
        events.forwarded.fire(creditor_bic=stranger, transfers=transfers[:1])
        events.answered.fire(creditor_bic=stranger, taken=1, refused=1)
        events.notice_failed.fire(bic=stranger, items=1)
        events.participant_down.fire(bic=stranger, reason=f"connection refused {n}")
    samples = [sample for family in metrics.registry.collect() for sample in family.samples]
    assert {s.labels["reason"] for s in samples if "reason" in s.labels} == {"other"}
    assert {s.labels["bic"] for s in samples if "bic" in s.labels} == {TREASURY, BANK}
    assert value(metrics, "switchlab_transfers_total", state="REJECTED", mode="instant",
                 reason="other") == 1_000
    assert len(samples) < 200


def test_issue_26_the_oldest_transfer_in_flight_is_shown_by_mode_to_the_second() -> None:
    """What the alert on transfers past their deadline reads; a transfer found in flight by
    recovery counts from when it was received, not from the restart."""
    events = SwitchEvents()
    metrics = SwitchMetrics(events, [TREASURY, BANK], instant_deadline_s=7.0)
    old, new = pending(1), pending(2)
    old.received_at -= 100
    events.received.fire(debtor_bic=TREASURY, transfers=[old, new], bulk=False)
    assert 100 <= value(metrics, "switchlab_transfers_in_flight_oldest_seconds",
                        mode="instant") < 102
    assert value(metrics, "switchlab_transfers_in_flight_oldest_seconds", mode="bulk") == 0
    assert value(metrics, "switchlab_instant_deadline_seconds") == 7
    events.settled.fire(transfers=[old], now_s=time.time(), cycle_id=0)
    assert value(metrics, "switchlab_transfers_in_flight_oldest_seconds", mode="instant") < 2
    events.rejected.fire(transfers=[new], now_s=time.time())
    assert value(metrics, "switchlab_transfers_in_flight_oldest_seconds", mode="instant") == 0
    left = pending(3, bulk=True)
    left.received_at -= 50
    events.recovered.fire(cycle_id=4, net_vnd={}, in_flight=[left])
    assert 50 <= value(metrics, "switchlab_transfers_in_flight_oldest_seconds",
                       mode="bulk") < 52


def test_issue_26_position_limits_and_the_cycle_s_schedule_are_shown() -> None:
    """What the alerts on a debtor near its cap and a cycle not closed on time compare with:
    the limit as configured, then as the operator sets it; when the open cycle opened."""
    events = SwitchEvents()
    metrics = SwitchMetrics(events, [TREASURY, BANK], position_limits_vnd={BANK: 1_000},
                            settlement_cycle_s=3_600)
    assert value(metrics, "switchlab_position_limit_vnd", bic=BANK) == 1_000
    events.position_limit_set.fire(bic=BANK, limit_vnd=5)
    events.position_limit_set.fire(bic="STRANGER", limit_vnd=5)
    assert value(metrics, "switchlab_position_limit_vnd", bic=BANK) == 5
    assert value(metrics, "switchlab_position_limit_vnd", bic="STRANGER") is None
    assert value(metrics, "switchlab_settlement_cycle_scheduled_seconds") == 3_600
    before_s = time.time()
    events.cycle_closed.fire(cycle_id=0)
    assert value(metrics, "switchlab_settlement_cycle_info", cycle_id="1") == 1
    assert value(metrics, "switchlab_settlement_cycle_opened_timestamp_seconds") >= before_s


def test_issue_26_the_cycle_is_a_label_and_commit_sizes_have_their_unit() -> None:
    """Friction 9: `switchlab_settlement_cycle` held an id as a gauge's value (a sum or a rate
    of it means nothing) and `switchlab_journal_commit_writes` declared no unit."""
    _, metrics = observed()
    served = generate_latest(metrics.registry).decode()
    assert "# UNIT switchlab_journal_commit_writes writes" in served
    assert "# UNIT switchlab_journal_commit_seconds seconds" in served
    assert 'switchlab_settlement_cycle_info{cycle_id="1"} 1.0' in served
    assert "\nswitchlab_settlement_cycle " not in served


def test_issue_26_a_takeover_s_recovery_of_the_open_cycle_keeps_its_age(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With a shared journal, `recovered` fires again when this process takes over a dead
    one's work, in the same cycle: the cycle has not reopened, so the late-cycle alert must
    still see its age."""
    now_s = [1_000.0]
    monkeypatch.setattr("switch.metrics.time", SimpleNamespace(time=lambda: now_s[0]))
    events, metrics = observed()
    now_s[0] = 2_000.0
    events.recovered.fire(cycle_id=1, net_vnd={BANK: 5, TREASURY: -5}, in_flight=[])
    assert value(metrics, "switchlab_settlement_cycle_opened_timestamp_seconds") == 1_000
    events.cycle_closed.fire(cycle_id=1)
    assert value(metrics, "switchlab_settlement_cycle_opened_timestamp_seconds") == 2_000


def test_issue28_latencies_observed_a_batch_at_a_time_read_as_observed_one_by_one() -> None:
    """A batch of settlements is observed with one increment per bucket touched: the buckets
    and the count read as observing each latency alone would, values on a bound included."""
    from prometheus_client import CollectorRegistry, Histogram

    from switch.metrics import BULK_LATENCY_BUCKETS_S, observe_all

    latencies_s = [0.0, 0.1, 0.1000001, 0.25, 3.0, 3_600.0, 7_200.0, 42.0, 0.3, 0.3]
    one_by_one, batched = (
        Histogram("latency_seconds", "-", ["state"], buckets=BULK_LATENCY_BUCKETS_S,
                  registry=CollectorRegistry()) for _ in range(2))
    for latency_s in latencies_s:
        one_by_one.labels("SETTLED").observe(latency_s)
    observe_all(batched.labels("SETTLED"), latencies_s)
    samples = [{(s.name, s.labels.get("le")): s.value for s in next(iter(h.collect())).samples
                if not s.name.endswith("_created")} for h in (one_by_one, batched)]
    assert samples[0] == pytest.approx(samples[1])
    assert samples[1][("latency_seconds_count", None)] == len(latencies_s)
    assert samples[1][("latency_seconds_bucket", "0.1")] == 2
