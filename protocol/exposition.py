"""Prometheus exposition over aiohttp, behind a bearer token, for the switch and the mock banks.

Prometheus scrapers send the token themselves (`authorization: {credentials_file: …}` in a
scrape configuration); the format follows the scraper's Accept header (text or OpenMetrics),
as the official client library negotiates it.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from protocol import reasons

METRICS_PATH = "/metrics"
OTHER_REASON = "other"


def reason_label(code: str | None) -> str:
    """A reason code as a label value: the code when it is one the scheme uses, "" for none,
    OTHER_REASON for anything else, so that a participant writing made-up codes cannot create
    series at will."""
    if not code:
        return ""
    return code if code in reasons.DESCRIPTIONS else OTHER_REASON


def metrics_response(request: web.Request, registry: CollectorRegistry, token: str
                     ) -> web.Response:
    """The registry's current values; 401 unless `Authorization: Bearer <token>`."""
    given = request.headers.get("Authorization", "").encode()
    if not hmac.compare_digest(given, f"Bearer {token}".encode()):
        raise web.HTTPUnauthorized(
            text=f"401: {METRICS_PATH} needs 'Authorization: Bearer <token>'\n",
            headers={"WWW-Authenticate": "Bearer"})
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return web.Response(body=encoder(registry), headers={"Content-Type": content_type})
