"""The bank's declaration: the small file it hands in with its run, naming the roles it plays
in the scheme (a debtor exposes POST /switchlab/transfers, by which the suite drives it) and
the optional features it implements. It decides which cases are mandatory
(docs/conformance.md, "The test plan"): a case of a declared role, needing no feature or a
declared one, is mandatory; any other case is conditional, run and reported, but its verdict
does not decide the run.

    {"roles": ["creditor", "debtor"], "features": ["returns", "verification", "bulk"]}
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

Role = Literal["creditor", "debtor"]
Feature = Literal["returns", "verification", "bulk"]
ROLES: tuple[Role, ...] = ("creditor", "debtor")
FEATURES: dict[Feature, str] = {
    "returns": "sends pacs.004 returns of its credits (POST /switchlab/returns)",
    "verification": "answers acmt.023 verification questions as the holder's participant",
    "bulk": "takes pacs.008 messages of many transactions (a bulk forward of 1,000)",
}
MAX_DECLARATION_BYTES = 4 * 1024


class Declaration(BaseModel):
    """Roles and optional features; the default is a creditor bank with every creditor
    feature (the run before declarations existed)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    roles: tuple[Role, ...] = Field(default=("creditor",), min_length=1)
    features: tuple[Feature, ...] = ("returns", "verification", "bulk")

    def requires(self, role: str, feature: str | None) -> bool:
        """Whether a case of `role` ("creditor", "debtor" or "any") needing `feature` is
        mandatory for this bank."""
        return (role == "any" or role in self.roles) and (
            feature is None or feature in self.features)


class DeclarationError(ValueError):
    """The declaration file is missing, too large, not JSON or not the documented shape."""


def read_declaration(path: Path) -> Declaration:
    """Raises DeclarationError naming the file and the field."""
    try:
        if path.stat().st_size > MAX_DECLARATION_BYTES:
            raise DeclarationError(f"{path} is over {MAX_DECLARATION_BYTES:,} bytes: not a "
                                   "declaration")
        return Declaration.model_validate_json(path.read_bytes())
    except OSError as error:
        raise DeclarationError(f"cannot read the declaration {path}: {error}") from None
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        where = ".".join(map(str, first["loc"])) or "declaration"
        raise DeclarationError(f"{path}: {where}: {first['msg']} (roles: "
                               f"{', '.join(ROLES)}; features: {', '.join(FEATURES)})"
                               ) from None
