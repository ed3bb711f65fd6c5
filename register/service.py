"""The population register over HTTP (docs/population.md has the API with examples).

- Parties (the labour ministry, the treasury) sign as participants sign to the switch
  (`protocol.signing`, answers signed back): `POST /v1/population/checks` a list's rows
  against the register; `POST /v1/population/payments` the treasury's outcomes, for citizens
  to look up.
- A citizen, signed in as themselves (`Authorization: Bearer <login>`, the lab's VNeID login,
  `citizen_login`), links, moves or unlinks their own payout account and reads their own
  payments: `POST|DELETE /v1/citizens/{citizen_id}/link`, `GET /v1/citizens/{citizen_id}/
  payments`. Any other CCCD, or a wrong login, gets the very answer an unknown CCCD gets.
  `POST /v1/citizens/links` carries many signed-in citizens' requests at once (the VNeID app's
  server relaying them), each with its own login.
- The operator (admin bearer token): `POST /v1/admin/deaths` records deaths and unlinks the
  dead at the switch; `GET /v1/admin/citizens/{citizen_id}/login` hands the lab's simulated
  citizens their logins.

A link is asked of the switch only for a living citizen, in the register's own name for them
(never a name the request gives), and the switch asks the account's participant before
linking.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import sqlite3
from collections.abc import Sequence
from datetime import date
from typing import Annotated

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from protocol.directory import (
    MAX_ENTRIES_PER_REQUEST,
    CitizenLinksClient,
    DirectoryError,
    parse_json,
    parse_model,
    read_body,
    read_signed_json,
)
from protocol.http import Sender, bearer_auth, run_alongside, sign_answers
from protocol.keys import read_public_key
from protocol.names import mask_account
from protocol.population import (
    CHECKS_PATH,
    CITIZEN_LINKS_PATH,
    MAX_CHECK_ROWS,
    MAX_PAYMENTS_PER_REQUEST,
    PAYMENTS_PATH,
)
from protocol.signing import Credentials
from register.citizens import Register, read_register
from register.config import RegisterSettings

log = logging.getLogger(__name__)
REGISTER = web.AppKey("register", "RegisterService")
MAX_PAYMENTS_SHOWN = 1_000  # one citizen's payments in one answer
SQL_VARIABLES_AT_ONCE = 500  # SQLite's limit is 32,766 since 3.32; older builds, 999
SWITCH_TIMEOUT_S = 60.0  # a thousand links, each asked of a participant within its deadline
NOT_FOUND = {"error": "no such citizen, or not signed in as them"}
CitizenId = Annotated[str, StringConstraints(pattern=r"^[0-9]{12}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=140)]
SCHEMA = """
CREATE TABLE IF NOT EXISTS deaths (citizen_id TEXT PRIMARY KEY, died_on TEXT NOT NULL,
                                   recorded_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE IF NOT EXISTS payments (
    end_to_end_id TEXT PRIMARY KEY, citizen_id TEXT NOT NULL, programme TEXT NOT NULL,
    period TEXT NOT NULL, amount_vnd INTEGER NOT NULL, status TEXT NOT NULL,
    reason_code TEXT NOT NULL, participant_bic TEXT NOT NULL, account_id TEXT NOT NULL,
    post_office TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS payments_by_citizen ON payments(citizen_id);
CREATE TABLE IF NOT EXISTS links (citizen_id TEXT PRIMARY KEY, participant_bic TEXT NOT NULL,
                                  account_id TEXT NOT NULL);
"""
LINKED = frozenset({"linked", "updated", "moved", "unchanged"})  # the switch's verdicts


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CheckRow(_Strict):
    citizen_id: Annotated[str, StringConstraints(min_length=1, max_length=12)]
    full_name: Text
    birth_date: date | None = Field(None, strict=False)


class ChecksIn(_Strict):
    rows: list[CheckRow] = Field(min_length=1, max_length=MAX_CHECK_ROWS)


class LinkIn(_Strict):
    participant_bic: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{8}([A-Z0-9]{3})?$")]
    account_id: Annotated[str, StringConstraints(min_length=1, max_length=34,
                                                 pattern=r"^[^\s]+$")]


class RelayedLinkIn(LinkIn):
    citizen_id: CitizenId
    login: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class RelayedLinksIn(_Strict):
    links: list[RelayedLinkIn] = Field(min_length=1, max_length=MAX_ENTRIES_PER_REQUEST)


class PaymentIn(_Strict):
    end_to_end_id: Annotated[str, StringConstraints(min_length=1, max_length=35)]
    citizen_id: CitizenId
    programme: Text
    period: Annotated[str, StringConstraints(max_length=140)] = ""
    amount_vnd: int = Field(gt=0, le=10**13)
    status: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,20}$")]
    reason_code: Annotated[str, StringConstraints(max_length=4)] = ""
    participant_bic: Annotated[str, StringConstraints(max_length=11)] = ""
    account_id: Annotated[str, StringConstraints(max_length=34)] = ""  # "": by citizen id
    cash: bool = False  # on the post office's cash list instead


class PaymentsIn(_Strict):
    payments: list[PaymentIn] = Field(min_length=1, max_length=MAX_PAYMENTS_PER_REQUEST)


class DeathIn(_Strict):
    citizen_id: CitizenId
    died_on: date = Field(strict=False)


class DeathsIn(_Strict):
    deaths: list[DeathIn] = Field(min_length=1, max_length=MAX_ENTRIES_PER_REQUEST)


def citizen_login(citizen_key: bytes, citizen_id: str) -> str:
    """The lab's stand-in for a citizen's VNeID sign-in: HMAC-SHA256 of the CCCD under the
    register's citizen key, as hex. Only the register and the citizen hold it."""
    return hmac.new(citizen_key, citizen_id.encode(), hashlib.sha256).hexdigest()



def _party_senders(settings: RegisterSettings) -> dict[str, Sender]:
    """Who may sign requests to the register, with the credentials between it and them."""
    switch = settings.switch
    senders = {}
    for party in settings.parties:
        if party.secret is not None:
            senders[party.id] = Sender(Credentials.shared(party.secret))
        else:
            assert switch is not None and party.public_key is not None
            senders[party.id] = Sender(Credentials(switch.credentials().own,
                                                   read_public_key(party.public_key)))
    return senders


class RegisterService:
    """The register's state (citizens in memory, deaths and payments in SQLite: one writer,
    this service) and its one channel to the switch."""

    def __init__(self, settings: RegisterSettings) -> None:
        self.settings = settings
        self.senders = _party_senders(settings)
        self.register = Register()
        self._db: sqlite3.Connection | None = None
        self._session: aiohttp.ClientSession | None = None
        self.switch: CitizenLinksClient | None = None

    async def start(self) -> None:
        """Load the register file, apply the deaths recorded since, open the channel."""
        self.register = read_register(self.settings.citizens_path)
        self._db = sqlite3.connect(self.settings.state_path)
        self._db.executescript(SCHEMA)
        for citizen_id, died_on in self._db.execute("SELECT citizen_id, died_on FROM deaths"):
            if self.register.get(citizen_id) is not None:
                self.register.register_death(citizen_id, date.fromisoformat(died_on))
        self._session = aiohttp.ClientSession()
        switch = self.settings.switch
        if switch is not None:
            self.switch = CitizenLinksClient(self._session, switch.url, self.settings.id,
                                             switch.credentials(), switch.bic,
                                             timeout_s=SWITCH_TIMEOUT_S)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._db is not None:
            self._db.close()

    def signed_in(self, citizen_id: str, login: str | None) -> bool:
        """Whether `login` is this citizen's, and the register knows them."""
        if login is None or self.register.get(citizen_id) is None:
            return False
        expected = citizen_login(self.settings.citizen_key, citizen_id)
        return hmac.compare_digest(expected.encode(), login.encode(errors="replace"))

    async def link(self, requests: Sequence[tuple[str, LinkIn]]) -> list[dict[str, str]]:
        """Citizens' link requests, each signed in already: refused here for the dead, asked
        of the switch in the register's name for them otherwise; a verdict each, in order."""
        verdicts: dict[int, dict[str, str]] = {}
        asked: list[tuple[int, dict[str, str]]] = []
        for index, (citizen_id, link) in enumerate(requests):
            citizen = self.register.get(citizen_id)
            assert citizen is not None
            if not citizen.alive:
                verdicts[index] = {"citizen_id": citizen_id, "status": "refused",
                                   "reason": f"the citizen died on {citizen.died_on} "
                                             "(population register)"}
                continue
            asked.append((index, {"citizen_id": citizen_id,
                                  "participant_bic": link.participant_bic,
                                  "account_id": link.account_id,
                                  "holder_name": citizen.full_name}))
        if asked:
            if self.switch is None:
                raise web.HTTPServiceUnavailable(text="503: this register links no accounts "
                                                 "(no switch configured)\n")
            try:
                answers = await self.switch.link([link for _, link in asked])
            except (DirectoryError, aiohttp.ClientError, TimeoutError) as error:
                raise web.HTTPBadGateway(text=f"502: the switch did not take the request "
                                         f"({error}); nothing was linked\n") from None
            verdicts |= {index: answer for (index, _), answer in zip(asked, answers,
                                                                      strict=True)}
            self._remember([link for (_, link), answer in zip(asked, answers, strict=True)
                            if answer.get("status") in LINKED])
        return [verdicts[index] for index in range(len(requests))]

    def _remember(self, links: Sequence[dict[str, str]]) -> None:
        """The links the switch made at citizens' requests: what a citizen's payment by
        citizen id went into, as the citizen's own page shows it."""
        assert self._db is not None
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO links VALUES (?, ?, ?)", [
                (link["citizen_id"], link["participant_bic"], link["account_id"])
                for link in links])

    async def unlink(self, citizen_id: str, why: str) -> bool:
        if self.switch is None:
            return False
        try:
            unlinked = await self.switch.unlink(citizen_id, why)
        except (DirectoryError, aiohttp.ClientError, TimeoutError) as error:
            raise web.HTTPBadGateway(text=f"502: the switch did not unlink ({error})\n"
                                     ) from None
        assert self._db is not None
        with self._db:
            self._db.execute("DELETE FROM links WHERE citizen_id=?", (citizen_id,))
        return unlinked

    def record_deaths(self, deaths: Sequence[DeathIn]) -> list[dict[str, str]]:
        """Deaths into the register and its state, each checked (unknown, date)."""
        assert self._db is not None
        results = []
        for death in deaths:
            try:
                self.register.register_death(death.citizen_id, death.died_on)
            except KeyError:
                results.append({"citizen_id": death.citizen_id, "status": "refused",
                                "reason": "not in the population register"})
                continue
            except ValueError as error:
                results.append({"citizen_id": death.citizen_id, "status": "refused",
                                "reason": str(error)})
                continue
            with self._db:
                self._db.execute("INSERT OR REPLACE INTO deaths (citizen_id, died_on) "
                                 "VALUES (?, ?)", (death.citizen_id, death.died_on.isoformat()))
            results.append({"citizen_id": death.citizen_id, "status": "recorded"})
        return results

    def record_payments(self, payments: Sequence[PaymentIn]) -> int:
        """A party's outcomes, for citizens to look up: a payment by citizen id with the
        account the citizen linked, one in cash with the post office of their commune.
        Outcomes for citizens the register does not know are left out (not counted)."""
        assert self._db is not None
        links = self._links_of([p.citizen_id for p in payments if not p.account_id])
        rows = []
        for p in payments:
            citizen = self.register.get(p.citizen_id)
            if citizen is None:
                continue
            bic, account = (p.participant_bic, p.account_id) if p.account_id else links.get(
                p.citizen_id, ("", ""))
            paid = p.status in ("paid", "returned")
            office = (f"Bưu điện {citizen.commune}, {citizen.district}, {citizen.province}"
                      if p.cash else "")
            rows.append((p.end_to_end_id, p.citizen_id, p.programme, p.period, p.amount_vnd,
                         p.status, p.reason_code, bic if paid else "",
                         account if paid else "", office))
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO payments VALUES (?,?,?,?,?,?,?,?,?,?)",
                                 rows)
        return len(rows)

    def _links_of(self, citizen_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """The links the register made for these citizens: (participant, account) each,
        read SQL_VARIABLES_AT_ONCE at a time (not the whole table a batch)."""
        assert self._db is not None
        found: dict[str, tuple[str, str]] = {}
        unique = list(dict.fromkeys(citizen_ids))
        for start in range(0, len(unique), SQL_VARIABLES_AT_ONCE):
            asked = unique[start:start + SQL_VARIABLES_AT_ONCE]
            found |= {cid: (bic, account) for cid, bic, account in self._db.execute(
                "SELECT citizen_id, participant_bic, account_id FROM links WHERE citizen_id IN"
                f" ({','.join('?' * len(asked))})", asked)}
        return found

    def payments_of(self, citizen_id: str) -> list[dict[str, object]]:
        """A citizen's payments as they see them: the account masked."""
        assert self._db is not None
        rows = self._db.execute(
            "SELECT programme, period, amount_vnd, status, reason_code, participant_bic,"
            " account_id, post_office, end_to_end_id FROM payments WHERE citizen_id=?"
            " ORDER BY period, programme LIMIT ?", (citizen_id, MAX_PAYMENTS_SHOWN)).fetchall()
        return [{"programme": programme, "period": period, "amount_vnd": amount,
                 "status": status, "reason_code": code,
                 "paid_into": ({"participant_bic": bic, "account": mask_account(account)}
                               if account else None),
                 "cash_at": post_office or None, "end_to_end_id": e2e}
                for programme, period, amount, status, code, bic, account, post_office, e2e
                in rows]


def _service(request: web.Request) -> RegisterService:
    return request.app[REGISTER]


def _login(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:] if header.startswith("Bearer ") else None


def _signed_in_citizen(request: web.Request) -> str:
    """The citizen of the path, if the request is signed in as them; else the one 404 an
    unknown CCCD gets too (nothing tells whether a CCCD exists)."""
    service = _service(request)
    citizen_id = request.match_info["citizen_id"]
    if not service.signed_in(citizen_id, _login(request)):
        raise web.HTTPNotFound(text='{"error": "no such citizen, or not signed in as them"}',
                               content_type="application/json")
    return citizen_id


async def checks(request: web.Request) -> web.Response:
    """A party's list against the register: a finding per row, in order."""
    service = _service(request)
    _, data = await read_signed_json(request, service.senders, max_bytes=MAX_CHECK_ROWS * 400)
    body = parse_model(ChecksIn, data)
    findings = service.register.check((r.citizen_id, r.full_name, r.birth_date)
                                      for r in body.rows)
    return web.json_response({"findings": [f.as_dict() for f in findings]})


async def payments_in(request: web.Request) -> web.Response:
    service = _service(request)
    _, data = await read_signed_json(request, service.senders)
    body = parse_model(PaymentsIn, data)
    return web.json_response({"recorded": service.record_payments(body.payments)})


async def citizen_link(request: web.Request) -> web.Response:
    citizen_id = _signed_in_citizen(request)
    link = parse_model(LinkIn, parse_json(await read_body(request)))
    (verdict,) = await _service(request).link([(citizen_id, link)])
    return web.json_response(verdict)


async def relayed_links(request: web.Request) -> web.Response:
    """Many signed-in citizens' requests in one (a VNeID server relaying its users'): each is
    checked for its own login; a wrong one is refused alone, as an unknown citizen."""
    service = _service(request)
    body = parse_model(RelayedLinksIn, parse_json(await read_body(request)))
    signed_in = [(i, link) for i, link in enumerate(body.links)
                 if service.signed_in(link.citizen_id, link.login)]
    verdicts = dict(zip((i for i, _ in signed_in), await service.link(
        [(link.citizen_id, link) for _, link in signed_in]), strict=True))
    return web.json_response({"results": [
        verdicts.get(i) or {"citizen_id": link.citizen_id, "status": "refused",
                            "reason": NOT_FOUND["error"]} for i, link in enumerate(body.links)]})


async def citizen_unlink(request: web.Request) -> web.Response:
    citizen_id = _signed_in_citizen(request)
    unlinked = await _service(request).unlink(citizen_id, "citizen")
    return web.json_response({"citizen_id": citizen_id,
                              "status": "unlinked" if unlinked else "no link"})


async def citizen_payments(request: web.Request) -> web.Response:
    citizen_id = _signed_in_citizen(request)
    return web.json_response({"citizen_id": citizen_id,
                              "payments": _service(request).payments_of(citizen_id)})


async def admin_deaths(request: web.Request) -> web.Response:
    """Deaths recorded, then each dead citizen's link removed at the switch."""
    service = _service(request)
    body = parse_model(DeathsIn, parse_json(await read_body(request)))
    results = service.record_deaths(body.deaths)
    for result in results:
        if result["status"] == "recorded":
            result["unlinked"] = "yes" if await service.unlink(result["citizen_id"],
                                                               "death") else "no link"
    return web.json_response({"results": results})


async def admin_login(request: web.Request) -> web.Response:
    service = _service(request)
    citizen_id = request.match_info["citizen_id"]
    if service.register.get(citizen_id) is None:
        raise web.HTTPNotFound(text="404: not in the population register\n")
    return web.json_response({"citizen_id": citizen_id,
                              "login": citizen_login(service.settings.citizen_key, citizen_id)})


def create_register_app(settings: RegisterSettings) -> web.Application:
    """The register's aiohttp application; its state opens and closes with it."""
    service = RegisterService(settings)
    app = web.Application(client_max_size=MAX_CHECK_ROWS * 400, middlewares=[
        sign_answers(settings.id, service.senders),
        bearer_auth("/v1/admin/", settings.admin_token)])
    app[REGISTER] = service
    run_alongside(app, service.start, service.stop)
    app.router.add_post(CHECKS_PATH, checks)
    app.router.add_post(PAYMENTS_PATH, payments_in)
    app.router.add_post(CITIZEN_LINKS_PATH, relayed_links)
    app.router.add_post("/v1/citizens/{citizen_id}/link", citizen_link)
    app.router.add_delete("/v1/citizens/{citizen_id}/link", citizen_unlink)
    app.router.add_get("/v1/citizens/{citizen_id}/payments", citizen_payments)
    app.router.add_post("/v1/admin/deaths", admin_deaths)
    app.router.add_get("/v1/admin/citizens/{citizen_id}/login", admin_login)
    app.router.add_get("/v1/health", health)
    return app


async def health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})
