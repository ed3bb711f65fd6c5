"""The population register's configuration (`python -m register --config register.yaml`):
who it is, where its citizens' file and state are, the switch it asks for links, and the
parties that may sign requests to it (the labour ministry, the treasury)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from protocol import settings
from protocol.ids import is_bic
from protocol.keys import PublicKeyText, Secret, SwitchKeys

MAX_TOKEN_CHARS = 4_096


def _bic(text: str) -> str:
    if not is_bic(text):
        raise ValueError(f"{text!r} is not a BIC-shaped id (8 or 11 capitals and digits)")
    return text


Bic = Annotated[str, AfterValidator(_bic)]


class SwitchLink(SwitchKeys):
    """The switch the register asks for citizens' links: its URL and BIC, and the register's
    keys towards it, in the scheme's signing mode (`protocol.keys.SwitchKeys`)."""

    url: str = Field(pattern=r"^https?://")
    bic: Bic


class Party(BaseModel):
    """One party that may sign requests to the register, with its key in the mode of the
    register's `switch.signing` (a `secret` for hmac, a `public_key` for ed25519)."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    id: Bic
    secret: Secret | None = Field(None, repr=False)
    public_key: PublicKeyText | None = None


class RegisterSettings(BaseModel):
    """The `register:` section."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    id: Bic = "CSDCVNV6"  # how it signs: the switch's config names it (population_register.id)
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65_535)
    citizens_path: Path  # the register file (register/citizens.py CITIZEN_COLUMNS)
    state_path: Path  # SQLite: deaths recorded since the file, payments reported
    admin_token: str = Field(min_length=16, max_length=MAX_TOKEN_CHARS, repr=False)
    # What a citizen's lab login (the VNeID stand-in) is derived from: see docs/population.md.
    citizen_key: Secret = Field(repr=False)
    switch: SwitchLink | None = None  # None: no linking (checks and lookups only)
    parties: list[Party] = Field(default_factory=list, max_length=1_000)

    @pydantic.model_validator(mode="after")
    def _keys_of_the_mode(self) -> RegisterSettings:
        mode = self.switch.signing if self.switch is not None else "hmac"
        needed = "secret" if mode == "hmac" else "public_key"
        for party in self.parties:
            if getattr(party, needed) is None:
                raise ValueError(f"party {party.id} needs a {needed} ({mode} signing)")
        if mode == "ed25519" and self.switch is not None and self.switch.private_key is None:
            raise ValueError("ed25519 signing needs the register's private_key")
        return self


class _ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    section: RegisterSettings = Field(alias="register")  # `register` is BaseModel's


def load_settings(path: Path) -> RegisterSettings:
    """Read a register configuration; raises SettingsError naming file, line and field."""
    return settings.load(path, _ConfigFile).section
