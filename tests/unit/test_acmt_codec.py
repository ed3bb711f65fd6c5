"""acmt.023/acmt.024 as switchlab writes and reads them: valid against the official schemas,
round-tripped, and strict where the scheme relies on a value."""

from __future__ import annotations

from dataclasses import replace

import pytest
from lxml import etree

from protocol.codec import CodecError, decode, encode
from protocol.iso_schemas import SCHEMA_FOLDER
from tests.factories import (
    credit_transfer,
    credit_transfers,
    message,
    verification_messages,
    verification_report,
)


@pytest.mark.parametrize("name", ["acmt.023", "acmt.024"])
def test_emitted_verification_messages_validate_against_the_official_schemas(name: str
                                                                              ) -> None:
    sent = verification_messages()[name]
    header, document = etree.fromstring(encode(sent))
    for element, xsd in ((document, sent.header.msg_def_id), (header, "head.001.001.02")):
        schema = etree.XMLSchema(file=str(SCHEMA_FOLDER / f"{xsd}.xsd"))
        assert schema.validate(etree.ElementTree(element)), schema.error_log.last_error


def test_a_report_without_reasons_or_names_still_validates() -> None:
    bare = message(verification_report(results=[replace(
        verification_report().results[0], verified=False)]), "SWLBVNVX", "TRSYVNV1")
    _, document = etree.fromstring(encode(bare))
    schema = etree.XMLSchema(file=str(SCHEMA_FOLDER / "acmt.024.001.04.xsd"))
    assert schema.validate(etree.ElementTree(document)), schema.error_log.last_error


@pytest.mark.parametrize("name", ["acmt.023", "acmt.024"])
def test_verification_messages_round_trip(name: str) -> None:
    sent = verification_messages()[name]
    assert decode(encode(sent)) == sent


def test_a_verification_flag_that_is_no_boolean_is_refused() -> None:
    body = encode(verification_messages()["acmt.024"]).replace(
        b"<Vrfctn>true</Vrfctn>", b"<Vrfctn>yes</Vrfctn>")
    with pytest.raises(CodecError, match=r"Rpt\[1\]/Vrfctn is not a boolean"):
        decode(body)
    one = encode(verification_messages()["acmt.024"]).replace(b">true<", b">1<")
    assert decode(one).document.results[0].verified is True  # xs:boolean's other spelling


def test_a_verification_without_a_name_is_refused() -> None:
    body = encode(verification_messages()["acmt.023"]).replace(
        "<Nm>Nguyễn Thị Hồng Nhung</Nm>".encode(), b"")
    with pytest.raises(CodecError, match="Vrfctn\\[1\\]/PtyAndAcctId/Pty/Nm is missing"):
        decode(body)


def test_only_a_nidn_identification_is_read_as_the_creditors_citizen_id() -> None:
    sent = message(credit_transfers(transactions=[credit_transfer(1)]))
    body = encode(sent)
    assert decode(body).document.transactions[0].creditor_citizen_id == "001190000001"
    passport = body.replace(b"<Cd>NIDN</Cd>", b"<Cd>CCPT</Cd>")
    assert decode(passport).document.transactions[0].creditor_citizen_id is None
