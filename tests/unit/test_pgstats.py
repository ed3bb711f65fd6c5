"""Issue #24: the serialised time per transfer, computed from the server's own statistics
(lab/pgstats.py), without a server: snapshots as pg_stat_statements and pg_stat_wal give them."""

from __future__ import annotations

import pytest

from lab.pgstats import Snapshot, Waits, serialised, waiter

# Statement texts as pg_stat_statements records them from the journal's functions.
FLUSH = "SELECT switch_flush($1, $2)"
TAKE = "SELECT o_key, o_reason FROM switch_take($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)"
REFILL_LOCK = "SELECT $11 FROM positions p WHERE p.bic = w.bic FOR UPDATE"
RETURN_LOCK = "SELECT $3 FROM positions p WHERE p.bic = p_creditor FOR UPDATE"
REVOKE = ("UPDATE position_slices o SET room_vnd = $5 WHERE o.bic = w.bic AND o.process_id <>"
          " p_me AND o.room_vnd <> $6")
FREE = "v_free := switch_free(w.bic)"
OWN_SLICE = ("SELECT o.room_vnd FROM position_slices o WHERE o.bic = w.bic AND o.process_id ="
             " p_me FOR UPDATE")
BEAT = "UPDATE switch_processes SET heartbeat_at = switch_now() WHERE process_id = $1"
SAMPLER = "SELECT a.query FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"


def _snapshot(statements: dict[tuple[bool, str], tuple[int, float]], syncs: int = 0,
              wal_s: float = 0.0, timed: bool = True) -> Snapshot:
    return Snapshot(statements, syncs, wal_s, timed)


BEFORE = _snapshot({(True, FLUSH): (100, 10.0), (False, REFILL_LOCK): (1, 0.5)}, 50, 0.05)
AFTER = _snapshot({
    (True, FLUSH): (300, 50.0),  # 200 flushes in the window, 0.2 ms each
    (True, TAKE): (1_000, 150.0),
    (True, BEAT): (10, 300.0),  # waiting for its own writer: not the writes' time
    (True, SAMPLER): (500, 25.0),  # the measuring's own
    (False, REFILL_LOCK): (3, 2.5),  # two refills in the window, 2 ms waiting and locking
    (False, RETURN_LOCK): (1, 1.0),  # one return
    (False, REVOKE): (1, 0.5),
    (False, FREE): (3, 0.3),
    (False, OWN_SLICE): (200, 40.0),  # the process's own slices: serialise nothing
}, 250, 0.45)  # 200 WAL flushes of 2 ms


def test_issue_24_serialised_time_is_the_shared_locks_sections_over_the_transfers() -> None:
    result = serialised(BEFORE, AFTER, Waits(), transfers=1_000, probe_commit_s=0.010)
    assert result.locks == 3  # two refills and a return took a shared row
    assert result.lock_statements_ms == pytest.approx(2.0 + 1.0 + 0.5 + 0.3)
    assert result.flush_mean_ms == pytest.approx(0.2)
    assert (result.wal_flush_ms, result.wal_flush_source) == (pytest.approx(2.0), "pg_stat_wal")
    # (3.8 ms + 3 × (0.2 + 2.0) ms) over 1,000 transfers
    assert result.serialised_us == pytest.approx(10.4)
    assert result.ceiling_per_s == pytest.approx(1e6 / 10.4)


def test_issue_24_the_beats_and_the_measuring_are_not_the_writes() -> None:
    result = serialised(BEFORE, AFTER, Waits(), transfers=1_000, probe_commit_s=0.010)
    assert result.statements_per_transfer == pytest.approx((200 + 1_000) / 1_000)
    assert result.server_exec_us == pytest.approx((40.0 + 150.0) * 1e3 / 1_000)


def test_issue_24_a_server_that_does_not_time_its_wal_falls_back_to_the_probe() -> None:
    untimed = _snapshot(AFTER.statements, 250, 0.0, timed=False)
    result = serialised(BEFORE, untimed, Waits(), transfers=1_000, probe_commit_s=0.010)
    assert (result.wal_flush_ms, result.wal_flush_source) == (10.0, "the probe's commit")
    assert result.serialised_us == pytest.approx((3.8 + 3 * (0.2 + 10.0)) * 1e3 / 1_000)


def test_issue_24_no_shared_lock_taken_is_no_serialised_time() -> None:
    result = serialised(AFTER, AFTER, Waits(), transfers=1_000, probe_commit_s=0.010)
    assert (result.locks, result.serialised_us) == (0, 0.0)
    assert result.ceiling_per_s == float("inf")


def test_issue_24_sampled_lock_waits_are_told_apart_by_what_waits() -> None:
    waits = Waits(samples=100, elapsed_s=2.0)  # one sample every 20 ms
    waits.seen.update([waiter(BEAT)] * 30 + [waiter("SELECT switch_flush('sw1', 'X'); COMMIT")]
                      * 5 + [waiter("BEGIN; SELECT switch_begin('sw1')")] * 2
                      + [waiter("SELECT 1")])
    assert waits.waiting_s("the beat") == pytest.approx(0.6)
    result = serialised(BEFORE, AFTER, waits, transfers=1_000, probe_commit_s=0.010)
    assert result.write_waits_us == pytest.approx(0.1 * 1e6 / 1_000)
    assert result.beat_waits_ms == pytest.approx(600.0)
    assert result.begin_waits_ms == pytest.approx(40.0)  # its own process's beat: apart
    assert waits.seen["another"] == 1
