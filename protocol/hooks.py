"""The test hooks a participant under conformance exposes: the wire both sides share.

The conformance suite (`switchlab conformance`, docs/conformance.md) must know whether the bank
credited an account, and must ask it to make a return and to send a transfer of its own. A
bank exposes three small JSON endpoints beside its inbound URL, in its test environment only,
each request signed exactly as the switch signs the messages it posts to the bank (RFC 9421
over the method, path, query and the body's Content-Digest) and each answer signed by the
bank as it signs its answers:

- `GET {base}/switchlab/balances/{account_id}` → `200 {"account_id", "balance_vnd",
  "credited": [end-to-end ids], "held": [end-to-end ids]}`, `404` for an account it does not
  hold;
- `POST {base}/switchlab/returns` `{"end_to_end_id", "reason_code"}` and optionally
  `"amount_vnd"` (a partial return) → `202` once the bank is sending the pacs.004 that
  returns that credit, `409` with a sentence if it cannot;
- `POST {base}/switchlab/transfers` `{"end_to_end_id", "amount_vnd", "debtor_account",
  "creditor_agent_bic", "creditor_account", "creditor_name"}` → `202` once the bank is sending
  that instant pacs.008 to the switch (the cases as debtor); or `{"transfers": [those
  fields, …]}` (2 to 1,000) → `202` once it is sending them as one bulk pacs.008.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from protocol.ids import MAX_ID_CHARS
from protocol.messages import MAX_AMOUNT_VND, MAX_NAME_CHARS

HOOKS_PREFIX = "/switchlab"
BALANCES_PATH = f"{HOOKS_PREFIX}/balances"
RETURNS_PATH = f"{HOOKS_PREFIX}/returns"
TRANSFERS_PATH = f"{HOOKS_PREFIX}/transfers"
MAX_HOOK_BODY_BYTES = 512 * 1024  # a bulk order of 1,000 transfers, ~250 bytes each
MAX_CREDITED_LISTED = 100_000  # end-to-end ids in one balance answer
MAX_BULK_ORDER = 1_000  # a bank's most transactions in one pacs.008

Id35 = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS, pattern=r"^\S+$")]
AccountId = Annotated[str, Field(min_length=1, max_length=34, pattern=r"^\S+$")]


class Balance(BaseModel):
    """The answer to a balance query: what the account holds in whole dong (a JSON integer),
    which transfers credited it (each end-to-end id once, however often it was delivered or
    confirmed) and which it holds (accepted with ACCP, neither confirmed nor released: a
    JSON list of strings, empty when none; None when the bank does not say, which fails the
    cases about holds)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    account_id: AccountId
    balance_vnd: int
    credited: list[Id35] = Field(max_length=MAX_CREDITED_LISTED)
    held: list[Id35] | None = Field(default=None, max_length=MAX_CREDITED_LISTED)


class ReturnOrder(BaseModel):
    """Return this credit (pacs.004) with this reason: the whole amount, or `amount_vnd` of
    it (a partial return; whole dong, a JSON integer)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    end_to_end_id: Id35
    reason_code: Annotated[str, Field(pattern=r"^[A-Z0-9]{4}$")]
    amount_vnd: int | None = Field(default=None, ge=1, le=MAX_AMOUNT_VND)


class TransferOrder(BaseModel):
    """Send this instant credit transfer (pacs.008) to the switch, as debtor agent."""

    model_config = ConfigDict(extra="forbid", strict=True)

    end_to_end_id: Id35
    amount_vnd: int = Field(ge=1, le=MAX_AMOUNT_VND)
    debtor_account: AccountId
    creditor_agent_bic: Annotated[str, Field(pattern=r"^[A-Z0-9]{8}([A-Z0-9]{3})?$")]
    creditor_account: AccountId
    creditor_name: Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]


class BulkTransferOrder(BaseModel):
    """Send these transfers to the switch in one pacs.008 (a bulk: the switch answers 202
    and pushes each final status), as debtor agent: `{"transfers": [TransferOrder, …]}`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    transfers: list[TransferOrder] = Field(min_length=2, max_length=MAX_BULK_ORDER)
