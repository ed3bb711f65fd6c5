"""The conformance lab: a switch on this machine with the bank under test admitted, the
counterparts it needs (the treasury that pays, a creditor bank for the cases as debtor), and
the recording relays on both of the bank's legs.

    treasury ──► switch ──► relay ("switch") ──► bank under test
                   ▲           suite ──► relay ("suite") ──┘   (the suite as the scheme)
                   └──────────── relay ("bank") ◄── bank under test

The switch's inbound_url for the bank points at the relay, which passes every request on
byte for byte to the bank's own URL; the bank is given the switch URL of the other relay. The
suite can also speak as the switch itself (signing with what the switch holds towards the
bank) to send what a correct switch never sends: a redelivery, a stale or bad signature.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from banks.registry import SWITCH_BIC, TREASURY_BIC
from conformance.credentials import SuiteKeys
from conformance.relay import Exchange, Relay
from conformance.rules import decoded_or_none
from protocol import codec, reasons, signing
from protocol.codec import new_id
from protocol.hooks import HOOKS_PREFIX
from protocol.http import (
    SWITCH_MESSAGES_PATH,
    XML_CONTENT_TYPE,
    Peer,
    Sender,
    read_signed,
    sign_answers,
    wrap,
    xml_response,
)
from protocol.keys import Signing, public_key_text, read_private_key
from protocol.messages import (
    BusinessMessage,
    CreditTransfer,
    CreditTransferMessage,
    Document,
    MessageType,
    PaymentReturn,
    PaymentReturnItem,
    PaymentStatusReport,
    TransactionStatus,
    TxStatus,
)
from protocol.runtime import BoundSocket, bind, serve
from protocol.signing import Credentials, Ed25519SigningKey
from switch.app import create_app
from switch.config import parse_config

COUNTERPART_BIC = "CNTRVNV1"  # made up: the creditor of the bank's own transfers
COUNTERPART_ACCOUNT = "CNTR0000000001"  # the one account the counterpart holds
COUNTERPART_HOLDER = "Lê Văn Nhận"
TREASURY_ACCOUNT = "KBNN-TW-0001"
TREASURY_NAME = "Kho bạc Nhà nước"
ADMIN_TIMEOUT_S = 30.0
QUIET_POLL_S = 0.05  # how often `quiet` asks the switch for the notices it owes
HOOK_TIMEOUT_S = 10.0
MAX_RECEIVED = 100_000  # messages a counterpart keeps
SWITCH_START_S = 30.0  # the lab's switch, as a process, listening (a loaded machine: seconds)
SWITCH_CONFIG_FILE = "switch.yaml"
JOURNAL_FILE = "switch.sqlite"


class LabError(RuntimeError):
    """The lab could not start (a port in use, the switch refusing its configuration)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What the bank answered one request from the suite: HTTP status, headers, body, and
    the message when the body is one."""

    status: int
    headers: dict[str, str]
    body: bytes
    message: BusinessMessage | None

    @property
    def document(self) -> Document | None:
        return None if self.message is None else self.message.document


@dataclass
class Counterpart:
    """A participant the suite plays (the treasury, the counterpart creditor): it records
    what the switch posts to it, accepts transfers to COUNTERPART_ACCOUNT, refuses others
    AC01, and acknowledges everything else."""

    bic: str
    credentials: Credentials
    received: list[BusinessMessage] = field(default_factory=list)
    finals: dict[str, TransactionStatus] = field(default_factory=dict)  # reported to it

    def app(self) -> web.Application:
        senders = {SWITCH_BIC: Sender(self.credentials)}
        app = web.Application(client_max_size=codec.MAX_MESSAGE_BYTES,
                              middlewares=[sign_answers(self.bic, senders)])

        async def inbound(request: web.Request) -> web.Response:
            message = (await read_signed(request, senders, self.bic)).message
            if len(self.received) < MAX_RECEIVED:
                self.received.append(message)
            document = message.document
            if isinstance(document, CreditTransferMessage):
                return xml_response(self.bic, SWITCH_BIC, _accept_known(document))
            if isinstance(document, PaymentStatusReport):
                self.finals.update((item.original_end_to_end_id, item)
                                   for item in document.transactions)
            return web.Response(text="ok\n")

        app.router.add_post("/iso20022", inbound)
        return app


def _accept_known(message: CreditTransferMessage) -> PaymentStatusReport:
    return PaymentStatusReport(
        msg_id=new_id("CPA"), created_at=datetime.now(UTC), original_msg_id=message.msg_id,
        original_msg_type=MessageType.CREDIT_TRANSFER, transactions=[TransactionStatus(
            original_end_to_end_id=tx.end_to_end_id, original_tx_id=tx.tx_id,
            status=TxStatus.ACCEPTED if tx.creditor_account == COUNTERPART_ACCOUNT
            else TxStatus.REJECTED,
            reason_code=None if tx.creditor_account == COUNTERPART_ACCOUNT
            else reasons.WRONG_ACCOUNT) for tx in message.transactions])


def _own_keys(signing_mode: Signing, switch_key: str | None) -> tuple[dict[str, str], Credentials]:
    """A counterpart's key fields for the switch's list and its own credentials."""
    if signing_mode == "hmac":
        secret = secrets.token_hex(32)
        return {"secret": secret}, Credentials.shared(secret.encode())
    own = Ed25519SigningKey.generate()
    assert switch_key is not None
    return ({"public_key": public_key_text(own.verify_key())},
            Credentials(own, read_private_key(switch_key).verify_key()))


@dataclass(frozen=True, slots=True)
class LabSettings:
    participant_url: str  # the bank's inbound URL, where the switch posts to it
    bic: str
    keys: SuiteKeys
    run_dir: Path
    switch_host: str = "127.0.0.1"
    switch_port: int = 0  # where the bank posts to the switch (the "bank" relay); 0: any
    # or that socket already bound, so that no other process can take its port meanwhile
    switch_socket: BoundSocket | None = None
    creditor_timeout_s: float = 5.0


def seal_journal(path: Path) -> None:
    """Make the stopped switch's journal one closed file the report's signature can cover:
    a copy by SQLite's backup API (a reader: a connection the switch has not let go of yet
    does not block it) in rollback mode replaces it, and its -wal and -shm go, so that no
    file stays beside it and reading it later makes none (in WAL mode a mere reader creates
    both, and they change as it reads). Raises LabError when it cannot be read."""
    if not path.exists():
        return
    sealed = path.with_name(path.name + ".sealed")
    sealed.unlink(missing_ok=True)
    try:
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=SWITCH_START_S)
        target = sqlite3.connect(sealed)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
            source.close()
    except sqlite3.Error as error:
        sealed.unlink(missing_ok=True)
        raise LabError(f"cannot copy the lab switch's journal {path}: {error}") from None
    sealed.replace(path)
    for beside in (f"{path.name}-wal", f"{path.name}-shm"):
        path.with_name(beside).unlink(missing_ok=True)


class Lab:
    """The switch, the counterparts and the relays, started and stopped together."""

    def __init__(self, settings: LabSettings) -> None:
        self.settings = settings
        self.bic = settings.bic
        url = URL(settings.participant_url)
        self.bank_base = str(url.origin())
        self.bank_path = url.raw_path_qs
        self.admin_token = secrets.token_hex(16)
        self.session: aiohttp.ClientSession | None = None
        self.runners: list[web.AppRunner] = []
        self.to_bank: Relay | None = None
        self.to_switch: Relay | None = None
        # The books the reconciliation holds the bank's against (conformance/reconciliation.py):
        # the transfers the treasury paid the bank through the switch (account, amount) and
        # the final status the switch gave each; what the suite, as the scheme, told the bank
        # of transfers the switch never saw; the returns of the bank's own transfers.
        self.paid: dict[str, tuple[str, int]] = {}
        self.switch_outcomes: dict[str, TxStatus] = {}
        self.scheme_outcomes: dict[str, TxStatus] = {}
        self.scheme_paid: dict[str, tuple[str, int]] = {}  # the bank's ACCP to the suite
        self.opening_balances: dict[str, int] = {}  # account id -> VND, before the cases
        self.returns_to_bank: dict[str, int] = {}  # end-to-end id -> amount, settled

    # ---- starting and stopping ------------------------------------------------------------

    async def start(self) -> None:
        """Raises LabError when the switch's relay port is taken or a part will not start."""
        settings = self.settings
        try:
            bank_side = settings.switch_socket or bind(settings.switch_host,
                                                       settings.switch_port)
        except OSError as error:
            raise LabError(f"cannot listen on {settings.switch_host}:{settings.switch_port} "
                           f"for the bank's messages to the switch: {error.strerror or error}"
                           ) from None
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        switch_socket = bind()
        self.switch_url = switch_socket.base_url
        self.to_bank = Relay(self.bank_base, "bank", self.session)
        self.to_switch = Relay(self.switch_url, "switch", self.session)
        via_switch = await self.to_bank.listen("switch", bind())
        self.suite_url = await self.to_bank.listen("suite", bind())
        self.switch_url_for_bank = await self.to_switch.listen("bank", bank_side)
        switch_key = settings.keys.switch_private_key
        treasury_fields, treasury_credentials = _own_keys(settings.keys.signing, switch_key)
        counterpart_fields, counterpart_credentials = _own_keys(settings.keys.signing, switch_key)
        self.treasury = Counterpart(TREASURY_BIC, treasury_credentials)
        self.counterpart = Counterpart(COUNTERPART_BIC, counterpart_credentials)
        sockets = {TREASURY_BIC: bind(), COUNTERPART_BIC: bind()}
        for party, bound in ((self.treasury, sockets[TREASURY_BIC]),
                             (self.counterpart, sockets[COUNTERPART_BIC])):
            self.runners.append(await serve(party.app(), bound))
        config = {
            "switch": {"bic": SWITCH_BIC, "signing": settings.keys.signing,
                       "journal_path": str(settings.run_dir / JOURNAL_FILE),
                       "admin_token": self.admin_token, "forward_linger_ms": 0,
                       "creditor_timeout_s": settings.creditor_timeout_s}
                      | ({"private_key": switch_key} if switch_key else {}),
            "participants": [
                {"bic": self.bic, "kind": "bank", "inbound_url": via_switch + self.bank_path,
                 "position_limit_vnd": 10**15} | settings.keys.registered(),
                {"bic": TREASURY_BIC, "kind": "treasury", "position_limit_vnd": 10**15,
                 "inbound_url": f"{sockets[TREASURY_BIC].base_url}/iso20022"}
                | treasury_fields,
                {"bic": COUNTERPART_BIC, "kind": "bank", "position_limit_vnd": 10**15,
                 "inbound_url": f"{sockets[COUNTERPART_BIC].base_url}/iso20022"}
                | counterpart_fields,
            ],
        }
        settings.run_dir.mkdir(parents=True, exist_ok=True)
        for stale in (JOURNAL_FILE, f"{JOURNAL_FILE}-wal", f"{JOURNAL_FILE}-shm"):
            (settings.run_dir / stale).unlink(missing_ok=True)
        self._switch_config, self._switch_port = config, switch_socket.port
        self._switch_runner: web.AppRunner | None = await serve(
            create_app(parse_config(config)), switch_socket)
        self._switch_process: asyncio.subprocess.Process | None = None
        self.treasury_peer = Peer(self.session, f"{self.switch_url}{SWITCH_MESSAGES_PATH}",
                                  TREASURY_BIC, treasury_credentials, SWITCH_BIC,
                                  timeout_s=settings.creditor_timeout_s + 30)
        self.counterpart_peer = Peer(self.session, f"{self.switch_url}{SWITCH_MESSAGES_PATH}",
                                     COUNTERPART_BIC, counterpart_credentials, SWITCH_BIC,
                                     timeout_s=ADMIN_TIMEOUT_S)
        self.credentials = settings.keys.credentials()

    async def stop(self) -> None:
        for relay in (self.to_bank, self.to_switch):
            if relay is not None:
                await relay.close()
        if getattr(self, "_switch_runner", None) is not None:
            await self._switch_runner.cleanup()
        await self._end_switch_process(signal.SIGTERM)
        (self.settings.run_dir / SWITCH_CONFIG_FILE).unlink(missing_ok=True)
        seal_journal(self.settings.run_dir / JOURNAL_FILE)
        for runner in reversed(self.runners):
            await runner.cleanup()
        if self.session is not None:
            await self.session.close()

    # ---- the switch as a process of its own, to crash it -----------------------------------

    async def switch_as_process(self) -> None:
        """The lab's switch runs in this process until a case needs to crash it: from then on
        it is a process of its own (`python -m switch`) on the same journal and port. The
        in-process switch stops cleanly first (what it owes is in the journal)."""
        if self._switch_runner is not None:
            runner, self._switch_runner = self._switch_runner, None
            await runner.cleanup()
            await self.start_switch()

    async def crash_switch(self) -> None:
        """Kill the switch's process (SIGKILL: a real crash, nothing drained, nothing told)."""
        await self._end_switch_process(signal.SIGKILL)

    async def start_switch(self) -> None:
        """Start the switch as a process on its journal and port; it recovers what the
        journal holds (in flight: RJCT AB06 to both sides). Raises LabError unless it
        listens within SWITCH_START_S."""
        run_dir = self.settings.run_dir
        config_path = run_dir / SWITCH_CONFIG_FILE
        config_path.touch(mode=0o600)  # it names the admin token and the switch's key
        config_path.write_text(json.dumps(  # JSON is YAML; secrets given as bytes are text
            self._switch_config, default=lambda value: value.decode()))
        with (run_dir / "switch.log").open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "switch", "--config", str(config_path),
                "--port", str(self._switch_port), stdout=asyncio.subprocess.PIPE, stderr=log)
        self._switch_process = process
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), SWITCH_START_S)
        except TimeoutError:
            line = b""
        if b"listening" not in line:
            await self._end_switch_process(signal.SIGKILL)
            raise LabError(f"the lab's switch did not start again within {SWITCH_START_S:g} s"
                           f" (see {run_dir / 'switch.log'})")

    async def _end_switch_process(self, how: signal.Signals) -> None:
        process, self._switch_process = getattr(self, "_switch_process", None), None
        if process is None or process.returncode is not None:
            return
        process.send_signal(how)
        try:
            await asyncio.wait_for(process.wait(), SWITCH_START_S)
        except TimeoutError:
            process.kill()
            await process.wait()

    def set_case(self, name: str | None) -> None:
        assert self.to_bank is not None and self.to_switch is not None
        self.to_bank.case = self.to_switch.case = name
        self.to_bank.tamper = self.to_switch.tamper = None  # a case's orders end with it
        self.to_bank.delay = self.to_switch.delay = None

    @property
    def case(self) -> str | None:
        """The case running now (its exchanges carry its name)."""
        return None if self.to_bank is None else self.to_bank.case

    def exchanges(self) -> list[Exchange]:
        """Every exchange with the bank, both legs, in the order they started."""
        assert self.to_bank is not None and self.to_switch is not None
        return sorted([*self.to_bank.exchanges, *self.to_switch.exchanges],
                      key=lambda e: e.started_s)

    async def quiet(self, timeout_s: float = 15.0) -> bool:
        """Whether, within `timeout_s`, the switch owes the bank no notice and no exchange
        with the bank is under way: a case's verdicts (the reconciliation's above all) must not
        race a rejection the switch still has to deliver to a slow bank."""
        assert self.to_bank is not None and self.to_switch is not None
        deadline_s = time.monotonic() + timeout_s
        while True:
            relays_quiet = (await self.to_bank.quiet(timeout_s=timeout_s)
                            and await self.to_switch.quiet(timeout_s=timeout_s))
            stats = await self.admin("GET", "/v1/admin/stats")
            if relays_quiet and not stats.get("notices_backlog"):
                return True
            if time.monotonic() >= deadline_s:
                return False
            await asyncio.sleep(QUIET_POLL_S)

    # ---- the switch's admin API -----------------------------------------------------------

    async def admin(self, method: str, path: str, payload: object = None) -> Any:
        """The switch's admin API (`payload` as its JSON body); a change carries a fresh
        Idempotency-Key (each call of the suite's is one change, never a retry of another)."""
        assert self.session is not None
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        if method != "GET":
            headers["Idempotency-Key"] = secrets.token_hex(16)
        async with self.session.request(
                method, f"{self.switch_url}{path}", headers=headers, json=payload,
                timeout=aiohttp.ClientTimeout(total=ADMIN_TIMEOUT_S)) as response:
            response.raise_for_status()
            return await response.json()

    async def admin_or_none(self, method: str, path: str) -> Any:
        """The admin API's JSON answer, or None for a 404."""
        try:
            return await self.admin(method, path)
        except aiohttp.ClientResponseError as error:
            if error.status == 404:
                return None
            raise

    async def reset_breaker(self) -> None:
        """Sign the bank on: closes its breaker, so one case's failures do not refuse the
        next case's transfers AB08."""
        await self.admin("POST", f"/v1/admin/participants/{self.bic}/sign-on")

    # ---- the suite as the scheme ----------------------------------------------------------

    def credit_transfer(self, transactions: Sequence[CreditTransfer], *,
                        from_bic: str = SWITCH_BIC) -> CreditTransferMessage:
        return CreditTransferMessage(
            msg_id=new_id("CNF"), created_at=datetime.now(UTC), instructing_agent_bic=from_bic,
            instructed_agent_bic=SWITCH_BIC if from_bic != SWITCH_BIC else self.bic,
            transactions=list(transactions))

    def encode(self, document: Document, to_bic: str | None = None) -> bytes:
        """The body the switch would send the bank (head.001 To: `to_bic`, the bank's BIC
        unless told otherwise)."""
        return codec.encode(wrap(SWITCH_BIC, to_bic or self.bic, document))

    def signed_headers(self, path: str, body: bytes, *, age_s: float = 0.0,
                       spoil: bool = False, signer_bic: str = SWITCH_BIC,
                       method: str = "POST", content_type: str = XML_CONTENT_TYPE
                       ) -> dict[str, str]:
        """The switch's signature headers (RFC 9421) over `method`, `path`, `body` and its
        `content_type`, made with the switch's key by protocol/signing.py: `age_s` old,
        spoiled, or naming `signer_bic` as the signer (a valid signature under the wrong
        signer's name)."""
        headers = signing.sign(signer_bic, self.credentials.own, path, body, method=method,
                               content_type=content_type, created_s=int(time.time() - age_s))
        if spoil:
            headers[signing.SIGNATURE_HEADER] = signing.spoiled(headers[signing.SIGNATURE_HEADER])
        return headers

    async def post_to_bank(self, body: bytes, headers: dict[str, str] | None = None,
                           content_type: str = XML_CONTENT_TYPE) -> Answer:
        """POST a message to the bank's inbound URL as the scheme, through the relay, signed
        as the switch unless `headers` are given; the bank's answer as it came."""
        if headers is None:
            headers = self.signed_headers(URL(self.bank_path).raw_path, body,
                                          content_type=content_type)
        return await self._call("POST", self.bank_path, body,
                                headers | {"Content-Type": content_type},
                                self.settings.creditor_timeout_s + 10)

    async def hook(self, method: str, path: str, payload: object = None) -> Answer:
        """Call one of the bank's test hooks (protocol/hooks.py), signed as the switch."""
        assert path.startswith(HOOKS_PREFIX)
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        headers = self.signed_headers(URL(path).raw_path_qs, body, method=method,
                                      content_type="application/json")
        return await self._call(method, path, body, headers, HOOK_TIMEOUT_S)

    async def _call(self, method: str, path: str, body: bytes, headers: dict[str, str],
                    timeout_s: float) -> Answer:
        assert self.session is not None
        async with self.session.request(
                method, self.suite_url + path, data=body, headers=headers,
                skip_auto_headers=("Content-Type",),
                timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            answer = await response.read()
            return Answer(response.status, dict(response.headers), answer,
                          decoded_or_none(answer))

    # ---- the treasury, through the switch -------------------------------------------------

    def treasury_transfer(self, e2e: str, account: str, name: str, amount_vnd: int,
                          citizen_id: str | None = None) -> CreditTransfer:
        return CreditTransfer(
            end_to_end_id=e2e, tx_id=e2e, amount_vnd=amount_vnd, debtor_name=TREASURY_NAME,
            debtor_account=TREASURY_ACCOUNT, debtor_agent_bic=TREASURY_BIC,
            creditor_name=name, creditor_account=account, creditor_agent_bic=self.bic,
            creditor_citizen_id=citizen_id, remittance_info="switchlab conformance",
            amount_text=str(amount_vnd))

    async def pay(self, transactions: Sequence[CreditTransfer]) -> PaymentStatusReport:
        """The treasury pays through the switch: one transaction instant (the final status
        in the answer), several in one bulk file (ACTC in the answer, statuses pushed)."""
        self.paid.update((tx.end_to_end_id, (tx.creditor_account, tx.amount_vnd))
                         for tx in transactions)
        reply = await self.treasury_peer.send(self.credit_transfer(transactions,
                                                                   from_bic=TREASURY_BIC))
        document = reply.message.document if reply.message is not None else None
        if not isinstance(document, PaymentStatusReport):
            raise LabError(f"the switch answered the treasury HTTP {reply.status}: "
                           f"{reply.text.strip()[:200]}")
        self.switch_outcomes.update((i.original_end_to_end_id, i.status)
                                    for i in document.transactions
                                    if i.status in (TxStatus.SETTLED, TxStatus.REJECTED))
        return document

    def outcomes(self) -> dict[str, TxStatus]:
        """The switch's final status of every transfer the treasury paid the bank: in its
        answers (instant) and in the reports it pushed (bulk)."""
        pushed = {e2e: item.status for e2e, item in self.treasury.finals.items()
                  if item.status in (TxStatus.SETTLED, TxStatus.REJECTED)}
        return pushed | self.switch_outcomes

    async def finals(self, end_to_end_ids: Sequence[str], timeout_s: float
                     ) -> dict[str, TransactionStatus]:
        """The final statuses the switch has reported to the treasury for these ids, waiting
        up to `timeout_s` for all of them."""
        deadline_s = time.monotonic() + timeout_s
        finals = self.treasury.finals
        while time.monotonic() < deadline_s and not all(e in finals for e in end_to_end_ids):
            await asyncio.sleep(0.1)
        return {e: finals[e] for e in end_to_end_ids if e in finals}

    async def counterpart_returns(self, end_to_end_id: str, amount_vnd: int) -> TxStatus | None:
        """The counterpart sends back a transfer the bank paid it (pacs.004, AC04); the
        switch's status for the return."""
        reply = await self.counterpart_peer.send(PaymentReturn(
            msg_id=new_id("CPR"), created_at=datetime.now(UTC),
            instructing_agent_bic=COUNTERPART_BIC, instructed_agent_bic=SWITCH_BIC,
            items=[PaymentReturnItem(
                return_id=new_id("CPRT"), original_end_to_end_id=end_to_end_id,
                original_tx_id=self._tx_id_received(end_to_end_id),
                returned_amount_vnd=amount_vnd,
                reason_code=reasons.CLOSED_ACCOUNT, amount_text=str(amount_vnd))]))
        document = reply.message.document if reply.message is not None else None
        if not isinstance(document, PaymentStatusReport) or not document.transactions:
            return None
        if document.transactions[0].status is TxStatus.SETTLED:
            self.returns_to_bank[end_to_end_id] = amount_vnd
        return document.transactions[0].status

    def _tx_id_received(self, end_to_end_id: str) -> str:
        """The TxId the bank gave the transfer the counterpart received."""
        return next((tx.tx_id for message in self.counterpart.received
                     if isinstance(message.document, CreditTransferMessage)
                     for tx in message.document.transactions
                     if tx.end_to_end_id == end_to_end_id), end_to_end_id)

    def bank_said(self, found: Callable[[Exchange], bool]) -> list[Exchange]:
        return [e for e in self.exchanges() if found(e)]
