"""What switchlab emits is valid ISO 20022: checked against the official schemas and
round-tripped through pyiso20022's generated models, not against our own reading."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from lxml import etree
from xsdata.formats.dataclass.parsers import XmlParser
from xsdata.formats.dataclass.serializers import XmlSerializer

from protocol.codec import decode, encode
from tests.samples import every_message

XSD_DIR = Path(__file__).resolve().parents[2] / "shared" / "iso20022-xsd"
pytestmark = pytest.mark.skipif(
    not XSD_DIR.is_dir(),
    reason=f"{XSD_DIR} not found: schema conformance needs the official ISO 20022 schemas "
    "(../shared/iso20022-xsd beside the repository, as CI has it)",
)
MODELS = {
    "pacs.008.001.08": "pyiso20022.pacs.pacs_008_001_08",
    "pacs.002.001.10": "pyiso20022.pacs.pacs_002_001_10",
    "pacs.028.001.03": "pyiso20022.pacs.pacs_028_001_03",
    "pacs.004.001.09": "pyiso20022.pacs.pacs_004_001_09",
    "camt.053.001.08": "pyiso20022.camt.camt_053_001_08",
}


@cache
def schema(msg_def_id: str) -> etree.XMLSchema:
    return etree.XMLSchema(file=str(XSD_DIR / f"{msg_def_id}.xsd"))


def parts(name: str) -> tuple[str, etree._Element, etree._Element]:
    message = every_message()[name]
    header, document = etree.fromstring(encode(message))
    return message.header.msg_def_id, header, document


@pytest.mark.parametrize("name", list(every_message()))
def test_emitted_document_and_header_validate_against_the_official_schemas(name: str) -> None:
    msg_def_id, header, document = parts(name)
    for element, xsd in ((document, msg_def_id), (header, "head.001.001.02")):
        validator = schema(xsd)
        assert validator.validate(etree.ElementTree(element)), validator.error_log.last_error


@pytest.mark.parametrize("name", list(every_message()))
def test_emitted_document_round_trips_through_pyiso20022(name: str) -> None:
    msg_def_id, _, document = parts(name)
    module = __import__(MODELS[msg_def_id], fromlist=["Document"])
    model = XmlParser().from_bytes(etree.tostring(document), module.Document)
    again = XmlSerializer().render(model).encode()
    envelope = etree.fromstring(encode(every_message()[name]))
    envelope[1] = etree.fromstring(again)
    assert decode(etree.tostring(envelope)) == decode(encode(every_message()[name]))


def test_head001_round_trips_through_pyiso20022() -> None:
    from pyiso20022.head.head_001_001_02 import AppHdr

    _, header, _ = parts("pacs.008-one")
    model = XmlParser().from_bytes(etree.tostring(header), AppHdr)
    assert model.fr.fiid.fin_instn_id.bicfi == "TRSYVNV1"
    assert model.msg_def_idr == "pacs.008.001.08"
