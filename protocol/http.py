"""Sending and receiving signed ISO 20022 messages over HTTP, for either side of the scheme."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from yarl import URL

from protocol import codec, signing
from protocol.messages import AppHeader, BusinessMessage, Document, MessageType

SWITCH_MESSAGES_PATH = "/v1/messages"
XML_CONTENT_TYPE = "application/xml"

_TYPE_OF = {
    "CreditTransferMessage": MessageType.CREDIT_TRANSFER,
    "PaymentStatusReport": MessageType.PAYMENT_STATUS,
    "PaymentReturn": MessageType.PAYMENT_RETURN,
    "StatusRequest": MessageType.STATUS_REQUEST,
    "Statement": MessageType.STATEMENT,
    "VerificationRequest": MessageType.VERIFICATION_REQUEST,
    "VerificationReport": MessageType.VERIFICATION_REPORT,
}


def wrap(from_bic: str, to_bic: str, document: Document) -> BusinessMessage:
    """Put a document under the head.001 header that names its sender and receiver."""
    header = AppHeader(
        from_bic=from_bic,
        to_bic=to_bic,
        biz_msg_id=document.msg_id,
        msg_def_id=_TYPE_OF[type(document).__name__],
        created_at=datetime.now(UTC),
    )
    return BusinessMessage(header=header, document=document)


@dataclass(slots=True)
class Reply:
    """What the peer answered: the HTTP status and, when it sent one, the decoded message."""

    status: int
    message: BusinessMessage | None
    text: str


class Peer:
    """One signed HTTP channel from `own_bic` to a peer's message endpoint."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        own_bic: str,
        secret: bytes,
        peer_bic: str,
        timeout_s: float = 10.0,
    ) -> None:
        self._session = session
        self.url = url
        self._path = URL(url).raw_path
        self.own_bic = own_bic
        self._secret = secret
        self.peer_bic = peer_bic
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def send(self, document: Document, timeout_s: float | None = None) -> Reply:
        """Sign and post one document; decode the answer when it carries a message."""
        body = codec.encode(wrap(self.own_bic, self.peer_bic, document))
        return await self.post(body, timeout_s)

    async def post(self, body: bytes, timeout_s: float | None = None) -> Reply:
        """Post already-encoded bytes, signed; raises aiohttp/asyncio errors on transport faults."""
        status, content_type, payload = await self.exchange(body, timeout_s)
        message = None
        if payload and content_type == XML_CONTENT_TYPE:
            message = codec.decode(payload)
        return Reply(status, message, "" if message else payload.decode(errors="replace"))

    async def exchange(self, body: bytes, timeout_s: float | None = None
                       ) -> tuple[int, str, bytes]:
        """Post signed bytes; the answer's HTTP status, content type and body, undecoded, for a
        load generator that decodes once the clock has stopped."""
        headers = signing.sign(self.own_bic, self._secret, self._path, body)
        timeout = self._timeout if timeout_s is None else aiohttp.ClientTimeout(total=timeout_s)
        async with self._session.post(
            self.url, data=body, headers=headers, timeout=timeout
        ) as response:
            return response.status, response.content_type, await response.read()


async def read_signed(
    request: web.Request, secrets: Mapping[str, bytes], own_bic: str,
    max_bytes: int = codec.MAX_MESSAGE_BYTES,
) -> tuple[str, BusinessMessage]:
    """Authenticate and decode an inbound request, or raise the HTTP error a sender should see.

    401 for a bad signature, 403 when the head.001 sender is not the signer, 400 for a body
    that is not a well-formed ISO 20022 message or whose head.001 names another receiver than
    `own_bic`, 413 when it is too large.
    """
    if request.content_length is not None and request.content_length > max_bytes:
        raise web.HTTPRequestEntityTooLarge(max_size=max_bytes, actual_size=request.content_length)
    body = await request.read()
    try:
        signer = signing.verify(request.headers, request.raw_path, body, secrets)
    except signing.SignatureError as error:
        raise web.HTTPUnauthorized(text=f"401 unauthenticated: {error}\n") from None
    try:
        message = codec.decode(body, max_bytes)
    except codec.CodecError as error:
        raise web.HTTPBadRequest(text=f"{error.reason_code}: {error}\n") from None
    if message.header.from_bic != signer:
        raise web.HTTPForbidden(
            text=f"403 forbidden: head.001 names sender {message.header.from_bic} "
            f"but the request is signed by {signer}; no participant may send as another\n"
        )
    if message.header.to_bic != own_bic:
        raise web.HTTPBadRequest(text=f"FF01: head.001 names receiver {message.header.to_bic};"
                                 f" this is {own_bic}\n")
    return signer, message


def xml_response(
    from_bic: str, to_bic: str, document: Document, status: int = 200
) -> web.Response:
    """An HTTP response carrying one ISO 20022 message."""
    body = codec.encode(wrap(from_bic, to_bic, document))
    return web.Response(body=body, status=status, content_type=XML_CONTENT_TYPE)


def bearer_auth(path_prefix: str, token: str) -> Middleware:
    """Require `Authorization: Bearer <token>` on every path under `path_prefix` (admin APIs)."""
    expected = f"Bearer {token}"

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(path_prefix) and (
            request.headers.get("Authorization") != expected
        ):
            raise web.HTTPUnauthorized(
                text="401: the admin API needs 'Authorization: Bearer <token>'\n"
            )
        return await handler(request)

    return check


def run_alongside(app: web.Application, start: Callable[[], Awaitable[None]],
                  stop: Callable[[], Awaitable[None]]) -> None:
    """Start a service when its application starts serving, and stop it on cleanup."""

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await start()
        yield
        await stop()

    app.cleanup_ctx.append(lifecycle)
