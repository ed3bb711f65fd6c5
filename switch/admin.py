"""The operator's admin API (JSON, bearer token): participants, limits, sign-on and sign-off,
settlement cycles and statements, a transfer's history, listings of the journal, and totals
for reconciliation."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from protocol.directory import MAX_BODY_BYTES, parse_json, read_body
from protocol.http import IDEMPOTENCY_KEY_HEADER, xml_response
from protocol.ids import MAX_ID_CHARS, is_bic
from switch.config import MAX_POSITION_LIMIT_VND
from switch.journal import MAX_LISTED_TRANSFERS, MAX_TOTALS_KEYS
from switch.journal_errors import WriteRefused
from switch.participants import Participant
from switch.records import AdminChange
from switch.service import Switch
from switch.states import TransferState
from switch.transfer import scoped_key

SWITCH = web.AppKey("switch", Switch)
MAX_PAGE_DIGITS = 5  # Stmt/StmtPgntn/PgNb is Max5NumericText
# A settlement cycle's id: one a second for thirty thousand years, and within every
# database's integer (an id past 2^63 made the admin API answer 500).
MAX_CYCLE_ID = 10**12 - 1
DEFAULT_LISTED_TRANSFERS = 100
MAX_TOTALS_IDS = MAX_TOTALS_KEYS // 2  # each id is looked up as itself and scoped
# A request of the most ids, each of the longest, JSON-escaped at worst: 413 past it.
MAX_TOTALS_BODY_BYTES = 64 + MAX_TOTALS_IDS * (6 * MAX_ID_CHARS + 4)
LISTING_PARAMETERS = ("state", "participant", "since", "limit", "order")


def _participant(request: web.Request) -> Participant:
    participants = request.app[SWITCH].state.participants
    bic = request.match_info["bic"]
    if bic not in participants:
        raise web.HTTPNotFound(text=f"404: no participant {bic}\n")
    return participants[bic]


def whole_number(text: str, name: str, low: int, high: int) -> int:
    """A path or query parameter as a whole number from `low` to `high`, or 400 saying so:
    ASCII digits only, its length checked before any conversion (Python refuses to convert
    more than 4,300 digits, and no database holds more than 19)."""
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(high))
            and low <= int(text) <= high):
        raise web.HTTPBadRequest(text=f"400: {name} must be a whole number from {low:,} to "
                                 f"{high:,}, not {text[:24]!r}\n")
    return int(text)


def query_number(query: Mapping[str, str], name: str, default: int, high: int, low: int = 0
                 ) -> int:
    """A query parameter as a whole number from `low` to `high` (`default` when absent), or
    400 saying so (whole_number)."""
    return whole_number(query.get(name, str(default)), name, low, high)


def _cycle(request: web.Request) -> int:
    return whole_number(request.match_info["cycle"], "the cycle id", 1, MAX_CYCLE_ID)


async def list_participants(request: web.Request) -> web.Response:
    state = request.app[SWITCH].state
    book = state.book
    await book.refresh_positions()
    positions = book.positions
    return web.json_response([
        book.health(bic) | {"net_vnd": positions.net_vnd.get(bic, 0),
                            "reserved_vnd": positions.reserved_vnd.get(bic, 0)}
        for bic in state.participants
    ])


async def health(request: web.Request) -> web.Response:
    """The operator's view: the journal and every participant's kind, limit and breaker."""
    switch = request.app[SWITCH]
    failure = switch.state.store.failure
    state, _ = switch.health()
    return web.json_response({
        "status": "ok" if failure is None else state, "bic": switch.config.bic,
        "journal_failure": None if failure is None else str(failure),
        "process": switch.process_info(),
        "participants": [switch.state.book.health(bic) for bic in switch.state.participants],
    }, status=200 if failure is None else 503)


def _limit_asked(body: object) -> int:
    """The limit a PUT asks for: a JSON integer of whole dong within what the journal holds;
    not a float (1e400 is infinity, 1.5 is no dong), not a boolean (true is no amount), not
    a string."""
    limit = body.get("position_limit_vnd") if isinstance(body, dict) else None
    if (type(limit) is not int or set(body) != {"position_limit_vnd"}  # type: ignore[arg-type]
            or not 0 <= limit <= MAX_POSITION_LIMIT_VND):
        raise web.HTTPBadRequest(
            text=f'400: body must be {{"position_limit_vnd": <whole dong, a JSON integer from 0 '
            f'to {MAX_POSITION_LIMIT_VND:,}>}} and nothing else\n')
    return limit


# A change's handler: the request, the change as journaled, and the request's body.
Change = Callable[[web.Request, AdminChange, bytes], Awaitable[web.Response]]
ANSWER_REPLAYED_HEADER = "Idempotent-Replayed"  # "true" on the first answer given again


def keyed(change: Change) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An admin change made once per Idempotency-Key (draft-ietf-httpapi-idempotency-key-
    header; protocol.http.bearer_auth checked its form): the key is journaled with the change
    it made, so the same request again, before or after a restart, gets the first answer and
    changes nothing; the key with another request is 422, and while the first is being made
    409. A change refused (4xx before anything was written) journals nothing. A change that
    does the same when made twice (the directory's) may ignore its AdminChange: its key is
    journaled with its answer, right after."""

    async def make(request: web.Request) -> web.Response:
        key = request.headers[IDEMPOTENCY_KEY_HEADER]
        body = await read_body(request, MAX_BODY_BYTES)
        asked = f"{request.method} {request.path} {hashlib.sha256(body).hexdigest()}"
        state = request.app[SWITCH].state
        begun = state.book.begin_admin_change(key)
        if begun is None:
            raise web.HTTPServiceUnavailable(text="503: too many admin changes at once; retry"
                                             " later (nothing was done)\n",
                                             headers={"Retry-After": "1"})
        if not begun:
            raise _in_progress(key)
        try:
            earlier = await state.store.admin_change(key)
            if earlier is not None:
                if earlier.request != asked:
                    raise web.HTTPUnprocessableEntity(
                        text=f"422: {IDEMPOTENCY_KEY_HEADER} {key} was used for another "
                        f"change ({earlier.request.rsplit(' ', 1)[0]}); nothing was done\n")
                return _first_answer(earlier.status, earlier.answer)
            made = AdminChange(key, asked, time.time())
            try:
                response = await change(request, made, body)
            except WriteRefused:  # another process journaled this key first
                raise _in_progress(key) from None
            await state.store.answer_admin_change(made, response.status, response.text or "")
            return response
        finally:
            state.book.end_admin_change(key)

    return make


def _in_progress(key: str) -> web.HTTPConflict:
    return web.HTTPConflict(text=f"409: a change under {IDEMPOTENCY_KEY_HEADER} {key} is being "
                            "made; repeat the request for its answer\n",
                            headers={"Retry-After": "1"})


def _first_answer(status: int | None, answer: str | None) -> web.Response:
    headers = {ANSWER_REPLAYED_HEADER: "true"}
    if status is None or answer is None:  # the process stopped between change and answer
        return web.json_response({"note": "this change was made once already; its answer was"
                                  " not kept (the switch stopped meanwhile)"}, headers=headers)
    return web.Response(status=status, text=answer, content_type="application/json",
                        headers=headers)


@keyed
async def set_limit(request: web.Request, change: AdminChange, body: bytes) -> web.Response:
    participant = _participant(request)
    try:
        asked = json.loads(body)
    except ValueError:  # not JSON, or not UTF-8
        raise web.HTTPBadRequest(text="400: the body is not JSON\n") from None
    limit = _limit_asked(asked)
    await request.app[SWITCH].state.store.save_settings(participant.bic, limit,
                                                        participant.signed_off, change)
    book = request.app[SWITCH].state.book
    book.set_limit(participant.bic, limit)
    return web.json_response(book.health(participant.bic))


@keyed
async def sign_off(request: web.Request, change: AdminChange, _: bytes) -> web.Response:
    participant = _participant(request)
    on = request.match_info["action"] == "sign-on"
    await request.app[SWITCH].state.store.save_settings(
        participant.bic, participant.position_limit_vnd, not on, change)
    book = request.app[SWITCH].state.book
    book.sign(participant.bic, on)
    return web.json_response(book.health(participant.bic))


@keyed
async def close_cycle(request: web.Request, change: AdminChange, _: bytes) -> web.Response:
    cycles = request.app[SWITCH].cycles
    closed_id = await cycles.close(change=change)
    assert closed_id is not None  # without a minimum age, the open cycle always closes
    summary = await cycles.summarize(closed_id)
    assert summary is not None
    return web.json_response(summary.as_dict())


async def cycle_summary(request: web.Request) -> web.Response:
    summary = await request.app[SWITCH].cycles.summarize(_cycle(request))
    if summary is None:
        raise web.HTTPNotFound(text="404: no such settlement cycle\n")
    if request.query.get("format") == "text":
        return web.Response(text=summary.text() + "\n")
    return web.json_response(summary.as_dict())


def page_asked(request: web.Request) -> int:
    """The statement page a request asks for (`?page=N`, 1 when absent); 400 otherwise."""
    return query_number(request.query, "page", 1, 10 ** MAX_PAGE_DIGITS - 1, low=1)


async def cycle_statement(request: web.Request) -> web.Response:
    participant = _participant(request)
    switch = request.app[SWITCH]
    document = await switch.cycles.statement(_cycle(request), participant.bic,
                                             page_asked(request))
    if document is None:
        raise web.HTTPNotFound(text="404: no such settlement cycle, or no such page of it\n")
    return xml_response(switch.config.bic, participant.bic, document)


async def transfer_status(request: web.Request) -> web.Response:
    """A transfer as the journal holds it, with its history and its return; `?debtor=BIC`
    names whose, when two debtors used the id (issue #22: ids belong to their sender)."""
    e2e = request.match_info["e2e"]
    if not (0 < len(e2e) <= MAX_ID_CHARS and e2e.isprintable()):
        raise web.HTTPBadRequest(text=f"400: an end-to-end id is 1 to {MAX_ID_CHARS} printable "
                                 f"characters, not {e2e[:40]!r}\n")
    store = request.app[SWITCH].state.store
    found = await store.describe(e2e)
    debtor = request.query.get("debtor")
    if debtor is not None and (found is None or found["debtor_bic"] != debtor):
        if not is_bic(debtor):
            raise _bad("debtor", debtor, "a BIC (8 or 11 capital letters and digits)")
        found = await store.describe(scoped_key(e2e, debtor))
    if found is None:
        raise web.HTTPNotFound(text=f"404: no transfer {e2e}\n")
    return web.json_response(found)


def _bad(parameter: str, value: str, expected: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=f"400: {parameter}={value!r}: {expected}\n")


def listing_query(query: Mapping[str, str]) -> dict[str, Any]:
    """The journal listing a query string asks for, as Journal.transfers' arguments;
    HTTPBadRequest naming the parameter for anything else."""
    unknown = sorted(set(query) - set(LISTING_PARAMETERS))
    if unknown:
        raise web.HTTPBadRequest(text=f"400: unknown parameter {', '.join(unknown)}; known: "
                                 f"{', '.join(LISTING_PARAMETERS)}\n")
    asked: dict[str, Any] = {}
    if (state := query.get("state")) is not None:
        if state.upper() not in TransferState.__members__:
            raise _bad("state", state, f"one of {', '.join(TransferState)}")
        asked["state"] = state.upper()
    if (participant := query.get("participant")) is not None:
        if not is_bic(participant):
            raise _bad("participant", participant, "a BIC (8 or 11 capital letters and digits)")
        asked["participant"] = participant
    if (since := query.get("since")) is not None:
        try:
            moment = datetime.fromisoformat(since)
        except ValueError:
            raise _bad("since", since, "an ISO 8601 time such as 2026-11-20T08:00:00Z (UTC "
                       "when no offset is given)") from None
        asked["since_s"] = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    asked["limit"] = query_number(query, "limit", DEFAULT_LISTED_TRANSFERS,
                                  MAX_LISTED_TRANSFERS, low=1)
    order = query.get("order", "newest")
    if order not in ("newest", "oldest"):
        raise _bad("order", order, "newest (the last received) or oldest (the first)")
    asked["oldest_first"] = order == "oldest"
    return asked


async def list_transfers(request: web.Request) -> web.Response:
    """Transfers from the journal by state, participant and time, at most `limit`, in the
    order received; `more` says whether more matched (narrow the query or raise the limit)."""
    asked = listing_query(request.query)
    found, more = await request.app[SWITCH].state.store.transfers(**asked)
    return web.json_response({"transfers": [t.as_dict() for t in found], "more": more,
                              "limit": asked["limit"]})


def _by_state(rows: list[tuple[str, str, int, int]]) -> dict[str, dict[str, int]]:
    """(state, reason, count, VND) rows as stats' `by_state`: per state its count, VND and
    `count_<reason>` per reason code."""
    by_state: dict[str, dict[str, int]] = {}
    for transfer_state, reason, count, amount in rows:
        entry = by_state.setdefault(transfer_state, {"count": 0, "amount_vnd": 0})
        entry["count"] += count
        entry["amount_vnd"] += amount
        if reason:
            entry[f"count_{reason}"] = count
    return by_state


async def totals_of(request: web.Request) -> web.Response:
    """Stats' totals (`by_state`, `returns`, `in_flight`) over one debtor's transfers under
    the end-to-end ids given, at most MAX_TOTALS_IDS a request: what a payout run reconciles
    as its own, whatever else went through the switch (issue #24). Body:
    {"debtor": BIC, "end_to_end_ids": [id, ...]}; ids the switch never saw count nowhere."""
    body = parse_json(await read_body(request, MAX_TOTALS_BODY_BYTES))
    debtor = body.get("debtor") if isinstance(body, dict) else None
    ids = body.get("end_to_end_ids") if isinstance(body, dict) else None
    if not (isinstance(debtor, str) and is_bic(debtor) and isinstance(ids, list)
            and len(ids) <= MAX_TOTALS_IDS and set(body) == {"debtor", "end_to_end_ids"}
            and all(isinstance(i, str) and 0 < len(i) <= MAX_ID_CHARS and i.isprintable()
                    for i in ids)):
        raise web.HTTPBadRequest(text=(
            '400: body must be {"debtor": <BIC>, "end_to_end_ids": [<up to '
            f'{MAX_TOTALS_IDS:,} ids of 1 to {MAX_ID_CHARS} printable characters>]}} and '
            'nothing else\n'))
    keys = sorted({*ids, *(scoped_key(i, debtor) for i in ids)})
    rows, (returns, returns_vnd) = await request.app[SWITCH].state.store.totals_of(debtor, keys)
    by_state = _by_state(rows)
    return web.json_response({
        "debtor": debtor, "end_to_end_ids": len(ids), "by_state": by_state,
        "returns": {"count": returns, "amount_vnd": returns_vnd},
        "in_flight": by_state.get(TransferState.PENDING, {}).get("count", 0)})


async def stats(request: web.Request) -> web.Response:
    """Totals for reconciliation and live views: counts and amounts by state and reason."""
    switch = request.app[SWITCH]
    state = switch.state
    rows, (returns, returns_vnd) = await state.store.totals()
    by_state = _by_state(rows)
    return web.json_response({
        "switch": switch.config.bic,
        "uptime_s": round(time.time() - switch.started_at_s, 3),
        "cycle_id": state.book.cycle_id,
        "in_flight": len(state.book.in_flight),
        "by_state": by_state,
        "returns": {"count": returns, "amount_vnd": returns_vnd},
        "notices_backlog": state.notifier.backlog(),
        "notices_delivered": state.notifier.delivered,
        "notice_failures": state.notifier.failed_attempts,
        "refused_answers": switch.forwarding.refused_answers,
        "journal_commits": switch.journal_commits,
        "recovery": switch.recovery,
        "process": switch.process_info(),
    })


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/admin/health", health)
    app.router.add_get("/v1/admin/participants", list_participants)
    app.router.add_put("/v1/admin/participants/{bic}/limit", set_limit)
    app.router.add_post("/v1/admin/participants/{bic}/{action:sign-off|sign-on}", sign_off)
    app.router.add_post("/v1/admin/settlement/close", close_cycle)
    app.router.add_get("/v1/admin/settlement/cycles/{cycle:\\d+}", cycle_summary)
    app.router.add_get("/v1/admin/settlement/cycles/{cycle:\\d+}/statements/{bic}",
                       cycle_statement)
    app.router.add_get("/v1/admin/transfers", list_transfers)
    app.router.add_get("/v1/admin/transfers/{e2e}", transfer_status)
    app.router.add_get("/v1/admin/stats", stats)
    app.router.add_post("/v1/admin/totals", totals_of)
