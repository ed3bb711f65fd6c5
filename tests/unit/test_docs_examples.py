"""The worked examples in docs/examples are what the codec and the signing code produce: the
messages decode and the signatures check."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from protocol import signing
from protocol.codec import decode
from tests.factories import SWITCH, TREASURY

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
spec = importlib.util.spec_from_file_location("generate", EXAMPLES / "generate.py")
assert spec is not None and spec.loader is not None
generate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(generate)


@pytest.mark.parametrize("name", sorted(generate.FILES.values()))
def test_example_is_current_and_decodes(name: str) -> None:
    on_disk = (EXAMPLES / name).read_bytes()
    assert on_disk == generate.examples()[name], "run python docs/examples/generate.py"
    kind = name.split("-")[1]  # e.g. "pacs008"
    assert decode(on_disk).header.msg_def_id.startswith(f"{kind[:4]}.{kind[4:]}")


@pytest.mark.parametrize("mode", sorted(generate.SIGNED))
def test_signed_example_is_current_and_its_signatures_check(mode: str) -> None:
    """The worked signatures are what protocol/signing.py makes and checks, for the bodies of
    the example files; with the other party's key they do not check."""
    on_disk = (EXAMPLES / generate.SIGNED[mode]).read_bytes()
    assert on_disk == generate.signed_example(mode), "run python docs/examples/generate.py"
    request, answer, request_body, answer_body = generate.exchange(mode)
    treasury, switch = generate.credentials(mode)
    at_s = float(generate.TIMESTAMP)
    assert signing.verify("POST", generate.PATH, request, request_body,
                          {TREASURY: switch.peer}, at_s) == TREASURY
    signing.verify_answer(answer, SWITCH, treasury.peer, 200, request, answer_body)
    with pytest.raises(signing.SignatureError):
        signing.verify_answer(answer, SWITCH, treasury.peer, 200, request, request_body)
