"""What switchlab emits is valid ISO 20022: checked against the official schemas and
round-tripped through pyiso20022's generated models, not against our own reading of them."""

from __future__ import annotations

import importlib
from functools import cache

import pytest
from lxml import etree
from xsdata.formats.dataclass.parsers import XmlParser
from xsdata.formats.dataclass.serializers import XmlSerializer

from protocol.codec import decode, encode
from protocol.iso_schemas import SCHEMA_FOLDER, shipped
from protocol.messages import MessageType
from tests.factories import every_message

MODELS = {  # pyiso20022 1.6 module of each message definition
    "pacs.008.001.08": "pyiso20022.pacs.pacs_008_001_08",
    "pacs.002.001.10": "pyiso20022.pacs.pacs_002_001_10",
    "pacs.028.001.03": "pyiso20022.pacs.pacs_028_001_03",
    "pacs.004.001.09": "pyiso20022.pacs.pacs_004_001_09",
    "camt.053.001.08": "pyiso20022.camt.camt_053_001_08",
}
MESSAGES = every_message()


@cache
def schema(msg_def_id: str) -> etree.XMLSchema:
    return etree.XMLSchema(file=str(SCHEMA_FOLDER / f"{msg_def_id}.xsd"))


def emitted(name: str) -> tuple[str, etree._Element, etree._Element]:
    """The message's MsgDefIdr and its AppHdr and Document elements, as encode wrote them."""
    message = MESSAGES[name]
    header, document = etree.fromstring(encode(message))
    return message.header.msg_def_id, header, document


def test_the_package_ships_the_schema_of_every_message_switchlab_speaks() -> None:
    """Issue #23: a fresh install validated nothing; the schemas are package data now, and
    their README names each file with its source and version."""
    assert shipped() == sorted([*MessageType, "head.001.001.02"])
    readme = (SCHEMA_FOLDER / "README.md").read_text(encoding="utf-8")
    assert all(f"| {name}.xsd |" in readme for name in shipped())


def test_every_message_type_is_covered() -> None:
    assert {message.header.msg_def_id for message in MESSAGES.values()} == set(MODELS)


@pytest.mark.parametrize("name", list(MESSAGES))
def test_emitted_document_and_header_validate_against_the_official_schemas(name: str) -> None:
    msg_def_id, header, document = emitted(name)
    for element, xsd in ((document, msg_def_id), (header, "head.001.001.02")):
        validator = schema(xsd)
        assert validator.validate(etree.ElementTree(element)), validator.error_log.last_error


@pytest.mark.parametrize("name", list(MESSAGES))
def test_emitted_document_round_trips_through_pyiso20022(name: str) -> None:
    """pyiso20022 reads what we wrote and writes it back its own way (prefixes, order of
    namespace declarations); our decode must read that to the same message."""
    msg_def_id, _, document = emitted(name)
    models = importlib.import_module(MODELS[msg_def_id])
    model = XmlParser().from_bytes(etree.tostring(document), models.Document)
    envelope = etree.fromstring(encode(MESSAGES[name]))
    envelope[1] = etree.fromstring(XmlSerializer().render(model).encode())
    assert decode(etree.tostring(envelope)) == decode(encode(MESSAGES[name]))


def test_head001_round_trips_through_pyiso20022() -> None:
    from pyiso20022.head.head_001_001_02 import AppHdr

    _, header, _ = emitted("pacs.008-one")
    model = XmlParser().from_bytes(etree.tostring(header), AppHdr)
    assert model.fr.fiid.fin_instn_id.bicfi == "TRSYVNV1"
    assert model.msg_def_idr == "pacs.008.001.08"
    assert model.biz_msg_idr == "KBNN-MSG-0001"
