"""What every message the bank sends must satisfy, whatever case saw it: the ISO 20022
schemas switchlab ships (protocol/schemas/) and the scheme's own rules (head.001
names, signatures, ids, amounts, reason codes). A problem fails the case that saw it.

The bank's messages are the answers it gives on the switch's leg (signed, per
docs/participants.md, "Check every answer") and the requests it sends the switch.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from conformance.relay import Exchange
from protocol import codec, reasons, signing
from protocol.hooks import HOOKS_PREFIX
from protocol.http import SWITCH_MESSAGES_PATH, XML_CONTENT_TYPE
from protocol.iso_schemas import HEAD_DEFINITION, SCHEMA_FOLDER, schema
from protocol.messages import (
    BusinessMessage,
    CreditTransferMessage,
    Document,
    MessageType,
    PaymentReturn,
    PaymentStatusReport,
    Statement,
    StatusRequest,
    TxStatus,
    VerificationReport,
    VerificationRequest,
    answer_per_transaction,
)
from protocol.wording import count

MASK = re.compile(r"^[A-Z]\**( [A-Z]\**)*$")  # protocol/names.py's mask: "N***** T** R*"
MAX_PROBLEMS_PER_MESSAGE = 5
# refusals made from the headers alone, before the sender is known: never signed
# (docs/participants.md, "Check every answer")
UNSIGNED_REFUSALS = frozenset({401, 408, 413, 415, 503})
TYPE_OF: dict[type, MessageType] = {
    CreditTransferMessage: MessageType.CREDIT_TRANSFER,
    PaymentStatusReport: MessageType.PAYMENT_STATUS,
    PaymentReturn: MessageType.PAYMENT_RETURN,
    StatusRequest: MessageType.STATUS_REQUEST,
    Statement: MessageType.STATEMENT,
    VerificationRequest: MessageType.VERIFICATION_REQUEST,
    VerificationReport: MessageType.VERIFICATION_REPORT,
}
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                          huge_tree=False, remove_blank_text=False)


@dataclass(frozen=True)
class Schemas:
    """The official ISO 20022 schemas in `folder`: the ones the package ships
    (protocol/schemas/) unless `--schemas` names another folder. Raises ValueError when the
    folder holds no head.001 schema: a run never goes on without validating."""

    folder: Path = SCHEMA_FOLDER

    def __post_init__(self) -> None:
        if schema(HEAD_DEFINITION, self.folder) is None:
            raise ValueError(f"{self.folder} holds no {HEAD_DEFINITION}.xsd: not a folder of "
                             "the ISO 20022 schemas")

    def problems(self, body: bytes) -> list[str]:
        """Each of AppHdr and Document against its schema; the first error of each."""
        try:
            envelope = etree.fromstring(body, _PARSER)
        except etree.XMLSyntaxError:
            return []  # the codec has said it is not XML
        found = []
        for element in envelope:
            namespace = etree.QName(element).namespace or ""
            definition = namespace.rsplit(":", 1)[-1]
            checker = schema(definition, self.folder)
            if checker is None:
                found.append(f"{definition or element.tag} is no message definition switchlab "
                             "carries a schema for")
            elif not checker.validate(etree.ElementTree(element)):
                error = checker.error_log.last_error
                found.append(f"not valid against the {definition} schema: "
                             f"{_schema_message(error.message)} (line {error.line})")
        return found


def _schema_message(text: str) -> str:
    """lxml's message without the namespaces in braces, which make it unreadable."""
    return re.sub(r"\{[^}]*\}", "", text)


@dataclass(frozen=True)
class Rules:
    """The rules for one bank: who it is, the keys that check it and the switch, the
    schemas."""

    bank_bic: str
    switch_bic: str
    bank_key: signing.VerifyKey
    switch_key: signing.VerifyKey
    schemas: Schemas

    def check(self, exchange: Exchange) -> list[str]:
        """What is wrong with what the bank sent in this exchange (its answer, or its
        request), each in one sentence."""
        if exchange.path.startswith(HOOKS_PREFIX):
            return []  # test hooks, not scheme messages
        found = (self._answer(exchange) if exchange.receiver == "bank"
                 else self._request(exchange))
        return found[:MAX_PROBLEMS_PER_MESSAGE]

    def _answer(self, exchange: Exchange) -> list[str]:
        status = exchange.status
        if status is None or status in UNSIGNED_REFUSALS:
            return []  # no answer (the case judges), or a refusal that is never signed
        found = []
        request_signature = exchange.header(signing.SIGNATURE_HEADER)
        if self._signed_by_switch(exchange) and request_signature is not None:
            try:
                signing.verify_answer(dict(exchange.response_headers), self.bank_bic,
                                      self.bank_key, status, dict(exchange.request_headers),
                                      exchange.response_body)
            except signing.SignatureError as error:
                found.append(f"the bank's answer breaks the signing rule: {error}")
        body = exchange.response_body
        if 200 <= status < 300 and body.strip().startswith(b"<"):
            found += self._message(body, decoded_or_none(exchange.request_body),
                                   "the bank's answer")
        return found

    def answer_problem(self, exchange: Exchange, e2e: str) -> str | None:
        """Why the switch could not take the bank's answer to a forward for `e2e`, in one
        sentence naming what the answer did (its signature, its form, the ids it answers), or
        None when the answer carries a readable verdict for `e2e`."""
        status = exchange.status
        if status is None or status not in (200, 202):
            return None
        request_signature = exchange.header(signing.SIGNATURE_HEADER)
        if request_signature is not None:
            try:
                signing.verify_answer(dict(exchange.response_headers), self.bank_bic,
                                      self.bank_key, status, dict(exchange.request_headers),
                                      exchange.response_body)
            except signing.SignatureError as error:
                return f"the bank's answer breaks the signing rule: {error}"
        if status == 202:
            return None
        try:
            message = codec.decode(exchange.response_body)
        except codec.CodecError as error:
            return f"the bank's answer is not a well-formed ISO 20022 message: {error}"
        document = message.document
        if not isinstance(document, PaymentStatusReport):
            return f"the bank answered with a {message.header.msg_def_id}, not a pacs.002"
        answered = [item.original_end_to_end_id for item in document.transactions]
        request = decoded_or_none(exchange.request_body)
        if e2e in answered or (request is not None and isinstance(
                request.document, CreditTransferMessage) and e2e in answer_per_transaction(
                document, request.document)):  # a group status for the ones not named
            return None
        twice = sorted({e for e in answered if answered.count(e) > 1})
        return (f"the bank's pacs.002 does not answer {e2e}"
                + (f"; it answers {', '.join(twice[:3])} twice" if twice else ""))

    def _signed_by_switch(self, exchange: Exchange) -> bool:
        try:
            signing.verify(exchange.method, exchange.path, dict(exchange.request_headers),
                           exchange.request_body, {self.switch_bic: self.switch_key})
        except signing.SignatureError:
            return False
        return True

    def _request(self, exchange: Exchange) -> list[str]:
        found = []
        what = f"the bank's {exchange.method} {exchange.path.split('?', 1)[0]}"
        try:
            signing.verify(exchange.method, exchange.path, dict(exchange.request_headers),
                           exchange.request_body, {self.bank_bic: self.bank_key})
        except signing.SignatureError as error:
            found.append(f"{what} is not signed as {self.bank_bic}: {error}")
        if exchange.path == SWITCH_MESSAGES_PATH and exchange.method == "POST":
            content_type = (exchange.header("Content-Type") or "").split(";")[0].strip()
            if content_type != XML_CONTENT_TYPE:
                found.append(f"{what} has Content-Type {content_type or 'none'}, not "
                             f"{XML_CONTENT_TYPE}")
            found += self._message(exchange.request_body, None, what)
        return found

    def _message(self, body: bytes, request: BusinessMessage | None, what: str) -> list[str]:
        try:
            message = codec.decode(body)
        except codec.CodecError as error:
            return [f"{what} is not a well-formed ISO 20022 message: {error}"]
        found = [f"{what} is {problem}" for problem in self.schemas.problems(body)]
        header, document = message.header, message.document
        if header.from_bic != self.bank_bic:
            found.append(f"{what}'s head.001 Fr names {header.from_bic}, not the bank "
                         f"{self.bank_bic}: a message for another bank")
        if header.to_bic != self.switch_bic:
            found.append(f"{what}'s head.001 To names {header.to_bic}, not the switch "
                         f"{self.switch_bic}")
        expected_type = TYPE_OF[type(document)]
        if header.msg_def_id != expected_type:
            found.append(f"{what}'s head.001 MsgDefIdr is {header.msg_def_id}, but the "
                         f"document is {expected_type}")
        found += [f"{what} {problem}" for problem in self._document(
            document, None if request is None else request.document)]
        return found

    def _document(self, document: Document, request: Document | None) -> list[str]:
        if isinstance(document, PaymentStatusReport):
            return self._status_report(document, request)
        if isinstance(document, VerificationReport):
            return self._verification(document, request)
        if isinstance(document, PaymentReturn | CreditTransferMessage):
            return self._money(document)
        if isinstance(document, StatusRequest):
            return []  # a debtor's question about its transfers (pacs.028)
        return [f"is a {TYPE_OF[type(document)]}, which a bank does not send"]

    def _status_report(self, report: PaymentStatusReport,
                       request: Document | None) -> list[str]:
        found = []
        for item in report.transactions:
            e2e = item.original_end_to_end_id
            if item.status not in (TxStatus.ACCEPTED, TxStatus.REJECTED):
                found.append(f"answers {item.status} for {e2e}; a creditor answers ACCP or RJCT")
            elif item.status is TxStatus.REJECTED and not item.reason_code:
                found.append(f"rejects {e2e} without a reason code (StsRsnInf/Rsn/Cd)")
            found += _unknown_code(item.reason_code, e2e)
        if isinstance(request, CreditTransferMessage):
            if report.original_msg_id != request.msg_id:
                found.append(f"names OrgnlMsgId {report.original_msg_id}, not the MsgId "
                             f"{request.msg_id} of the pacs.008 it answers")
            sent = {tx.end_to_end_id: tx.tx_id for tx in request.transactions}
            answered = [item.original_end_to_end_id for item in report.transactions]
            strangers = [e for e in answered if e not in sent]
            if strangers:
                found.append(f"answers end-to-end ids it was not sent ({', '.join(strangers[:3])})")
            if len(set(answered)) != len(answered):
                found.append("answers one end-to-end id twice")
            missing = len(set(sent) - set(answer_per_transaction(report, request)))
            if missing:
                found.append(f"leaves {missing:,} of the {count(len(sent), 'transaction')} "
                             f"unanswered")
            wrong_tx = [i.original_end_to_end_id for i in report.transactions
                        if i.original_end_to_end_id in sent
                        and i.original_tx_id != sent[i.original_end_to_end_id]]
            if wrong_tx:
                found.append(f"names another OrgnlTxId for {wrong_tx[0]}")
        return found

    def _verification(self, report: VerificationReport, request: Document | None
                      ) -> list[str]:
        found = []
        if report.assigner_bic != self.bank_bic:
            found.append(f"names Assgnr {report.assigner_bic}, not the bank")
        for result in report.results:
            found += _unknown_code(result.reason_code, result.original_id)
            if result.verified and result.reason_code:
                found.append(f"gives a reason for {result.original_id}, which it verified")
            if result.masked_name and (result.reason_code != reasons.NAME_MISMATCH
                                       or not MASK.match(result.masked_name)):
                found.append(f"shows the name {result.masked_name!r} for "
                             f"{result.original_id}: only a masked name, only with BE01")
        if isinstance(request, VerificationRequest):
            if report.original_msg_id != request.msg_id:
                found.append(f"names OrgnlAssgnmt/MsgId {report.original_msg_id}, not "
                             f"{request.msg_id}")
            asked = [item.verification_id for item in request.items]
            if [r.original_id for r in report.results] != asked:
                found.append("does not answer each Vrfctn once, in the order asked")
        return found

    def _money(self, document: PaymentReturn | CreditTransferMessage) -> list[str]:
        found = []
        if document.instructing_agent_bic != self.bank_bic:
            found.append(f"names InstgAgt {document.instructing_agent_bic}, not the bank")
        if isinstance(document, PaymentReturn):
            amounts = [(i.return_id, i.amount_text, i.currency) for i in document.items]
            for item in document.items:
                found += _unknown_code(item.reason_code, item.return_id)
        else:
            amounts = [(t.end_to_end_id, t.amount_text, t.currency)
                       for t in document.transactions]
            found += [f"names DbtrAgt {t.debtor_agent_bic} for {t.end_to_end_id}, not the bank"
                      for t in document.transactions if t.debtor_agent_bic != self.bank_bic]
        for ident, text, currency in amounts:
            if not (text.isascii() and text.isdigit() and text[0] != "0"):
                found.append(f"writes the amount of {ident} as {text!r}: whole dong, digits")
            if currency != "VND":
                found.append(f"pays {ident} in {currency}, not VND")
        return found


def _unknown_code(code: str | None, ident: str) -> list[str]:
    if code is None or code in reasons.DESCRIPTIONS:
        return []
    return [f"gives {ident} the reason code {code}, which is not one of the scheme's"]


def decoded_or_none(body: bytes) -> BusinessMessage | None:
    try:
        return codec.decode(body) if body.lstrip().startswith(b"<") else None
    except codec.CodecError:
        return None


def unmasked(name: str, text: str) -> bool:
    """Whether `text` shows the holder's `name` in full, in any case, with or without its
    diacritics (its mask does not)."""
    return _plain(name) in _plain(text)


def _plain(text: str) -> str:
    folded = unicodedata.normalize("NFD", text.casefold().replace("đ", "d"))
    return " ".join("".join(c for c in folded if not unicodedata.combining(c)).split())
