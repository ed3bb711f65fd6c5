"""The codec: what goes out comes back the same; what is malformed is refused with FF01."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import codec
from protocol.codec import CodecError, decode, encode, new_id
from protocol.http import wrap
from tests.samples import credit_transfer, every_message, pacs008


@pytest.mark.parametrize("name", list(every_message()))
def test_every_message_round_trips(name: str) -> None:
    message = every_message()[name]
    assert decode(encode(message)) == _as_decoded(message)


def _as_decoded(message):
    """What decoding adds: the counts and sums declared in a pacs.008 group header."""
    document = message.document
    if hasattr(document, "declared_count"):
        document = replace(document, declared_count=len(document.transactions),
                           declared_control_sum=str(sum(t.amount_vnd
                                                        for t in document.transactions)))
    return replace(message, document=document)


def test_bulk_of_a_thousand_keeps_every_transaction() -> None:
    message = wrap("TRSYVNV1", "SWLBVNVX", pacs008(1_000))
    decoded = decode(encode(message)).document
    assert len(decoded.transactions) == 1_000
    assert decoded.declared_control_sum == str(sum(t.amount_vnd for t in decoded.transactions))
    assert decoded.transactions[1].creditor_name == "Trần Văn Đức & Con <Tèo>"


def _body(**changes: object) -> bytes:
    tx = replace(credit_transfer(1), **changes)
    return encode(wrap("TRSYVNV1", "SWLBVNVX", replace(pacs008(0), transactions=[tx])))


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"not xml at all", "not well-formed"),
        (_body()[:-40], "not well-formed"),
        (b"<Other xmlns='urn:x'/>", "root element"),
        (_body().replace(b"pacs.008.001.08</MsgDefIdr>", b"pacs.002.001.10</MsgDefIdr>"),
         "MsgDefIdr"),
        (_body().replace(b"<EndToEndId>KBNN20261120000000001</EndToEndId>", b""), "EndToEndId"),
        (_body().replace(b"<CdtrAgt><FinInstnId><BICFI>BFTVVNVX</BICFI></FinInstnId></CdtrAgt>",
                         b""), "CdtrAgt"),
    ],
    ids=["not-xml", "truncated", "wrong-root", "header-document-mismatch", "no-end-to-end-id",
         "no-creditor-agent"],
)
def test_malformed_messages_are_refused_ff01(body: bytes, says: str) -> None:
    with pytest.raises(CodecError, match=says) as refused:
        decode(body)
    assert refused.value.reason_code == "FF01"


def test_xml_bomb_is_refused_before_any_expansion() -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            + b"".join(b'<!ENTITY lol%d "%s">' % (n, b"&lol%d;" % (n - 1) * 10 if n > 1
                                                  else b"&lol;" * 10) for n in range(1, 10))
            + b"]><lolz>&lol9;</lolz>")
    with pytest.raises(CodecError, match="DTDs and entities"):
        decode(bomb)


def test_external_entity_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-LEDGER")
    body = _body().replace(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
                           f'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM '
                           f'"file://{secret}">]>'.encode()).replace(
                               b"Kho b", b"&x;Kho b", 1)
    with pytest.raises(CodecError) as refused:
        decode(body)
    assert "TOP-SECRET" not in str(refused.value)


def test_utf16_dtd_cannot_sneak_past_the_byte_check() -> None:
    body = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY a "b">]><r>&a;</r>'
    with pytest.raises(CodecError, match=r"DTDs and entities|not well-formed"):
        decode(body.encode("utf-16"))


def test_size_and_count_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    body = encode(wrap("TRSYVNV1", "SWLBVNVX", pacs008(5)))
    with pytest.raises(CodecError, match="exceeds the limit"):
        decode(body, max_bytes=len(body) - 1)
    monkeypatch.setattr(codec, "MAX_TRANSACTIONS_PER_MESSAGE", 4)
    with pytest.raises(CodecError, match="more than 4 transactions"):
        decode(body)


def test_business_errors_are_left_for_the_switch_to_judge() -> None:
    decoded = decode(_body(amount_text="1.5", currency="USD")).document
    tx = decoded.transactions[0]
    assert (tx.amount_text, tx.currency) == ("1.5", "USD")


def test_new_ids_are_unique_and_fit_max35() -> None:
    ids = {new_id("KBNN") for _ in range(10_000)}
    assert len(ids) == 10_000
    assert max(len(i) for i in ids) <= 35


@settings(max_examples=60, deadline=None)
@given(
    name=st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1,
                 max_size=140).filter(lambda s: s.strip() == s and s.strip()),
    amount_vnd=st.integers(1, 10**12),
    e2e=st.from_regex(r"[A-Za-z0-9\-]{1,35}", fullmatch=True),
)
def test_credit_transfer_round_trips_any_text_and_amount(name: str, amount_vnd: int,
                                                          e2e: str) -> None:
    tx = replace(credit_transfer(3), creditor_name=name, amount_vnd=amount_vnd,
                 amount_text=str(amount_vnd), end_to_end_id=e2e)
    decoded = decode(encode(wrap("TRSYVNV1", "SWLBVNVX",
                                 replace(pacs008(0), transactions=[tx])))).document
    assert decoded.transactions == [tx]
