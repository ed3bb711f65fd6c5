"""The switch as an aiohttp application: the participants' message endpoint and the admin API."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from protocol import codec
from protocol.codec import new_id
from protocol.http import (
    SWITCH_MESSAGES_PATH,
    bearer_auth,
    read_signed,
    run_alongside,
    xml_response,
)
from protocol.messages import (
    CreditTransferMessage,
    MessageType,
    PaymentReturn,
    PaymentStatusReport,
    StatusRequest,
    TransactionStatus,
    TxStatus,
)
from switch import settlement
from switch.clearing import Clearing
from switch.config import SwitchConfig
from switch.journal import Journal
from switch.notices import Notifier
from switch.participants import Participant
from switch.states import TransferState

log = logging.getLogger(__name__)

SWITCH = web.AppKey("switch", "Switch")
ANSWER_MARGIN_S = 2.0  # beyond the creditor deadline, for two journal writes and the reply


class Switch:
    """The running scheme: configuration, journal, clearing engine and notifier together."""

    def __init__(self, config: SwitchConfig) -> None:
        self.config = config
        self.secrets = {bic: p.secret for bic, p in config.participants.items()}
        self.session: aiohttp.ClientSession | None = None
        self.journal = Journal(config.journal_path)
        self.started_at_s = time.time()
        self.recovery: dict[str, int] = {}
        self._cycle_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=256),
        )
        self.participants = {
            bic: Participant(p, self.config, self.session)
            for bic, p in self.config.participants.items()
        }
        self.journal.start()
        self.notifier = Notifier(self.config, self.participants, self.journal)
        self.clearing = Clearing(self.config, self.journal, self.participants, self.notifier)
        self.recovery = await self.clearing.recover()
        self.notifier.start()
        if self.config.settlement_cycle_s:
            self._cycle_task = asyncio.get_running_loop().create_task(self._close_cycles())
        log.info("switch %s recovered %s", self.config.bic, self.recovery)

    async def stop(self) -> None:
        if self._cycle_task is not None:
            self._cycle_task.cancel()
        await self.clearing.drain()
        await self.notifier.stop()
        await self.journal.close()
        if self.session is not None:
            await self.session.close()

    async def _close_cycles(self) -> None:
        assert self.config.settlement_cycle_s is not None
        while True:
            await asyncio.sleep(self.config.settlement_cycle_s)
            await self.clearing.close_cycle()

    def reply(self, to_bic: str, document: object, status: int = 200) -> web.Response:
        return xml_response(self.config.bic, to_bic, document, status)  # type: ignore[arg-type]


async def receive_message(request: web.Request) -> web.Response:
    switch = request.app[SWITCH]
    sender, message = await read_signed(request, switch.secrets, switch.config.bic)
    document = message.document
    if isinstance(document, CreditTransferMessage):
        return await _credit_transfer(switch, sender, document)
    if isinstance(document, StatusRequest):
        return switch.reply(sender, await switch.clearing.status_report(sender, document))
    if isinstance(document, PaymentReturn):
        if document.instructing_agent_bic != sender:
            raise web.HTTPForbidden(text=f"403 forbidden: InstgAgt {document.instructing_agent_bic}"
                                    f" is not the sender {sender}\n")
        return switch.reply(sender, await switch.clearing.take_return(sender, document))
    if isinstance(document, PaymentStatusReport):
        taken, refused = switch.clearing.take_answers(sender, document)
        if refused:
            raise web.HTTPConflict(
                text=f"409 conflict: {refused} of {taken + refused} answers refused: the switch "
                "is not waiting for them from you (late, duplicate or unknown end-to-end id); "
                "a refused ACCP never leads to a credit\n"
            )
        return web.Response(status=202, text=f"{taken} answers taken\n")
    raise web.HTTPBadRequest(text=f"FF01: the switch does not accept {message.header.msg_def_id}\n")


async def _credit_transfer(
    switch: Switch, sender: str, message: CreditTransferMessage
) -> web.Response:
    impostors = {
        tx.debtor_agent_bic for tx in message.transactions if tx.debtor_agent_bic != sender
    }
    if message.instructing_agent_bic != sender or impostors:
        named = message.instructing_agent_bic if message.instructing_agent_bic != sender else (
            ", ".join(sorted(impostors)))
        raise web.HTTPForbidden(
            text=f"403 forbidden: the message names {named} as instructing or debtor agent but "
            f"is signed by {sender}; no participant may send as another\n"
        )
    if switch.participants[sender].signed_off:
        raise web.HTTPServiceUnavailable(text=f"503: {sender} is signed off from the scheme\n")
    if not switch.clearing.has_room_for(len(message.transactions)):
        raise web.HTTPServiceUnavailable(
            text=f"503: {len(switch.clearing.pending):,} transfers in flight, the limit is "
            f"{switch.config.max_transfers_in_flight:,}; retry later (nothing was taken)\n",
            headers={"Retry-After": "1"},
        )
    group_reason = switch.clearing.check_group(message)
    if group_reason is not None:
        return switch.reply(sender, PaymentStatusReport(
            msg_id=new_id("SWG"), created_at=datetime.now(UTC), original_msg_id=message.msg_id,
            original_msg_type=MessageType.CREDIT_TRANSFER, group_status=TxStatus.REJECTED,
            group_reason_code=group_reason,
        ))
    bulk = len(message.transactions) > 1
    if bulk:
        await switch.clearing.submit(sender, message, bulk=True)
        return switch.reply(sender, PaymentStatusReport(
            msg_id=new_id("SWG"), created_at=datetime.now(UTC), original_msg_id=message.msg_id,
            original_msg_type=MessageType.CREDIT_TRANSFER,
            group_status=TxStatus.ACCEPTED_TECHNICAL,
        ), status=202)
    status = await _clear_instant(switch, sender, message)
    return switch.reply(sender, PaymentStatusReport(
        msg_id=new_id("SWI"), created_at=datetime.now(UTC), original_msg_id=message.msg_id,
        original_msg_type=MessageType.CREDIT_TRANSFER, transactions=[status],
    ))


async def _clear_instant(
    switch: Switch, sender: str, message: CreditTransferMessage
) -> TransactionStatus:
    """Clear one transfer and wait for its final status, bounded by the creditor deadline."""
    submission = await switch.clearing.submit(sender, message, bulk=False)
    if submission.refused:
        return submission.refused[0]
    transfer = submission.accepted[0]
    if transfer.state is TransferState.PENDING:
        # Forwarding starts only at our next await, so the outcome is always seen.
        transfer.outcome = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(transfer.outcome,
                                   switch.config.creditor_timeout_s + ANSWER_MARGIN_S)
        except TimeoutError:
            log.warning("instant transfer %s not final in time", transfer.end_to_end_id)
    return transfer.status()


# ---- admin API (JSON, bearer token) ------------------------------------------------------------


def _participant(request: web.Request) -> Participant:
    switch = request.app[SWITCH]
    bic = request.match_info["bic"]
    if bic not in switch.participants:
        raise web.HTTPNotFound(text=f"404: no participant {bic}\n")
    return switch.participants[bic]


async def list_participants(request: web.Request) -> web.Response:
    switch = request.app[SWITCH]
    book = switch.clearing.positions
    return web.json_response([
        p.health() | {"net_vnd": book.net_vnd.get(p.bic, 0),
                      "reserved_vnd": book.reserved_vnd.get(p.bic, 0)}
        for p in switch.participants.values()
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
    participant.position_limit_vnd = limit
    await request.app[SWITCH].clearing.save_settings(participant)
    return web.json_response(participant.health())


async def sign_off(request: web.Request) -> web.Response:
    participant = _participant(request)
    participant.signed_off = request.match_info["action"] == "sign-off"
    if not participant.signed_off:
        participant.breaker.succeeded()
    await request.app[SWITCH].clearing.save_settings(participant)
    return web.json_response(participant.health())


async def close_cycle(request: web.Request) -> web.Response:
    switch = request.app[SWITCH]
    closed_id, _ = await switch.clearing.close_cycle()
    summary = await settlement.summarize(switch.journal, closed_id)
    assert summary is not None
    return web.json_response(summary.as_dict())


async def cycle_summary(request: web.Request) -> web.Response:
    summary = await settlement.summarize(request.app[SWITCH].journal,
                                         int(request.match_info["cycle"]))
    if summary is None:
        raise web.HTTPNotFound(text="404: no such settlement cycle\n")
    if request.query.get("format") == "text":
        return web.Response(text=summary.text() + "\n")
    return web.json_response(summary.as_dict())


async def cycle_statement(request: web.Request) -> web.Response:
    participant = _participant(request)
    switch = request.app[SWITCH]
    document = await settlement.statement(switch.journal, int(request.match_info["cycle"]),
                                          participant.bic)
    if document is None:
        raise web.HTTPNotFound(text="404: no such settlement cycle\n")
    return switch.reply(participant.bic, document)


async def transfer_status(request: web.Request) -> web.Response:
    switch = request.app[SWITCH]
    e2e = request.match_info["e2e"]
    found = (await switch.clearing.lookup([e2e])).get(e2e)
    if found is None:
        raise web.HTTPNotFound(text=f"404: no transfer {e2e}\n")
    history = await switch.journal.read(
        "SELECT from_state, to_state, reason_code, at FROM transitions WHERE end_to_end_id=?"
        " ORDER BY seq", (e2e,))
    return web.json_response({
        "end_to_end_id": e2e, "debtor_bic": found.debtor_bic, "creditor_bic": found.creditor_bic,
        "amount_vnd": found.amount_vnd, "state": found.state, "reason_code": found.reason_code,
        "history": [dict(zip(("from", "to", "reason_code", "at"), row, strict=True))
                    for row in history],
    })


async def stats(request: web.Request) -> web.Response:
    """Totals for reconciliation and live views: counts and amounts by state and reason."""
    switch = request.app[SWITCH]
    rows = await switch.journal.read(
        "SELECT state, coalesce(reason_code, ''), count(*), sum(amount_vnd) FROM transfers"
        " GROUP BY 1, 2")
    returned = await switch.journal.read("SELECT count(*), coalesce(sum(amount_vnd), 0)"
                                         " FROM returns")
    by_state: dict[str, dict[str, int]] = {}
    for state, reason, count, amount in rows:
        entry = by_state.setdefault(state, {"count": 0, "amount_vnd": 0})
        entry["count"] += count
        entry["amount_vnd"] += amount
        if reason:
            entry[f"count_{reason}"] = count
    return web.json_response({
        "switch": switch.config.bic,
        "uptime_s": round(time.time() - switch.started_at_s, 3),
        "cycle_id": switch.clearing.cycle_id,
        "in_flight": len(switch.clearing.pending),
        "by_state": by_state,
        "returns": {"count": returned[0][0], "amount_vnd": returned[0][1]},
        "notices_backlog": switch.notifier.backlog(),
        "notices_delivered": switch.notifier.delivered,
        "notice_failures": switch.notifier.failed_attempts,
        "refused_answers": switch.clearing.refused_answers,
        "journal_commits": switch.journal.commits,
        "recovery": switch.recovery,
    })


async def health(request: web.Request) -> web.Response:
    switch = request.app[SWITCH]
    return web.json_response({
        "status": "ok", "bic": switch.config.bic,
        "participants": [p.health() for p in switch.participants.values()],
    })


def create_app(config: SwitchConfig) -> web.Application:
    """The switch's aiohttp application; the switch starts and stops with it."""
    app = web.Application(client_max_size=codec.MAX_MESSAGE_BYTES,
                          middlewares=[bearer_auth("/v1/admin/", config.admin_token)])
    switch = Switch(config)
    app[SWITCH] = switch

    run_alongside(app, switch.start, switch.stop)
    app.router.add_post(SWITCH_MESSAGES_PATH, receive_message)
    app.router.add_get("/v1/health", health)
    app.router.add_get("/v1/admin/participants", list_participants)
    app.router.add_put("/v1/admin/participants/{bic}/limit", set_limit)
    app.router.add_post("/v1/admin/participants/{bic}/{action:sign-off|sign-on}", sign_off)
    app.router.add_post("/v1/admin/settlement/close", close_cycle)
    app.router.add_get("/v1/admin/settlement/cycles/{cycle:\\d+}", cycle_summary)
    app.router.add_get("/v1/admin/settlement/cycles/{cycle:\\d+}/statements/{bic}",
                       cycle_statement)
    app.router.add_get("/v1/admin/transfers/{e2e}", transfer_status)
    app.router.add_get("/v1/admin/stats", stats)
    return app

