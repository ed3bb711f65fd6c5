"""A mock bank, e-wallet or mobile-money operator: one participant of the scheme, over HTTP.

As creditor agent it checks each incoming transfer against its ledger and answers ACCP or
RJCT (AC01, AC04, AC06, BE01, MD07), holds what it accepts, and credits only when the switch
confirms settlement (ACSC), once per end-to-end id. Its faults come from `Behaviour`. It speaks
to the switch only over HTTP, and can run as a process of its own (`python -m banks.bank`), so
that a scenario can kill and restart it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from banks.behaviour import Behaviour
from banks.ledger import Account, Ledger
from protocol.codec import MAX_MESSAGE_BYTES, new_id
from protocol.http import (
    SWITCH_MESSAGES_PATH,
    Peer,
    bearer_auth,
    read_signed,
    run_alongside,
    xml_response,
)
from protocol.messages import (
    CreditTransferMessage,
    MessageType,
    PaymentReturn,
    PaymentReturnItem,
    PaymentStatusReport,
    TransactionStatus,
    TxStatus,
)

log = logging.getLogger(__name__)

INBOUND_PATH = "/iso20022"
MAX_PENDING_REPLIES = 10_000
REPLY_ATTEMPTS = 12  # with the capped backoff, about 40 s of trying
MAX_BACKOFF_S = 5.0
BANK = web.AppKey("bank", "Bank")


@dataclass
class BankConfig:
    bic: str
    name: str
    kind: str
    secret: bytes
    switch_url: str
    switch_bic: str
    switch_secret: bytes
    admin_token: str = "admin-token"
    ledger_path: Path | None = None
    behaviour: Behaviour = field(default_factory=Behaviour)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BankConfig:
        values = dict(data)
        for key in ("secret", "switch_secret"):
            values[key] = str(values[key]).encode()
        if values.get("ledger_path"):
            values["ledger_path"] = Path(values["ledger_path"])
        values["behaviour"] = Behaviour.from_dict(values.get("behaviour", {}))
        return cls(**values)


class Bank:
    def __init__(self, config: BankConfig, accounts: list[Account] | None = None) -> None:
        self.config = config
        self.behaviour = config.behaviour
        self.ledger = Ledger(path=config.ledger_path)
        if accounts:
            self.ledger.open_accounts(accounts)
        self.started_at_s = time.monotonic()
        self.debtor_results: dict[str, TransactionStatus] = {}
        self.answers_sent = 0
        self.session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._returning: set[str] = set()

    @property
    def switch(self) -> Peer:
        assert self.session is not None
        return Peer(self.session, f"{self.config.switch_url}{SWITCH_MESSAGES_PATH}",
                    self.config.bic, self.config.secret, self.config.switch_bic)

    async def start(self) -> None:
        self.session = aiohttp.ClientSession()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()

    def _later(self, delay_s: float, document: PaymentStatusReport | PaymentReturn) -> bool:
        if len(self._tasks) >= MAX_PENDING_REPLIES:
            return False
        task = asyncio.get_running_loop().create_task(self._send_later(delay_s, document))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _send_later(self, delay_s: float, document: PaymentStatusReport | PaymentReturn
                          ) -> None:
        """Deliver an answer or a return, retrying with capped backoff while the switch is
        unreachable; a return is booked only for the items the switch settled (ACSC)."""
        await asyncio.sleep(delay_s)
        backoff_s = 0.2
        for attempt in range(REPLY_ATTEMPTS):
            try:
                reply = await self.switch.send(document)
                if reply.status >= 500:
                    raise aiohttp.ClientError(f"switch answered {reply.status}")
                self.answers_sent += 1
                if isinstance(document, PaymentReturn) and reply.message is not None:
                    self._book_returns(document, reply.message.document)
                return
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                log.info("%s: sending to the switch failed (%s), attempt %d", self.config.bic,
                         error, attempt + 1)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, MAX_BACKOFF_S)

    def _book_returns(self, sent: PaymentReturn, answer: object) -> None:
        if not isinstance(answer, PaymentStatusReport):
            return
        settled = {i.original_end_to_end_id for i in answer.transactions
                   if i.status is TxStatus.SETTLED}
        for item in sent.items:
            e2e = item.original_end_to_end_id
            if e2e in settled and e2e not in self.ledger.returned:
                self.ledger.accounts[self.ledger.credited_to[e2e]].balance_vnd -= (
                    item.returned_amount_vnd)
                self.ledger.returned[e2e] = item.returned_amount_vnd
            self._returning.discard(e2e)

    # ---- as creditor agent ----------------------------------------------------------------

    def decide(self, message: CreditTransferMessage) -> PaymentStatusReport:
        """Check every transaction, hold the accepted ones (or, with the bug, credit them)."""
        items, accepted = [], []
        for tx in message.transactions:
            reason = self.ledger.check(tx.creditor_account, tx.creditor_name,
                                       tx.creditor_citizen_id)
            if reason is None:
                accepted.append((tx.end_to_end_id, tx.creditor_account, tx.amount_vnd))
            items.append(TransactionStatus(
                original_end_to_end_id=tx.end_to_end_id, original_tx_id=tx.tx_id,
                status=TxStatus.REJECTED if reason else TxStatus.ACCEPTED, reason_code=reason,
            ))
        self.ledger.hold(accepted)
        if self.behaviour.credit_before_confirmation:
            self.ledger.credit([e2e for e2e, _, _ in accepted], early=True)
        return PaymentStatusReport(
            msg_id=new_id("BK"), created_at=datetime.now(UTC), original_msg_id=message.msg_id,
            original_msg_type=MessageType.CREDIT_TRANSFER, transactions=items,
        )

    async def on_credit_transfer(self, message: CreditTransferMessage) -> web.Response:
        behaviour = self.behaviour
        report = self.decide(message)
        if behaviour.answer_mode == "async":
            if behaviour.chance(behaviour.lost_reply_rate):
                return web.Response(status=202)
            delay_s = behaviour.latency_s() + (
                behaviour.late_by_s if behaviour.chance(behaviour.late_reply_rate) else 0.0)
            copies = 2 if behaviour.chance(behaviour.duplicate_reply_rate) else 1
            if all(self._later(delay_s, report) for _ in range(copies)):
                return web.Response(status=202)
        await asyncio.sleep(behaviour.latency_s())
        return xml_response(self.config.bic, self.config.switch_bic, report)

    def on_status_report(self, report: PaymentStatusReport) -> None:
        settled, cancelled = [], []
        for item in report.transactions:
            e2e = item.original_end_to_end_id
            if e2e in self.ledger.holds:
                (settled if item.status is TxStatus.SETTLED else cancelled).append(e2e)
            elif e2e not in self.ledger.credits:
                self.debtor_results[e2e] = item
        credited = self.ledger.credit(settled)
        self.ledger.release(cancelled)
        if self.behaviour.return_deceased_after_s is not None:
            self._return_deceased(credited)

    def _return_deceased(self, credited: list[str]) -> None:
        items = []
        for e2e in credited:
            account = self.ledger.accounts[self.ledger.credited_to[e2e]]
            if (not account.dies_after_payment or e2e in self.ledger.returned
                    or e2e in self._returning):
                continue
            self._returning.add(e2e)
            amount = self.ledger.credits[e2e]
            items.append(PaymentReturnItem(
                return_id=new_id("RT"), original_end_to_end_id=e2e, original_tx_id=e2e,
                returned_amount_vnd=amount, reason_code="MD07", amount_text=str(amount)))
        if items:
            assert self.behaviour.return_deceased_after_s is not None
            self._later(self.behaviour.return_deceased_after_s, PaymentReturn(
                msg_id=new_id("BR"), created_at=datetime.now(UTC),
                instructing_agent_bic=self.config.bic, instructed_agent_bic=self.config.switch_bic,
                items=items))


async def inbound(request: web.Request) -> web.Response:
    bank = request.app[BANK]
    behaviour = bank.behaviour
    if behaviour.down(time.monotonic() - bank.started_at_s):
        raise web.HTTPServiceUnavailable(text=f"503: {bank.config.bic} is offline\n")
    if behaviour.chance(behaviour.error_rate):
        raise web.HTTPInternalServerError(text=f"500: {bank.config.bic} injected error\n")
    _, message = await read_signed(request, {bank.config.switch_bic: bank.config.switch_secret})
    document = message.document
    if isinstance(document, CreditTransferMessage):
        return await bank.on_credit_transfer(document)
    if isinstance(document, PaymentStatusReport):
        bank.on_status_report(document)
    elif isinstance(document, PaymentReturn):
        for item in document.items:
            bank.ledger.received_returns[item.original_end_to_end_id] = item.returned_amount_vnd
    return web.Response(status=200, text="ok\n")


async def ledger_totals(request: web.Request) -> web.Response:
    bank = request.app[BANK]
    return web.json_response({"bic": bank.config.bic} | bank.ledger.totals().as_dict())


async def credits(request: web.Request) -> web.Response:
    bank = request.app[BANK]
    return web.json_response({"credits": bank.ledger.credits,
                              "early": sorted(bank.ledger.early_credits),
                              "returned": bank.ledger.returned})


async def set_behaviour(request: web.Request) -> web.Response:
    bank = request.app[BANK]
    try:
        behaviour = Behaviour.from_dict(await request.json())
    except (ValueError, TypeError) as error:
        raise web.HTTPBadRequest(text=f"400: {error}\n") from None
    bank.behaviour = behaviour
    return web.json_response(behaviour.as_dict())


async def health(request: web.Request) -> web.Response:
    bank = request.app[BANK]
    return web.json_response({"status": "ok", "bic": bank.config.bic,
                              "accounts": len(bank.ledger.accounts),
                              "answers_sent": bank.answers_sent,
                              "results_as_debtor": len(bank.debtor_results)})


def create_bank_app(bank: Bank) -> web.Application:
    app = web.Application(client_max_size=MAX_MESSAGE_BYTES,
                          middlewares=[bearer_auth("/admin/", bank.config.admin_token)])
    app[BANK] = bank

    run_alongside(app, bank.start, bank.stop)
    app.router.add_post(INBOUND_PATH, inbound)
    app.router.add_get("/health", health)
    app.router.add_get("/admin/ledger", ledger_totals)
    app.router.add_get("/admin/credits", credits)
    app.router.add_put("/admin/behaviour", set_behaviour)
    return app


async def _serve(config: BankConfig, port: int) -> None:
    from switchlab.servers import bind_loopback, serve

    bound = bind_loopback(port)
    runner = await serve(create_bank_app(Bank(config)), bound)
    print(f"bank {config.bic} listening on {bound.base_url}{INBOUND_PATH}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m banks.bank", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="bank JSON configuration")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    config = BankConfig.from_dict(json.loads(args.config.read_text(encoding="utf-8")))
    asyncio.run(_serve(config, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
