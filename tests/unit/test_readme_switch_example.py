"""README's "Running the switch alone" holds together as written (issue #26 friction 8): the
switch's configuration is valid and warns of nothing, the mock bank it starts is the
participant the switch names, on the port and with the secret the switch holds for it, and
the treasury's key file, inbound port and switch BIC of `payout --switch` are the switch's."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from banks.bank import BankConfig
from switch.config import parse_config, weak_secrets

README = Path(__file__).resolve().parents[2] / "README.md"


def section() -> str:
    text = README.read_text(encoding="utf-8")
    return text.split("## Running the switch alone", 1)[1].split("\n## ", 1)[0]


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section(), re.DOTALL)


def test_issue_26_readme_s_switch_its_mock_bank_and_its_treasury_agree() -> None:
    config = parse_config(yaml.safe_load(blocks("yaml")[0]))
    assert weak_secrets(config) == []
    shell = "\n".join(blocks("sh"))
    bank = BankConfig.model_validate(json.loads(
        re.search(r"<<'EOF'\n(.*?)\nEOF", shell, re.DOTALL).group(1)))
    admitted = config.participants[bank.bic]
    assert bank.secret == admitted.secret
    assert bank.switch_bic == config.bic
    assert urlsplit(str(bank.switch_url)).port == config.port
    started = shlex.split(re.search(r"^\.venv/bin/python -m banks\.bank (.*) &$", shell,
                                    re.MULTILINE).group(1))
    assert started[started.index("--port") + 1] == str(urlsplit(admitted.inbound_url).port)

    payout = shlex.split(re.search(r"^\.venv/bin/switchlab payout (.*?)$(?<!\\)", shell.replace(
        "\\\n", " "), re.MULTILINE).group(1))
    option = {name: payout[payout.index(name) + 1] for name in (
        "--switch", "--key-file", "--inbound-port", "--switch-bic", "--admin-token-file")}
    treasury = config.participants["TRSYVNV1"]
    written = dict(re.findall(r"^echo (\S+) > (\S+)$", shell, re.MULTILINE))
    key_of = {file: key for key, file in written.items()}
    assert key_of[option["--key-file"]].encode() == treasury.secret
    assert key_of[option["--admin-token-file"]] == config.admin_token
    assert option["--inbound-port"] == str(urlsplit(treasury.inbound_url).port)
    assert option["--switch-bic"] == config.bic
    assert urlsplit(option["--switch"]).port == config.port
