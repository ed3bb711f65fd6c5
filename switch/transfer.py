"""A transfer as the switch holds it in memory while it is in flight, and as the store reads it
back from the journal."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, replace

from protocol import reasons
from protocol.ids import FORWARD_TX_PREFIX, wire_end_to_end_id
from protocol.messages import CreditTransfer, TransactionStatus, TxStatus
from switch.states import WIRE_STATUS, TransferState, check_transition

# Ids belong to their sender (issue #22): an end-to-end id is unique per debtor agent, as the
# initiating party assigns it (ISO 20022). The switch keys a transfer by its end-to-end id
# when its debtor was the first to use that id, and by the id, SCOPE and the debtor's BIC when
# another debtor used it first: XML cannot carry SCOPE (a control character), so no id on the
# wire is ever taken for such a key. Such a transfer is forwarded under a TxId the switch
# assigns (ForwardIds.tx_id), which tells it apart from the other's at the creditor.
SCOPE = "\x1f"


def scoped_key(end_to_end_id: str, debtor_bic: str) -> str:
    """The key of `debtor_bic`'s transfer under an id another debtor used first."""
    return f"{end_to_end_id}{SCOPE}{debtor_bic}"


wire_id = wire_end_to_end_id  # the end-to-end id on the wire of a transfer's key


FORWARD_SECRET_BYTES = 32  # HMAC-SHA256's block-sized key; more adds nothing (RFC 2104 s.3)


def unkeyed_forward_tx_id(key: str) -> str:
    """The forward TxId of the versions before ForwardIds (SWT + sha256 of the key): anyone
    could compute it; kept only to recognise transfers a journal holds from then."""
    return FORWARD_TX_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class ForwardIds:
    """The TxIds the switch forwards scoped transfers under (Max35Text: SWT + 32 hex digits):
    HMAC-SHA256 (RFC 2104) of the transfer's key under `secret`, a random 32 bytes the journal
    holds (made once, with the journal), so they are the same after a restart and on every
    process of a cluster, yet no participant can compute another debtor's (attacker report
    item 1: with an unkeyed hash anyone could). `legacy_until_s` (unix s): transfers received
    at or before it were forwarded, by an older version, under unkeyed_forward_tx_id (None: a
    journal made with its secret)."""

    secret: bytes
    legacy_until_s: float | None = None

    def tx_id(self, key: str, received_at: float | None = None) -> str:
        """The TxId the creditor of the scoped transfer `key` (received at `received_at`,
        unix s; None: now) knows it by."""
        if (self.legacy_until_s is not None and received_at is not None
                and received_at <= self.legacy_until_s):
            return unkeyed_forward_tx_id(key)
        return FORWARD_TX_PREFIX + hmac.digest(self.secret, key.encode(), "sha256").hex()[:32]

    def key_named(self, end_to_end_id: str, tx_id: str | None, debtors: Iterable[str]) -> str:
        """The key of the transfer a creditor names by the end-to-end id and TxId it was
        forwarded under: a scoped one when the TxId is one of tx_id's (or, on a journal from
        before the secret, the unkeyed one: Transfer.named_by then checks it by the transfer's
        time), else the id."""
        if tx_id and tx_id.startswith(FORWARD_TX_PREFIX):
            for debtor_bic in debtors:
                key = scoped_key(end_to_end_id, debtor_bic)
                if self.tx_id(key) == tx_id or (self.legacy_until_s is not None
                                                and unkeyed_forward_tx_id(key) == tx_id):
                    return key
        return end_to_end_id


def refusal(end_to_end_id: str, tx_id: str, reason_code: str, switch_bic: str,
            msg_id: str | None = None) -> TransactionStatus:
    """A pacs.002 TxInfAndSts refusing a transaction by the switch itself (StsRsnInf/Orgtr
    is the switch): RJCT with `reason_code` and its ISO description."""
    return TransactionStatus(
        original_end_to_end_id=end_to_end_id, original_tx_id=tx_id,
        status=TxStatus.REJECTED, reason_code=reason_code,
        reason_text=reasons.DESCRIPTIONS[reason_code], original_msg_id=msg_id,
        reason_originator_bic=switch_bic)


@dataclass(slots=True, eq=False)
class Transfer:
    """One end-to-end id through the scheme: debtor, creditor, amount and state.

    `source` is the debtor's transaction, kept only until the creditor has been sent it;
    `outcome` is set, for an instant transfer, when its final state is durable.
    """

    end_to_end_id: str
    tx_id: str
    msg_id: str
    debtor_bic: str
    creditor_bic: str
    amount_vnd: int
    bulk: bool
    received_at: float  # unix time, s
    state: TransferState | None = None
    reason_code: str | None = None
    reason_by: str | None = None  # BIC of who gave the reason: the creditor or the switch
    source: CreditTransfer | None = None
    outcome: asyncio.Future[None] | None = None

    def advance(self, target: TransferState, reason_code: str | None = None,
                reason_by: str | None = None) -> None:
        """Move to `target` (the state machine of states.py decides if it may); `reason_by`
        is the BIC of whoever gave the reason code."""
        check_transition(self.state, target)
        self.state = target
        self.reason_code = reason_code
        self.reason_by = reason_by if reason_code else None

    @property
    def wire_id(self) -> str:
        """The end-to-end id as its debtor sent it (`end_to_end_id` is the switch's key)."""
        return wire_id(self.end_to_end_id)

    @property
    def scoped(self) -> bool:
        """Whether another debtor used this end-to-end id first."""
        return SCOPE in self.end_to_end_id

    def tx_id_seen_by(self, party_bic: str, forward_ids: ForwardIds) -> str:
        """The TxId `party_bic` knows this transfer by: the forward's for its creditor (the
        switch's when scoped), the debtor's own otherwise."""
        if party_bic == self.creditor_bic and self.scoped:
            return forward_ids.tx_id(self.end_to_end_id, self.received_at)
        return self.tx_id

    def named_by(self, party_bic: str, tx_id: str | None, forward_ids: ForwardIds) -> bool:
        """Whether an OrgnlTxId `party_bic` gave names this transfer: absent (ISO 20022 makes
        it optional: the end-to-end id alone names it), or the TxId the party knows it by. A
        TxId naming another transfer never names this one (issue #22's gap: a sole candidate
        was taken whatever OrgnlTxId said). A transfer refused for a TxId in the switch's
        namespace (CH16, attacker report item 1) names nothing for its creditor: it was never
        forwarded, and its TxId is another transfer's."""
        if party_bic != self.debtor_bic and self.reason_code == reasons.RESERVED_TX_ID:
            return False
        return tx_id is None or self.tx_id_seen_by(party_bic, forward_ids) == tx_id

    def forwarded(self, forward_ids: ForwardIds) -> CreditTransfer | None:
        """The transaction as the creditor is sent it: the debtor's, under the switch's TxId
        when the transfer is scoped."""
        if self.source is None or not self.scoped:
            return self.source
        return replace(self.source,
                       tx_id=forward_ids.tx_id(self.end_to_end_id, self.received_at))

    def status(self, to_creditor: ForwardIds | None = None) -> TransactionStatus:
        """The pacs.002 TxInfAndSts that tells a participant where this transfer stands: the
        debtor's ids, or with `to_creditor` (the switch's ForwardIds) as its creditor knows
        it: for a scoped transfer, the TxId it was forwarded under."""
        assert self.state is not None
        return TransactionStatus(
            original_end_to_end_id=self.wire_id,
            original_tx_id=(self.tx_id if to_creditor is None
                            else self.tx_id_seen_by(self.creditor_bic, to_creditor)),
            status=WIRE_STATUS[self.state],
            reason_code=self.reason_code,
            reason_text=reasons.DESCRIPTIONS.get(self.reason_code or ""),
            original_msg_id=self.msg_id,
            reason_originator_bic=self.reason_by,
            switch_key=self.end_to_end_id if self.scoped else None,
        )
