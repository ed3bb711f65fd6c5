"""The operator's admin API (JSON, bearer token): participants, limits, sign-on and sign-off,
settlement cycles and statements, a transfer's history, and totals for reconciliation."""

from __future__ import annotations

import json
import time

from aiohttp import web

from protocol.http import xml_response
from switch.participants import Participant
from switch.service import Switch

SWITCH = web.AppKey("switch", Switch)


def _participant(request: web.Request) -> Participant:
    participants = request.app[SWITCH].state.participants
    bic = request.match_info["bic"]
    if bic not in participants:
        raise web.HTTPNotFound(text=f"404: no participant {bic}\n")
    return participants[bic]


def _cycle(request: web.Request) -> int:
    return int(request.match_info["cycle"])


async def list_participants(request: web.Request) -> web.Response:
    state = request.app[SWITCH].state
    book = state.positions
    await book.refresh()
    return web.json_response([
        p.health() | {"net_vnd": book.net_vnd.get(p.bic, 0),
                      "reserved_vnd": book.reserved_vnd.get(p.bic, 0)}
        for p in state.participants.values()
    ])


async def set_limit(request: web.Request) -> web.Response:
    participant = _participant(request)
    try:
        limit = int((await request.json())["position_limit_vnd"])
        if limit < 0:
            raise ValueError
    except (ValueError, KeyError, TypeError, json.JSONDecodeError):
        raise web.HTTPBadRequest(
            text='400: body must be {"position_limit_vnd": <whole dong, zero or more>}\n'
        ) from None
    await request.app[SWITCH].state.store.save_settings(participant.bic, limit,
                                                        participant.signed_off)
    participant.position_limit_vnd = limit
    return web.json_response(participant.health())


async def sign_off(request: web.Request) -> web.Response:
    participant = _participant(request)
    on = request.match_info["action"] == "sign-on"
    await request.app[SWITCH].state.store.save_settings(
        participant.bic, participant.position_limit_vnd, not on)
    participant.sign(on)
    return web.json_response(participant.health())


async def close_cycle(request: web.Request) -> web.Response:
    cycles = request.app[SWITCH].cycles
    closed_id = await cycles.close()
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


async def cycle_statement(request: web.Request) -> web.Response:
    participant = _participant(request)
    switch = request.app[SWITCH]
    document = await switch.cycles.statement(_cycle(request), participant.bic)
    if document is None:
        raise web.HTTPNotFound(text="404: no such settlement cycle\n")
    return xml_response(switch.config.bic, participant.bic, document)


async def transfer_status(request: web.Request) -> web.Response:
    state = request.app[SWITCH].state
    e2e = request.match_info["e2e"]
    found = (await state.store.lookup([e2e])).get(e2e)
    if found is None:
        raise web.HTTPNotFound(text=f"404: no transfer {e2e}\n")
    return web.json_response({
        "end_to_end_id": e2e, "debtor_bic": found.debtor_bic, "creditor_bic": found.creditor_bic,
        "amount_vnd": found.amount_vnd, "state": found.state, "reason_code": found.reason_code,
        "history": await state.store.history(e2e),
    })


async def stats(request: web.Request) -> web.Response:
    """Totals for reconciliation and live views: counts and amounts by state and reason."""
    switch = request.app[SWITCH]
    state = switch.state
    rows, (returns, returns_vnd) = await state.store.totals()
    by_state: dict[str, dict[str, int]] = {}
    for transfer_state, reason, count, amount in rows:
        entry = by_state.setdefault(transfer_state, {"count": 0, "amount_vnd": 0})
        entry["count"] += count
        entry["amount_vnd"] += amount
        if reason:
            entry[f"count_{reason}"] = count
    return web.json_response({
        "switch": switch.config.bic,
        "uptime_s": round(time.time() - switch.started_at_s, 3),
        "cycle_id": state.cycle_id,
        "in_flight": len(state.in_flight),
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
    app.router.add_get("/v1/admin/participants", list_participants)
    app.router.add_put("/v1/admin/participants/{bic}/limit", set_limit)
    app.router.add_post("/v1/admin/participants/{bic}/{action:sign-off|sign-on}", sign_off)
    app.router.add_post("/v1/admin/settlement/close", close_cycle)
    app.router.add_get("/v1/admin/settlement/cycles/{cycle:\\d+}", cycle_summary)
    app.router.add_get("/v1/admin/settlement/cycles/{cycle:\\d+}/statements/{bic}",
                       cycle_statement)
    app.router.add_get("/v1/admin/transfers/{e2e}", transfer_status)
    app.router.add_get("/v1/admin/stats", stats)
