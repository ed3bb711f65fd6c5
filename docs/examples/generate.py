"""Regenerate the worked examples from switchlab's own codec: `python docs/examples/generate.py`.

tests/unit/test_docs_examples.py checks that the files here are what the codec produces and that
each validates against the official schema, so the documentation cannot drift from the code.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from protocol.codec import encode
from tests.factories import every_message, verification_messages

HERE = Path(__file__).resolve().parent
FILES = {
    "pacs.008-one": "01-pacs008-instant-credit-transfer.xml",
    "pacs.002": "02-pacs002-status-report.xml",
    "pacs.028": "03-pacs028-status-request.xml",
    "pacs.004": "04-pacs004-return.xml",
    "camt.053": "05-camt053-statement.xml",
    "acmt.023": "06-acmt023-verification-request.xml",
    "acmt.024": "07-acmt024-verification-report.xml",
}


def pretty(body: bytes) -> bytes:
    root = etree.fromstring(body)
    etree.indent(root, space="  ")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def examples() -> dict[str, bytes]:
    messages = every_message() | verification_messages()
    return {name: pretty(encode(messages[key])) for key, name in FILES.items()}


if __name__ == "__main__":
    for name, body in examples().items():
        (HERE / name).write_bytes(body)
        print(f"wrote {HERE / name}")
