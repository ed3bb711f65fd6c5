"""The switch's configuration: its own settings and the participants it admits.

Read from a YAML (or JSON) file so that the scheme operator can review who is admitted, with
what credential, inbound URL and position limit, in one place. Checked by pydantic models, so
that a mistake is refused at start with its file, line and field, never half-applied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from protocol import settings
from protocol.codec import MAX_MESSAGE_BYTES, MAX_TRANSACTIONS_PER_MESSAGE
from protocol.ids import is_bic
from protocol.keys import PrivateKeyText, PublicKeyText, Secret, Signing
from protocol.settings import SettingsError
from protocol.tls import TlsFiles
from protocol.transport import BANK_MAX_BODY_BYTES, ServerLimits
from protocol.wording import count

Kind = Literal["bank", "ewallet", "mobile_money", "treasury"]
# Per-leg deadline: the SEPA Instant 2025 rulebook and TIPS both give the creditor side 5 s to
# answer; we follow them (UPI's 15 s suits a scheme with slower legacy cores, not this one).
DEFAULT_CREDITOR_TIMEOUT_S = 5.0
MAX_FORWARD_LINGER_MS = 50.0  # a tenth of the p99 budget of an instant transfer
MAX_POSITION_LIMIT_VND = 10**18  # SQLite's INTEGER holds up to 9.2e18
BANK_MAX_ITEMS = 1_000
MAX_INQUIRY_IDS = 1_000  # the scheme's stated limit for one pacs.028
MAX_TOKEN_CHARS = 4_096  # a bearer token, not a document


def _bic(text: str) -> str:
    if not is_bic(text):
        raise ValueError(f"{text!r} is not a BIC (8 or 11 capital letters and digits)")
    return text


def _postgres_url(text: str) -> str:
    if not text.startswith(("postgresql://", "postgres://")):
        raise ValueError("journal_url must be a postgresql:// URL (libpq's form)")
    return text


def _http_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise ValueError(f"{text!r} is not an http(s) URL")
    return text


Bic = Annotated[str, AfterValidator(_bic)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
PostgresUrl = Annotated[str, AfterValidator(_postgres_url)]


class ParticipantConfig(BaseModel):
    """One admitted participant: who, where the switch reaches it, its key and its cap.

    Its key is `secret` (hmac signing: shared with this participant alone) or `public_key`
    (ed25519 signing: checks its signatures), whichever the scheme's `signing` says."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    bic: Bic
    name: str = ""  # the BIC when left out
    kind: Kind
    inbound_url: HttpUrl
    secret: Secret | None = Field(None, repr=False)
    public_key: PublicKeyText | None = None
    position_limit_vnd: int = Field(0, ge=0, le=MAX_POSITION_LIMIT_VND)
    # Its requests only over TLS with its client certificate (protocol/tls.py); needs `tls:`.
    mtls: bool = False

    @pydantic.model_validator(mode="after")
    def _name_defaults_to_bic(self) -> ParticipantConfig:
        if not self.name:
            object.__setattr__(self, "name", self.bic)
        return self


class RegisterConfig(BaseModel):
    """The population register (register/) the switch takes citizens' link requests from:
    its id (BIC-shaped, it signs as it) and its key in the scheme's signing mode, as a
    participant's (`secret` or `public_key`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    id: Bic
    secret: Secret | None = Field(None, repr=False)
    public_key: PublicKeyText | None = None


class SenderLimits(BaseModel):
    """The largest message one kind of participant may send, refused 413 above: bytes on the
    wire (checked from Content-Length, then while the body streams in) and items once decoded
    (a pacs.008's transactions, a pacs.002's answers, a pacs.004's returns)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_body_bytes: int = Field(ge=64 * 1024, le=MAX_MESSAGE_BYTES)
    max_items: int = Field(ge=1, le=MAX_TRANSACTIONS_PER_MESSAGE)


class SwitchSettings(BaseModel):
    """The `switch:` section: the switch's own identity, listening address and limits."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    bic: Bic = "SWLBVNVX"
    # hmac: the switch signs to each participant with that participant's secret; ed25519: with
    # its own private_key, whose public key every participant holds (docs/participants.md).
    signing: Signing = "hmac"
    private_key: PrivateKeyText | None = Field(None, repr=False)
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65_535)  # 0: the OS chooses
    journal_path: Path = Path("runs/switch.sqlite")  # the embedded journal: one process
    # A PostgreSQL journal instead (postgresql://user:password@host:port/database): several
    # switch processes, on one machine or several, may then share it (docs/design.md).
    journal_url: PostgresUrl | None = Field(None, repr=False)
    # With a shared journal: a process silent this long is dead, and a survivor takes over
    # what it held in flight (AB06) and the notices it owed.
    cluster_lease_s: float = Field(5.0, ge=1.0, le=300.0)
    # Required, with no default: a default would be a secret everyone who read this file knows
    # (it once was "admin-token", and an empty configuration started a switch with it).
    admin_token: str = Field(min_length=1, max_length=MAX_TOKEN_CHARS, repr=False)
    # What a Prometheus scraper presents at GET /metrics: read-only, so that the scraper's
    # configuration holds no credential that can sign a bank off. None: the admin token.
    metrics_token: str | None = Field(None, min_length=1, repr=False)
    creditor_timeout_s: float = Field(DEFAULT_CREDITOR_TIMEOUT_S, gt=0, le=60)
    notice_timeout_s: float = Field(10.0, gt=0, le=300)
    notice_max_attempts: int = Field(1_000, ge=1, le=100_000)  # ~3 hours at the capped backoff
    forward_batch_size: int = Field(1_000, ge=1, le=MAX_TRANSACTIONS_PER_MESSAGE)
    # Instant transfers to one creditor arriving within this window share one pacs.008 (as
    # Kafka's linger.ms): one HTTP exchange for several transfers. 0: each goes alone.
    forward_linger_ms: float = Field(1.0, ge=0, le=MAX_FORWARD_LINGER_MS)
    max_forwards_in_flight_per_creditor: int = Field(64, ge=1, le=4_096)
    max_transfers_in_flight: int = Field(200_000, ge=1, le=10_000_000)
    # The scheme's cap on one transaction (AM02 above it): Vietnam's instant interbank service
    # caps one transfer at 500,000,000 VND; the treasury's bulk payouts have none by default.
    max_instant_amount_vnd: int | None = Field(500_000_000, ge=1, le=MAX_POSITION_LIMIT_VND)
    max_bulk_amount_vnd: int | None = Field(None, ge=1, le=MAX_POSITION_LIMIT_VND)
    breaker_failures: int = Field(5, ge=1, le=1_000)
    breaker_cooldown_s: float = Field(2.0, gt=0, le=3_600)
    settlement_cycle_s: float | None = Field(None, gt=0)  # None: close only on command
    transport: ServerLimits = Field(default_factory=ServerLimits)
    tls: TlsFiles | None = None  # serve HTTPS, present a client certificate (protocol/tls.py)
    # The treasury sends the payout's bulk files, up to the codec's limits; banks, e-wallets
    # and mobile-money operators send answers, returns, inquiries and their own transfers.
    treasury_limits: SenderLimits = SenderLimits(
        max_body_bytes=MAX_MESSAGE_BYTES, max_items=MAX_TRANSACTIONS_PER_MESSAGE)
    bank_limits: SenderLimits = SenderLimits(
        max_body_bytes=BANK_MAX_BODY_BYTES, max_items=BANK_MAX_ITEMS)
    max_inquiry_ids: int = Field(MAX_INQUIRY_IDS, ge=1, le=MAX_TRANSACTIONS_PER_MESSAGE)
    # None: no citizen can link an account (only the operator's import makes links).
    population_register: RegisterConfig | None = None

    def limits_of(self, kind: Kind) -> SenderLimits:
        return self.treasury_limits if kind == "treasury" else self.bank_limits

    @pydantic.model_validator(mode="after")
    def _limits_fit(self) -> SwitchSettings:
        if self.forward_batch_size > self.bank_limits.max_items:
            raise ValueError(f"forward_batch_size {self.forward_batch_size:,} is over "
                             f"bank_limits.max_items {self.bank_limits.max_items:,}: a "
                             "creditor's answer to a whole forward would be refused")
        largest = max(self.treasury_limits.max_body_bytes, self.bank_limits.max_body_bytes)
        if self.transport.max_body_bytes_reading < largest:
            raise ValueError(f"transport.max_body_bytes_reading must hold the largest message "
                             f"a participant may send ({count(largest, 'byte')})")
        if self.signing == "ed25519" and self.private_key is None:
            raise ValueError("ed25519 signing needs the switch's private_key")
        if self.signing == "hmac" and self.private_key is not None:
            raise ValueError("private_key belongs to ed25519 signing, not hmac")
        return self


class SwitchConfig(SwitchSettings):
    """The settings with the admitted participants by BIC."""

    participants: dict[str, ParticipantConfig] = Field(default_factory=dict)


class _ConfigFile(BaseModel):
    """A whole configuration: both sections are required, so that an empty file or a
    forgotten section is refused at start (exit 2) rather than serving a switch that admits
    no one, or one with a built-in admin token."""

    model_config = ConfigDict(extra="forbid")

    switch: SwitchSettings
    participants: list[ParticipantConfig]

    @pydantic.field_validator("participants")
    @classmethod
    def _someone_admitted(cls, participants: list[ParticipantConfig]
                          ) -> list[ParticipantConfig]:
        if not participants:
            raise ValueError("a switch admits at least one participant; none is listed")
        return participants

    @pydantic.model_validator(mode="after")
    def _each_bic_once(self) -> _ConfigFile:
        register = self.switch.population_register
        seen = {self.switch.bic, *([register.id] if register else [])}
        for participant in self.participants:
            if participant.bic in seen:
                raise ValueError(f"bic {participant.bic} appears twice (the switch's own BIC "
                                 "counts)")
            seen.add(participant.bic)
            if participant.mtls and self.switch.tls is None:
                raise ValueError(f"participant {participant.bic} has mtls: true, which needs "
                                 "the switch's tls: certificate, private_key and authority")
        return self

    @pydantic.model_validator(mode="after")
    def _keys_of_the_mode(self) -> _ConfigFile:
        needed, other = (("secret", "public_key") if self.switch.signing == "hmac"
                         else ("public_key", "secret"))
        register = self.switch.population_register
        for participant in [*self.participants, *([register] if register else [])]:
            if getattr(participant, needed) is None:
                raise ValueError(f"participant {participant.bic} needs a {needed} "
                                 f"({self.switch.signing} signing)")
            if getattr(participant, other) is not None:
                raise ValueError(f"participant {participant.bic} has a {other}, which "
                                 f"{self.switch.signing} signing does not use")
        return self


def _config(parsed: _ConfigFile) -> SwitchConfig:
    return SwitchConfig(**dict(parsed.switch), participants={
        participant.bic: participant for participant in parsed.participants})


def parse_config(data: Any) -> SwitchConfig:
    """Build a SwitchConfig from parsed YAML; raises SettingsError naming the field."""
    try:
        return _config(_ConfigFile.model_validate(data))
    except pydantic.ValidationError as error:
        raise SettingsError(settings.describe(None, None, error)) from None


def load_config(path: Path) -> SwitchConfig:
    """Read a switch configuration file; raises SettingsError naming file, line and field."""
    return _config(settings.load(path, _ConfigFile))


# RFC 2104 section 3: an HMAC key shorter than the hash's output (32 bytes for SHA-256) is
# "strongly discouraged"; a bearer token of fewer than 16 characters cannot hold the 128 bits
# a guess must face (RFC 6750 section 5.2: tokens must not be guessable).
MIN_SECRET_BYTES = 32
MIN_TOKEN_CHARS = 16


def weak_secrets(config: SwitchConfig) -> list[str]:
    """One sentence for each credential too short to trust beyond a trial on one machine: a
    participant's HMAC secret, the admin token, the metrics token. Warned at start, not
    refused, because short readable ones serve a trial and its tests (docs/participants.md);
    the lab itself provisions 32 random bytes each."""
    warnings = []
    for participant in config.participants.values():
        if participant.secret is not None and (
                length := len(participant.secret)) < MIN_SECRET_BYTES:
            warnings.append(
                f"participant {participant.bic}'s secret is {count(length, 'byte')}; HMAC "
                f"wants {MIN_SECRET_BYTES} random bytes or more (RFC 2104): anyone who guesses "
                "it signs as that participant")
    for name, token in (("admin_token", config.admin_token),
                        ("metrics_token", config.metrics_token)):
        if token is not None and len(token) < MIN_TOKEN_CHARS:
            warnings.append(
                f"{name} is {count(len(token), 'character')}; use {MIN_TOKEN_CHARS} random "
                "characters or more: anyone who guesses it " + (
                    "runs the admin API" if name == "admin_token" else "reads every position"))
    return warnings
