"""A whole payout day's cast on 127.0.0.1: the switch, the participants and the treasury.

Every party is a real aiohttp server on an OS-chosen port, and they know each other only by
URL and credential, exactly as in production. By default they share one process; the switch
(`switch_process`) and the participants (`bank_ledgers`) can each run in a process of their own.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from banks.bank import INBOUND_PATH, Bank, BankConfig, create_bank_app
from banks.behaviour import Behaviour
from banks.payout import PayoutResult
from banks.population import DEFAULT_PAYOUT_DATE, Population
from banks.reconcile import Mismatch, SwitchTotals, reconcile
from banks.registry import PARTICIPANTS, SWITCH_BIC, TREASURY, TREASURY_BIC
from banks.treasury import Treasury, TreasuryConfig, TreasurySettings
from lab import postgres
from lab.citizens import (
    MINISTRY_ID,
    REGISTER_ID,
    Citizens,
    register_of,
    register_settings,
    start_register,
)
from protocol.directory import MAX_ENTRIES_PER_REQUEST
from protocol.exposition import METRICS_PATH
from protocol.http import idempotency_key
from protocol.keys import Signing, private_key_text, public_key_text, read_public_key
from protocol.population import RegisterClient
from protocol.runtime import BoundSocket, bind, serve, start_process, stop_process
from protocol.signing import Credentials, Ed25519SigningKey
from protocol.tls import TlsFiles, make_lab_pki, server_context
from protocol.wording import count
from register.citizens import read_register
from switch.app import create_app
from switch.config import parse_config

SWITCH_START_S = 30.0
BOOKS_SETTLE_S = 5.0  # confirmations to creditors still on their way after the last answer
BOOKS_READ_EVERY_S = 0.1
MAX_PROCESS_PROBES = 64  # new connections to find every switch process (final_by_process)
FINAL_STATES = ("SETTLED", "REJECTED")
ADMIN_TIMEOUT_S = 60.0  # an admin call: closing a cycle of a million transfers included


@dataclass
class WorldSettings:
    run_dir: Path
    behaviours: dict[str, Behaviour]  # participant BIC -> its behaviour
    switch_settings: dict[str, Any] = field(default_factory=dict)
    treasury: TreasurySettings = field(default_factory=TreasurySettings)
    treasury_limit_vnd: int = 10**15
    bank_limit_vnd: int = 10**13
    switch_process: bool = False  # run the switch as its own process, so it can be killed
    # Several switch processes on one port (SO_REUSEPORT), each its own `python -m switch
    # --reuse-port` so that one can be killed while the others serve; they need a shared
    # journal (`journal_url` in switch_settings).
    switch_processes: int = 1
    # A folder of participants' ledger files (<bic>.sqlite) with their accounts already open,
    # as a bank's core system holds them: each participant then runs as its own process.
    bank_ledgers: Path | None = None
    # In-process participants whose ledgers are files in this folder, and a journal that is
    # kept across starts: a lab that survives a crash of its process (`switchlab payout`).
    ledger_dir: Path | None = None
    keep_journal: bool = False
    # The population register (register/): started when asked, when a register file is
    # given (a user's own, else made from the population), or when the population has
    # citizens to link or deaths to register; in this process, or as `python -m register`.
    register: bool = False
    register_file: Path | None = None
    register_process: bool = False
    payout_date: date = DEFAULT_PAYOUT_DATE
    # The run's throwaway PostgreSQL server, when it has one: timeline actions stop it and
    # start it again (stop_journal, start_journal).
    journal_server: postgres.Server | None = None
    # Mutual TLS everywhere (issue #22): the lab makes an authority and every party's
    # certificate at start (protocol/tls.py) and marks every participant `mtls: true`.
    mtls: bool = False


class LinkRefused(RuntimeError):
    """The switch refused a directory link the lab meant to make."""


@dataclass(frozen=True, slots=True)
class Keys:
    """The lab's keys, made as a scheme operator provisions them (docs/participants.md).

    `switch`: the key settings of the switch's own section; `registered`: each participant's
    key as the switch's participant list holds it; `handed`: the SwitchKeys fields each
    participant is given. hmac: one secret per participant, no switch secret at all; ed25519:
    a key pair per party, the public halves exchanged."""

    switch: dict[str, str]
    registered: dict[str, dict[str, str]]
    handed: dict[str, dict[str, str]]


def provision(signing: Signing, bics: list[str]) -> Keys:
    if signing == "hmac":
        shared = {bic: secrets.token_hex(32) for bic in bics}
        return Keys({"signing": "hmac"}, {bic: {"secret": s} for bic, s in shared.items()},
                    {bic: {"signing": "hmac", "secret": s} for bic, s in shared.items()})
    switch_key = Ed25519SigningKey.generate()
    own = {bic: Ed25519SigningKey.generate() for bic in bics}
    switch_public = public_key_text(switch_key.verify_key())
    return Keys(
        {"signing": "ed25519", "private_key": private_key_text(switch_key)},
        {bic: {"public_key": public_key_text(key.verify_key())} for bic, key in own.items()},
        {bic: {"signing": "ed25519", "private_key": private_key_text(key),
               "switch_public_key": switch_public} for bic, key in own.items()})


class World:
    def __init__(self, settings: WorldSettings) -> None:
        # Children start in the run folder and are handed absolute paths: the caller may
        # be anywhere, with a relative run folder.
        self.settings = replace(settings, run_dir=settings.run_dir.resolve(), bank_ledgers=(
            None if settings.bank_ledgers is None else settings.bank_ledgers.resolve()))
        self.run_dir = self.settings.run_dir
        self.admin_token = secrets.token_hex(16)
        self.keys = provision(settings.switch_settings.get("signing", "hmac"),
                              [TREASURY_BIC, REGISTER_ID, *settings.behaviours])
        self.runners: list[web.AppRunner] = []
        self.banks: dict[str, Bank] = {}
        self.bank_urls: dict[str, str] = {}
        self.session: aiohttp.ClientSession | None = None
        self.switch_workers: list[asyncio.subprocess.Process | None] = []
        self.bank_processes: dict[str, asyncio.subprocess.Process] = {}
        self.register_process: asyncio.subprocess.Process | None = None
        self.register_url: str | None = None
        self.citizens: Citizens | None = None
        self.ministry: RegisterClient | None = None
        self.pki: dict[str, TlsFiles] = (
            make_lab_pki(self.run_dir / "tls", [SWITCH_BIC, *self.keys.handed])
            if settings.mtls else {})

    @property
    def journal_path(self) -> Path:
        """Where the embedded journal is when the run has no PostgreSQL journal."""
        return self.run_dir / "switch.sqlite"

    def journal_named(self) -> str:
        """The run's journal as a person may see it: the SQLite file, or the PostgreSQL URL
        without its password and the processes sharing it."""
        journal_url = self.settings.switch_settings.get("journal_url")
        if journal_url is None:
            return f"journal {self.journal_path}"
        return (f"journal {postgres.without_password(journal_url)}, "
                f"{self.settings.switch_processes} switch processes")

    def _url(self, socket: BoundSocket) -> str:
        """A party's base URL: https in a lab with mutual TLS."""
        return socket.base_url.replace("http://", "https://", 1) if self.pki else (
            socket.base_url)

    def _server_ssl(self, bic: str) -> ssl.SSLContext | None:
        return server_context(self.pki[bic]) if self.pki else None

    def _tls_of(self, bic: str) -> dict[str, Any]:
        return {"tls": self.pki[bic]} if self.pki else {}

    def _switch_config(self, sockets: dict[str, BoundSocket]) -> dict[str, Any]:
        participants = [{
            "bic": TREASURY.bic, "name": TREASURY.name, "kind": TREASURY.kind,
            "inbound_url": f"{self._url(sockets[TREASURY_BIC])}{INBOUND_PATH}",
            "position_limit_vnd": self.settings.treasury_limit_vnd,
        } | self.keys.registered[TREASURY_BIC]]
        participants += [{
            "bic": bic, "name": PARTICIPANTS[bic].name, "kind": PARTICIPANTS[bic].kind,
            "inbound_url": f"{self._url(sockets[bic])}{INBOUND_PATH}",
            "position_limit_vnd": self.settings.bank_limit_vnd,
        } | self.keys.registered[bic] for bic in self.settings.behaviours]
        if self.pki:
            for participant in participants:
                participant["mtls"] = True
        tls = {"tls": self.pki[SWITCH_BIC].model_dump(mode="json")} if self.pki else {}
        # One journal, named once: a PostgreSQL run's configuration names no SQLite file.
        journal = ({} if "journal_url" in self.settings.switch_settings
                   else {"journal_path": str(self.journal_path)})
        return {
            "switch": {"bic": SWITCH_BIC, **journal, "admin_token": self.admin_token,
                       "population_register": {"id": REGISTER_ID}
                       | self.keys.registered[REGISTER_ID]}
                      | self.settings.switch_settings | self.keys.switch | tls,
            "participants": participants,
        }

    async def start(self, population: Population) -> None:
        run_dir = self.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        if not self.settings.keep_journal:
            self.journal_path.unlink(missing_ok=True)
        sockets = {bic: bind() for bic in self.keys.handed}
        switch_socket = bind()
        self.switch_url = self._url(switch_socket)
        config = self._switch_config(sockets)
        if self.settings.switch_process:
            config["switch"]["port"] = switch_socket.hand_over()
            self._switch_config_path = run_dir / "switch.yaml"
            self._switch_config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
            await self.start_switch_process()
        else:
            self.runners.append(await serve(create_app(parse_config(config)), switch_socket,
                                            self._server_ssl(SWITCH_BIC)))
        ledgers = None if self.settings.bank_ledgers is None else (
            self.settings.bank_ledgers.resolve())
        ledger_folder = ledgers or (None if self.settings.ledger_dir is None
                                    else self.settings.ledger_dir.resolve())
        for bic, behaviour in self.settings.behaviours.items():
            bank_config = BankConfig(
                bic=bic, name=PARTICIPANTS[bic].name, kind=PARTICIPANTS[bic].kind,
                switch_url=self.switch_url, switch_bic=SWITCH_BIC, **self.keys.handed[bic],
                **self._tls_of(bic), admin_token=self.admin_token, behaviour=behaviour,
                ledger_path=None if ledger_folder is None else ledger_folder / f"{bic}.sqlite",
            )
            self.bank_urls[bic] = self._url(sockets[bic])
            if ledgers is not None:
                await self._start_bank_process(bank_config, sockets[bic])
                continue
            bank = Bank(bank_config, population.accounts_for(bic))
            self.banks[bic] = bank
            self.runners.append(await serve(create_bank_app(bank), sockets[bic],
                                            self._server_ssl(bic)))
        self.session = self._admin_session()
        if (self.settings.register or self.settings.register_file is not None
                or population.directory_links()
                or any(b.died_after_list for b in population.beneficiaries)):
            await self._start_register(population, sockets[REGISTER_ID])
        else:
            sockets[REGISTER_ID].sock.close()  # bound for a register this world does not run
        self.treasury = Treasury(TreasuryConfig(
            bic=TREASURY_BIC, switch_url=self.switch_url, switch_bic=SWITCH_BIC,
            **self.keys.handed[TREASURY_BIC], **self._tls_of(TREASURY_BIC),
            **self.settings.treasury.model_dump(),
        ))
        self.runners.append(await serve(self.treasury.app(), sockets[TREASURY_BIC],
                                        self._server_ssl(TREASURY_BIC)))
        await self._link_directory(population)

    async def _start_register(self, population: Population, bound: BoundSocket) -> None:
        """The population register on its own socket, fed from the user's file or the
        population; the ministry's signed channel to it; the simulated citizens."""
        assert self.session is not None
        folder = self.run_dir / "register"  # apart from the ledgers' <bic>.sqlite files
        folder.mkdir(exist_ok=True)
        citizens_path = self.settings.register_file
        if citizens_path is None:
            citizens_path = folder / "register.csv"
            register_of(population, self.settings.payout_date).write(citizens_path)
        else:
            read_register(citizens_path)  # a bad file is refused here, naming its lines
        if not self.settings.keep_journal:  # a lab that survives a crash keeps it too
            (folder / "state.sqlite").unlink(missing_ok=True)
        signing = self.settings.switch_settings.get("signing", "hmac")
        if signing == "hmac":
            secret = secrets.token_hex(32)
            ministry_key: dict[str, str] = {"secret": secret}
            ministry = Credentials.shared(secret.encode())
        else:
            own = Ed25519SigningKey.generate()
            ministry_key = {"public_key": public_key_text(own.verify_key())}
            ministry = Credentials(own, read_public_key(
                self.keys.registered[REGISTER_ID]["public_key"]))
        settings = register_settings(folder, citizens_path.resolve(), self.switch_url,
                                     SWITCH_BIC, self.keys.handed[REGISTER_ID], ministry_key,
                                     self.admin_token)
        self.register_url = bound.base_url  # before a child process is handed the socket
        started = await start_register(settings, bound, self.settings.register_process,
                                       folder)
        if self.settings.register_process:
            self.register_process = started
        else:
            self.runners.append(started)
        self.citizens = Citizens(self.session, self.register_url, settings.citizen_key)
        self.ministry = RegisterClient(self.session, self.register_url, MINISTRY_ID, ministry,
                                       REGISTER_ID)

    async def _link_directory(self, population: Population) -> None:
        """The links of those paid by citizen id: each citizen's own request through the
        population register, except impostor links, which come from the national registry
        (the operator's import: a citizen mistyped it in VNeID, or it went stale)."""
        requested: list[dict[str, str]] = []
        imported: list[dict[str, str]] = []
        for b in population.directory_links():
            assert b.participant_bic is not None and b.account_id is not None
            link = {"citizen_id": b.citizen_id, "participant_bic": b.participant_bic,
                    "account_id": b.account_id}
            if b.ledger_citizen_id is not None:
                imported.append(link | {"holder_name": b.full_name})
            else:
                requested.append(link)
        if requested:
            verdicts = await self.link_citizens(requested)
            # Those whose account cannot take a link (closed, blocked, deceased, another
            # name) are refused, as they would be in VNeID: they are paid BE23, in cash.
            _refused([v for v in verdicts if "does not confirm" not in v.get("reason", "")])
        await self.import_links(imported)

    async def link_citizens(self, requests: Sequence[Mapping[str, str]]
                            ) -> list[dict[str, str]]:
        """Citizens link their own accounts (citizen_id, participant_bic, account_id each),
        signed in to the population register as themselves; the verdict per request."""
        if not requests:
            return []
        if self.citizens is None:
            raise LinkRefused("the lab runs no population register")
        return await self.citizens.link(requests)

    async def import_links(self, entries: Sequence[Mapping[str, str]]) -> None:
        """Import links from the national registry over the admin API (citizen_id,
        participant_bic, account_id, holder_name each)."""
        assert self.session is not None
        for start in range(0, len(entries), MAX_ENTRIES_PER_REQUEST):
            async with self.session.post(
                    f"{self.switch_url}/v1/admin/directory/entries",
                    json={"entries": list(entries[start:start + MAX_ENTRIES_PER_REQUEST])},
                    headers=idempotency_key()) as response:
                if response.status != 200:
                    raise LinkRefused(f"HTTP {response.status}: {await response.text()}")
                _refused((await response.json())["results"])

    @property
    def switch_process(self) -> asyncio.subprocess.Process | None:
        """The switch's process (the first of several)."""
        return self.switch_workers[0] if self.switch_workers else None

    async def start_switch_process(self, worker: int | None = None) -> None:
        """Start `python -m switch` on the configured port and wait until it listens: every
        switch process that is not running, or only `worker` (its index)."""
        count = self.settings.switch_processes
        if not self.switch_workers:
            self.switch_workers = [None] * count
        shared = ["--reuse-port"] if count > 1 else []
        for index in range(count) if worker is None else [worker]:
            running = self.switch_workers[index]
            if running is not None and running.returncode is None:
                continue
            self.switch_workers[index], _ = await start_process(
                "-m", "switch", "--config", str(self._switch_config_path), *shared,
                cwd=self.run_dir, start_timeout_s=SWITCH_START_S)

    async def _start_bank_process(self, config: BankConfig, bound: BoundSocket) -> None:
        """`python -m banks.bank` on the port the switch already knows, on its ledger file."""
        config_path = self.run_dir / f"bank-{config.bic}.json"
        config_path.write_text(config.model_dump_json(), encoding="utf-8")
        self.bank_processes[config.bic], _ = await start_process(
            "-m", "banks.bank", "--config", str(config_path), "--port", str(bound.hand_over()),
            cwd=self.run_dir, start_timeout_s=SWITCH_START_S)

    async def kill_switch(self, worker: int | None = None) -> None:
        """SIGKILL: a crash, not a shutdown; of every switch process, or only `worker`."""
        assert self.switch_workers, "the switch does not run as a process of its own"
        for index, process in enumerate(self.switch_workers):
            if process is not None and worker in (None, index) and process.returncode is None:
                process.kill()
                await process.wait()

    async def switch_admin(self, method: str, path: str) -> Any:
        """Call the switch's admin API over HTTP, as an operator would."""
        assert self.session is not None
        async with self.session.request(method, f"{self.switch_url}{path}",
                                        headers=idempotency_key()) as response:
            response.raise_for_status()
            return await response.json()

    async def set_behaviour(self, bic: str, behaviour: Behaviour) -> None:
        """Replace a participant's faults over its admin API; settings the behaviour was not
        given take their defaults, as `PUT /admin/behaviour` says."""
        assert self.session is not None
        async with self.session.put(f"{self.bank_urls[bic]}/admin/behaviour",
                                    json=behaviour.model_dump(mode="json", exclude_unset=True)
                                    ) as response:
            response.raise_for_status()

    async def switch_totals(self) -> SwitchTotals:
        """The switch's books (`GET /v1/admin/stats`), read once into a typed value."""
        return SwitchTotals.from_stats(await self.switch_admin("GET", "/v1/admin/stats"))

    async def bank_totals(self) -> list[dict[str, int]]:
        """Each participant's ledger totals, read over its admin API."""
        assert self.session is not None
        totals = []
        for bic, url in self.bank_urls.items():
            async with self.session.get(f"{url}/admin/ledger") as r:
                r.raise_for_status()
                totals.append(await r.json() | {"bic": bic})
        return totals

    def _admin_session(self, connections: int = 100) -> aiohttp.ClientSession:
        """A session to the switch's admin API (the lab's authority trusted under mTLS)."""
        return aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=aiohttp.ClientTimeout(total=ADMIN_TIMEOUT_S),
            connector=aiohttp.TCPConnector(limit=connections, ssl=ssl.create_default_context(
                cafile=str(self.pki[SWITCH_BIC].authority)) if self.pki else True))

    async def final_by_process(self, tries: int = MAX_PROCESS_PROBES) -> dict[str, int]:
        """Transfers each switch process made final (SETTLED or REJECTED), by its id, read as
        an operator scrapes them: each process's own `GET /metrics` (its counter
        switchlab_transfers_total), asked over a connection that `GET /v1/admin/stats` first
        says reached that process. SO_REUSEPORT gives each new connection to any process, so
        new connections are opened until every process answered or `tries` were made."""
        found: dict[str, int] = {}
        for _ in range(tries):
            if len(found) >= max(self.settings.switch_processes, 1):
                break
            async with self._admin_session(connections=1) as one:  # both from one process
                async with one.get(f"{self.switch_url}/v1/admin/stats") as response:
                    response.raise_for_status()
                    process = (await response.json())["process"]
                async with one.get(f"{self.switch_url}{METRICS_PATH}") as response:
                    response.raise_for_status()
                    text = await response.text()
            found[str(process.get("id", process["pid"]))] = round(sum(
                sample.value for family in text_string_to_metric_families(text)
                if family.name == "switchlab_transfers" for sample in family.samples
                if sample.name == "switchlab_transfers_total"
                and sample.labels.get("state") in FINAL_STATES))
        return found

    async def reconcile(self, result: PayoutResult, settle_s: float = BOOKS_SETTLE_S
                        ) -> list[Mismatch]:
        """The treasury's result against the switch's and the banks' books. The switch
        confirms a settled transfer to its creditor after answering the debtor, so for a
        moment a bank's books trail the treasury's: a difference is read again until it
        has lasted `settle_s`."""
        loop = asyncio.get_running_loop()
        deadline_s = loop.time() + settle_s
        while True:
            mismatches = reconcile(result, await self.switch_totals(), await self.bank_totals())
            if not mismatches or loop.time() >= deadline_s:
                return mismatches
            await asyncio.sleep(BOOKS_READ_EVERY_S)

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        for process in self.switch_workers:
            if process is not None:
                await stop_process(process, SWITCH_START_S)
        for process in self.bank_processes.values():
            await stop_process(process, SWITCH_START_S)
        if self.register_process is not None:
            await stop_process(self.register_process, SWITCH_START_S)
        for runner in reversed(self.runners):
            await runner.cleanup()


def _refused(verdicts: Sequence[Mapping[str, str]]) -> None:
    refused = [v for v in verdicts if v["status"] == "refused"]
    if refused:
        raise LinkRefused(f"{count(len(refused), 'link')} refused, first "
                          f"{refused[0]['citizen_id']}: "
                          f"{refused[0]['reason']}")
