"""The security tester's findings on ids scoped to their sender (issue #22): which transfer a
participant's pacs.004 or pacs.028 means, among those under one end-to-end id (switch.inquiry
candidates and pick, without sockets)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import reasons
from switch.inquiry import candidates, pick
from switch.states import TransferState
from switch.transfer import ForwardIds, Transfer, scoped_key

BANK_A, BANK_B, TREASURY = "BFTVVNVX", "ICBVVNVX", "TRSYVNV1"
PARTICIPANTS = [TREASURY, BANK_A, BANK_B]
FORWARD_IDS = ForwardIds(bytes(range(32)))


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
    keys = candidates(PARTICIPANTS, party_bic, "X-11", tx_id, forward_ids=FORWARD_IDS)
    return pick(FOUND, keys, party_bic, tx_id, as_creditor_only, forward_ids=FORWARD_IDS)


def test_ids_finding_a_the_creditor_returns_the_transfer_it_received_not_its_own() -> None:
    assert chosen(BANK_A, "BTX-11", as_creditor_only=True) == (INCOMING, None)
    assert chosen(BANK_A, "ATX-11", as_creditor_only=True) == (
        None, reasons.PAYMENT_NOT_RECEIVED)  # its own outgoing is not its to return


def test_ids_finding_b_the_txid_the_asker_saw_picks_the_transfer_in_either_role() -> None:
    assert chosen(BANK_A, "BTX-11") == (INCOMING, None)
    assert chosen(BANK_A, "ATX-11") == (OUTGOING, None)
    # B, creditor of A's scoped transfer, knows it by the switch's TxId, not A's.
    assert chosen(BANK_B, FORWARD_IDS.tx_id(OUTGOING.end_to_end_id)) == (OUTGOING, None)
    # A TxId naming none of the asker's transfers names none: AG09, never its sole candidate.
    assert chosen(BANK_B, "ATX-11") == (None, reasons.PAYMENT_NOT_RECEIVED)


def test_issue22_an_orgnltxid_that_matches_none_is_not_taken_even_alone() -> None:
    """The gap the last session left: with one transfer under the end-to-end id, a pacs.028
    or pacs.004 whose OrgnlTxId did not match still took it (the simulator's returns said
    "T" and were settled). A wrong OrgnlTxId now names nothing: AG09."""
    only_incoming = {"X-11": INCOMING}
    for asker, as_creditor_only in ((BANK_A, True), (BANK_A, False), (BANK_B, False)):
        keys = candidates(PARTICIPANTS, asker, "X-11", "T", forward_ids=FORWARD_IDS)
        assert pick(only_incoming, keys, asker, "T", as_creditor_only,
                    forward_ids=FORWARD_IDS) == (
            None, reasons.PAYMENT_NOT_RECEIVED)
    keys = candidates(PARTICIPANTS, BANK_A, "X-11", "BTX-11", forward_ids=FORWARD_IDS)
    assert pick(only_incoming, keys, BANK_A, "BTX-11", True, forward_ids=FORWARD_IDS) == (
        INCOMING, None)


def test_ids_finding_b_party_to_several_without_a_txid_is_ch21_not_a_guess() -> None:
    assert chosen(BANK_A, None) == (None, reasons.REQUIRED_ELEMENT_MISSING)
    assert chosen(BANK_B, None) == (None, reasons.REQUIRED_ELEMENT_MISSING)
    only_incoming = {"X-11": INCOMING}
    keys = candidates(PARTICIPANTS, BANK_A, "X-11", None, forward_ids=FORWARD_IDS)
    assert pick(only_incoming, keys, BANK_A, None, forward_ids=FORWARD_IDS) == (INCOMING, None)


def test_ids_a_non_party_gets_ag09_whatever_txid_it_names() -> None:
    for tx_id in (None, "BTX-11", "ATX-11", FORWARD_IDS.tx_id(OUTGOING.end_to_end_id)):
        assert chosen(TREASURY, tx_id) == (None, reasons.PAYMENT_NOT_RECEIVED)


# ---- the rule, over every arrangement of transfers under one end-to-end id -----------------

E2E = "X-11"


@st.composite
def arrangements(draw: st.DrawFn) -> dict[str, Transfer]:
    """Transfers under one end-to-end id: its first user's, and any other debtor's scoped."""
    first = draw(st.sampled_from(PARTICIPANTS))
    debtors = [first, *draw(st.lists(st.sampled_from(PARTICIPANTS), unique=True))]
    found = {}
    for n, debtor in enumerate(dict.fromkeys(debtors)):
        key = E2E if n == 0 else scoped_key(E2E, debtor)
        creditor = draw(st.sampled_from([p for p in PARTICIPANTS if p != debtor]))
        tx_id = draw(st.sampled_from(["TX-1", "TX-2", f"TX-{debtor}"]))
        found[key] = settled(key, tx_id, debtor, creditor)
    return found


@settings(max_examples=400, deadline=None)
@given(found=arrangements(), asker=st.sampled_from(PARTICIPANTS),
       tx_id=st.sampled_from([None, "TX-1", "TX-2", "T", "X", *(f"TX-{p}" for p in
                                                               PARTICIPANTS)]),
       as_creditor_only=st.booleans(), seen_tx=st.booleans())
def test_issue22_the_transfer_picked_is_the_asker_s_and_named_by_its_orgnltxid(
        found: dict[str, Transfer], asker: str, tx_id: str | None, as_creditor_only: bool,
        seen_tx: bool) -> None:
    """Whatever transfers share the id: what pick returns is one the asker is party to (its
    creditor for a return), that the OrgnlTxId names as the asker knows it; a TxId naming
    none is AG09; the keys `candidates` lists find all the asker may mean; and transfers the
    asker is not party to change nothing (no oracle)."""
    if seen_tx and found:  # often the TxId the asker really saw of one of them
        tx_id = next(iter(found.values())).tx_id_seen_by(asker, FORWARD_IDS)
    keys = candidates(PARTICIPANTS, asker, E2E, tx_id, forward_ids=FORWARD_IDS)
    transfer, reason = pick(found, keys, asker, tx_id, as_creditor_only,
                            forward_ids=FORWARD_IDS)
    meant = [t for t in found.values() if asker in (t.debtor_bic, t.creditor_bic)
             and (tx_id is None or t.tx_id_seen_by(asker, FORWARD_IDS) == tx_id)
             and (not as_creditor_only or t.creditor_bic == asker)]
    if transfer is not None:
        assert reason is None and meant == [transfer]
    else:
        assert reason == (reasons.REQUIRED_ELEMENT_MISSING if len(meant) > 1
                          else reasons.PAYMENT_NOT_RECEIVED)
    own = {key: t for key, t in found.items() if asker in (t.debtor_bic, t.creditor_bic)}
    assert pick(own, keys, asker, tx_id, as_creditor_only, forward_ids=FORWARD_IDS) == (
        transfer, reason)
