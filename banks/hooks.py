"""The conformance test hooks of a mock participant (protocol/hooks.py says what they are):
its balances, a return on request, and a transfer of its own on request, each asked for with
a request signed as the switch signs, so that nobody else can read the test ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import pydantic
from aiohttp import web

from banks.ledger import BookingState, Ledger
from protocol.directory import read_signed_json
from protocol.hooks import (
    BALANCES_PATH,
    MAX_CREDITED_LISTED,
    MAX_HOOK_BODY_BYTES,
    RETURNS_PATH,
    TRANSFERS_PATH,
    BulkTransferOrder,
    ReturnOrder,
    TransferOrder,
)
from protocol.http import Sender


class Participant(Protocol):
    """What the hooks need of a mock participant (banks/bank.py's Bank)."""

    ledger: Ledger
    senders: Mapping[str, Sender]

    def return_credit(self, end_to_end_id: str, reason_code: str,
                      amount_vnd: int | None = None) -> str | None: ...

    def send_transfer(self, order: TransferOrder) -> str | None: ...

    def send_transfers(self, orders: list[TransferOrder]) -> str | None: ...


def _order(model: type[pydantic.BaseModel], payload: object) -> Any:
    """The request's JSON as `model`, or 400 naming the field."""
    try:
        return model.model_validate(payload)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        raise web.HTTPBadRequest(text=f"400: {'.'.join(map(str, first['loc'])) or 'body'}: "
                                 f"{first['msg']}\n") from None


def add_routes(app: web.Application, key: web.AppKey[Any]) -> None:
    """Serve the hooks of the participant stored in `app[key]`."""

    async def balance(request: web.Request) -> web.Response:
        participant: Participant = request.app[key]
        await read_signed_json(request, participant.senders, MAX_HOOK_BODY_BYTES)
        account_id = request.match_info["account_id"]
        account = participant.ledger.accounts.get(account_id)
        if account is None:
            raise web.HTTPNotFound(text=f"404: no account {account_id[:40]}\n")
        credited = [e2e for e2e, booking in participant.ledger.bookings.items()
                    if booking.account_id == account_id
                    and booking.state is BookingState.CREDITED]
        return web.json_response({"account_id": account_id, "balance_vnd": account.balance_vnd,
                                  "credited": credited[-MAX_CREDITED_LISTED:],
                                  "held": participant.ledger.held(account_id)[
                                      -MAX_CREDITED_LISTED:]})

    async def make_return(request: web.Request) -> web.Response:
        participant: Participant = request.app[key]
        _, payload = await read_signed_json(request, participant.senders, MAX_HOOK_BODY_BYTES)
        order: ReturnOrder = _order(ReturnOrder, payload)
        refusal = participant.return_credit(order.end_to_end_id, order.reason_code,
                                            order.amount_vnd)
        if refusal is not None:
            raise web.HTTPConflict(text=f"409: {refusal}\n")
        return web.json_response({"status": "returning"}, status=202)

    async def send_transfer(request: web.Request) -> web.Response:
        participant: Participant = request.app[key]
        _, payload = await read_signed_json(request, participant.senders, MAX_HOOK_BODY_BYTES)
        if isinstance(payload, dict) and "transfers" in payload:
            bulk: BulkTransferOrder = _order(BulkTransferOrder, payload)
            refusal = participant.send_transfers(bulk.transfers)
        else:
            refusal = participant.send_transfer(_order(TransferOrder, payload))
        if refusal is not None:
            raise web.HTTPConflict(text=f"409: {refusal}\n")
        return web.json_response({"status": "sending"}, status=202)

    app.router.add_get(f"{BALANCES_PATH}/{{account_id}}", balance)
    app.router.add_post(RETURNS_PATH, make_return)
    app.router.add_post(TRANSFERS_PATH, send_transfer)
