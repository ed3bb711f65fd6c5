"""The switch as an aiohttp application: the participants' message endpoint and the admin API.

This module routes: it authenticates, reads the message, and hands it to the part of the
switch that deals with it (intake, forwarding, returns, inquiry). A journal that cannot take
a write is answered here, once, for every route: 503 with the reason, nothing taken.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from protocol import codec
from protocol.codec import new_id
from protocol.exposition import METRICS_PATH, metrics_response
from protocol.hotroute import HOT_ROUTE, HotRoute
from protocol.http import (
    AUTH_FAILED,
    SWITCH_MESSAGES_PATH,
    bearer_auth,
    read_signed,
    run_alongside,
    sign_answers,
    xml_response,
)
from protocol.messages import (
    CreditTransferMessage,
    MessageType,
    PaymentReturn,
    PaymentStatusReport,
    StatusRequest,
    TxStatus,
    VerificationRequest,
)
from protocol.transport import SERVER_LIMITS
from switch import admin, directory_api, gate, inquiry, statements
from switch.admin import SWITCH
from switch.config import SwitchConfig
from switch.events import SwitchEvents
from switch.journal_errors import JournalBusy, JournalFailed, JournalInconsistent, WriteRefused
from switch.service import Switch
from switch.verification import RequestRefused

# Kept-alive connections have a bounded life, so that a switch process started or restarted
# beside others on one port (SO_REUSEPORT spreads connections, not requests) gets its share
# within seconds: a participant's client opens a new connection, which the kernel may give to
# any process. The cost is one TCP handshake per connection per MAX_CONNECTION_AGE_S.
MAX_REQUESTS_PER_CONNECTION = 1_000
MAX_CONNECTION_AGE_S = 10.0
MAX_TRACKED_CONNECTIONS = 8_192  # past this, the closed ones are forgotten (one sweep)
_CONNECTIONS: dict[Any, list[float]] = {}  # a connection -> [first request's time, requests]


@web.middleware
async def bounded_keepalive(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The response that ends a connection's budget (requests or seconds) says
    `Connection: close`, and the connection closes after it."""
    now_s = asyncio.get_running_loop().time()
    if len(_CONNECTIONS) >= MAX_TRACKED_CONNECTIONS:  # aiohttp's handlers take no weakref
        for gone in [c for c in _CONNECTIONS if c.transport is None]:
            del _CONNECTIONS[gone]
    seen = _CONNECTIONS.setdefault(request.protocol, [now_s, 0])
    seen[1] += 1
    spent = seen[1] >= MAX_REQUESTS_PER_CONNECTION or now_s - seen[0] >= MAX_CONNECTION_AGE_S
    try:
        response = await handler(request)
    except web.HTTPException as error:
        if spent:
            error.force_close()
        raise
    if spent:
        response.force_close()
    return response


@web.middleware
async def journal_refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
    """What the journal could not take becomes a clear refusal, never a 500."""
    try:
        return await handler(request)
    except JournalBusy as error:
        raise web.HTTPServiceUnavailable(text=f"503: the switch is busy: {error}; retry "
                                         "later (nothing was taken)\n",
                                         headers={"Retry-After": "1"}) from None
    except JournalFailed as error:
        _, why = request.app[SWITCH].health()
        raise web.HTTPServiceUnavailable(
            text=f"503: {error}; {why or 'retry later'} (nothing was taken)\n",
            headers={"Retry-After": "1"} if request.app[SWITCH].state.store.heals else None,
        ) from None
    except WriteRefused as error:
        raise web.HTTPBadRequest(text=f"FF01: the journal refused the message's values "
                                 f"({error}); nothing was taken\n") from None
    except JournalInconsistent as error:  # logged where found
        raise web.HTTPConflict(text=f"409: the journal cannot back this report: {error}; the "
                               "operator has been alerted in the switch's log\n") from None


def _reply(switch: Switch, to_bic: str, document: object, status: int = 200) -> web.Response:
    return xml_response(switch.config.bic, to_bic, document, status)  # type: ignore[arg-type]


async def receive_message(request: web.Request) -> web.Response:
    switch = request.app[SWITCH]
    signed = await read_signed(request, switch.senders, switch.config.bic)
    if switch.state.store.failure is not None:  # refused, signed, whatever the message
        raise JournalFailed(f"the journal stopped after a storage failure: "
                            f"{switch.state.store.failure}")
    sender, message = signed.signer, signed.message
    gate.check_items(switch.config, switch.config.participants[sender].kind, message)
    document = message.document
    if isinstance(document, CreditTransferMessage):
        report, status = await clear_credit_transfer(switch, sender, document,
                                                     signed.body_sha256)
        return _reply(switch, sender, report, status)
    if isinstance(document, StatusRequest):
        return _reply(switch, sender, await inquiry.status_report(switch.state, sender, document))
    if isinstance(document, PaymentReturn):
        if document.instructing_agent_bic != sender:
            raise web.HTTPForbidden(text=f"403 forbidden: InstgAgt {document.instructing_agent_bic}"
                                    f" is not the sender {sender}\n")
        return _reply(switch, sender, await switch.returns.take(sender, document))
    if isinstance(document, PaymentStatusReport):
        taken, refused = await switch.forwarding.take_posted_answers(sender, document)
        if refused:
            raise web.HTTPConflict(
                text=f"409 conflict: {refused} of {taken + refused} answers refused: the switch "
                "is not waiting for them from you (late, duplicate or unknown end-to-end id); "
                "a refused ACCP never leads to a credit\n"
            )
        return web.Response(status=202, text=f"{taken} answers taken\n")
    if isinstance(document, VerificationRequest):
        return await _verification(switch, sender, document)
    raise web.HTTPBadRequest(text=f"FF01: the switch does not accept {message.header.msg_def_id}\n")


async def _verification(switch: Switch, sender: str, request: VerificationRequest
                        ) -> web.Response:
    """acmt.023 -> acmt.024 in the answer; only for oneself as assigner (403 otherwise)."""
    if request.assigner_bic != sender:
        raise web.HTTPForbidden(text=f"403 forbidden: Assgnr {request.assigner_bic} is not the "
                                f"sender {sender}\n")
    try:
        return _reply(switch, sender, await switch.verification.answer(sender, request))
    except RequestRefused as error:
        raise web.HTTPBadRequest(text=f"FF01: {error}\n") from None


def _group_report(message: CreditTransferMessage, status: TxStatus,
                  reason_code: str | None = None) -> tuple[PaymentStatusReport, int]:
    return PaymentStatusReport(
        msg_id=new_id("SWG"), created_at=datetime.now(UTC), original_msg_id=message.msg_id,
        original_msg_type=MessageType.CREDIT_TRANSFER, group_status=status,
        group_reason_code=reason_code,
    ), 202 if status is TxStatus.ACCEPTED_TECHNICAL else 200


async def clear_credit_transfer(switch: Switch, sender: str, message: CreditTransferMessage,
                                body_sha256: bytes) -> tuple[PaymentStatusReport, int]:
    """An authenticated sender's pacs.008, taken: the pacs.002 to answer and its HTTP status
    (200 with each instant transaction's final status or a group refusal, 202 ACTC for a
    bulk file). Raises HTTPForbidden when the message names another sender as instructing
    or debtor agent, HTTPServiceUnavailable when the sender is signed off or the in-flight
    limit is reached (nothing taken), and the journal's errors (`journal_refusals`)."""
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
    if switch.state.participants[sender].signed_off:
        raise web.HTTPServiceUnavailable(text=f"503: {sender} is signed off from the scheme\n")
    intake = switch.intake
    if not intake.has_room_for(len(message.transactions)):
        raise web.HTTPServiceUnavailable(
            text=f"503: {len(switch.state.book.in_flight):,} transfers in flight, the limit is "
            f"{switch.config.max_transfers_in_flight:,}; retry later (nothing was taken)\n",
            headers={"Retry-After": "1"},
        )
    group_reason = intake.check_group(message)
    if group_reason is not None:
        return _group_report(message, TxStatus.REJECTED, group_reason)
    if len(message.transactions) > 1:
        submission = await intake.submit(sender, message, True, body_sha256)
        if submission.group_reason is not None:
            return _group_report(message, TxStatus.REJECTED, submission.group_reason)
        return _group_report(message, TxStatus.ACCEPTED_TECHNICAL)
    status = await intake.clear_instant(sender, message, body_sha256)
    return PaymentStatusReport(
        msg_id=new_id("SWI"), created_at=datetime.now(UTC), original_msg_id=message.msg_id,
        original_msg_type=MessageType.CREDIT_TRANSFER, transactions=[status],
    ), 200


async def health(request: web.Request) -> web.Response:
    """For anyone: ok, or 503, the state (reconnecting, taken_over, stopped) and why the
    switch takes nothing now (details: /v1/admin/health)."""
    state, why = request.app[SWITCH].health()
    if why is not None:
        return web.json_response({"status": state, "reason": why}, status=503)
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition (switch/metrics.py), behind the metrics token: it shows every
    participant's positions and health."""
    switch = request.app[SWITCH]
    config = switch.config
    return metrics_response(request, switch.metrics.registry,
                            config.metrics_token or config.admin_token)


def create_app(config: SwitchConfig, events: SwitchEvents | None = None) -> web.Application:
    """The switch's aiohttp application; the switch starts and stops with it. Observers hang
    on `events` (a fresh hub when None)."""
    switch = Switch(config, events)
    app = web.Application(client_max_size=codec.MAX_MESSAGE_BYTES, middlewares=[
        bounded_keepalive, sign_answers(config.bic, switch.senders | switch.register_senders),
        bearer_auth("/v1/admin/", config.admin_token, keyed_changes=True), journal_refusals])
    app[SWITCH] = switch
    app[SERVER_LIMITS] = config.transport
    app[AUTH_FAILED] = switch.metrics.auth_failed
    run_alongside(app, switch.start, switch.stop)
    app.router.add_post(SWITCH_MESSAGES_PATH, receive_message)  # its unusual requests
    app[HOT_ROUTE] = HotRoute(SWITCH_MESSAGES_PATH, receive_message)
    app.router.add_get("/v1/health", health)
    app.router.add_get(METRICS_PATH, metrics)
    admin.add_routes(app)
    directory_api.add_routes(app)
    statements.add_routes(app)
    return app
