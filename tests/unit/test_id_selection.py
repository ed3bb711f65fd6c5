"""The security tester's findings on ids scoped to their sender (issue #22): which transfer a
participant's pacs.004 or pacs.028 means, among those under one end-to-end id (switch.inquiry
candidates and pick, without sockets)."""

from __future__ import annotations

from protocol import reasons
from switch.inquiry import candidates, pick
from switch.states import TransferState
from switch.transfer import Transfer, forward_tx_id, scoped_key

BANK_A, BANK_B, TREASURY = "BFTVVNVX", "ICBVVNVX", "TRSYVNV1"
PARTICIPANTS = [TREASURY, BANK_A, BANK_B]


def settled(key: str, tx_id: str, debtor_bic: str, creditor_bic: str) -> Transfer:
    return Transfer(end_to_end_id=key, tx_id=tx_id, msg_id="M1", debtor_bic=debtor_bic,
                    creditor_bic=creditor_bic, amount_vnd=150_000, bulk=False,
                    received_at=0.0, state=TransferState.SETTLED)


# B sent X-11 to A first; A then sent its own X-11 to B, kept under a scoped key.
INCOMING = settled("X-11", "BTX-11", BANK_B, BANK_A)
OUTGOING = settled(scoped_key("X-11", BANK_A), "ATX-11", BANK_A, BANK_B)
FOUND = {t.end_to_end_id: t for t in (INCOMING, OUTGOING)}


def chosen(party_bic: str, tx_id: str | None, as_creditor_only: bool = False
           ) -> tuple[Transfer | None, str | None]:
    keys = candidates(PARTICIPANTS, party_bic, "X-11", tx_id)
    return pick(FOUND, keys, party_bic, tx_id, as_creditor_only)


def test_ids_finding_a_the_creditor_returns_the_transfer_it_received_not_its_own() -> None:
    assert chosen(BANK_A, "BTX-11", as_creditor_only=True) == (INCOMING, None)
    assert chosen(BANK_A, "ATX-11", as_creditor_only=True) == (
        None, reasons.PAYMENT_NOT_RECEIVED)  # its own outgoing is not its to return


def test_ids_finding_b_the_txid_the_asker_saw_picks_the_transfer_in_either_role() -> None:
    assert chosen(BANK_A, "BTX-11") == (INCOMING, None)
    assert chosen(BANK_A, "ATX-11") == (OUTGOING, None)
    # B, creditor of A's scoped transfer, knows it by the switch's TxId, not A's.
    assert chosen(BANK_B, forward_tx_id(OUTGOING.end_to_end_id)) == (OUTGOING, None)
    # A TxId naming none of them tells nothing apart: its one candidate, as before issue #22.
    assert chosen(BANK_B, "ATX-11") == (INCOMING, None)


def test_ids_finding_b_party_to_several_without_a_txid_is_ch21_not_a_guess() -> None:
    assert chosen(BANK_A, None) == (None, reasons.REQUIRED_ELEMENT_MISSING)
    assert chosen(BANK_B, None) == (None, reasons.REQUIRED_ELEMENT_MISSING)
    only_incoming = {"X-11": INCOMING}
    keys = candidates(PARTICIPANTS, BANK_A, "X-11", None)
    assert pick(only_incoming, keys, BANK_A, None) == (INCOMING, None)


def test_ids_a_non_party_gets_ag09_whatever_txid_it_names() -> None:
    for tx_id in (None, "BTX-11", "ATX-11", forward_tx_id(OUTGOING.end_to_end_id)):
        assert chosen(TREASURY, tx_id) == (None, reasons.PAYMENT_NOT_RECEIVED)
