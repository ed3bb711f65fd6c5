"""The directory API's wire: paths, limits, and signed JSON both ways.

The population register asks the switch to link, move and unlink citizens' payout accounts at
their request; a participant reads its entries and their changes and unlinks its own. Both
sign JSON requests exactly as ISO 20022 messages are signed (`protocol.signing`: RFC 9421
over the method, the path with its query and the body's Content-Digest), and the switch
signs its answers as it signs every answer. The switch's side reads them with `read_signed_json`;
`SignedJsonClient` is the asking side, `DirectoryClient` a participant's, `CitizenLinksClient`
the register's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, TypeVar

import aiohttp
import pydantic
from aiohttp import web
from yarl import URL

from protocol import signing
from protocol.http import Sender, authenticate, check_body

ENTRIES_PATH = "/v1/directory/entries"
CHANGES_PATH = "/v1/directory/changes"
CITIZEN_LINKS_PATH = "/v1/directory/links"  # the population register's, for citizens
MAX_ENTRIES_PER_REQUEST = 1_000
MAX_BODY_BYTES = 1024 * 1024  # a thousand entries take about 200 KB
JSON_CONTENT_TYPE = "application/json"


class DirectoryError(Exception):
    """The peer refused a signed JSON request as a whole: `status` and its sentence."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text.strip()}")
        self.status = status


async def read_body(request: web.Request, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    """The request's body, or 413 when it is over `max_bytes` (read no further than that)."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise web.HTTPRequestEntityTooLarge(max_size=max_bytes,
                                            actual_size=request.content_length)
    chunks, size = [], 0
    while chunk := await request.content.read(max_bytes + 1 - size):  # up to that, not all
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise web.HTTPRequestEntityTooLarge(max_size=max_bytes, actual_size=size)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """JSON from a body (None when empty), or 400 saying why it is not JSON."""
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as error:
        raise web.HTTPBadRequest(text=f"400: the body is not JSON: {error}\n") from None


M = TypeVar("M", bound=pydantic.BaseModel)
MAX_PROBLEMS_SHOWN = 10  # of a body's problems, in one 400


def parse_model(model: type[M], data: Any) -> M:
    """The JSON body as `model`, or 400 naming each problem by its place in the body (at most
    MAX_PROBLEMS_SHOWN): the switch's directory API and the population register read their
    requests alike."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, p['loc'])) or 'body'}: {p['msg']}"
                             for p in error.errors()[:MAX_PROBLEMS_SHOWN])
        raise web.HTTPBadRequest(text=f"400: {problems}\n") from None


async def read_signed_json(request: web.Request, senders: Mapping[str, Sender],
                           max_bytes: int = MAX_BODY_BYTES) -> tuple[str, Any]:
    """The signer and the JSON body (None when empty) of a signed request, or the HTTP error
    a sender should see: 401 unsigned, unknown, stale or replayed (from the head, before the
    body is read: `protocol.http.authenticate`), 413 too large, 401 a body that is not the
    signed one, 400 not JSON. The answer to it is signed (`protocol.http.sign_answers`)."""
    claimed = authenticate(request, senders)
    body = await read_body(request, max_bytes)
    check_body(request, claimed, body, senders)
    return claimed.signer, parse_json(body)


class SignedJsonClient:
    """One party's signed JSON channel to a peer (the switch, the population register):
    requests signed with `credentials.own`, answers checked with `credentials.peer`."""

    def __init__(self, session: aiohttp.ClientSession, peer_url: str, own_bic: str,
                 credentials: signing.Credentials, peer_bic: str,
                 timeout_s: float = 30.0) -> None:
        self._session = session
        self._base = peer_url.rstrip("/")
        self.own_bic = own_bic
        self._credentials = credentials
        self._peer_bic = peer_bic
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def _call(self, method: str, path: str, payload: object = None,
                    ok: tuple[int, ...] = (200,)) -> tuple[int, Any]:
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        url = URL(self._base + path)
        headers = signing.sign(self.own_bic, self._credentials.own, url.raw_path_qs, body,
                               method=method, content_type=JSON_CONTENT_TYPE)
        async with self._session.request(method, url, data=body, headers=headers,
                                         timeout=self._timeout) as response:
            answer = await response.read()
            if response.status != HTTPStatus.UNAUTHORIZED:
                try:
                    signing.verify_answer(response.headers, self._peer_bic,
                                          self._credentials.peer, response.status,
                                          headers, answer)
                except signing.SignatureError as error:
                    raise DirectoryError(response.status, f"an answer {self._peer_bic} did "
                                         f"not sign ({error})") from None
            if response.status not in ok:
                raise DirectoryError(response.status, answer.decode(errors="replace"))
            return response.status, json.loads(answer)


class DirectoryClient(SignedJsonClient):
    """A participant's signed channel to the switch's directory API."""

    async def register(self, entries: list[Mapping[str, str]]) -> list[dict[str, str]]:
        """Ask to link entries (citizen_id, account_id, holder_name): always refused, 403 (a
        participant cannot create or move a link); kept so that a bank's client sees why.
        Raises DirectoryError."""
        _, answer = await self._call("POST", ENTRIES_PATH, {"entries": list(entries)})
        return list(answer["results"])

    async def unlink(self, citizen_id: str) -> bool:
        """Unlink this participant's entry for the citizen id; False when it has none."""
        status, _ = await self._call("DELETE", f"{ENTRIES_PATH}/{citizen_id}", ok=(200, 404))
        return status == 200

    async def entry(self, citizen_id: str) -> dict[str, Any] | None:
        """This participant's active entry for the citizen id, or None."""
        status, answer = await self._call("GET", f"{ENTRIES_PATH}/{citizen_id}", ok=(200, 404))
        return answer if status == 200 else None

    async def changes(self, after_seq: int = 0, limit: int = 1_000) -> list[dict[str, Any]]:
        """The journaled changes of this participant's entries, oldest first."""
        _, answer = await self._call("GET", f"{CHANGES_PATH}?after_seq={after_seq}"
                                     f"&limit={limit}")
        return list(answer["changes"])


class CitizenLinksClient(SignedJsonClient):
    """The population register's signed channel to the switch: citizens' own requests."""

    async def link(self, links: list[Mapping[str, str]]) -> list[dict[str, str]]:
        """Link, update or move (citizen_id, participant_bic, account_id, holder_name) each,
        at most MAX_ENTRIES_PER_REQUEST; the switch's verdict per link, in order. Raises
        DirectoryError when the request is refused as a whole."""
        _, answer = await self._call("POST", CITIZEN_LINKS_PATH, {"links": list(links)})
        return list(answer["results"])

    async def unlink(self, citizen_id: str, why: str) -> bool:
        """Unlink the citizen's entry wherever it is (`why`: a word for the journal, such as
        "death" or "citizen"); False when there is none."""
        status, _ = await self._call("DELETE", f"{CITIZEN_LINKS_PATH}/{citizen_id}?why={why}",
                                     ok=(200, 404))
        return status == 200
