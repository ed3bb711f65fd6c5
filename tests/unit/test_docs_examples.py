"""The worked examples in docs/examples are what the codec produces, and they decode."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from protocol.codec import decode

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
