"""Sending and receiving signed ISO 20022 messages over HTTP, for either side of the scheme."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from yarl import URL

from protocol import codec, signing, tls
from protocol.hotroute import HotConnection
from protocol.messages import AppHeader, BusinessMessage, Document, MessageType
from protocol.replay import ReplayWindowFull
from protocol.transport import GuardedConnection
from protocol.wording import count

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
    """What the peer answered: the HTTP status and, when it sent one, the decoded message.

    Every reply but a 401 is signed by the peer (Peer checks it); a 401 is the one answer a
    receiver gives before it knows who is asking, and it proves nothing."""

    status: int
    message: BusinessMessage | None
    text: str


class AnswerNotAuthentic(aiohttp.ClientResponseError):
    """The peer's answer is not signed by the peer, or not for this request: it is treated as
    no answer at all (callers already handle aiohttp.ClientError as a lost answer)."""


class Peer:
    """One signed HTTP channel from `own_bic` to a peer's message endpoint: requests signed
    with `credentials.own`, answers checked with `credentials.peer`."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        own_bic: str,
        credentials: signing.Credentials,
        peer_bic: str,
        timeout_s: float = 10.0,
    ) -> None:
        self._session = session
        self.url = url
        self._path = URL(url).raw_path
        self.own_bic = own_bic
        self._credentials = credentials
        self.peer_bic = peer_bic
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def send(self, document: Document, timeout_s: float | None = None) -> Reply:
        """Sign and post one document; decode the answer when it carries a message."""
        body = codec.encode(wrap(self.own_bic, self.peer_bic, document))
        return await self.post(body, timeout_s)

    async def post(self, body: bytes, timeout_s: float | None = None) -> Reply:
        """Post already-encoded bytes, signed; raises aiohttp/asyncio errors on transport faults
        and AnswerNotAuthentic (an aiohttp.ClientError) for an answer the peer did not sign."""
        status, content_type, payload = await self.exchange(body, timeout_s)
        message = None
        if payload and content_type == XML_CONTENT_TYPE:
            message = codec.decode(payload)
        return Reply(status, message, "" if message else payload.decode(errors="replace"))

    async def exchange(self, body: bytes, timeout_s: float | None = None
                       ) -> tuple[int, str, bytes]:
        """Post signed bytes; the answer's HTTP status, content type and body, checked but
        undecoded, for a load generator that decodes once the clock has stopped."""
        headers = signing.sign(self.own_bic, self._credentials.own, self._path, body)
        timeout = self._timeout if timeout_s is None else aiohttp.ClientTimeout(total=timeout_s)
        async with self._session.post(
            self.url, data=body, headers=headers, timeout=timeout
        ) as response:
            answer = await response.read()
            check_answer(response, answer, self.peer_bic, self._credentials.peer, headers)
            return response.status, response.content_type, answer


def check_answer(response: aiohttp.ClientResponse, answer: bytes, peer_bic: str,
                 key: signing.VerifyKey, request_headers: Mapping[str, str]) -> None:
    """Raise AnswerNotAuthentic unless `peer_bic` signed this answer to this request; a 401
    is the one answer given before the peer knows who asks, and is taken unsigned."""
    if response.status == HTTPStatus.UNAUTHORIZED:
        return
    try:
        signing.verify_answer(response.headers, peer_bic, key, response.status,
                              request_headers, answer)
    except signing.SignatureError as error:
        raise AnswerNotAuthentic(
            response.request_info, response.history, status=response.status,
            message=f"{error}: {answer[:200].decode(errors='replace').strip()}",
        ) from None


@dataclass(frozen=True, slots=True)
class Sender:
    """A party that may post to this one: the credentials between them (whose `peer` checks
    its requests and whose `own` signs the answers to it) and the largest body it may send."""

    credentials: signing.Credentials
    max_body_bytes: int = codec.MAX_MESSAGE_BYTES
    mtls: bool = False  # its requests only over TLS with its client certificate


@dataclass(frozen=True, slots=True)
class SignedMessage:
    """An authenticated inbound message: who signed it, what it says, its body's SHA-256."""

    signer: str
    message: BusinessMessage
    body_sha256: bytes


def _refuse(error: type[web.HTTPException], text: str, **kwargs: object) -> web.HTTPException:
    """A refusal made before the body is read: the connection closes after it (aiohttp drops
    what is still in flight for at most transport.MAX_LINGERING_S), so no body is kept."""
    refusal = error(text=text, **kwargs)  # type: ignore[arg-type]
    refusal.force_close()
    return refusal


def _check_content(headers: Mapping[str, str]) -> None:
    content_type = headers.get("Content-Type")
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime != XML_CONTENT_TYPE:
        raise _refuse(web.HTTPUnsupportedMediaType,
                      f"415 unsupported media type: messages are sent as {XML_CONTENT_TYPE}, "
                      f"not {content_type[:80] if content_type else 'without a Content-Type'};"
                      " nothing was taken\n")
    encoding = headers.get("Content-Encoding", "identity").strip().lower()
    if encoding != "identity":
        raise _refuse(web.HTTPUnsupportedMediaType,
                      f"415 unsupported media type: Content-Encoding {encoding[:40]} is not "
                      "accepted; the signature covers the bytes as sent\n")


async def _read_body(request: web.Request, connection: GuardedConnection | HotConnection,
                     sender: str,
                     max_bytes: int) -> bytes:
    """The body of an authenticated sender, refused (413) as soon as it passes `max_bytes`,
    chunked or not, within the connection's body deadline and the bytes being read the sender
    may hold (transport.BodyBudgets: the small lane, or its share of the server's budget)."""
    bodies = connection.guard.bodies
    length = request.content_length
    reserved = min(max_bytes if length is None else length, max_bytes, bodies.shared.total_bytes)
    try:
        async with bodies.reserve(sender, reserved, max_bytes, connection.body_time_left_s()):
            return await _read_reserved(request, max_bytes)
    except TimeoutError:
        raise _refuse(web.HTTPRequestTimeout, f"408: no room to read this body in time: "
                      f"{sender}'s bodies being read hold "
                      f"{count(bodies.held_by(sender), 'byte')}, or "
                      "the switch is reading too many large bodies; retry later (nothing was "
                      "taken)\n") from None


async def _read_reserved(request: web.Request, max_bytes: int) -> bytes:
    try:
        chunks, size = [], 0
        while chunk := await request.content.readany():
            size += len(chunk)
            if size > max_bytes:
                raise _refuse(web.HTTPRequestEntityTooLarge,
                              f"413: the body is over your limit of {count(max_bytes, 'byte')}\n",
                              max_size=max_bytes, actual_size=size)
            chunks.append(chunk)
        return b"".join(chunks)
    except ConnectionError:  # dropped at its body deadline, or gone
        raise _refuse(web.HTTPRequestTimeout, "408: the body did not arrive in time\n") from None
    except RuntimeError:  # aiohttp's "Connection closed.": the sender gave up mid-body
        if request.transport is not None and not request.transport.is_closing():
            raise
        raise _refuse(web.HTTPRequestTimeout, "408: the connection closed before the body "
                      "was whole\n") from None


# the request's Claim, once its signature checks
SIGNED_REQUEST = web.RequestKey("signed_request", signing.Claim)
# Why a request did not authenticate: a fixed set, so that a metric's label values are few.
AUTH_FAILURE_REASONS = ("unsigned", "unknown_signer", "bad_signature", "before_start",
                        "replay", "body", "mtls", "admin_token")
UNKNOWN_SIGNER = "unknown"  # a claimed keyid no sender has: one label value for all of them
NO_SIGNER = "none"  # the request named no keyid
# Told of every request that did not authenticate: (reason, claimed signer label), the label
# a sender's BIC, OPERATOR, UNKNOWN_SIGNER or NO_SIGNER (an app sets it for its metrics).
AUTH_FAILED = web.AppKey("auth_failed", Callable[[str, str], None])


def _auth_failed(request: web.Request, reason: str, keyid: str | None,
                 senders: Mapping[str, object], what: str) -> None:
    """One request that did not authenticate: a bounded log line naming the claimed signer
    (protocol/peerlog.py) and the app's metric, its keyid label bounded to known senders."""
    connection = request.protocol
    if isinstance(connection, GuardedConnection | HotConnection):
        connection.guard.failures.client(connection.peer_address(), what, keyid)
    told = request.config_dict.get(AUTH_FAILED)
    if told is not None:
        told(reason, NO_SIGNER if keyid is None else keyid if keyid in senders
             else UNKNOWN_SIGNER)


class _PeerKeys(Mapping[str, signing.VerifyKey]):
    """The keys that check each sender, as signing.claim looks them up."""

    __slots__ = ("_senders",)

    def __init__(self, senders: Mapping[str, Sender]) -> None:
        self._senders = senders

    def __getitem__(self, bic: str) -> signing.VerifyKey:
        return self._senders[bic].credentials.peer

    def __contains__(self, bic: object) -> bool:
        return bic in self._senders

    def __iter__(self) -> Iterator[str]:
        return iter(self._senders)

    def __len__(self) -> int:
        return len(self._senders)


def guarded(request: web.Request) -> GuardedConnection | HotConnection:
    """The request's connection, which must come from protocol.runtime.serve."""
    connection = request.protocol
    if not isinstance(connection, GuardedConnection | HotConnection):
        raise TypeError("a signed request needs a server started by protocol.runtime.serve")
    return connection


def authenticate(request: web.Request, senders: Mapping[str, Sender]) -> signing.Claim:
    """Authenticate a request from its head alone (RFC 9421, protocol/signing.py), before any
    of its body is read or any budget charged: 401 for no, a bad, a stale or a replayed
    signature (its request id taken within the window) or an unknown signer; 503 when the
    server remembers too many request ids, or the signer already holds its share of
    connections. The request id is not taken here but by `check_body`, once the body is
    verified too. From here on the answer is signed (`sign_answers`) and the connection is
    the signer's (out of the unauthenticated pool)."""
    connection = guarded(request)
    try:
        claimed = signing.claim(request.method, request.raw_path, request.headers,
                                _PeerKeys(senders))
    except signing.SignatureError as error:
        keyid = signing.claimed_keyid(request.headers)
        reason = ("unsigned" if signing.SIGNATURE_INPUT_HEADER not in request.headers
                  else "bad_signature" if keyid in senders else "unknown_signer")
        _auth_failed(request, reason, keyid, senders, f"401 {error}")
        raise _refuse(web.HTTPUnauthorized, f"401 unauthenticated: {error}\n") from None
    request_ids = connection.guard.request_ids
    if request_ids.predates(claimed.created_s):
        _auth_failed(request, "before_start", claimed.signer, senders,
                     f"401 {claimed.signer}'s request signed before this server started")
        raise _refuse(web.HTTPUnauthorized, "401 unauthenticated: signed before this server "
                      "started, so it cannot know the request id was not used before a "
                      "restart: sign the request anew\n")
    try:
        replayed = request_ids.seen(claimed.signer, claimed.nonce)
    except ReplayWindowFull as error:
        raise _window_full(error) from None
    if replayed:
        raise _replay(request, claimed, senders)
    request[SIGNED_REQUEST] = claimed
    if senders[claimed.signer].mtls and claimed.signer != tls.peer_name(
            request.transport.get_extra_info("peercert") if request.transport else None):
        _auth_failed(request, "mtls", claimed.signer, senders,
                     f"401 {claimed.signer}'s request without its TLS client certificate")
        raise _refuse(web.HTTPUnauthorized, f"401 unauthenticated: {claimed.signer} sends "
                      "over mutual TLS only: its requests must come with its TLS client "
                      "certificate (protocol/tls.py)\n")
    if not connection.take(claimed.signer):
        raise _refuse(web.HTTPServiceUnavailable, _busy_text(connection, claimed.signer),
                      headers={"Retry-After": "1"})
    return claimed


def check_body(request: web.Request, claimed: signing.Claim, body: bytes,
               senders: Mapping[str, object]) -> None:
    """401 unless the body is the one whose Content-Digest the signature covers; then the
    request id is taken (protocol/replay.py): 401 when a twin of this request took it first,
    503 when the server remembers too many. An id is used up only by a request that verified
    whole, so a captured signed head sent with another body burns nothing."""
    try:
        signing.check_body(claimed, body)
    except signing.SignatureError as error:
        _auth_failed(request, "body", claimed.signer, senders, f"401 {error}")
        raise _refuse(web.HTTPUnauthorized, f"401 unauthenticated: {error}\n") from None
    try:
        fresh = guarded(request).guard.request_ids.take(claimed.signer, claimed.nonce)
    except ReplayWindowFull as error:
        raise _window_full(error) from None
    if not fresh:
        raise _replay(request, claimed, senders)


def _window_full(error: ReplayWindowFull) -> web.HTTPException:
    return _refuse(web.HTTPServiceUnavailable, f"503: {error}; retry later (nothing was "
                   "taken)\n", headers={"Retry-After": "1"})


def _replay(request: web.Request, claimed: signing.Claim, senders: Mapping[str, object]
            ) -> web.HTTPException:
    _auth_failed(request, "replay", claimed.signer, senders,
                 f"401 a replay of {claimed.signer}'s request {claimed.nonce}")
    return _refuse(web.HTTPUnauthorized, f"401 unauthenticated: the request id (nonce) "
                   f"{claimed.nonce} was already used by {claimed.signer}: a replay is "
                   "refused; sign every request anew\n")


async def read_signed(request: web.Request, senders: Mapping[str, Sender], own_bic: str
                      ) -> SignedMessage:
    """Authenticate and decode an inbound request, or raise the HTTP error a sender should see.

    From the head, before any of the body is read (`authenticate`): 401, 503; then 415 for a
    Content-Type other than application/xml (or any Content-Encoding), 413 for a
    Content-Length over the sender's limit. Then the body is read within the sender's limit
    (413 as soon as it is passed, chunked or not) and the connection's deadline (408, or the
    connection closes): 401 for a body that is not the signed Content-Digest's, 400 FF01 for
    a body that is not a well-formed ISO 20022 message or whose head.001 names another
    receiver than `own_bic`, 403 when the head.001 sender is not the signer. Every answer
    from `authenticate` on is signed (`sign_answers`).
    """
    claimed = authenticate(request, senders)
    connection = guarded(request)
    _check_content(request.headers)
    sender = senders[claimed.signer]
    length = request.content_length
    if length is not None and length > sender.max_body_bytes:
        raise _refuse(web.HTTPRequestEntityTooLarge,
                      f"413: {length:,} bytes is over your limit of {sender.max_body_bytes:,}\n",
                      max_size=sender.max_body_bytes, actual_size=length)
    body = await _read_body(request, connection, claimed.signer, sender.max_body_bytes)
    check_body(request, claimed, body, senders)
    try:
        message = codec.decode(body, sender.max_body_bytes)
    except codec.CodecError as error:
        raise web.HTTPBadRequest(text=f"{error.reason_code}: {error}\n") from None
    if message.header.from_bic != claimed.signer:
        raise web.HTTPForbidden(
            text=f"403 forbidden: head.001 names sender {message.header.from_bic} "
            f"but the request is signed by {claimed.signer}; no participant may send as "
            "another\n"
        )
    if message.header.to_bic != own_bic:
        raise web.HTTPBadRequest(text=f"FF01: head.001 names receiver {message.header.to_bic};"
                                 f" this is {own_bic}\n")
    return SignedMessage(claimed.signer, message, claimed.body_sha256)


def _busy_text(connection: GuardedConnection | HotConnection, peer: str) -> str:
    most = connection.guard.limits.max_connections_per_peer
    return (f"503: {peer} already holds {count(most, 'connection')}, the most one participant "
            "may; reuse them (nothing was taken)\n")


def sign_answers(own_bic: str, senders: Mapping[str, Sender]) -> Middleware:
    """Sign every answer to a request whose signature checked (read_signed), errors included,
    with the key this party holds towards its sender. Put it first among the middlewares."""

    def signed(request: web.Request, response: web.StreamResponse) -> None:
        claimed: signing.Claim | None = request.get(SIGNED_REQUEST)
        if claimed is None or not isinstance(response, web.Response):
            return
        body = response.body
        if "Content-Type" not in response.headers:
            response.headers["Content-Type"] = response.content_type
        response.headers.update(signing.sign_answer(
            own_bic, senders[claimed.signer].credentials.own, response.status,
            claimed.signature, body if isinstance(body, bytes) else b"",
            response.headers["Content-Type"]))

    @web.middleware
    async def sign(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as refusal:
            signed(request, refusal)
            raise
        signed(request, response)
        return response

    return sign


def xml_response(
    from_bic: str, to_bic: str, document: Document, status: int = 200
) -> web.Response:
    """An HTTP response carrying one ISO 20022 message."""
    body = codec.encode(wrap(from_bic, to_bic, document))
    return web.Response(body=body, status=status, content_type=XML_CONTENT_TYPE)


OPERATOR = "(operator)"  # the owner of connections authenticated by the admin token
# A change through an admin API names itself (draft-ietf-httpapi-idempotency-key-header), so a
# repeat of it (a retry, or a captured one replayed) changes nothing.
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def idempotency_key() -> dict[str, str]:
    """A fresh Idempotency-Key header for one admin change."""
    return {IDEMPOTENCY_KEY_HEADER: signing.new_nonce()}


def bearer_auth(path_prefix: str, token: str, keyed_changes: bool = False) -> Middleware:
    """Require `Authorization: Bearer <token>` on every path under `path_prefix` (admin APIs);
    a connection that carried the token is the operator's, out of the unauthenticated pool.
    With `keyed_changes`, a change (not GET/HEAD/OPTIONS) also needs an Idempotency-Key of 16
    to 64 url-safe characters (400); the service makes each keyed change once."""
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(path_prefix):
            given = request.headers.get("Authorization", "").encode()
            connection = request.protocol
            if not hmac.compare_digest(given, expected):
                _auth_failed(request, "admin_token", OPERATOR, {OPERATOR: None},
                             f"401 the admin token refused for {request.method} "
                             f"{request.path}")
                raise web.HTTPUnauthorized(
                    text="401: the admin API needs 'Authorization: Bearer <token>'\n")
            if isinstance(connection, GuardedConnection):
                connection.take(OPERATOR)
            if keyed_changes and request.method not in SAFE_METHODS:
                _check_idempotency_key(request)
        return await handler(request)

    return check


def _check_idempotency_key(request: web.Request) -> None:
    """400 unless the change names itself; what a key already used means is the service's
    (the switch journals it with the change: switch/admin.py `keyed`)."""
    key = request.headers.get(IDEMPOTENCY_KEY_HEADER, "")
    if signing.NONCE_PATTERN.fullmatch(key) is None:
        raise web.HTTPBadRequest(text=f"400: a change through the admin API needs an "
                                 f"{IDEMPOTENCY_KEY_HEADER} header, 16 to 64 characters of "
                                 "A-Z a-z 0-9 _ - new for each change (e.g. "
                                 f"{signing.new_nonce()}); nothing was done\n")


def run_alongside(app: web.Application, start: Callable[[], Awaitable[None]],
                  stop: Callable[[], Awaitable[None]]) -> None:
    """Start a service when its application starts serving, and stop it on cleanup."""

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await start()
        yield
        await stop()

    app.cleanup_ctx.append(lifecycle)
