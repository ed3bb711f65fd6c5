"""A participant fetches its own settlement statement (camt.053) with a signed request.

`GET /v1/statements/{cycle_id}` (or `/v1/statements/latest`, the last closed cycle), with
`?page=N` for the pages after the first, signed as every request is (protocol/signing.py:
RFC 9421 over GET, the path, the query and the empty body's Content-Digest): `200` with that page of
the signer's camt.053 for the closed cycle (Stmt/StmtPgntn says its number and whether it is
the last), signed as every answer; `404` for a cycle or a page that does not exist, `409` for
the cycle still open, `400` for a page that is no number. A participant
sees only its own statement: the signer decides whose. The same statements are pushed when a
cycle closes (switch/notices.py); this is how one that missed a push gets it.
"""

from __future__ import annotations

from aiohttp import web

from protocol.directory import read_signed_json
from protocol.http import xml_response
from switch.admin import SWITCH, page_asked

STATEMENTS_PATH = "/v1/statements"
LATEST = "latest"


async def own_statement(request: web.Request) -> web.Response:
    switch = request.app[SWITCH]
    signer, _ = await read_signed_json(request, switch.senders)
    asked = request.match_info["cycle"]
    open_cycle = switch.state.book.cycle_id
    cycle_id = open_cycle - 1 if asked == LATEST else int(asked)
    if cycle_id >= open_cycle:
        raise web.HTTPConflict(text=f"409: cycle {cycle_id} is still open; its statement comes "
                               "when it closes\n")
    page = page_asked(request)
    statement = (await switch.cycles.statement(cycle_id, signer, page) if cycle_id > 0
                 else None)
    if statement is None:
        raise web.HTTPNotFound(text=f"404: no settlement cycle {cycle_id}, or no page {page} "
                               "of it\n")
    return xml_response(switch.config.bic, signer, statement)


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{STATEMENTS_PATH}/{{cycle:(\\d{{1,12}}|{LATEST})}}", own_statement)
