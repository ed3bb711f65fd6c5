"""HMAC-SHA256 request signing between participants and the switch.

Why HMAC over the body: every participant already holds a secret provisioned by the scheme,
a signature costs a few microseconds per message (mTLS plus XML-DSig, as production schemes
use, costs milliseconds and a PKI this lab does not need), and it binds the sender's identity
to the exact bytes, so the switch can check that the head.001 sender is the signer.
The timestamp bounds replays to a window; the ids inside the message make replays harmless.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

PARTICIPANT_HEADER = "X-Switchlab-Participant"
TIMESTAMP_HEADER = "X-Switchlab-Timestamp"
SIGNATURE_HEADER = "X-Switchlab-Signature"
MAX_CLOCK_SKEW_S = 300


class SignatureError(Exception):
    """The request is not signed, or not by whom it claims."""


def _mac(secret: bytes, timestamp: str, path: str, body: bytes) -> str:
    message = b"%s\n%s\n" % (timestamp.encode(), path.encode())
    return hmac.new(secret, message + body, hashlib.sha256).hexdigest()


def sign(participant_bic: str, secret: bytes, path: str, body: bytes) -> dict[str, str]:
    """Headers that authenticate `body` sent to `path` as `participant_bic`."""
    timestamp = str(int(time.time()))
    return {
        PARTICIPANT_HEADER: participant_bic,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: _mac(secret, timestamp, path, body),
        "Content-Type": "application/xml",
    }


def verify(
    headers: Mapping[str, str],
    path: str,
    body: bytes,
    secrets: Mapping[str, bytes],
    now_s: float | None = None,
) -> str:
    """Return the BIC that signed the request, or raise SignatureError saying why not."""
    bic = headers.get(PARTICIPANT_HEADER)
    timestamp = headers.get(TIMESTAMP_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    if not bic or not timestamp or not signature:
        raise SignatureError(
            f"missing {PARTICIPANT_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header"
        )
    secret = secrets.get(bic)
    if secret is None:
        raise SignatureError(f"unknown participant {bic!r}")
    try:
        skew_s = abs((time.time() if now_s is None else now_s) - int(timestamp))
    except ValueError:
        raise SignatureError(f"{TIMESTAMP_HEADER} is not a unix time: {timestamp!r}") from None
    if skew_s > MAX_CLOCK_SKEW_S:
        raise SignatureError(f"timestamp is {skew_s:.0f} s off; at most {MAX_CLOCK_SKEW_S} s")
    if not hmac.compare_digest(_mac(secret, timestamp, path, body), signature):
        raise SignatureError(f"signature does not match the body for participant {bic}")
    return bic
