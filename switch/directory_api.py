"""The directory over HTTP: the population register's and participants' signed JSON API, and
the operator's view and import.

The population register signs citizens' own requests (VNeID) as participants sign ISO 20022
messages (`protocol/directory.py`):
- `POST /v1/directory/links` `{"links": [{citizen_id, participant_bic, account_id,
  holder_name}]}`: link, update or move up to 1,000 citizens' entries, each confirmed by the
  account's participant (acmt.023) before it is active; `200 {"results": [...]}`, one per
  link: linked, updated, moved, unchanged, or refused with a reason.
- `DELETE /v1/directory/links/{citizen_id}`: unlink the citizen's entry, wherever it is (the
  citizen's request, or a death the register recorded; `404`: none).

Participants sign as for messages; they confirm, never decide:
- `POST /v1/directory/entries`: `403`: a participant cannot create or move a link.
- `DELETE /v1/directory/entries/{citizen_id}`: unlink the signer's entry (`404`: none).
- `GET /v1/directory/entries/{citizen_id}`: the signer's entry (`404`: none; another
  participant's is never shown).
- `GET /v1/directory/changes?after_seq=&limit=`: the journal of the signer's entries.

The operator, with the admin bearer token: `GET /v1/admin/directory/entries/{citizen_id}`
(the entry and its history), `GET /v1/admin/directory/changes` (`citizen_id`, `participant`,
`after_seq`, `limit`), `POST /v1/admin/directory/entries` (import from the national registry,
`participant_bic` per entry) and `DELETE /v1/admin/directory/entries/{citizen_id}`.
"""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from protocol.directory import (
    CHANGES_PATH,
    CITIZEN_LINKS_PATH,
    ENTRIES_PATH,
    MAX_ENTRIES_PER_REQUEST,
    parse_json,
    parse_model,
    read_signed_json,
)
from protocol.ids import is_bic
from switch.admin import SWITCH, keyed, query_number
from switch.directory import REGISTRY
from switch.records import AdminChange, DirectoryEntry
from switch.service import Switch

MAX_CHANGES_LISTED = 1_000


def _printable_name(text: str) -> str:
    if not text.strip() or not text.isprintable():
        raise ValueError("must be a printable name, not blank")
    return text


class EntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    citizen_id: Annotated[str, Field(min_length=1, max_length=12)]  # the CCCD rule: later
    account_id: Annotated[str, Field(min_length=1, max_length=34, pattern=r"^[^\s]+$")]
    holder_name: Annotated[str, Field(min_length=1, max_length=140),
                           AfterValidator(_printable_name)]


class ImportedEntryIn(EntryIn):
    participant_bic: Annotated[str, AfterValidator(lambda t: t if is_bic(t) else _no_bic(t))]


class CitizenLinksIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    links: list[ImportedEntryIn] = Field(min_length=1, max_length=MAX_ENTRIES_PER_REQUEST)


def _no_bic(text: str) -> str:
    raise ValueError(f"{text[:20]!r} is not a BIC")


class ImportIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    entries: list[ImportedEntryIn] = Field(min_length=1, max_length=MAX_ENTRIES_PER_REQUEST)



def _account_holder(switch: Switch, bic: str) -> None:
    """Only a participant that holds customers' accounts keeps directory entries."""
    participant = switch.state.participants.get(bic)
    if participant is None or participant.config.kind == "treasury":
        raise web.HTTPForbidden(text=f"403 forbidden: {bic} holds no customers' accounts and "
                                "keeps no directory entries\n")


def _citizen_id(text: str | None) -> str | None:
    """A citizen id asked in a path or query: 1 to 12 printable characters (a NUL or a page
    of text is no id, and the journal's database would refuse some of it), or 400."""
    if text is not None and not (0 < len(text) <= 12 and text.isprintable()):
        raise web.HTTPBadRequest(text=f"400: citizen_id must be 1 to 12 printable characters, not "
                                 f"{text[:24]!r}\n")
    return text


def _not_found(citizen_id: str) -> web.Response:
    return web.json_response({"citizen_id": citizen_id[:12], "error": "no entry"}, status=404)


# ---- participants ---------------------------------------------------------------------------


async def register(request: web.Request) -> web.Response:
    """A participant's own link: refused, whatever it says (the hijack of issue #27: an
    e-wallet linked a bank customer's citizen id to its own wallet on its own word)."""
    switch = request.app[SWITCH]
    signer, _ = await read_signed_json(request, switch.senders)
    raise web.HTTPForbidden(text=f"403 forbidden: {signer} cannot create or move a link; a "
                            "citizen links their own account through the population register "
                            "(VNeID), and you confirm it when asked (acmt.023)\n")


# ---- the population register: citizens' own requests ----------------------------------------


async def citizen_links(request: web.Request) -> web.Response:
    switch = request.app[SWITCH]
    signer, data = await read_signed_json(request, switch.register_senders)
    body = parse_model(CitizenLinksIn, data)
    for link in body.links:
        _account_holder(switch, link.participant_bic)
    verdicts = await switch.registrations.register(signer, [
        DirectoryEntry(e.citizen_id, e.participant_bic, e.account_id, e.holder_name)
        for e in body.links], confirm=True)
    return web.json_response({"results": [v.as_dict() for v in verdicts]})


async def citizen_unlink(request: web.Request) -> web.Response:
    switch = request.app[SWITCH]
    signer, _ = await read_signed_json(request, switch.register_senders)
    citizen_id = _citizen_id(request.match_info["citizen_id"]) or ""
    why = request.query.get("why", "")[:40]
    by = f"{signer} for citizen {citizen_id}" + (f" ({why})" if why.isprintable() and why
                                                 else "")
    if not await switch.registrations.unlink(by, citizen_id, anyone_s=True):
        return _not_found(citizen_id)
    return web.json_response({"citizen_id": citizen_id, "status": "unlinked"})


async def unlink(request: web.Request) -> web.Response:
    switch = request.app[SWITCH]
    signer, _ = await read_signed_json(request, switch.senders)
    citizen_id = _citizen_id(request.match_info["citizen_id"]) or ""
    if not await switch.registrations.unlink(signer, citizen_id):
        return _not_found(citizen_id)
    return web.json_response({"citizen_id": citizen_id, "status": "unlinked"})


async def own_entry(request: web.Request) -> web.Response:
    switch = request.app[SWITCH]
    signer, _ = await read_signed_json(request, switch.senders)
    citizen_id = _citizen_id(request.match_info["citizen_id"]) or ""
    entry = switch.state.directory.by_citizen.get(citizen_id)
    if entry is None or entry.participant_bic != signer:
        return _not_found(citizen_id)
    return web.json_response(entry.as_dict())


async def own_changes(request: web.Request) -> web.Response:
    switch = request.app[SWITCH]
    signer, _ = await read_signed_json(request, switch.senders)
    changes = await switch.state.store.directory_changes(
        participant_bic=signer, after_seq=query_number(request.query, "after_seq", 0, 2**62),
        limit=query_number(request.query, "limit", MAX_CHANGES_LISTED, MAX_CHANGES_LISTED))
    return web.json_response({"changes": changes})


# ---- the operator ---------------------------------------------------------------------------


async def admin_entry(request: web.Request) -> web.Response:
    switch = request.app[SWITCH]
    citizen_id = _citizen_id(request.match_info["citizen_id"]) or ""
    entry = switch.state.directory.by_citizen.get(citizen_id)
    history = await switch.state.store.directory_changes(citizen_id=citizen_id,
                                                         limit=MAX_CHANGES_LISTED)
    if entry is None and not history:
        return _not_found(citizen_id)
    return web.json_response({"entry": entry.as_dict() if entry else None, "history": history})


async def admin_changes(request: web.Request) -> web.Response:
    store = request.app[SWITCH].state.store
    participant = request.query.get("participant") or None
    if participant is not None and not is_bic(participant):
        raise web.HTTPBadRequest(text=f"400: participant must be a BIC, not {participant[:24]!r}"
                                 "\n")
    return web.json_response({"changes": await store.directory_changes(
        citizen_id=_citizen_id(request.query.get("citizen_id") or None),
        participant_bic=participant,
        after_seq=query_number(request.query, "after_seq", 0, 2**62),
        limit=query_number(request.query, "limit", MAX_CHANGES_LISTED, MAX_CHANGES_LISTED))})


@keyed
async def admin_import(request: web.Request, _: AdminChange, body: bytes) -> web.Response:
    """Entries from the national registry (VNeID): the registry's word, not asked of the
    participant; each must name an admitted participant that holds accounts."""
    switch = request.app[SWITCH]
    asked = parse_model(ImportIn, parse_json(body))
    for entry in asked.entries:
        _account_holder(switch, entry.participant_bic)
    verdicts = await switch.registrations.register(REGISTRY, [
        DirectoryEntry(e.citizen_id, e.participant_bic, e.account_id, e.holder_name)
        for e in asked.entries], confirm=False)
    return web.json_response({"results": [v.as_dict() for v in verdicts]})


@keyed
async def admin_unlink(request: web.Request, _: AdminChange, __: bytes) -> web.Response:
    citizen_id = _citizen_id(request.match_info["citizen_id"]) or ""
    if not await request.app[SWITCH].registrations.unlink(REGISTRY, citizen_id, anyone_s=True):
        return _not_found(citizen_id)
    return web.json_response({"citizen_id": citizen_id, "status": "unlinked"})


def add_routes(app: web.Application) -> None:
    entry = f"{ENTRIES_PATH}/{{citizen_id}}"
    app.router.add_post(ENTRIES_PATH, register)
    app.router.add_delete(entry, unlink)
    app.router.add_get(entry, own_entry)
    app.router.add_get(CHANGES_PATH, own_changes)
    app.router.add_post(CITIZEN_LINKS_PATH, citizen_links)
    app.router.add_delete(f"{CITIZEN_LINKS_PATH}/{{citizen_id}}", citizen_unlink)
    admin_entries = "/v1/admin/directory/entries"
    app.router.add_get(f"{admin_entries}/{{citizen_id}}", admin_entry)
    app.router.add_delete(f"{admin_entries}/{{citizen_id}}", admin_unlink)
    app.router.add_post(admin_entries, admin_import)
    app.router.add_get("/v1/admin/directory/changes", admin_changes)
