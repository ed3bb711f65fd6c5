"""The keys between the conformance switch and the bank under test, kept in a folder so that
the bank is configured once and every later run uses the same ones.

hmac: `secret.txt`, the secret the bank and the switch share (its UTF-8 text). ed25519:
`switch.pem` (the suite's switch private key, kept here), `switch.pub` (what the bank is given
to check the switch), `bank.pub` (the bank's public key, which the suite checks the bank with)
and, generated for convenience when the bank brings none, `bank.pem`, a private key for the
bank. The folder holds keys: readable by its owner alone.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from protocol.keys import (
    Signing,
    private_key_text,
    public_key_text,
    read_private_key,
    read_public_key,
)
from protocol.signing import Credentials, Ed25519SigningKey

SECRET_FILE = "secret.txt"
REPORT_KEY = "suite.pem"  # hmac: the suite's own Ed25519 key, which signs reports only
REPORT_PUBLIC = "report.pub"  # both modes: the public half of the key that signs reports
SWITCH_PRIVATE, SWITCH_PUBLIC = "switch.pem", "switch.pub"
BANK_PRIVATE, BANK_PUBLIC = "bank.pem", "bank.pub"
MAX_KEY_FILE_BYTES = 8 * 1024


class CredentialsError(ValueError):
    """A key file is missing, unreadable or not a key of the mode; the text says which."""


@dataclass(frozen=True, slots=True)
class SuiteKeys:
    """What the conformance switch holds towards the bank, as configuration text, and the
    credentials it signs and checks with."""

    signing: Signing
    secret: bytes | None = None  # hmac
    switch_private_key: str | None = None  # ed25519, PEM
    bank_public_key: str | None = None  # ed25519, PEM

    def credentials(self) -> Credentials:
        """The switch's side of its channel to the bank: signs as the switch, checks the bank."""
        if self.signing == "hmac":
            assert self.secret is not None
            return Credentials.shared(self.secret)
        assert self.switch_private_key is not None and self.bank_public_key is not None
        return Credentials(read_private_key(self.switch_private_key),
                           read_public_key(self.bank_public_key))

    def registered(self) -> dict[str, str | bytes]:
        """The bank's key fields in the switch's participant list."""
        if self.signing == "hmac":
            assert self.secret is not None
            return {"secret": self.secret}
        assert self.bank_public_key is not None
        return {"public_key": self.bank_public_key}


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_KEY_FILE_BYTES:
            raise CredentialsError(f"{path} is over {MAX_KEY_FILE_BYTES:,} bytes: not a key")
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise CredentialsError(f"cannot read {path}: {error}") from None
    if not text:
        raise CredentialsError(f"{path} is empty")
    return text


def _write(path: Path, text: str) -> None:
    """A key file only its owner can read, written whole or not at all."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text if text.endswith("\n") else text + "\n")


def create(folder: Path, signing: Signing) -> list[Path]:
    """Make the mode's keys in `folder` where they are missing; the files made."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    made: list[Path] = []
    if signing == "hmac":
        if not (folder / SECRET_FILE).exists():
            _write(folder / SECRET_FILE, secrets.token_hex(32))
            made.append(folder / SECRET_FILE)
        return made
    for private, public in ((SWITCH_PRIVATE, SWITCH_PUBLIC), (BANK_PRIVATE, BANK_PUBLIC)):
        if (folder / public).exists() or (folder / private).exists():
            continue
        key = Ed25519SigningKey.generate()
        _write(folder / private, private_key_text(key))
        _write(folder / public, public_key_text(key.verify_key()))
        made += [folder / private, folder / public]
    return made


def load(folder: Path, signing: Signing, secret_file: Path | None = None,
         bank_public_key_file: Path | None = None, switch_private_key_file: Path | None = None
         ) -> SuiteKeys:
    """The keys of the mode, each from its flag's file or else from `folder`. Raises
    CredentialsError naming the file."""
    if signing == "hmac":
        return SuiteKeys("hmac", secret=_read(secret_file or folder / SECRET_FILE).encode())
    switch_path = switch_private_key_file or folder / SWITCH_PRIVATE
    bank_path = bank_public_key_file or folder / BANK_PUBLIC
    switch_key, bank_key = _read(switch_path), _read(bank_path)
    for text, path, read in ((switch_key, switch_path, read_private_key),
                             (bank_key, bank_path, read_public_key)):
        try:
            read(text)
        except ValueError as error:
            raise CredentialsError(f"{path}: {error}") from None
    return SuiteKeys("ed25519", switch_private_key=switch_key, bank_public_key=bank_key)


def report_key(folder: Path, keys: SuiteKeys) -> Ed25519SigningKey:
    """The key that signs the run's report (conformance/evidence.py): the switch's own in
    `ed25519`; in `hmac`, where the switch has none, the suite's report key in `folder`,
    made on first use. Its public half is written to `folder`/report.pub in both modes, the
    file `switchlab conformance verify --public-key` takes. Raises CredentialsError naming a
    bad file."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if keys.signing == "ed25519":
        assert keys.switch_private_key is not None
        key = read_private_key(keys.switch_private_key)
    else:
        path = folder / REPORT_KEY
        if not path.exists():
            _write(path, private_key_text(Ed25519SigningKey.generate()))
        try:
            key = read_private_key(_read(path))
        except ValueError as error:
            raise CredentialsError(f"{path}: {error}") from None
    public = folder / REPORT_PUBLIC
    text = public_key_text(key.verify_key())
    if not public.exists() or public.read_text(encoding="utf-8").strip() != text.strip():
        public.unlink(missing_ok=True)  # a key brought with --switch-private-key-file
        _write(public, text)
    return key


def describe(folder: Path, keys: SuiteKeys, switch_url: str, switch_bic: str) -> str:
    """What the bank's engineer configures the bank with, as printed at the start of a run."""
    lines = [f"The bank under test reaches the switch at {switch_url}/v1/messages "
             f"(switch BIC {switch_bic}), {keys.signing} signing."]
    if keys.signing == "hmac":
        lines.append(f"  shared secret (its UTF-8 text, without the file's final newline): "
                     f"{folder / SECRET_FILE}")
    else:
        lines += [f"  the switch's public key, to check the switch: {folder / SWITCH_PUBLIC}",
                  f"  the bank's public key the suite checks with:  {folder / BANK_PUBLIC}",
                  f"  (a bank private key made for you, if you bring none: "
                  f"{folder / BANK_PRIVATE})"]
    return "\n".join(lines)
