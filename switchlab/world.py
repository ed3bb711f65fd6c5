"""A whole payout day's cast on 127.0.0.1: the switch, the participants and the treasury.

Every party is a real aiohttp server on an OS-chosen port, and they know each other only by
URL and credential, exactly as in production. By default they share one process; the switch
(`switch_process`) and the participants (`bank_ledgers`) can each run in a process of their own.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from banks.bank import INBOUND_PATH, Bank, BankConfig, create_bank_app
from banks.behaviour import Behaviour
from banks.population import Population
from banks.reconcile import SwitchTotals
from banks.registry import PARTICIPANTS, SWITCH_BIC, TREASURY, TREASURY_BIC
from banks.treasury import Treasury, TreasuryConfig, TreasurySettings
from protocol.runtime import BoundSocket, bind, serve, start_process, stop_process
from switch.app import create_app
from switch.config import parse_config

SWITCH_START_S = 30.0


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


class World:
    def __init__(self, settings: WorldSettings) -> None:
        # Absolute: the switch and bank processes run from the project's folder, not ours.
        self.settings = replace(settings, run_dir=settings.run_dir.resolve(), bank_ledgers=(
            None if settings.bank_ledgers is None else settings.bank_ledgers.resolve()))
        self.admin_token = secrets.token_hex(16)
        self.secrets = {bic: secrets.token_hex(16) for bic in [TREASURY_BIC, *settings.behaviours]}
        self.switch_secret = secrets.token_hex(16)
        self.runners: list[web.AppRunner] = []
        self.banks: dict[str, Bank] = {}
        self.bank_urls: dict[str, str] = {}
        self.session: aiohttp.ClientSession | None = None
        self.switch_workers: list[asyncio.subprocess.Process | None] = []
        self.bank_processes: dict[str, asyncio.subprocess.Process] = {}

    def _switch_config(self, sockets: dict[str, BoundSocket]) -> dict[str, Any]:
        participants = [{
            "bic": TREASURY.bic, "name": TREASURY.name, "kind": TREASURY.kind,
            "secret": self.secrets[TREASURY_BIC],
            "inbound_url": f"{sockets[TREASURY_BIC].base_url}{INBOUND_PATH}",
            "position_limit_vnd": self.settings.treasury_limit_vnd,
        }]
        participants += [{
            "bic": bic, "name": PARTICIPANTS[bic].name, "kind": PARTICIPANTS[bic].kind,
            "secret": self.secrets[bic], "inbound_url": f"{sockets[bic].base_url}{INBOUND_PATH}",
            "position_limit_vnd": self.settings.bank_limit_vnd,
        } for bic in self.settings.behaviours]
        return {
            "switch": {"bic": SWITCH_BIC, "secret": self.switch_secret,
                       "journal_path": str(self.settings.run_dir / "switch.sqlite"),
                       "admin_token": self.admin_token} | self.settings.switch_settings,
            "participants": participants,
        }

    async def start(self, population: Population) -> None:
        run_dir = self.settings.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "switch.sqlite").unlink(missing_ok=True)
        sockets = {bic: bind() for bic in self.secrets}
        switch_socket = bind()
        self.switch_url = switch_socket.base_url
        config = self._switch_config(sockets)
        if self.settings.switch_process:
            config["switch"]["port"] = switch_socket.hand_over()
            self._switch_config_path = run_dir / "switch.yaml"
            self._switch_config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
            await self.start_switch_process()
        else:
            self.runners.append(await serve(create_app(parse_config(config)), switch_socket))
        ledgers = self.settings.bank_ledgers
        for bic, behaviour in self.settings.behaviours.items():
            bank_config = BankConfig(
                bic=bic, name=PARTICIPANTS[bic].name, kind=PARTICIPANTS[bic].kind,
                secret=self.secrets[bic].encode(), switch_url=self.switch_url,
                switch_bic=SWITCH_BIC, switch_secret=self.switch_secret.encode(),
                admin_token=self.admin_token, behaviour=behaviour,
                ledger_path=None if ledgers is None else ledgers / f"{bic}.sqlite",
            )
            self.bank_urls[bic] = sockets[bic].base_url
            if ledgers is not None:
                await self._start_bank_process(bank_config, sockets[bic])
                continue
            bank = Bank(bank_config, population.accounts_for(bic))
            self.banks[bic] = bank
            self.runners.append(await serve(create_bank_app(bank), sockets[bic]))
        self.treasury = Treasury(TreasuryConfig(
            bic=TREASURY_BIC, secret=self.secrets[TREASURY_BIC].encode(),
            switch_url=self.switch_url, switch_bic=SWITCH_BIC,
            switch_secret=self.switch_secret.encode(), **self.settings.treasury.model_dump(),
        ))
        self.runners.append(await serve(self.treasury.app(), sockets[TREASURY_BIC]))
        self.session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.admin_token}"})

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
                start_timeout_s=SWITCH_START_S)

    async def _start_bank_process(self, config: BankConfig, bound: BoundSocket) -> None:
        """`python -m banks.bank` on the port the switch already knows, on its ledger file."""
        config_path = self.settings.run_dir / f"bank-{config.bic}.json"
        config_path.write_text(config.model_dump_json(), encoding="utf-8")
        self.bank_processes[config.bic], _ = await start_process(
            "-m", "banks.bank", "--config", str(config_path), "--port", str(bound.hand_over()),
            start_timeout_s=SWITCH_START_S)

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
        async with self.session.request(method, f"{self.switch_url}{path}") as response:
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

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        for process in self.switch_workers:
            if process is not None:
                await stop_process(process, SWITCH_START_S)
        for process in self.bank_processes.values():
            await stop_process(process, SWITCH_START_S)
        for runner in reversed(self.runners):
            await runner.cleanup()
