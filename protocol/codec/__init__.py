"""ISO 20022 codec: messages.py dataclasses to XML and back, on the hot path of every transfer.

One HTTP body is an envelope, `<Envelope xmlns="urn:switchlab:envelope:1">`, holding a head.001
AppHdr then the Document it announces. Each message version is one registered class
(`protocol.codec.pacs008` and its siblings); encode writes the default version for the
dataclass's type, decode reads whichever version the Document's namespace names.

Input is untrusted: the body is size-capped before parsing, read as UTF-8 whatever it
declares (as ISO 20022 requires), any DTD is refused, the parser never resolves an entity,
opens a file or touches the network, and the number of transactions is capped before any
is read.
"""

from __future__ import annotations

import itertools
import os
import re
import time

from lxml import etree

from protocol.codec import (  # noqa: F401 (register)
    acmt023,
    acmt024,
    camt053,
    pacs002,
    pacs004,
    pacs008,
    pacs028,
)
from protocol.codec.base import (
    BY_NAMESPACE,
    DEFAULT_FOR_TYPE,
    ENVELOPE_NS,
    HEAD_NS,
    MAX_INFO_CHARS,
    MAX_MESSAGE_BYTES,
    MAX_TRANSACTIONS_PER_MESSAGE,
    CodecError,
    MessageCodec,
    esc,
    parse_timestamp,
    register,
    timestamp,
)
from protocol.messages import AppHeader, BusinessMessage

__all__ = [
    "ENVELOPE_NS", "HEAD_NS", "MAX_INFO_CHARS", "MAX_MESSAGE_BYTES",
    "MAX_TRANSACTIONS_PER_MESSAGE", "CodecError", "MessageCodec", "decode", "encode", "new_id",
    "register",
]


class _NoExternalFiles(etree.Resolver):
    """Defence in depth: libxml2 opened a DOCTYPE's external subset (SYSTEM "file://...")
    even with load_dtd=False (lxml 6.1.3, UTF-16 body); any such request gets nothing."""

    def resolve(self, system_url: str, public_id: str, context: object) -> object:
        return self.resolve_string("", context)


# ISO 20022 messages are UTF-8: forcing it means a DOCTYPE can only be written as the bytes
# b"<!DOCTYPE", which _parse looks for, not hidden in UTF-16 or another declared encoding.
_PARSER = etree.XMLParser(
    encoding="utf-8", resolve_entities=False, no_network=True, load_dtd=False,
    dtd_validation=False, huge_tree=False, remove_comments=True, remove_pis=True,
    collect_ids=False,
)
_PARSER.resolvers.add(_NoExternalFiles())
_POSITION = re.compile(r",? line \d+, column \d+$")
# libxml2's advice to its caller, not to the sender: never passed on ("use XML_PARSE_HUGE").
_LIBXML_ADVICE = re.compile(r",? use XML_PARSE_HUGE option")
_DEPTH = re.compile(r"Excessive depth in document: (\d+)")
_ENVELOPE_TAG = f"{{{ENVELOPE_NS}}}Envelope"
_APP_HEADER_TAG = f"{{{HEAD_NS}}}AppHdr"


# ---- ids -----------------------------------------------------------------------------------


def _salt() -> str:
    return f"{os.getpid() % 4096:03x}{int.from_bytes(os.urandom(2), 'big'):04x}"


_id_salt = _salt()
_id_counter = itertools.count()


def _after_fork() -> None:
    """A forked worker must not repeat its parent's ids."""
    global _id_salt, _id_counter
    _id_salt, _id_counter = _salt(), itertools.count()


os.register_at_fork(after_in_child=_after_fork)


def new_id(prefix: str) -> str:
    """A unique Max35Text id: up to 11 characters of prefix, then the time in ms (11 hex),
    a per-process salt (pid and random, 7 hex) and a counter (6 hex)."""
    return (f"{prefix[:11]}{int(time.time() * 1000):011x}{_id_salt}"
            f"{next(_id_counter) & 0xFFFFFF:06x}")


# ---- writing -------------------------------------------------------------------------------


def _app_header(header: AppHeader) -> str:
    return (
        f'<AppHdr xmlns="{HEAD_NS}"><Fr><FIId><FinInstnId><BICFI>{esc(header.from_bic)}</BICFI>'
        f"</FinInstnId></FIId></Fr><To><FIId><FinInstnId><BICFI>{esc(header.to_bic)}</BICFI>"
        f"</FinInstnId></FIId></To><BizMsgIdr>{esc(header.biz_msg_id)}</BizMsgIdr>"
        f"<MsgDefIdr>{esc(header.msg_def_id)}</MsgDefIdr><CreDt>{timestamp(header.created_at)}"
        "</CreDt></AppHdr>"
    )


def encode(message: BusinessMessage) -> bytes:
    """The HTTP body for a message: UTF-8 XML, an envelope with its header and document.

    Raises ValueError when the header names another message than the document's, and
    CodecError for text XML cannot carry (control characters).
    """
    document = message.document
    codec = DEFAULT_FOR_TYPE.get(type(document))
    if codec is None:
        raise ValueError(f"no codec writes {type(document).__name__}")
    if message.header.msg_def_id != codec.msg_def_id:
        raise ValueError(f"AppHdr/MsgDefIdr says {message.header.msg_def_id} but a "
                         f"{type(document).__name__} is written as {codec.msg_def_id}")
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Envelope xmlns="{ENVELOPE_NS}">'
        f"{_app_header(message.header)}{codec.build(document)}</Envelope>"
    ).encode()


# ---- reading -------------------------------------------------------------------------------


def _parse(body: bytes, max_bytes: int) -> etree._Element:
    """Untrusted bytes to a tree: size-capped, no DTD, no entities, no network."""
    if len(body) > max_bytes:
        raise CodecError(f"the message is {len(body)} bytes, over the limit of {max_bytes}")
    # Refused before parsing; the docinfo check below catches encodings such as UTF-16.
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise CodecError("DTDs and entities are not accepted")
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as error:
        line, column = error.position
        problem = _LIBXML_ADVICE.sub("", _POSITION.sub("", error.msg or ""))
        problem = _DEPTH.sub(r"elements nested more than \1 deep (an ISO 20022 message "
                             "needs about 10)", problem)
        raise CodecError(f"not well-formed XML at line {line}, column {column}: {problem}"
                         ) from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise CodecError("DTDs and entities are not accepted")
    return root


def decode(body: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> BusinessMessage:
    """Read an HTTP body; raises CodecError (FF01) naming what is malformed or missing.

    Business errors (counts, control sums, amounts, currencies) are left for the switch,
    which rejects them per transaction with their own reason codes.
    """
    envelope = _parse(body, max_bytes)
    if envelope.tag != _ENVELOPE_TAG:
        raise CodecError(f"the root element is {envelope.tag}, not Envelope in {ENVELOPE_NS}")
    if len(envelope) != 2:
        raise CodecError(f"Envelope holds {len(envelope)} elements, not AppHdr then Document")
    app_header, document = envelope
    if app_header.tag != _APP_HEADER_TAG:
        raise CodecError(f"the first element of Envelope is {app_header.tag}, not head.001 "
                         "AppHdr")
    name = etree.QName(document)
    codec = BY_NAMESPACE.get(name.namespace or "")
    if codec is None or name.localname != "Document":
        raise CodecError(f"the second element of Envelope is {document.tag}, not a Document "
                         "switchlab reads")
    message = next(document.iterchildren(codec.root_tag), None)
    if message is None:
        raise CodecError(f"the {codec.msg_def_id} Document holds no {codec.root}")
    count = codec.count_items(message)
    if count > MAX_TRANSACTIONS_PER_MESSAGE:
        raise CodecError(f"{count} {codec.items} in one message, over the limit of "
                         f"{MAX_TRANSACTIONS_PER_MESSAGE}")
    header, group, items = codec.read(envelope, message, count)
    codec.check(header, group, items)
    from_bic, to_bic, biz_msg_id, msg_def_id, created_at = header
    if msg_def_id.strip() != codec.msg_def_id:
        raise CodecError(f"AppHdr/MsgDefIdr says {msg_def_id} but the Document is "
                         f"{codec.msg_def_id}")
    return BusinessMessage(
        header=AppHeader(from_bic=from_bic, to_bic=to_bic, biz_msg_id=biz_msg_id,
                         msg_def_id=codec.msg_def_id,
                         created_at=parse_timestamp(created_at, "AppHdr/CreDt")),
        document=codec.make(group, items),
    )
