"""Regenerate the worked examples from switchlab's own codec and signing:
`python docs/examples/generate.py`.

tests/unit/test_docs_examples.py checks that the files here are what the codec and the signing
code produce, that each message validates against the official schema and that each signature
checks, so the documentation cannot drift from the code. The keys in the signed examples are
examples: published here, so never to be provisioned.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519
from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from protocol.codec import encode
from protocol.keys import private_key_text, public_key_text
from protocol.signing import (
    CONTENT_DIGEST_HEADER,
    SIGNATURE_INPUT_HEADER,
    Credentials,
    Ed25519SigningKey,
    answer_base,
    request_base,
    request_signature,
    sign,
    sign_answer,
)
from tests.factories import AT, SWITCH, TREASURY, every_message, verification_messages

HERE = Path(__file__).resolve().parent
FILES = {
    "pacs.008-one": "01-pacs008-instant-credit-transfer.xml",
    "pacs.002": "02-pacs002-status-report.xml",
    "pacs.028": "03-pacs028-status-request.xml",
    "pacs.004": "04-pacs004-return.xml",
    "camt.053": "05-camt053-statement.xml",
    "acmt.023": "08-acmt023-verification-request.xml",
    "acmt.024": "09-acmt024-verification-report.xml",
    "acmt.024-bank": "10-acmt024-holders-bank-answer.xml",
}


def pretty(body: bytes) -> bytes:
    root = etree.fromstring(body)
    etree.indent(root, space="  ")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def examples() -> dict[str, bytes]:
    messages = every_message() | verification_messages()
    return {name: pretty(encode(messages[key])) for key, name in FILES.items()}


SIGNED = {"hmac": "06-signed-exchange-hmac.txt", "ed25519": "07-signed-exchange-ed25519.txt"}
EXAMPLE_SECRET = b"example-secret-of-TRSYVNV1-never-provision-it"
TIMESTAMP = int(AT.timestamp())
NONCE = "p4ZrK2m9QeWc7Xv1bN3sTg"  # the request's id: 128 random bits, url-safe base64
PATH = "/v1/messages"


def _seeded_key(name: str) -> Ed25519SigningKey:
    return Ed25519SigningKey(ed25519.Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(f"switchlab example key of {name}".encode()).digest()))


def credentials(mode: str) -> tuple[Credentials, Credentials]:
    """(the treasury's, the switch's towards the treasury), as each mode provisions them."""
    if mode == "hmac":
        return Credentials.shared(EXAMPLE_SECRET), Credentials.shared(EXAMPLE_SECRET)
    treasury, switch = _seeded_key(TREASURY), _seeded_key(SWITCH)
    return (Credentials(treasury, switch.verify_key()),
            Credentials(switch, treasury.verify_key()))


def exchange(mode: str) -> tuple[dict[str, str], dict[str, str], bytes, bytes]:
    """The instant credit transfer (file 01) and the switch's answer (file 02), signed:
    (request headers, answer headers, request body, answer body)."""
    files = examples()
    request_body, answer_body = files[FILES["pacs.008-one"]], files[FILES["pacs.002"]]
    treasury, switch = credentials(mode)
    request = sign(TREASURY, treasury.own, PATH, request_body, created_s=TIMESTAMP, nonce=NONCE)
    answer = {"Content-Type": "application/xml"} | sign_answer(
        SWITCH, switch.own, 200, request_signature(request), answer_body, "application/xml",
        created_s=TIMESTAMP)
    return request, answer, request_body, answer_body


def _params(headers: dict[str, str]) -> str:
    return headers[SIGNATURE_INPUT_HEADER].split(")", 1)[1]


def signed_example(mode: str) -> bytes:
    request, answer, _, _ = exchange(mode)
    if mode == "hmac":
        keys = ["The treasury's secret, which only it and the switch hold (UTF-8 bytes of):",
                f"  {EXAMPLE_SECRET.decode()}"]
    else:
        keys = ["The treasury's private key (only the treasury holds it):",
                private_key_text(_seeded_key(TREASURY)).strip(),
                "The treasury's public key (registered with the switch):",
                public_key_text(_seeded_key(TREASURY).verify_key()).strip(),
                "The switch's public key (every participant holds it):",
                public_key_text(_seeded_key(SWITCH).verify_key()).strip()]
    lines = [
        f"{mode} signing: the treasury sends the instant pacs.008 of {FILES['pacs.008-one']}",
        f"and the switch answers with the pacs.002 of {FILES['pacs.002']}. The bodies are those",
        "files byte for byte. Example keys: published, so never to be provisioned.", "",
        *keys, "",
        "---- the request", f"POST {PATH} HTTP/1.1",
        *(f"{name}: {value}" for name, value in request.items()), "",
        f"(body: {FILES['pacs.008-one']})", "",
        "The signature base its signature covers (RFC 9421 section 2.5; lines joined by \\n,",
        "no final newline):",
        request_base("POST", PATH, request[CONTENT_DIGEST_HEADER], "application/xml",
                     _params(request)).decode(), "",
        "---- the answer", "HTTP/1.1 200 OK",
        *(f"{name}: {value}" for name, value in answer.items()), "",
        f"(body: {FILES['pacs.002']})", "",
        "The signature base its signature covers: it names the request's signature:",
        answer_base(200, answer[CONTENT_DIGEST_HEADER], "application/xml",
                    request_signature(request), _params(answer)).decode(), "",
    ]
    return "\n".join(lines).encode()


if __name__ == "__main__":
    for name, body in examples().items():
        (HERE / name).write_bytes(body)
        print(f"wrote {HERE / name}")
    for mode, name in SIGNED.items():
        (HERE / name).write_bytes(signed_example(mode))
        print(f"wrote {HERE / name}")
