"""Who may send what to the switch: each participant's credentials in the scheme's signing
mode, the largest body its kind may send, and the items a decoded message may hold.

The transport's own limits (deadlines, connections, the body budget) are in
protocol/transport.py and the switch's `transport:` settings; reading and authenticating is
protocol/http.py's `read_signed`. This module says what the scheme allows each participant.
"""

from __future__ import annotations

from aiohttp import web

from protocol.http import Sender
from protocol.keys import read_private_key, read_public_key
from protocol.messages import BusinessMessage, StatusRequest
from protocol.signing import Credentials
from switch.config import Kind, ParticipantConfig, RegisterConfig, SwitchConfig


def _credentials(config: SwitchConfig, participant: ParticipantConfig | RegisterConfig
                 ) -> Credentials:
    who = participant.bic if isinstance(participant, ParticipantConfig) else participant.id
    if config.signing == "hmac":
        if participant.secret is None:
            raise ValueError(f"participant {who} has no secret (hmac signing)")
        return Credentials.shared(participant.secret)
    if config.private_key is None or participant.public_key is None:
        raise ValueError(f"ed25519 signing needs the switch's private_key and a public_key for "
                         f"{who}")
    return Credentials(read_private_key(config.private_key),
                       read_public_key(participant.public_key))


def senders(config: SwitchConfig) -> dict[str, Sender]:
    """Every admitted participant as a Sender: its credentials (the switch signs what it sends
    it with `own`, checks what it sends with `peer`) and its kind's body limit. Raises
    ValueError when a key the mode needs is missing."""
    return {bic: Sender(_credentials(config, participant),
                        config.limits_of(participant.kind).max_body_bytes, participant.mtls)
            for bic, participant in config.participants.items()}


def register_senders(config: SwitchConfig) -> dict[str, Sender]:
    """The population register as a Sender of directory requests, when there is one: apart
    from the participants, so that it can post no ISO 20022 message."""
    register = config.population_register
    if register is None:
        return {}
    return {register.id: Sender(_credentials(config, register), config.bank_limits.max_body_bytes)}


def check_items(config: SwitchConfig, kind: Kind, message: BusinessMessage) -> None:
    """Refuse (413, a sentence) a decoded message holding more items than its type allows the
    sender: a pacs.028 asks about at most `max_inquiry_ids` ids (the scheme's 1,000); a pacs.008,
    pacs.002 or pacs.004 holds at most the kind's `max_items`."""
    document = message.document
    if isinstance(document, StatusRequest):
        count, allowed = len(document.items), config.max_inquiry_ids
        what = "end-to-end ids in one pacs.028"
    else:
        items = getattr(document, "transactions", None) or getattr(document, "items", [])
        count, allowed = len(items), config.limits_of(kind).max_items
        what = f"items in one {message.header.msg_def_id[:8]} from a {kind}"
    if count > allowed:
        raise web.HTTPRequestEntityTooLarge(
            max_size=allowed, actual_size=count,
            text=f"413: {count:,} {what}; at most {allowed:,} (nothing was taken)\n")
