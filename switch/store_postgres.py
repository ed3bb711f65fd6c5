"""The journal in PostgreSQL, shared by several switch processes: every SQL statement of the
switch for PostgreSQL (tables, functions, queries), and group commit on asyncpg.

Chosen by `journal_url: postgresql://…` in the switch's configuration. Where SQLite's journal
follows one process's memory, this one decides, in the write that records each fact, what
no process's memory can know alone (docs/design.md, "Beyond one machine"):

- a new transfer's id is inserted `ON CONFLICT DO NOTHING`: an id another process took first
  comes back as DUPL;
- the debtor's hold is taken in the transaction of its PENDING row, from the writing
  process's own escrow slice of the debtor's cap (`position_slices`, switch/escrow.py), the
  shared `positions` row locked only to refill the slice or, before AM04, to revoke the
  other slices' room: AM04 comes back only when the holds of all processes leave too little;
- a transfer is made final `WHERE state='PENDING'` and moves positions and picks its cycle in
  the same write: only one process ever finalizes it, and the others learn the first word;
- the close of a cycle locks every position and slice row: a settlement counts in the cycle
  open at its own write (the write says so when that is not the cycle its process believed
  open), and each cycle is closed once;
- a MsgId is the sender's once (the `messages` key), a RtrId the creditor's once (the returns'
  key), whichever process took it first;
- a change to the citizen-ID directory is checked again against the `directory` table in its
  write, one directory write at a time, and every process's memory follows
  `directory_changes` in order;
- `owner` on transfers_owed (a row while a transfer is in flight or owes a notice) and on
  returns names the process that holds a transfer in flight or owes its notices; a process
  is alive while it beats (`switch_processes`), and one found dead is deleted there by the
  survivor that takes its rows over. Every write transaction first locks its own process row
  (`switch_begin`): a process found dead can write nothing more;
- transfers, their transitions and returns are partitioned by business day (made ahead by
  `switch_make_days`), an end-to-end id or a RtrId unique across the days in transfer_ids
  and return_ids; retention drops a day's partitions whole (switch/retention_postgres.py).

Cost sketch: one transaction per batch of queued writes (one fsync), one round trip to the
server per write plus two per batch (`switch_begin`, COMMIT); each write runs server-side as one
PL/pgSQL function over arrays (a thousand transfers in one call). Writes in a batch run without
savepoints; when the database refuses one, the transaction is undone and run again with a
savepoint per write, so that the refused write alone is refused. A deadlock or serialization
failure runs the batch again; any other error is a storage failure and stops the journal
until the process heals (switch/cluster.py: it reconnects, `reconnect` and `resume`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import socket
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

try:
    import asyncpg
    import asyncpg.exceptions
except ImportError:  # the optional `postgres` extra is not installed
    asyncpg = None  # type: ignore[assignment]

from protocol import reasons
from switch.events import SwitchEvents
from switch.group_commit import GroupCommit, QueuedWrite
from switch.journal import (
    ANSWER_ADMIN_CHANGE,
    FORWARD_SECRET_TABLE,
    INSERT_ADMIN_CHANGE,
    MAKE_FORWARD_SECRET,
    NOTICE_DUE,
    NOTICE_SENT,
    POSTGRES_KEYS_OF_JSON,
    READ_FORWARD_SECRET,
    SELECT_ADMIN_CHANGE,
    TRANSFER_COLUMNS,
    JournalReads,
    dollar_placeholders,
    new_forward_secret,
    reads_for,
    transfer_of_row,
)
from switch.journal_errors import JournalFailed, WriteRefused
from switch.records import (
    AdminAnswer,
    AdminChange,
    Decided,
    DirectoryChange,
    Final,
    NoticesDue,
    SettledReturn,
)
from switch.states import TransferState
from switch.transfer import ForwardIds, Transfer

SCHEMA = """
-- A journal made before the partitions (its transfers a plain table) is refused, saying so:
-- docs/operations.md says how to move its days to a new database.
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = to_regclass('transfers')
               AND c.relkind = 'r') THEN
        RAISE EXCEPTION 'a journal made before the partitions by business day'
            USING ERRCODE = 'SW002';
    END IF;
END $$;
-- Transfers, their history and their returns are partitioned by business day (issue #24: a
-- year of payout days): `business_day`, the Vietnam calendar day (UTC+7) of the transfer's
-- received_at, also on its transitions and its return, so that a day's rows live in three
-- partitions that retention detaches and drops whole (switch/retention.py). Partitions are
-- made ahead (switch_make_days: today and tomorrow, by every process at its start and with
-- its beats at a day change). A partitioned table's unique keys must hold the partition
-- key: the ids that must be unique across days are kept in transfer_ids and return_ids,
-- one small row each, deleted with their day.
CREATE TABLE IF NOT EXISTS transfer_ids (
    end_to_end_id TEXT PRIMARY KEY,
    business_day DATE NOT NULL
);
CREATE TABLE IF NOT EXISTS transfers (
    end_to_end_id TEXT NOT NULL,
    tx_id TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    debtor_bic TEXT NOT NULL,
    creditor_bic TEXT NOT NULL,
    amount_vnd BIGINT NOT NULL,
    state TEXT NOT NULL,
    reason_code TEXT,
    reason_by TEXT,
    bulk BOOLEAN NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    final_at DOUBLE PRECISION,
    cycle_id INTEGER,
    creditor_notice SMALLINT NOT NULL DEFAULT 0,
    debtor_notice SMALLINT NOT NULL DEFAULT 0,
    owner TEXT,  -- the process that took it, then the one that made it final (not indexed)
    business_day DATE NOT NULL,
    PRIMARY KEY (end_to_end_id, business_day)
) PARTITION BY RANGE (business_day);
-- The one index on a column a common update changes (a settlement's cycle, which the
-- cycle's reports read by): the final update is not HOT; the notices' updates are.
CREATE INDEX IF NOT EXISTS transfers_by_cycle ON transfers (cycle_id);
-- Who holds a transfer in flight or owes its notices, apart from the transfer: a row while
-- it is PENDING or a notice is due (creditor_notice or debtor_notice = 1), gone once not.
-- Kept off `transfers`, whose updates then change no indexed column but the cycle.
CREATE TABLE IF NOT EXISTS transfers_owed (
    end_to_end_id TEXT PRIMARY KEY,
    business_day DATE NOT NULL,
    owner TEXT NOT NULL
) WITH (fillfactor = 70);
CREATE INDEX IF NOT EXISTS transfers_owed_by_owner ON transfers_owed (owner);
CREATE TABLE IF NOT EXISTS transitions (
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    end_to_end_id TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    reason_code TEXT,
    at DOUBLE PRECISION NOT NULL,
    business_day DATE NOT NULL
) PARTITION BY RANGE (business_day);
CREATE INDEX IF NOT EXISTS transitions_by_transfer ON transitions (end_to_end_id);
CREATE TABLE IF NOT EXISTS return_ids (
    creditor_bic TEXT NOT NULL,
    return_id TEXT NOT NULL,
    business_day DATE NOT NULL,
    PRIMARY KEY (creditor_bic, return_id)
);
CREATE TABLE IF NOT EXISTS returns (
    return_id TEXT NOT NULL,
    end_to_end_id TEXT NOT NULL,
    creditor_bic TEXT NOT NULL,
    debtor_bic TEXT NOT NULL,
    amount_vnd BIGINT NOT NULL,
    reason_code TEXT NOT NULL,
    settled_at DOUBLE PRECISION NOT NULL,
    cycle_id INTEGER NOT NULL,
    debtor_notice SMALLINT NOT NULL DEFAULT 1,
    owner TEXT,
    business_day DATE NOT NULL,
    PRIMARY KEY (creditor_bic, return_id, business_day),
    UNIQUE (end_to_end_id, business_day)
) PARTITION BY RANGE (business_day);
CREATE INDEX IF NOT EXISTS returns_by_cycle ON returns (cycle_id);
CREATE TABLE IF NOT EXISTS messages (
    sender_bic TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    body_sha256 BYTEA NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (sender_bic, msg_id)
);
CREATE TABLE IF NOT EXISTS cycles (
    cycle_id INTEGER PRIMARY KEY,
    opened_at DOUBLE PRECISION NOT NULL,
    closed_at DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS participant_settings (
    bic TEXT PRIMARY KEY,
    position_limit_vnd BIGINT,
    signed_off BOOLEAN NOT NULL DEFAULT false
);
-- Updated by every batch and every beat, on no indexed column: with room left on each page
-- (fillfactor) every update is HOT, a new version on the same page, no index touched.
CREATE TABLE IF NOT EXISTS positions (
    bic TEXT PRIMARY KEY,
    limit_vnd BIGINT NOT NULL,
    net_vnd BIGINT NOT NULL DEFAULT 0,
    reserved_vnd BIGINT NOT NULL DEFAULT 0  -- holds taken before the slices; never grows now
) WITH (fillfactor = 50);
-- Escrow slices (issue #24, switch/escrow.py): per debtor, each process's own room, holds and
-- net; a normal batch updates only its own process's rows, on no indexed column (HOT).
CREATE TABLE IF NOT EXISTS position_slices (
    bic TEXT NOT NULL,
    process_id TEXT NOT NULL,
    room_vnd BIGINT NOT NULL DEFAULT 0,
    held_vnd BIGINT NOT NULL DEFAULT 0,
    net_vnd BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (bic, process_id)
) WITH (fillfactor = 50);
CREATE TABLE IF NOT EXISTS directory (
    citizen_id TEXT PRIMARY KEY,
    participant_bic TEXT NOT NULL,
    account_id TEXT NOT NULL,
    holder_name TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    updated_by TEXT NOT NULL,
    UNIQUE (participant_bic, account_id)
);
CREATE TABLE IF NOT EXISTS directory_changes (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    citizen_id TEXT NOT NULL,
    action TEXT NOT NULL,
    participant_bic TEXT NOT NULL,
    account_id TEXT NOT NULL,
    holder_name TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS directory_changes_by_citizen ON directory_changes (citizen_id);
CREATE TABLE IF NOT EXISTS admin_changes (
    idempotency_key TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    status INTEGER,
    answer TEXT
);
CREATE TABLE IF NOT EXISTS switch_processes (
    process_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    heartbeat_at DOUBLE PRECISION NOT NULL
) WITH (fillfactor = 50);
-- What limits scale, per process (issue #24): seconds its write transactions spent in
-- their serialised section (switch_flush and COMMIT: waiting for the positions' locks and
-- holding them), and their count; written with each beat. Added to a journal made before
-- them only when missing: ALTER TABLE takes an exclusive lock, which every process's
-- writes would queue behind at each start.
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'switch_processes'
                     AND column_name = 'locked_s') THEN
        ALTER TABLE switch_processes ADD COLUMN locked_s DOUBLE PRECISION NOT NULL DEFAULT 0,
            ADD COLUMN batches BIGINT NOT NULL DEFAULT 0;
    END IF;
END $$;
INSERT INTO cycles (cycle_id, opened_at)
    SELECT 1, extract(epoch FROM clock_timestamp()) WHERE NOT EXISTS (SELECT 1 FROM cycles);

CREATE OR REPLACE FUNCTION switch_now() RETURNS double precision LANGUAGE sql AS
$$ SELECT extract(epoch FROM clock_timestamp())::double precision $$;

-- The business day of a moment (unix s): the calendar day in Vietnam, UTC+7 with no daylight
-- saving (switch/retention.py's business_day, the same arithmetic).
CREATE OR REPLACE FUNCTION switch_day(p_at double precision) RETURNS date
LANGUAGE sql IMMUTABLE AS $$ SELECT date '1970-01-01' + floor((p_at + 25200) / 86400)::integer $$;

-- The partitions of p_days business days from p_first, made where missing: each table made
-- alone, then attached (ATTACH PARTITION takes the parent's SHARE UPDATE EXCLUSIVE lock, which
-- the switch's reads and writes never wait for; CREATE TABLE ... PARTITION OF would take an
-- exclusive one). Under the schema's advisory lock, so that processes making the same day do
-- it once. Returns the partitions made.
CREATE OR REPLACE FUNCTION switch_make_days(p_first date, p_days integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_day date;
    v_table text;
    v_name text;
    v_made integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(1398229580);  -- 0x53574A4C, the schema's key (SCHEMA_LOCK)
    FOR i IN 0 .. p_days - 1 LOOP
        v_day := p_first + i;
        FOREACH v_table IN ARRAY ARRAY['transfers', 'transitions', 'returns'] LOOP
            v_name := v_table || '_d' || to_char(v_day, 'YYYYMMDD');
            IF to_regclass(v_name) IS NOT NULL THEN
                CONTINUE;
            END IF;
            EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS) WITH (fillfactor = %s)',
                           v_name, v_table, CASE WHEN v_table = 'transfers' THEN 80 ELSE 100 END);
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                           v_table, v_name, v_day, v_day + 1);
            v_made := v_made + 1;
        END LOOP;
    END LOOP;
    RETURN v_made;
END $$;

-- First in every write transaction: the writing process must still be alive (a survivor
-- deletes the row of a process it takes over: the DELETE waits for this lock, and a write
-- after it finds no row). FOR KEY SHARE, not FOR SHARE: the process's beat, an UPDATE of no
-- key column, then never waits for its own writer. No position is locked here: the writes of
-- the batch queue their holds and moves in switch_deltas, and switch_flush, the batch's last
-- statement, locks the positions they touch (in BIC order) and applies them: a position row
-- is held only from that statement to COMMIT, never across the batch's other round trips.
CREATE OR REPLACE FUNCTION switch_begin(p_me text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM switch_processes WHERE process_id = p_me FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'switch process % was found dead and its work taken over', p_me
            USING ERRCODE = 'SW001';
    END IF;
END $$;

-- A refill's amount: switch/escrow.py's take_vnd, the same arithmetic (a test holds them
-- equal): what is short, plus a 1/(2 x processes) share of the rest, never more than is free.
CREATE OR REPLACE FUNCTION switch_escrow_take(p_free bigint, p_short bigint, p_processes bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_free <= 0 THEN 0::bigint ELSE least(p_free, p_short
        + greatest(0, p_free - p_short) / (2 * greatest(1, p_processes))) END $$;

-- A debtor's headroom granted to no slice: limit + net - reserved (holds a journal made before
-- the slices still has) + sum(net - held - room) of its slices, as committed now (volatile:
-- a fresh snapshot, after the caller took the shared row's lock).
CREATE OR REPLACE FUNCTION switch_free(p_bic text) RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT p.limit_vnd + p.net_vnd - p.reserved_vnd + coalesce((SELECT sum(s.net_vnd
        - s.held_vnd - s.room_vnd) FROM position_slices s WHERE s.bic = p.bic), 0)::bigint
    FROM positions p WHERE p.bic = p_bic $$;

-- The batch's queued holds and moves, applied to this process's own escrow slices
-- (switch/escrow.py): moves and releases first (a release goes to the free headroom, not to
-- the slice's room), then, debtor by debtor in BIC order, each hold in the order taken from
-- the slice's room. Only a debtor whose slice is short takes its shared `positions` row's lock
-- (a refill, switch_escrow_take of switch_free); still short, it revokes every other slice's
-- room (waiting for their batches) and takes the exact headroom, so that AM04 is refused only
-- past limit + net - all holds, as in one process. Refused holds are made REJECTED AM04
-- here, before anyone saw them PENDING, and go to switch_refused, with one NULL row for each
-- shared row locked (the serialised section, counted by the writer). The invariant, sum(room)
-- = 0 or sum(room) + sum(held) <= limit + net, holds through every write of the slices. The
-- writer sends this call and COMMIT in one message: no round trip to the switch while any
-- row is locked.
CREATE OR REPLACE FUNCTION switch_flush(p_me text, p_switch_bic text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    d record;
    w record;
    v_room bigint;
    v_free bigint;
    v_taken bigint;
    v_day date;
BEGIN
    INSERT INTO position_slices AS o (bic, process_id, held_vnd, net_vnd)
        SELECT s.bic, p_me, sum(s.held)::bigint, sum(s.net)::bigint
        FROM switch_deltas s WHERE s.e2e IS NULL GROUP BY s.bic ORDER BY s.bic
        ON CONFLICT (bic, process_id) DO UPDATE SET held_vnd = o.held_vnd + excluded.held_vnd,
            net_vnd = o.net_vnd + excluded.net_vnd;
    FOR w IN SELECT s.bic, sum(s.held)::bigint AS wanted FROM switch_deltas s
             WHERE s.e2e IS NOT NULL GROUP BY s.bic ORDER BY s.bic LOOP
        SELECT o.room_vnd INTO v_room FROM position_slices o
            WHERE o.bic = w.bic AND o.process_id = p_me FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO position_slices (bic, process_id) VALUES (w.bic, p_me);
            v_room := 0;
        END IF;
        IF v_room < w.wanted THEN
            PERFORM 1 FROM positions p WHERE p.bic = w.bic FOR UPDATE;
            IF FOUND THEN
                INSERT INTO switch_refused (e2e) VALUES (NULL);
                v_free := switch_free(w.bic);  -- counts this slice's room as written: v_room
                v_taken := switch_escrow_take(v_free, w.wanted - v_room,
                    (SELECT count(*) FROM switch_processes));
                IF v_room + v_taken < w.wanted THEN
                    UPDATE position_slices o SET room_vnd = 0
                        WHERE o.bic = w.bic AND o.process_id <> p_me AND o.room_vnd <> 0;
                    v_taken := greatest(0, switch_free(w.bic));
                END IF;
                v_room := v_room + v_taken;
            END IF;
        END IF;
        v_taken := 0;
        FOR d IN SELECT s.e2e, s.held FROM switch_deltas s WHERE s.bic = w.bic
                 AND s.e2e IS NOT NULL ORDER BY s.seq LOOP
            IF d.held <= v_room - v_taken THEN
                v_taken := v_taken + d.held;
                CONTINUE;
            END IF;
            SELECT i.business_day INTO v_day FROM transfer_ids i WHERE i.end_to_end_id = d.e2e;
            UPDATE transfers t SET state = 'REJECTED', reason_code = 'AM04',
                reason_by = p_switch_bic, final_at = t.received_at,
                debtor_notice = CASE WHEN t.bulk THEN 1 ELSE 0 END
                WHERE t.end_to_end_id = d.e2e AND t.business_day = v_day;
            DELETE FROM transfers_owed o USING transfers t WHERE o.end_to_end_id = d.e2e
                AND t.end_to_end_id = d.e2e AND t.business_day = v_day AND NOT t.bulk;
            UPDATE transitions x SET to_state = 'REJECTED', reason_code = 'AM04'
                WHERE x.end_to_end_id = d.e2e AND x.business_day = v_day
                  AND x.from_state IS NULL;
            INSERT INTO switch_refused (e2e) VALUES (d.e2e);
        END LOOP;
        UPDATE position_slices o SET room_vnd = v_room - v_taken, held_vnd = o.held_vnd + v_taken
            WHERE o.bic = w.bic AND o.process_id = p_me;
    END LOOP;
    DELETE FROM switch_deltas;
END $$;

-- A message and its transfers, as intake decided them; returns the transfers the journal
-- decided otherwise: DUPL (another process has the id). The holds of the PENDING ones are
-- queued for switch_flush, which refuses AM04 those the debtor's room cannot hold.
CREATE OR REPLACE FUNCTION switch_take(
    p_me text, p_switch_bic text, p_sender text, p_msg_id text, p_digest bytea,
    p_now double precision, p_bulk boolean, p_e2e text[], p_tx text[], p_creditor text[],
    p_amount bigint[], p_state text[], p_reason text[], p_by text[])
RETURNS TABLE (o_key text, o_reason text) LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    v_state text;
    v_reason text;
    v_by text;
    v_day date := switch_day(p_now);
BEGIN
    INSERT INTO messages (sender_bic, msg_id, body_sha256, received_at)
        VALUES (p_sender, p_msg_id, p_digest, p_now);
    -- a day whose partitions no beat made (a clock apart, a process stalled past midnight):
    -- made here, in this write (a catalog lookup a message otherwise)
    IF to_regclass('transfers_d' || to_char(v_day, 'YYYYMMDD')) IS NULL THEN
        PERFORM switch_make_days(v_day, 1);
    END IF;
    FOR i IN 1 .. coalesce(array_length(p_e2e, 1), 0) LOOP
        v_state := p_state[i];
        v_reason := p_reason[i];
        v_by := p_by[i];
        -- the id unique across every kept day (the partitions' keys hold the day)
        INSERT INTO transfer_ids (end_to_end_id, business_day) VALUES (p_e2e[i], v_day)
            ON CONFLICT (end_to_end_id) DO NOTHING;
        IF NOT FOUND THEN
            o_key := p_e2e[i];
            o_reason := 'DUPL';
            RETURN NEXT;
            CONTINUE;
        END IF;
        INSERT INTO transfers (end_to_end_id, tx_id, msg_id, debtor_bic, creditor_bic,
                               amount_vnd, state, reason_code, reason_by, bulk, received_at,
                               final_at, debtor_notice, owner, business_day)
            VALUES (p_e2e[i], p_tx[i], p_msg_id, p_sender, p_creditor[i], p_amount[i],
                    v_state, v_reason, v_by, p_bulk, p_now,
                    CASE WHEN v_state = 'REJECTED' THEN p_now END,
                    CASE WHEN v_state = 'REJECTED' AND p_bulk THEN 1 ELSE 0 END, p_me, v_day);
        IF v_state = 'PENDING' OR p_bulk THEN  -- in flight, or a debtor's notice owed
            INSERT INTO transfers_owed (end_to_end_id, business_day, owner)
                VALUES (p_e2e[i], v_day, p_me);
        END IF;
        IF v_state = 'PENDING' THEN  -- its hold, or AM04, decided by switch_flush
            INSERT INTO switch_deltas (bic, e2e, held) VALUES (p_sender, p_e2e[i], p_amount[i]);
        END IF;
        INSERT INTO transitions (end_to_end_id, from_state, to_state, reason_code, at,
                                 business_day)
            VALUES (p_e2e[i], NULL, v_state, v_reason, p_now, v_day);
    END LOOP;
END $$;

-- PENDING transfers made final, with the notices now due, the holds released and, for a
-- settlement, positions moved in the cycle open now. With p_creditor (an answer posted to a
-- process that did not forward the transfer), only that creditor's transfers another process
-- forwarded are taken, and the rows taken come back; without it, the rows another process
-- made final first come back, with the journal's word on them, and the settlements taken in
-- another cycle than p_cycle (closed meanwhile by another process) come back with only
-- o_key and o_cycle.
CREATE OR REPLACE FUNCTION switch_finish(
    p_me text, p_now double precision, p_creditor text, p_cycle integer, p_e2e text[],
    p_state text[], p_reason text[], p_by text[], p_tell boolean[])
RETURNS TABLE (o_key text, o_owner text, o_tx_id text, o_msg_id text, o_debtor text,
               o_creditor text, o_amount bigint, o_bulk boolean, o_received_at double precision,
               o_state text, o_reason text, o_by text, o_cycle integer)
LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    r transfers%ROWTYPE;
    v_cycle integer;
    v_taken boolean;
    v_bics text[] := '{}';
    v_net bigint[] := '{}';
    v_held bigint[] := '{}';
    v_day date;
    v_owner text;
BEGIN
    SELECT c.cycle_id INTO v_cycle FROM cycles c WHERE c.closed_at IS NULL
        ORDER BY c.cycle_id DESC LIMIT 1;
    FOR i IN 1 .. coalesce(array_length(p_e2e, 1), 0) LOOP
        SELECT n.business_day INTO v_day FROM transfer_ids n WHERE n.end_to_end_id = p_e2e[i];
        SELECT * INTO r FROM transfers t WHERE t.end_to_end_id = p_e2e[i]
            AND t.business_day = v_day FOR UPDATE;
        IF NOT FOUND THEN
            CONTINUE;
        END IF;
        SELECT o.owner INTO v_owner FROM transfers_owed o WHERE o.end_to_end_id = p_e2e[i];
        v_taken := r.state = 'PENDING' AND (p_creditor IS NULL
            OR (r.creditor_bic = p_creditor AND v_owner IS DISTINCT FROM p_me));
        IF v_taken THEN
            UPDATE transfers t SET state = p_state[i], reason_code = p_reason[i],
                reason_by = p_by[i], final_at = p_now,
                cycle_id = CASE WHEN p_state[i] = 'SETTLED' THEN v_cycle END,
                creditor_notice = CASE WHEN p_tell[i] THEN 1 ELSE 0 END,
                debtor_notice = CASE WHEN r.bulk THEN 1 ELSE 0 END, owner = p_me
                WHERE t.end_to_end_id = p_e2e[i] AND t.business_day = v_day;
            IF p_tell[i] OR r.bulk THEN  -- the notices now owed are this process's
                UPDATE transfers_owed o SET owner = p_me
                    WHERE o.end_to_end_id = p_e2e[i] AND o.owner IS DISTINCT FROM p_me;
            ELSE
                DELETE FROM transfers_owed o WHERE o.end_to_end_id = p_e2e[i];
            END IF;
            INSERT INTO transitions (end_to_end_id, from_state, to_state, reason_code, at,
                                     business_day)
                VALUES (p_e2e[i], 'PENDING', p_state[i], p_reason[i], p_now, v_day);
            v_bics := v_bics || r.debtor_bic;
            v_held := v_held || (-r.amount_vnd);
            IF p_state[i] = 'SETTLED' THEN
                v_net := v_net || (-r.amount_vnd);
                v_bics := v_bics || r.creditor_bic;
                v_held := v_held || 0::bigint;
                v_net := v_net || r.amount_vnd;
            ELSE
                v_net := v_net || 0::bigint;
            END IF;
        END IF;
        IF v_taken = (p_creditor IS NOT NULL) THEN
            o_key := r.end_to_end_id;
            o_owner := v_owner;
            o_tx_id := r.tx_id;
            o_msg_id := r.msg_id;
            o_debtor := r.debtor_bic;
            o_creditor := r.creditor_bic;
            o_amount := r.amount_vnd;
            o_bulk := r.bulk;
            o_received_at := r.received_at;
            IF v_taken THEN
                o_state := p_state[i];
                o_reason := p_reason[i];
                o_by := p_by[i];
                o_cycle := CASE WHEN p_state[i] = 'SETTLED' THEN v_cycle END;
            ELSE
                o_state := r.state;
                o_reason := r.reason_code;
                o_by := r.reason_by;
                o_cycle := r.cycle_id;
            END IF;
            RETURN NEXT;
        ELSIF v_taken AND p_state[i] = 'SETTLED' AND v_cycle IS DISTINCT FROM p_cycle THEN
            o_key := r.end_to_end_id;
            o_owner := NULL; o_tx_id := NULL; o_msg_id := NULL; o_debtor := NULL;
            o_creditor := NULL; o_amount := NULL; o_bulk := NULL; o_received_at := NULL;
            o_state := NULL; o_reason := NULL; o_by := NULL;
            o_cycle := v_cycle;
            RETURN NEXT;
        END IF;
    END LOOP;
    INSERT INTO switch_deltas (bic, net, held)  -- applied by switch_flush
        SELECT u.bic, u.net, u.held FROM unnest(v_bics, v_net, v_held) AS u(bic, net, held);
END $$;

-- Notices delivered (p_kind: creditor, debtor or both): marked sent day by day
-- (each update reads one day's partition, pruned as it starts), on no indexed column (HOT);
-- a transfer that owes nothing more leaves transfers_owed (by its key: a join would read the
-- whole of that table, whose deleted rows wait for autovacuum).
CREATE OR REPLACE FUNCTION switch_sent(p_kind text, p_keys text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_day date;
    v_creditor boolean := p_kind IN ('creditor', 'both');
    v_debtor boolean := p_kind IN ('debtor', 'both');
BEGIN
    FOR v_day IN SELECT DISTINCT n.business_day FROM transfer_ids n
                 WHERE n.end_to_end_id = ANY(p_keys) LOOP
        WITH sent AS (UPDATE transfers t
                      SET creditor_notice = CASE WHEN v_creditor THEN 2 ELSE t.creditor_notice END,
                          debtor_notice = CASE WHEN v_debtor THEN 2 ELSE t.debtor_notice END
                      WHERE t.business_day = v_day AND t.end_to_end_id = ANY(p_keys)
                      RETURNING t.end_to_end_id, t.creditor_notice, t.debtor_notice)
        DELETE FROM transfers_owed o WHERE o.end_to_end_id = ANY(ARRAY(
            SELECT sent.end_to_end_id FROM sent
            WHERE sent.creditor_notice <> 1 AND sent.debtor_notice <> 1));
    END LOOP;
END $$;

-- Settled transfers returned by their creditor; returns the items the journal refused:
-- AM04 (the creditor's cap), DUPL (returned meanwhile), DU05 (the return id taken meanwhile);
-- and, when the open cycle is not p_cycle (another process closed it meanwhile), the items
-- taken, with the cycle they settled in and no reason.
CREATE OR REPLACE FUNCTION switch_return(
    p_me text, p_creditor text, p_now double precision, p_cycle integer, p_return_id text[],
    p_e2e text[], p_debtor text[], p_amount bigint[], p_reason text[])
RETURNS TABLE (o_key text, o_reason text, o_cycle integer) LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    v_cycle integer;
    v_room bigint;
    v_day date;
BEGIN
    SELECT c.cycle_id INTO v_cycle FROM cycles c WHERE c.closed_at IS NULL
        ORDER BY c.cycle_id DESC LIMIT 1;
    PERFORM 1 FROM positions p WHERE p.bic = p_creditor FOR UPDATE;
    IF FOUND AND coalesce(array_length(p_e2e, 1), 0) > 0 THEN
        INSERT INTO switch_refused (e2e) VALUES (NULL);  -- a shared row locked
        v_room := switch_free(p_creditor);
        IF v_room < (SELECT sum(a) FROM unnest(p_amount) a) THEN  -- exact: every slice revoked
            UPDATE position_slices o SET room_vnd = 0 WHERE o.bic = p_creditor
                AND o.room_vnd <> 0;
            v_room := switch_free(p_creditor);
        END IF;
    END IF;
    FOR i IN 1 .. coalesce(array_length(p_e2e, 1), 0) LOOP
        o_key := p_return_id[i];
        o_cycle := NULL;
        IF v_room IS NULL OR p_amount[i] > v_room THEN
            o_reason := 'AM04';
            RETURN NEXT;
            CONTINUE;
        END IF;
        -- the returned transfer's day: a return lives in its transfer's partition
        SELECT n.business_day INTO v_day FROM transfer_ids n WHERE n.end_to_end_id = p_e2e[i];
        IF EXISTS (SELECT 1 FROM returns r WHERE r.end_to_end_id = p_e2e[i]
                   AND r.business_day = v_day) THEN
            o_reason := 'DUPL';
            RETURN NEXT;
            CONTINUE;
        END IF;
        INSERT INTO return_ids (creditor_bic, return_id, business_day)
            VALUES (p_creditor, p_return_id[i], v_day) ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            o_reason := 'DU05';
            RETURN NEXT;
            CONTINUE;
        END IF;
        INSERT INTO returns (return_id, end_to_end_id, creditor_bic, debtor_bic, amount_vnd,
                             reason_code, settled_at, cycle_id, owner, business_day)
            VALUES (p_return_id[i], p_e2e[i], p_creditor, p_debtor[i], p_amount[i],
                    p_reason[i], p_now, v_cycle, p_me, v_day)
            ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN  -- returned meanwhile by another process
            DELETE FROM return_ids n WHERE n.creditor_bic = p_creditor
                AND n.return_id = p_return_id[i];
            o_reason := 'DUPL';
            RETURN NEXT;
            CONTINUE;
        END IF;
        UPDATE transfers t SET state = 'RETURNED', reason_code = p_reason[i]
            WHERE t.end_to_end_id = p_e2e[i] AND t.business_day = v_day
              AND t.state = 'SETTLED' AND t.creditor_bic = p_creditor
              AND t.debtor_bic = p_debtor[i];
        IF NOT FOUND THEN
            RAISE EXCEPTION 'transfer % is not a settled transfer of %', p_e2e[i], p_creditor
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        INSERT INTO transitions (end_to_end_id, from_state, to_state, reason_code, at,
                                 business_day)
            VALUES (p_e2e[i], 'SETTLED', 'RETURNED', p_reason[i], p_now, v_day);
        v_room := v_room - p_amount[i];
        UPDATE positions SET net_vnd = net_vnd - p_amount[i] WHERE bic = p_creditor;
        INSERT INTO switch_deltas (bic, net) VALUES (p_debtor[i], p_amount[i]);  -- own slice
        IF v_cycle IS DISTINCT FROM p_cycle THEN
            o_reason := NULL;
            o_cycle := v_cycle;
            RETURN NEXT;
        END IF;
    END LOOP;
END $$;

-- Directory entries linked, updated or unlinked, each by its p_by (a participant's BIC, or
-- 'registry'), each checked against the directory as the journal holds it, whatever the
-- writing process's memory said: returns the refused ones, with why (elsewhere: the citizen
-- id is linked at another participant; taken: the account is linked to another citizen id;
-- changed: the entry to unlink is no longer there). One directory write at a time (the
-- lock), so that the changes' numbers (seq) follow the order they commit in, which the
-- processes catching up on NOTIFY rely on.
CREATE OR REPLACE FUNCTION switch_directory(
    p_by text[], p_at double precision[], p_action text[], p_citizen text[], p_bic text[],
    p_account text[], p_name text[])
RETURNS TABLE (o_key text, o_reason text) LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    v_bic text;
    v_account text;
    v_holder text;
    v_action text;
BEGIN
    PERFORM pg_advisory_xact_lock(1398228036);  -- 0x53574444, "SWDD": the directory's key
    FOR i IN 1 .. coalesce(array_length(p_citizen, 1), 0) LOOP
        o_key := p_citizen[i];
        SELECT d.participant_bic, d.account_id INTO v_bic, v_account FROM directory d
            WHERE d.citizen_id = p_citizen[i];
        IF p_action[i] = 'unlink' THEN
            IF v_bic IS DISTINCT FROM p_bic[i] OR v_account IS DISTINCT FROM p_account[i] THEN
                o_reason := 'changed';
                RETURN NEXT;
                CONTINUE;
            END IF;
            DELETE FROM directory d WHERE d.citizen_id = p_citizen[i];
            v_action := 'unlink';
        ELSE
            IF v_bic IS NOT NULL AND v_bic <> p_bic[i] AND p_by[i] <> 'registry' THEN
                o_reason := 'elsewhere';
                RETURN NEXT;
                CONTINUE;
            END IF;
            SELECT d.citizen_id INTO v_holder FROM directory d
                WHERE d.participant_bic = p_bic[i] AND d.account_id = p_account[i];
            IF v_holder IS NOT NULL AND v_holder <> p_citizen[i] THEN
                o_reason := 'taken';
                RETURN NEXT;
                CONTINUE;
            END IF;
            v_action := CASE WHEN v_bic IS NULL THEN 'link' ELSE 'update' END;
            INSERT INTO directory (citizen_id, participant_bic, account_id, holder_name,
                                   updated_at, updated_by)
                VALUES (p_citizen[i], p_bic[i], p_account[i], p_name[i], p_at[i], p_by[i])
                ON CONFLICT (citizen_id) DO UPDATE SET participant_bic = excluded.participant_bic,
                    account_id = excluded.account_id, holder_name = excluded.holder_name,
                    updated_at = excluded.updated_at, updated_by = excluded.updated_by;
        END IF;
        INSERT INTO directory_changes (citizen_id, action, participant_bic, account_id,
                                       holder_name, changed_by, at)
            VALUES (p_citizen[i], v_action, p_bic[i], p_account[i], p_name[i], p_by[i],
                    p_at[i]);
    END LOOP;
    PERFORM pg_notify('switch_directory', '');
END $$;

-- Close the open cycle (if it is at least p_min_age_s old) and open the next; the closed
-- cycle's id, or NULL. Every position row is locked first, as each settling write locks its
-- own: a settlement's write falls wholly before or wholly after the close.
CREATE OR REPLACE FUNCTION switch_close(p_min_age_s double precision) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_closed integer;
    v_now double precision := switch_now();
BEGIN
    PERFORM 1 FROM positions ORDER BY bic FOR UPDATE;
    INSERT INTO switch_refused (e2e) VALUES (NULL);  -- shared rows locked
    PERFORM 1 FROM position_slices ORDER BY bic, process_id FOR UPDATE;
    UPDATE cycles SET closed_at = v_now
        WHERE closed_at IS NULL AND opened_at <= v_now - coalesce(p_min_age_s, 0)
        RETURNING cycle_id INTO v_closed;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO cycles (cycle_id, opened_at) VALUES (v_closed + 1, v_now);
    UPDATE positions SET net_vnd = 0 WHERE net_vnd <> 0;
    -- every slice's room revoked as its net is zeroed (a creditor's net gone could leave room
    -- promised past the cap); holds stay with their transfers
    UPDATE position_slices SET net_vnd = 0, room_vnd = 0 WHERE net_vnd <> 0 OR room_vnd <> 0;
    PERFORM pg_notify('switch_cycles', (v_closed + 1)::text);
    RETURN v_closed;
END $$;
"""

# Totals kept as counters (issue #24), as in SQLite's journal (switch/store.py says why):
# statement triggers with transition tables, one upsert per statement for all its rows, in
# the transaction of the write. Each writer connection adds to its own slot, its backend
# pid, which no other live connection has (a pid modulo 64 could put two processes' writers
# on one row, held from their write to their COMMIT: the cross-process lock the escrow slices
# removed); a read sums the slots, and each start folds the slots of backends gone into
# slot 0, so the rows stay as many as the live writers. No trigger on DELETE or on a dropped
# partition: all-time totals stay. The triggers sit on the partitioned parents: PostgreSQL
# takes transition tables on a partitioned table's statement triggers (not on a partition's),
# and every write of the switch goes through the parents, never to a partition by name.
COUNTERS = """
CREATE TABLE IF NOT EXISTS transfer_totals (
    slot INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason_code TEXT NOT NULL,
    count BIGINT NOT NULL,
    amount_high BIGINT NOT NULL,
    amount_low BIGINT NOT NULL,
    PRIMARY KEY (slot, state, reason_code)
) WITH (fillfactor = 50);
CREATE TABLE IF NOT EXISTS return_totals (
    slot INTEGER PRIMARY KEY,
    count BIGINT NOT NULL,
    amount_high BIGINT NOT NULL,
    amount_low BIGINT NOT NULL
) WITH (fillfactor = 50);
CREATE OR REPLACE FUNCTION switch_count_transfers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO transfer_totals AS t
        SELECT pg_backend_pid(), state, coalesce(reason_code, ''), count(*),
               sum(amount_vnd / 1000000000), sum(amount_vnd % 1000000000)
        FROM new_rows GROUP BY 2, 3
        ON CONFLICT (slot, state, reason_code) DO UPDATE SET count = t.count + excluded.count,
            amount_high = t.amount_high + excluded.amount_high,
            amount_low = t.amount_low + excluded.amount_low;
    ELSE
        INSERT INTO transfer_totals AS t
        SELECT pg_backend_pid(), state, reason, sum(n), sum(high), sum(low) FROM (
            SELECT state, coalesce(reason_code, '') AS reason, 1 AS n,
                   amount_vnd / 1000000000 AS high, amount_vnd % 1000000000 AS low
            FROM new_rows
            UNION ALL
            SELECT state, coalesce(reason_code, ''), -1, -(amount_vnd / 1000000000),
                   -(amount_vnd % 1000000000) FROM old_rows) AS moves
        GROUP BY 2, 3 HAVING sum(n) <> 0 OR sum(high) <> 0 OR sum(low) <> 0
        ON CONFLICT (slot, state, reason_code) DO UPDATE SET count = t.count + excluded.count,
            amount_high = t.amount_high + excluded.amount_high,
            amount_low = t.amount_low + excluded.amount_low;
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION switch_count_returns() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO return_totals AS t
    SELECT pg_backend_pid(), count(*), sum(amount_vnd / 1000000000),
           sum(amount_vnd % 1000000000) FROM new_rows HAVING count(*) > 0
    ON CONFLICT (slot) DO UPDATE SET count = t.count + excluded.count,
        amount_high = t.amount_high + excluded.amount_high,
        amount_low = t.amount_low + excluded.amount_low;
    RETURN NULL;
END $$;
-- A journal made before the counters: counted once, from its rows, before the triggers.
INSERT INTO transfer_totals
SELECT 0, state, coalesce(reason_code, ''), count(*), sum(amount_vnd / 1000000000),
       sum(amount_vnd % 1000000000)
FROM transfers WHERE NOT EXISTS (SELECT 1 FROM transfer_totals) GROUP BY 2, 3;
INSERT INTO return_totals
SELECT 0, count(*), coalesce(sum(amount_vnd / 1000000000), 0),
       coalesce(sum(amount_vnd % 1000000000), 0)
FROM returns WHERE NOT EXISTS (SELECT 1 FROM return_totals) HAVING count(*) > 0;
-- The slots of backends gone, folded into slot 0 (a concurrent start's DELETE finds them
-- gone: each row is folded once).
WITH gone AS (DELETE FROM transfer_totals WHERE slot <> 0
              AND slot NOT IN (SELECT pid FROM pg_stat_activity) RETURNING *)
INSERT INTO transfer_totals AS t
SELECT 0, state, reason_code, sum(count), sum(amount_high), sum(amount_low) FROM gone
GROUP BY 2, 3
ON CONFLICT (slot, state, reason_code) DO UPDATE SET count = t.count + excluded.count,
    amount_high = t.amount_high + excluded.amount_high,
    amount_low = t.amount_low + excluded.amount_low;
WITH gone AS (DELETE FROM return_totals WHERE slot <> 0
              AND slot NOT IN (SELECT pid FROM pg_stat_activity) RETURNING *)
INSERT INTO return_totals AS t
SELECT 0, sum(count), sum(amount_high), sum(amount_low) FROM gone HAVING count(*) > 0
ON CONFLICT (slot) DO UPDATE SET count = t.count + excluded.count,
    amount_high = t.amount_high + excluded.amount_high,
    amount_low = t.amount_low + excluded.amount_low;
CREATE OR REPLACE TRIGGER transfers_counted AFTER INSERT ON transfers
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION switch_count_transfers();
CREATE OR REPLACE TRIGGER transfers_recounted AFTER UPDATE ON transfers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION switch_count_transfers();
CREATE OR REPLACE TRIGGER returns_counted AFTER INSERT ON returns
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION switch_count_returns();
"""

SCHEMA_LOCK = 0x5357_4A4C  # pg_advisory_xact_lock key: one process sets the schema at a time
OLD_JOURNAL = "SW002"  # the SQLSTATE of a journal made before the partitions (refused)
OLD_JOURNAL_SENTENCE = (
    "this PostgreSQL journal was made by a switchlab before its tables were partitioned by "
    "business day (issue #24), and this version does not write it: start the switch on a new "
    "database; the old one stays readable (docs/operations.md, \"PostgreSQL\")")
DAYS_AHEAD = 2  # business days whose partitions exist: today's and tomorrow's
DAY_S = 86_400
BUSINESS_OFFSET_S = 7 * 3_600  # Vietnam, UTC+7: the scheme's business day (switch_day)
MAKE_DAYS_LOCK_TIMEOUT = "2s"  # a beat waits no longer for the parents' lock; the next retries
SETTINGS_CHANNEL = "switch_settings"
CYCLES_CHANNEL = "switch_cycles"
DIRECTORY_CHANNEL = "switch_directory"
MAX_NOTIFY_BYTES = 7_000  # PostgreSQL's limit on a payload is 8,000 bytes
MAX_ATTEMPTS = 5  # a batch run again after a deadlock or a serialization failure
READERS = 4  # connections for reads; with the writer and the listener, six per process
COMMAND_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 5.0  # a server that is not there is found out within this, not a minute
TAKEN_OVER = "SW001"  # the SQLSTATE switch_begin raises for a process found dead

_BIC = re.compile(r"[A-Z0-9]{1,11}")
_FLUSH = "SELECT switch_flush($1, $2)"
_MAKE_DAYS = f"SELECT switch_make_days(switch_day($1), {DAYS_AHEAD})"
log = logging.getLogger(__name__)
_REFUSED_HOLDS = "DELETE FROM switch_refused RETURNING e2e"
# The batch's queued holds and moves (switch_take, switch_finish) and the holds switch_flush
# refused: this session's own (temporary: no WAL, no other session sees them).
_SESSION_TABLES = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS switch_deltas (seq bigint GENERATED ALWAYS AS"
    " IDENTITY, bic text NOT NULL, e2e text, net bigint NOT NULL DEFAULT 0, held bigint NOT"
    " NULL DEFAULT 0); CREATE TEMPORARY TABLE IF NOT EXISTS switch_refused (e2e text)")
# The writer's session holds a session-level advisory lock keyed by its process (`_claim`):
# a new writer session (after a failure) ends the old one, still alive on the server when
# only the client let go (a lock wait, a COMMIT in hand, a half-open connection), and waits
# until it is gone, so that no batch of the failed writer commits after healing looked.
_END_OLD_WRITER = ("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                   " AND granted AND pid <> pg_backend_pid() AND classid = {high}"
                   " AND objid = {low} AND objsubid = 1")
_TAKE = "SELECT o_key, o_reason FROM switch_take($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)"
_TAKE_ARGS = _TAKE.count("$")
_FINISH = "SELECT * FROM switch_finish($1, $2, $3, $4, $5, $6, $7, $8, $9)"
_RETURN = "SELECT o_key, o_reason, o_cycle FROM switch_return($1, $2, $3, $4, $5, $6, $7, $8, $9)"
_DIRECTORY = "SELECT o_key, o_reason FROM switch_directory($1, $2, $3, $4, $5, $6, $7)"
_CLOSE = "SELECT switch_close($1)"
_NOTIFY = "SELECT pg_notify($1, $2)"
_MARK_SENT = {
    "creditor": "SELECT switch_sent('creditor', $1::text[])",
    "debtor": "SELECT switch_sent('debtor', $1::text[])",
    "both": "SELECT switch_sent('both', $1::text[])",  # a bulk transfer's two notices at once
    "return": f"UPDATE returns SET debtor_notice={NOTICE_SENT} WHERE return_id = ANY($1::text[])",
}
# Transfers by end-to-end id, each read in its own day's partition (a join on transfer_ids:
# the partitions are pruned per id as the nested loop runs).
_BY_IDS = ("transfer_ids n JOIN transfers t ON t.end_to_end_id = n.end_to_end_id"
           " AND t.business_day = n.business_day WHERE n.end_to_end_id = ANY($1::text[])")
_SAVE_SETTINGS = (
    "INSERT INTO participant_settings (bic, position_limit_vnd, signed_off) VALUES ($1,$2,$3)"
    " ON CONFLICT (bic) DO UPDATE SET position_limit_vnd=excluded.position_limit_vnd,"
    " signed_off=excluded.signed_off"
)
_SET_LIMIT = ("WITH revoked AS (UPDATE position_slices SET room_vnd = 0 WHERE bic = $1)"
              " UPDATE positions SET limit_vnd = $2 WHERE bic = $1")  # room revoked first
_OPEN_CYCLE = ("INSERT INTO cycles (cycle_id, opened_at) VALUES ($1, $2)"
               " ON CONFLICT (cycle_id) DO NOTHING")
_JOIN = ("INSERT INTO switch_processes (process_id, host, pid, started_at, heartbeat_at)"
         " VALUES ($1, $2, $3, switch_now(), switch_now())")
_SEED_POSITIONS = (
    "INSERT INTO positions (bic, limit_vnd) SELECT u.bic, coalesce(s.position_limit_vnd,"
    " u.limit_vnd) FROM unnest($1::text[], $2::bigint[]) AS u(bic, limit_vnd)"
    " LEFT JOIN participant_settings s ON s.bic = u.bic"
    " ON CONFLICT (bic) DO UPDATE SET limit_vnd = excluded.limit_vnd"
)
_BEAT = ("UPDATE switch_processes SET heartbeat_at = switch_now(), locked_s = $2,"
         " batches = $3 WHERE process_id = $1")
_LEAVE = "UPDATE switch_processes SET heartbeat_at = 0 WHERE process_id = $1"
_DEAD = ("SELECT process_id FROM switch_processes WHERE process_id <> $1"
         " AND heartbeat_at < switch_now() - $2 ORDER BY heartbeat_at")
_BURY = ("DELETE FROM switch_processes WHERE process_id = $1 AND heartbeat_at < switch_now() - $2"
         " RETURNING process_id")
# A dead process's slices: its room back to the free headroom, its holds and net the survivor's.
_CLAIM_SLICES = (
    "WITH dead AS (DELETE FROM position_slices WHERE process_id = $2"
    " RETURNING bic, held_vnd, net_vnd) INSERT INTO position_slices AS o"
    " (bic, process_id, held_vnd, net_vnd) SELECT bic, $1, held_vnd, net_vnd FROM dead"
    " ORDER BY bic ON CONFLICT (bic, process_id) DO UPDATE SET"
    " held_vnd = o.held_vnd + excluded.held_vnd, net_vnd = o.net_vnd + excluded.net_vnd"
)
_PREFIXED = ", ".join(f"t.{column}" for column in TRANSFER_COLUMNS.split(", "))
_OWED = "transfers t JOIN transfers_owed o USING (end_to_end_id, business_day)"
_CLAIM_TRANSFERS = (
    f"WITH moved AS (UPDATE transfers_owed SET owner = $1 WHERE owner = $2"
    f" RETURNING end_to_end_id, business_day) SELECT {_PREFIXED}, t.creditor_notice,"
    f" t.debtor_notice FROM transfers t JOIN moved USING (end_to_end_id, business_day)"
)
_CLAIM_RETURNS = (
    f"UPDATE returns r SET owner = $1 FROM transfers t WHERE r.owner = $2"
    f" AND r.debtor_notice = {NOTICE_DUE} AND t.end_to_end_id = r.end_to_end_id"
    f" AND t.business_day = r.business_day"
    f" RETURNING r.return_id, r.amount_vnd, r.reason_code, {_PREFIXED}"
)
_OWNED_DUE = (
    f"SELECT {_PREFIXED}, t.creditor_notice, t.debtor_notice FROM {_OWED} WHERE o.owner = $1"
    f" AND (t.creditor_notice = {NOTICE_DUE} OR t.debtor_notice = {NOTICE_DUE})"
)
_OWNED_RETURNS_DUE = (
    f"SELECT r.return_id, r.amount_vnd, r.reason_code, {_PREFIXED} FROM returns r"
    f" JOIN transfers t USING (end_to_end_id, business_day) WHERE r.owner = $1"
    f" AND r.debtor_notice = {NOTICE_DUE}"
)
# A participant's net and holds: the shared row's and every process's slices'.
_POSITIONS = ("SELECT p.bic, (p.net_vnd + coalesce(sum(s.net_vnd), 0))::bigint, (p.reserved_vnd"
              " + coalesce(sum(s.held_vnd), 0))::bigint FROM positions p LEFT JOIN"
              " position_slices s ON s.bic = p.bic GROUP BY p.bic")
_POSTGRES_READS = {name: dollar_placeholders(sql)
                   for name, sql in reads_for(POSTGRES_KEYS_OF_JSON).items()}
BatchFailure = Literal["refused", "transient", "taken_over", "lost"]
_REFUSED: tuple[type[BaseException], ...] = (OverflowError, ValueError, TypeError)
_TRANSIENT: tuple[type[BaseException], ...] = ()
_LOST: tuple[type[BaseException], ...] = (OSError, TimeoutError)
if asyncpg is not None:
    # A value the database refuses is that write's fault, never the storage's: a constraint
    # (class 23), a value it cannot hold such as a NUL in text (class 22), or an argument the
    # driver cannot encode.
    _REFUSED += (asyncpg.exceptions.IntegrityConstraintViolationError,
                 asyncpg.exceptions.DataError)
    _TRANSIENT = (asyncpg.exceptions.DeadlockDetectedError,
                  asyncpg.exceptions.SerializationError)
    # The journal out of reach: the server stopped, restarting or gone, the connection cut.
    _LOST = (
        OSError, TimeoutError, asyncpg.exceptions.PostgresConnectionError,
        asyncpg.exceptions.OperatorInterventionError, asyncpg.exceptions.InterfaceError)


def batch_failure(error: Exception) -> BatchFailure:
    """What a batch that raised `error` meets (decided apart from I/O): `refused`, a value
    the database or the driver refused (the driver's own DataError is an InterfaceError
    too): the batch runs again, each write in a savepoint, so the refused one alone is
    refused; `transient`, a deadlock or serialization failure: it runs again; `taken_over`:
    the process ends; `lost`, anything else, a connection closed, cut or ended by the server
    first among them: the journal stops and the process heals on new connections; a batch
    never runs again on the connection it was lost on."""
    if taken_over(error):
        return "taken_over"
    if isinstance(error, _REFUSED):
        return "refused"
    if isinstance(error, _TRANSIENT):
        return "transient"
    return "lost"


def taken_over(error: BaseException | None) -> bool:
    """Whether a failure says this process was found dead and its work taken over: its own
    row gone when a write began (switch_begin), or its beat found nobody to update."""
    return getattr(error, "sqlstate", None) == TAKEN_OVER or isinstance(error, TakenOver)


class TakenOver(Exception):
    """Another process found this one dead and took its work over: this one must end (a
    supervisor starts it again, as a new process)."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """What a survivor took over from a dead process: transfers it held in flight (to reject
    AB06) and the notices it still owed."""

    in_flight: list[Transfer]
    notices: NoticesDue


@dataclass(frozen=True, slots=True)
class _Op:
    """One write: what it does in the transaction; the end-to-end ids whose holds it queues
    (switch_flush may refuse them AM04); whether the queued holds and moves must be applied
    before it runs (a cycle close)."""

    run: Callable[[Any], Awaitable[Any]]
    holds: tuple[str, ...] = ()
    flush_first: bool = False
    take: tuple[Any, ...] | None = None  # a take's arguments: consecutive takes go as one


MERGED_TAKES = 64  # at most in one statement: 64 × 14 parameters, 64 shapes cached per session


def _merged_take(count: int) -> str:
    """One statement for `count` takes, run in order (an Append runs its branches one after
    the other), each row tagged with its take's index."""
    return " UNION ALL ".join(
        f"SELECT {i}, o_key, o_reason FROM switch_take("
        + ",".join(f"${i * _TAKE_ARGS + j}" for j in range(1, _TAKE_ARGS + 1)) + ")"
        for i in range(count))


def _refused_holds(batch: list[QueuedWrite], outcomes: list[Any], refused: list[str]) -> None:
    """The journal's AM04 on holds switch_flush refused, added to the word of the write that
    queued each (a take's outcome: its end-to-end ids the journal decided otherwise)."""
    if not refused:
        return
    wrote = {key: index for index, write in enumerate(batch) for key in write.payload.holds}
    for key in refused:
        index = wrote[key]
        if isinstance(outcomes[index], WriteRefused):
            continue
        if outcomes[index] is None:
            outcomes[index] = {}
        outcomes[index][key] = Decided(reason=reasons.INSUFFICIENT_FUNDS)


def _notices(rows: Iterable[Sequence[Any]], returns: Iterable[Sequence[Any]]) -> NoticesDue:
    """Rows of TRANSFER_COLUMNS + (creditor_notice, debtor_notice), and of returns, as the
    notices still due."""
    to_creditors: list[Transfer] = []
    to_debtors: list[Transfer] = []
    for row in rows:
        if row[-2] == NOTICE_DUE:
            to_creditors.append(transfer_of_row(row))
        if row[-1] == NOTICE_DUE:
            to_debtors.append(transfer_of_row(row))
    return NoticesDue(to_creditors, to_debtors, [
        SettledReturn(return_id=row[0], original=transfer_of_row(row[3:]), amount_vnd=row[1],
                      reason_code=row[2]) for row in returns])


def _claim_sql(process_id: str) -> str:
    """A writer session's claim: its temporary tables, the process's old writer session
    ended, the lock taken (waiting for that session to be gone). The lock's key is the
    process id's 64 random bits as a bigint, which pg_locks shows as classid (the high 32
    bits) and objid (the low 32)."""
    key = int(process_id[2:], 16)
    old = _END_OLD_WRITER.format(high=key >> 32, low=key & 0xFFFF_FFFF)
    return (f"{_SESSION_TABLES}; {old}; SELECT pg_advisory_lock("
            f"{key - (1 << 64) if key >= 1 << 63 else key})")


def postgres_missing() -> str | None:
    """Why a PostgreSQL journal cannot be used here, or None when it can."""
    if asyncpg is None:
        return ("the PostgreSQL journal needs asyncpg: pip install 'switchlab[postgres]'")
    return None


class PostgresStore(GroupCommit, JournalReads):
    """The switch's durable state in PostgreSQL, written by one or several switch processes.

    `url` is a libpq URL (postgresql://user:password@host:port/database); `lease_s` is how
    long a process may go without beating before another takes its work over.
    """

    shared = True
    _SQL = _POSTGRES_READS
    _PLACEHOLDER = "$"

    def __init__(self, url: str, events: SwitchEvents | None = None, switch_bic: str = "",
                 max_queued_writes: int = 10_000, max_batch: int = 512,
                 lease_s: float = 5.0) -> None:
        missing = postgres_missing()
        if missing is not None:
            raise RuntimeError(missing)
        super().__init__(events, max_queued_writes, max_batch)
        self.heals = True  # the server back, the switch process reconnects (switch/cluster.py)
        self.url = url
        self.switch_bic = switch_bic
        self.process_id = f"sw{secrets.token_hex(8)}"  # also this process's NOTIFY channel
        # A transaction left open by a process that died without closing its connection
        # (a machine lost) holds its locks until the server ends it: within a lease.
        self._settings = {"idle_in_transaction_session_timeout": str(int(lease_s * 1000)),
                          # Statements on the partitioned tables planned once (pruned as they
                          # start): by default PostgreSQL replans them at every call, a custom
                          # plan looking cheaper than one over every day (server CPU per bulk
                          # transfer 310 µs against 228 µs with 3 days, 322 against 237 with 40)
                          "plan_cache_mode": "force_generic_plan"}
        self._writer: Any = None
        self._listener: Any = None
        self._readers: Any = None
        # The serialised section of write transactions (written with each beat): the
        # flush-and-COMMIT message (from sending it to its answer: the locks waited for and
        # held, the commit's fsync) of the batches that locked a shared row (a refill, a
        # revocation, a return, a close); the other batches lock only their own slices.
        self.locked_s = 0.0
        self.batches = 0
        if not _BIC.fullmatch(switch_bic or "X"):  # written into a statement below
            raise ValueError(f"{switch_bic!r} is not a BIC")
        self._flush_and_commit = (f"SELECT switch_flush('{self.process_id}', '{switch_bic}');"
                                  " COMMIT")
        self._claim = _claim_sql(self.process_id)
        self._begin = f"BEGIN; SELECT switch_begin('{self.process_id}')"  # one round trip
        self._days_made_on = 0  # the business day (_day_number) the partitions ahead were made

    # ---- connections, schema, membership --------------------------------------------------

    async def _connect(self) -> Any:
        return await asyncpg.connect(self.url, command_timeout=COMMAND_TIMEOUT_S,
                                     timeout=CONNECT_TIMEOUT_S, server_settings=self._settings)

    async def _claim_writer(self) -> None:
        """Make `_writer` this process's one writer session on the server: a session a
        failed writer left there is ended first, and waited for (at most CONNECT_TIMEOUT_S:
        TimeoutError). Its own temporary tables made."""
        await self._writer.execute(self._claim, timeout=CONNECT_TIMEOUT_S)

    async def start(self) -> None:
        """Connect, set the schema (once, whichever process comes first), say this process is
        alive, and start the writer."""
        self._writer = await self._connect()
        try:
            async with self._writer.transaction():
                await self._writer.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
                await self._writer.execute(SCHEMA)
                await self._writer.execute(COUNTERS)
                await self._writer.execute(_MAKE_DAYS, time.time())
                await self._writer.execute(FORWARD_SECRET_TABLE)
                await self._writer.execute(MAKE_FORWARD_SECRET.format("$1::bytea"),
                                           new_forward_secret())
                secret, legacy_until_s = await self._writer.fetchrow(READ_FORWARD_SECRET)
                self.forward_ids = ForwardIds(secret, legacy_until_s)
        except asyncpg.PostgresError as error:
            if getattr(error, "sqlstate", None) != OLD_JOURNAL:
                raise
            await self._writer.close()
            raise RuntimeError(OLD_JOURNAL_SENTENCE) from None
        self._days_made_on = _day_number(time.time())
        await self._claim_writer()
        await self._writer.execute(_JOIN, self.process_id, socket.gethostname(), os.getpid())
        self._listener = await self._connect()
        # No floor of idle connections: a pool with one tries to restore it, and logs a
        # traceback, every moment the server is down.
        self._readers = await asyncpg.create_pool(self.url, min_size=0, max_size=READERS,
                                                  command_timeout=COMMAND_TIMEOUT_S,
                                                  timeout=CONNECT_TIMEOUT_S,
                                                  server_settings=self._settings)
        self._start_writer()

    async def close(self) -> None:
        """Commit what was already taken, say this process left (a survivor takes over at
        once whatever it still owes), then close."""
        await self._stop_writer()
        with contextlib.suppress(Exception):  # a journal gone already: the lease will do
            if not self.listening():  # lost, or being healed: a connection of its own
                self._listener = await self._connect()
            await self._listener.execute(_LEAVE, self.process_id)
        for connection in (self._writer, self._listener):
            if connection is not None and not connection.is_closed():
                await connection.close()
        if self._readers is not None:
            await self._readers.close()

    async def seed_positions(self, limits_vnd: dict[str, int]) -> None:
        """Give every participant a position row with its configured limit (unless the
        operator set one over the admin API, which stays)."""
        bics = sorted(limits_vnd)
        await self._listener.execute(_SEED_POSITIONS, bics, [limits_vnd[bic] for bic in bics])

    async def beat(self) -> bool:
        """Say this process is still alive; False once another process has taken it over.
        At a business day's change, first the partitions of the days ahead (`make_days`)."""
        if _day_number(time.time()) != self._days_made_on:
            await self.make_days()
        return await self._listener.execute(_BEAT, self.process_id, self.locked_s,
                                            self.batches) == "UPDATE 1"

    async def make_days(self) -> None:
        """The partitions of today and tomorrow (business days), made where missing. A wait
        for the parents' lock past MAKE_DAYS_LOCK_TIMEOUT (a retention's detach under way) is
        logged, and the next beat tries again: tomorrow's partition was made a day ahead."""
        now_s = time.time()
        try:
            async with self._listener.transaction():
                await self._listener.execute(
                    f"SET LOCAL lock_timeout = '{MAKE_DAYS_LOCK_TIMEOUT}'")
                await self._listener.execute(_MAKE_DAYS, now_s)
        except asyncpg.exceptions.LockNotAvailableError as error:
            log.warning("switch process %s: the partitions of the days ahead wait: %s",
                        self.process_id, error)
            return
        self._days_made_on = _day_number(now_s)

    async def dead(self, lease_s: float) -> list[str]:
        """Processes that have not beaten for `lease_s` seconds (the database's clock)."""
        return [row[0] for row in await self._listener.fetch(_DEAD, self.process_id, lease_s)]

    async def listen(self, on_final: Callable[[str], None], on_settings: Callable[[], None],
                     on_cycle: Callable[[int], None], on_directory: Callable[[], None]) -> None:
        """Call back when another process made one of this process's transfers final (its
        JSON word), when the operator changed a participant's settings, when a cycle closed
        (the id of the one now open), when the directory changed."""
        await self._listener.add_listener(
            self.process_id, lambda _c, _p, _ch, payload: on_final(payload))
        await self._listener.add_listener(
            SETTINGS_CHANNEL, lambda _c, _p, _ch, _payload: on_settings())
        await self._listener.add_listener(
            CYCLES_CHANNEL, lambda _c, _p, _ch, payload: on_cycle(int(payload)))
        await self._listener.add_listener(
            DIRECTORY_CHANNEL, lambda _c, _p, _ch, _payload: on_directory())

    def listening(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    def closed_connection(self) -> str | None:
        """Which of this process's connections is found closed ("listener", "writer"), or
        None. One closed means the journal was lost, the others too (a restart ends every
        session, and a writer idle meanwhile finds out only at its next write, answered
        503): the process heals (`reconnect`), never reconnects one connection alone."""
        if not self.listening():
            return "listener"
        if self._writer is None or self._writer.is_closed():
            return "writer"
        return None

    # ---- healing: the journal lost, then back ------------------------------------------------

    async def reconnect(self) -> None:
        """After the journal was lost (`failure` set): new writer and listener connections,
        the readers' pool emptied of its old ones. Nothing of the failed writer outlives
        this: its task has ended (its last batch answered JournalFailed) and its server
        session too (`_claim_writer`), before anything is read or written again. Raises what
        connecting raises while the server is not back; writes stay refused until `resume`."""
        for connection in (self._writer, self._listener):
            if connection is not None and not connection.is_closed():
                connection.terminate()
        self._writer = self._listener = None
        if self._writer_task is not None:  # its connection cut above: it ends at once
            await asyncio.gather(self._writer_task, return_exceptions=True)
        await self._readers.expire_connections()
        self._writer = await self._connect()
        await self._claim_writer()
        self._listener = await self._connect()

    async def resume(self) -> None:
        """Take writes again, on the connection `reconnect` opened (the old writer task
        ended there)."""
        self.failure = None
        self._start_writer()

    # ---- group commit -----------------------------------------------------------------------

    def _submit(self, run: Callable[[Any], Awaitable[Any]], holds: tuple[str, ...] = (),
                flush_first: bool = False, take: tuple[Any, ...] | None = None
                ) -> asyncio.Future[Any]:
        return self._enqueue(_Op(run, holds, flush_first, take))

    async def _commit(self, batch: list[QueuedWrite]) -> list[Any]:
        savepoints = False
        attempts = 0
        while True:
            attempts += 1
            try:
                return await self._transaction(batch, savepoints)
            except Exception as error:
                failure = batch_failure(error)
                if failure == "refused" and not savepoints:
                    savepoints = True  # again, each write in a savepoint: the refused one alone
                elif failure == "transient" and attempts < MAX_ATTEMPTS:
                    continue
                elif failure == "lost":  # said plainly, for the 503s and /v1/health
                    raise ConnectionError(
                        "the journal is out of reach or failed (whether the last batch"
                        f" committed is unknown): {type(error).__name__}: {error}"
                    ) from error
                else:  # taken over; refused outside any one write; transient too often
                    raise

    async def _transaction(self, batch: list[QueuedWrite], savepoints: bool) -> list[Any]:
        """One transaction, one fsync: the process's liveness checked first, then each
        write, then the holds and moves they queued applied under the positions' locks
        (switch_flush) in the same message as COMMIT: the locks are held for that message's
        execution and the commit's fsync, never across a round trip."""
        connection = self._writer
        outcomes: list[Any] = []
        await connection.execute(self._begin)
        try:
            await self._run_writes(connection, batch, savepoints, outcomes)
            started_s = time.perf_counter()
            await connection.execute(self._flush_and_commit)
            flushed_s = time.perf_counter() - started_s
            self.batches += 1
        except BaseException:
            if not connection.is_closed():
                with contextlib.suppress(Exception):  # the connection lost: nothing to undo
                    await connection.execute("ROLLBACK")
            raise
        said = [row[0] for row in await connection.fetch(_REFUSED_HOLDS)]
        refused = [key for key in said if key is not None]
        if len(refused) < len(said):  # a shared row was locked to COMMIT: serialised
            self.locked_s += flushed_s
        _refused_holds(batch, outcomes, refused)
        return outcomes

    async def _run_writes(self, connection: Any, batch: list[QueuedWrite], savepoints: bool,
                          outcomes: list[Any]) -> None:
        """Each write of the batch, in order, consecutive takes as one statement (`_takes`);
        with `savepoints`, each in its own, so that a write the database refuses is refused
        alone."""
        takes: list[QueuedWrite] = []
        for index, write in enumerate(batch):
            if not savepoints and write.payload.take is not None:
                takes.append(write)
                if len(takes) < MERGED_TAKES and index + 1 < len(batch) and (
                        batch[index + 1].payload.take is not None):
                    continue
                outcomes += await self._takes(connection, takes)
                takes = []
                continue
            if write.payload.flush_first:  # a close: what settled before it counts in it
                await connection.execute(_FLUSH, self.process_id, self.switch_bic)
            if not savepoints:
                outcomes.append(await write.payload.run(connection))
                continue
            await connection.execute("SAVEPOINT write")
            try:
                outcomes.append(await write.payload.run(connection))
            except _REFUSED as error:
                await connection.execute("ROLLBACK TO SAVEPOINT write")
                outcomes.append(WriteRefused(str(error)))
            else:
                await connection.execute("RELEASE SAVEPOINT write")

    @staticmethod
    async def _takes(connection: Any, takes: list[QueuedWrite]) -> list[Any]:
        """Consecutive takes in one statement and one round trip; each take's outcome as its
        own run would give it."""
        if len(takes) == 1:
            return [await takes[0].payload.run(connection)]
        rows = await connection.fetch(_merged_take(len(takes)),
                                      *(arg for write in takes for arg in write.payload.take))
        decided: list[dict[str, Decided]] = [{} for _ in takes]
        for index, key, reason in rows:
            decided[index][key] = Decided(reason=reason)
        return [found or None for found in decided]

    # ---- what the switch writes ---------------------------------------------------------

    def record_new(self, sender_bic: str, msg_id: str, body_sha256: bytes,
                   transfers: Sequence[Transfer], now_s: float
                   ) -> asyncio.Future[dict[str, Decided] | None]:
        """A message and the transfers it brought, PENDING with the debtor's hold or REJECTED;
        returns the transfers the journal decided otherwise (DUPL, AM04), or None. Refused
        (WriteRefused) when the sender used the MsgId before."""
        args = (self.process_id, self.switch_bic, sender_bic, msg_id, body_sha256, now_s,
                bool(transfers) and transfers[0].bulk,
                [t.end_to_end_id for t in transfers], [t.tx_id for t in transfers],
                [t.creditor_bic for t in transfers], [t.amount_vnd for t in transfers],
                [str(t.state) for t in transfers], [t.reason_code for t in transfers],
                [t.reason_by for t in transfers])

        async def run(connection: Any) -> dict[str, Decided] | None:
            rows = await connection.fetch(_TAKE, *args)
            return {key: Decided(reason=reason) for key, reason in rows} or None

        return self._submit(run, holds=tuple(
            t.end_to_end_id for t in transfers if t.state is TransferState.PENDING), take=args)

    def _finish(self, creditor_bic: str | None, cycle_id: int | None,
                items: Sequence[tuple[str, TransferState, str | None, str | None, bool]],
                now_s: float, run: Callable[[Any, list[Any]], Awaitable[Any]]
                ) -> asyncio.Future[Any]:
        args = (self.process_id, now_s, creditor_bic, cycle_id, [item[0] for item in items],
                [str(item[1]) for item in items], [item[2] for item in items],
                [item[3] for item in items], [item[4] for item in items])

        async def finish(connection: Any) -> Any:
            return await run(connection, await connection.fetch(_FINISH, *args))

        return self._submit(finish)

    def record_final(self, finals: Sequence[Final], now_s: float
                     ) -> asyncio.Future[dict[str, Decided] | None]:
        """PENDING transfers made final, with the notices now due; returns those another
        process made final first, with the journal's word on each, and the settlements the
        journal counted in another cycle than asked (a close elsewhere meanwhile), or None."""
        asked_cycle = next((f.cycle_id for f in finals if f.cycle_id is not None), None)

        async def lost(_connection: Any, rows: list[Any]) -> dict[str, Decided] | None:
            return {row["o_key"]: Decided(cycle_id=row["o_cycle"]) if row["o_state"] is None
                    else Decided(state=TransferState(row["o_state"]),
                                 reason_code=row["o_reason"], reason_by=row["o_by"])
                    for row in rows} or None

        return self._finish(None, asked_cycle, [
            (f.transfer.end_to_end_id, f.state, f.reason_code, f.reason_by, f.tell_creditor)
            for f in finals], now_s, lost)

    def record_answers(self, creditor_bic: str,
                       answers: Sequence[tuple[str, TransferState, str | None]], now_s: float
                       ) -> asyncio.Future[list[Final]]:
        """Answers posted to this process for transfers another process forwarded to
        `creditor_bic`: those still PENDING are made final here (an ACSC owed to the creditor
        on a settlement), and the processes that forwarded them are told by NOTIFY; returns
        the finals taken."""
        items = [(e2e, state, reason, None if reason is None else creditor_bic,
                  state is TransferState.SETTLED) for e2e, state, reason in answers]

        async def taken(connection: Any, rows: list[Any]) -> list[Final]:
            finals = []
            told: defaultdict[str, list[list[str | None]]] = defaultdict(list)
            for row in rows:
                transfer = Transfer(
                    end_to_end_id=row["o_key"], tx_id=row["o_tx_id"], msg_id=row["o_msg_id"],
                    debtor_bic=row["o_debtor"], creditor_bic=row["o_creditor"],
                    amount_vnd=row["o_amount"], bulk=row["o_bulk"],
                    received_at=row["o_received_at"], state=TransferState.PENDING)
                state = TransferState(row["o_state"])
                finals.append(Final(transfer, state, row["o_reason"], row["o_by"],
                                    row["o_cycle"], state is TransferState.SETTLED))
                if row["o_owner"] is not None and row["o_owner"] != self.process_id:
                    told[row["o_owner"]].append([row["o_key"], row["o_state"], row["o_reason"],
                                                 row["o_by"]])
            notes = [(owner, payload) for owner, words in told.items()
                     for payload in _payloads(words)]
            if notes:
                await connection.executemany(_NOTIFY, notes)
            return finals

        return self._finish(creditor_bic, None, items, now_s, taken)

    def record_returns(self, returns: Sequence[SettledReturn], creditor_bic: str, cycle_id: int,
                       now_s: float) -> asyncio.Future[dict[str, Decided] | None]:
        """Settled returns, each owed to its debtor as a notice; the cycle is the journal's.
        Returns the items it refused (AM04, DUPL, DU05) and, when a close elsewhere made the
        open cycle other than `cycle_id`, the cycle of those it took; or None."""
        args = (self.process_id, creditor_bic, now_s, cycle_id, [r.return_id for r in returns],
                [r.original.end_to_end_id for r in returns],
                [r.original.debtor_bic for r in returns], [r.amount_vnd for r in returns],
                [r.reason_code for r in returns])

        async def run(connection: Any) -> dict[str, Decided] | None:
            rows = await connection.fetch(_RETURN, *args)
            return {key: Decided(reason=reason, cycle_id=cycle)
                    for key, reason, cycle in rows} or None

        return self._submit(run)

    def record_directory(self, changes: Sequence[DirectoryChange]
                         ) -> asyncio.Future[dict[str, str] | None]:
        """Directory entries linked, updated or unlinked, each checked again by the journal
        against the directory it holds (another process may have changed it) and journaled
        with its line; returns the citizen ids it refused, each with why (`elsewhere`,
        `taken`, `changed`: switch_directory), or None. Every process is told (NOTIFY)."""
        args = ([c.changed_by for c in changes], [c.at for c in changes],
                [c.action for c in changes], [c.entry.citizen_id for c in changes],
                [c.entry.participant_bic for c in changes], [c.entry.account_id for c in changes],
                [c.entry.holder_name for c in changes])

        async def run(connection: Any) -> dict[str, str] | None:
            return dict(await connection.fetch(_DIRECTORY, *args)) or None

        return self._submit(run)

    def mark_sent(self, kind: str, keys: Iterable[str]) -> asyncio.Future[None]:
        """Notices delivered: `kind` is creditor, debtor, both (end-to-end ids) or return
        (ids)."""
        sql, listed = _MARK_SENT[kind], list(keys)

        async def run(connection: Any) -> None:
            await connection.execute(sql, listed)

        return self._submit(run)

    def save_settings(self, bic: str, position_limit_vnd: int, signed_off: bool,
                      change: AdminChange | None = None) -> asyncio.Future[None]:
        """The operator's limit and sign-off, the limit the journal checks holds against,
        and a word to every process, with the admin change that asked (WriteRefused when
        its Idempotency-Key is journaled already)."""
        async def run(connection: Any) -> None:
            await _journal_admin_change(connection, change)
            await connection.execute(_SAVE_SETTINGS, bic, position_limit_vnd, signed_off)
            await connection.execute(_SET_LIMIT, bic, position_limit_vnd)
            await connection.execute(_NOTIFY, SETTINGS_CHANNEL, bic)

        return self._submit(run)

    def open_cycle(self, cycle_id: int, now_s: float) -> asyncio.Future[None]:
        async def run(connection: Any) -> None:
            await connection.execute(_OPEN_CYCLE, cycle_id, now_s)

        return self._submit(run)

    def close_cycle(self, closed_id: int, now_s: float, min_age_s: float | None = None,
                    change: AdminChange | None = None) -> asyncio.Future[int | None]:
        """Close whichever cycle is open (at least `min_age_s` old) and open the next, with
        the admin change that asked; the closed cycle's id, or None. `closed_id` is this
        process's belief, not the journal's."""
        async def run(connection: Any) -> int | None:
            await _journal_admin_change(connection, change)
            return await connection.fetchval(_CLOSE, min_age_s)

        return self._submit(run, flush_first=True)

    def answer_admin_change(self, change: AdminChange, status: int, answer: str
                            ) -> asyncio.Future[None]:
        """The answer given to an admin change (journaled with it, unless idempotent)."""
        async def run(connection: Any) -> None:
            await connection.execute(dollar_placeholders(ANSWER_ADMIN_CHANGE), change.key,
                                     change.request, change.at_s, status, answer)

        return self._submit(run)

    async def admin_change(self, key: str) -> AdminAnswer | None:
        """The admin change journaled under an Idempotency-Key, or None."""
        rows = await self.read(dollar_placeholders(SELECT_ADMIN_CHANGE), (key,))
        return AdminAnswer(*rows[0]) if rows else None

    def take_over(self, dead_process: str, lease_s: float) -> asyncio.Future[Claimed | None]:
        """Take over a process that stopped beating `lease_s` ago: what it held in flight and
        the notices it owed become this process's; None if another survivor was first or the
        process beat again."""
        async def run(connection: Any) -> Claimed | None:
            if await connection.fetchval(_BURY, dead_process, lease_s) is None:
                return None
            await connection.execute(_CLAIM_SLICES, self.process_id, dead_process)
            transfers = await connection.fetch(_CLAIM_TRANSFERS, self.process_id, dead_process)
            returns = await connection.fetch(_CLAIM_RETURNS, self.process_id, dead_process)
            return Claimed([transfer_of_row(row) for row in transfers
                            if row["state"] == TransferState.PENDING],
                           _notices(transfers, returns))

        return self._submit(run)

    # ---- what the switch reads while serving ----------------------------------------------

    async def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A query on a reader connection. Raises JournalFailed, saying why, when the journal
        is out of reach (the admin API answers 503, never 500)."""
        try:
            async with self._readers.acquire() as connection:
                return [tuple(row) for row in await connection.fetch(sql, *params)]
        except _LOST as error:
            if isinstance(error, ValueError):  # a value the driver refused: not the journal's
                raise
            raise JournalFailed(f"the journal is out of reach: {str(error) or type(error).__name__}"
                                ) from None

    async def lookup(self, end_to_end_ids: Sequence[str]) -> dict[str, Transfer]:
        """Journaled transfers by end-to-end id; ids the journal does not hold are absent."""
        rows = await self.read(f"SELECT {_PREFIXED} FROM {_BY_IDS}", (list(end_to_end_ids),))
        return {row[0]: transfer_of_row(row) for row in rows}

    async def returns_by_id(self, creditor_bic: str, return_ids: Sequence[str]
                            ) -> dict[str, tuple[str, int]]:
        """Returns the creditor already made under these RtrIds: id -> (end-to-end id, VND)."""
        rows = await self.read("SELECT return_id, end_to_end_id, amount_vnd FROM returns"
                               " WHERE creditor_bic=$1 AND return_id = ANY($2::text[])",
                               (creditor_bic, list(return_ids)))
        return {row[0]: (row[1], row[2]) for row in rows}

    async def positions_now(self) -> tuple[dict[str, int], dict[str, int]]:
        """Net positions in the open cycle and holds, per BIC, as the journal keeps them."""
        rows = await self.read(_POSITIONS)
        return {bic: net for bic, net, _ in rows}, {bic: held for bic, _, held in rows}

    # ---- what a starting process reads, before it serves anyone -----------------------------

    async def known_ids_now(self) -> set[str]:
        """None needed in memory: the journal itself refuses a known id (DUPL)."""
        return set()

    async def cycle_moves_now(self, cycle_id: int) -> list[tuple[str, str, int]]:
        """None needed in memory: positions live in the journal (`positions_now`)."""
        return []

    async def in_flight_now(self) -> list[Transfer]:
        """This process's own transfers in flight: none for a process just started (a dead
        process's are taken over by `take_over`)."""
        return [transfer_of_row(row) for row in await self.read(
            f"SELECT {_PREFIXED} FROM {_OWED} WHERE o.owner=$1 AND t.state='PENDING'",
            (self.process_id,))]

    async def notices_due_now(self) -> NoticesDue:
        """The notices this process owes (none for a process just started)."""
        return _notices(await self.read(_OWNED_DUE, (self.process_id,)),
                        await self.read(_OWNED_RETURNS_DUE, (self.process_id,)))


def _day_number(at_s: float) -> int:
    """The business day of a moment (unix s), as days since 1970-01-01 (switch_day's)."""
    return int((at_s + BUSINESS_OFFSET_S) // DAY_S)


def _payloads(words: list[list[str | None]]) -> Iterable[str]:
    """JSON arrays of words, each under PostgreSQL's limit on a NOTIFY payload."""
    chunk: list[list[str | None]] = []
    size = 2
    for word in words:
        encoded = len(json.dumps(word)) + 1
        if chunk and size + encoded > MAX_NOTIFY_BYTES:
            yield json.dumps(chunk)
            chunk, size = [], 2
        chunk.append(word)
        size += encoded
    if chunk:
        yield json.dumps(chunk)


async def _journal_admin_change(connection: Any, change: AdminChange | None) -> None:
    if change is not None:
        await connection.execute(dollar_placeholders(INSERT_ADMIN_CHANGE), change.key,
                                 change.request, change.at_s)
