"""Fuzz: valid messages of every kind, mutated field by field, sent signed to a real switch.

Each example plays a few messages from participants who make mistakes or attack: a field set to
a huge, negative, exponent, empty, over-long or strange value, a transaction repeated inside a
message, ids reused across messages and squatted across participants (ids belong to their
sender, issue #22), wrong currencies and counts; a message signed with one's own key but
claiming another's identity (401, nothing taken), and a captured request replayed inside the
signature window (401, nothing taken twice).
Whatever they send: no 5xx, another participant is still served, what is refused moves no
money, the invariants hold, and memory and journal agree after a restart.
"""

from __future__ import annotations

import asyncio
import copy
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from lab import postgres
from protocol import codec, signing
from protocol.codec import new_id
from protocol.http import SWITCH_MESSAGES_PATH, wrap
from protocol.messages import (
    MessageType,
    PaymentStatusReport,
    StatusRequest,
    StatusRequestItem,
    TransactionStatus,
    TxStatus,
)
from switch.config import DEFAULT_CREDITOR_TIMEOUT_S
from tests.conftest import new_database
from tests.harness import (
    BANK_A,
    BANK_B,
    SWITCH_BIC,
    TREASURY,
    SwitchLab,
    check_invariants,
    credit_transfers,
    only_status,
    pay,
    return_of,
    transfer,
    until,
)

HOSTILE_VALUES = [
    "", " ", "0", "-1", "-1E+19", "1E+1000000", "10000000000000000000", "9" * 5_000, "1.5",
    "0x10", "NaN", "١٢", "X" * 36, "X" * 10_000, "USD", "VND", "SWLBVNVX", "TRSYVNV1",
    "BFTVVNVX", "E2E-SEED-0", "MSG-SEED", "\ue000", "\ue001", "é" * 200, "<x>", "&amp;",
]
KINDS = ("instant", "bulk", "answer", "return", "inquiry")
SENDERS = (TREASURY, BANK_A)


def _seed_body(kind: str, sender: str, n: int) -> bytes:
    """A valid message of `kind` from `sender`, its ids drawn from a small pool so that
    examples reuse each other's ids."""
    if kind in ("instant", "bulk"):
        count = 1 if kind == "instant" else 3
        creditor = BANK_B if sender == BANK_A else BANK_A
        transactions = [transfer(f"E2E-SEED-{(n + i) % 7}", creditor=creditor, debtor=sender)
                        for i in range(count)]
        document: object = credit_transfers(transactions, sender, msg_id=f"MSG-SEED-{n % 3}")
    elif kind == "answer":
        document = PaymentStatusReport(
            msg_id=new_id("FZ"), created_at=datetime.now(UTC), original_msg_id="MSG-SEED",
            original_msg_type=MessageType.CREDIT_TRANSFER, transactions=[TransactionStatus(
                f"E2E-SEED-{n % 7}", f"TXE2E-SEED-{n % 7}", TxStatus.ACCEPTED)])
    elif kind == "return":
        document = return_of(f"E2E-SEED-{n % 7}", 1_500_000, creditor=sender,
                             return_id=f"RTR-SEED-{n % 3}")
    else:
        document = StatusRequest(msg_id=new_id("FZ"), created_at=datetime.now(UTC),
                                 items=[StatusRequestItem(f"E2E-SEED-{n % 7}")])
    return codec.encode(wrap(sender, SWITCH_BIC, document))  # type: ignore[arg-type]


def _mutate(body: bytes, choice: int, value: str, repeat: bool) -> bytes:
    """Set one leaf element's text or one attribute to `value`; or repeat a transaction."""
    root = etree.fromstring(body)
    document = root[1]
    if repeat:
        items = [e for e in document.iter() if etree.QName(e).localname in (
            "CdtTrfTxInf", "TxInf", "TxInfAndSts")]
        if items:
            items[choice % len(items)].addnext(copy.deepcopy(items[choice % len(items)]))
            return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    leaves = [e for e in document.iter() if len(e) == 0]
    spots = [(e, None) for e in leaves] + [(e, a) for e in leaves for a in e.attrib]
    element, attribute = spots[choice % len(spots)]
    try:
        if attribute is None:
            element.text = value
        else:
            element.set(attribute, value)
    except ValueError:  # lxml refuses text XML cannot hold; send the valid message instead
        pass
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


ATTACKS = ("none", "none", "impostor", "replay")
MESSAGE = st.tuples(st.sampled_from(KINDS), st.sampled_from(SENDERS), st.integers(0, 20),
                    st.integers(0, 400), st.sampled_from(HOSTILE_VALUES), st.booleans(),
                    st.sampled_from(ATTACKS))
EXAMPLES = st.lists(MESSAGE, min_size=1, max_size=8)


async def post_raw(lab: SwitchLab, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    assert lab.session is not None
    async with lab.session.post(f"{lab.url}{SWITCH_MESSAGES_PATH}", data=body,
                                headers=headers) as response:
        return response.status, await response.text()


async def attack(lab: SwitchLab, sender: str, body: bytes, how: str) -> None:
    """An impostor signs `body` with its own key as the other sender: 401. A wiretap replays
    the sender's captured request at once: the second is 401, whatever the first was."""
    own = lab.participants[sender].credentials.own
    if how == "impostor":
        other = next(bic for bic in SENDERS if bic != sender)
        status, text = await post_raw(lab, body, signing.sign(other, own, SWITCH_MESSAGES_PATH,
                                                              body))
        assert status == 401, (status, text)
        return
    captured = signing.sign(sender, own, SWITCH_MESSAGES_PATH, body)
    first, _ = await post_raw(lab, body, captured)
    assert first < 500
    status, text = await post_raw(lab, body, captured)
    assert status == 401 and "already used" in text, (status, text)


async def play(messages: list[tuple[str, str, int, int, str, bool, str]], **journal: object
               ) -> None:
    """The messages against a switch on SQLite, or on the `journal_url` given. The creditor
    deadline is the scheme's (a canary's forward answered after a tighter one is rightly AB05,
    and on a loaded machine the scripted creditor, in this process, can take over 0.5 s)."""
    with tempfile.TemporaryDirectory() as directory:
        lab = await SwitchLab(Path(directory) / "switch.sqlite",
                              creditor_timeout_s=DEFAULT_CREDITOR_TIMEOUT_S, **journal).start()
        try:
            for number, (kind, sender, n, choice, value, repeat, how) in enumerate(messages):
                body = _mutate(_seed_body(kind, sender, n), choice, value, repeat)
                if how != "none":
                    await attack(lab, sender, body, how)
                else:
                    reply = await lab.peer(sender).post(body)
                    assert reply.status < 500, (kind, value, reply.status, reply.text)
                canary = await pay(lab, transfer(f"E2E-CANARY-{number}", creditor=BANK_A,
                                                 debtor=BANK_B), sender=BANK_B)
                assert only_status(canary)[0] is TxStatus.SETTLED, canary.text
            await until(lambda: not lab.switch.state.book.in_flight,
                        timeout_s=DEFAULT_CREDITOR_TIMEOUT_S + 5)
            await check_invariants(lab, all_final=True)
            _, before = await lab.admin("GET", "/v1/admin/participants")
            await lab.restart_switch()
            _, after = await lab.admin("GET", "/v1/admin/participants")
            assert {p["bic"]: p["net_vnd"] for p in before} == {
                p["bic"]: p["net_vnd"] for p in after}
        finally:
            await lab.stop()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(messages=EXAMPLES)
def test_no_message_stops_the_switch_or_moves_money_it_should_not(
        messages: list[tuple[str, str, int, int, str, bool, str]]) -> None:
    asyncio.run(play(messages))


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(messages=EXAMPLES)
def test_no_message_stops_the_switch_on_postgresql(
        messages: list[tuple[str, str, int, int, str, bool, str]],
        postgres_server: postgres.Server) -> None:
    """The same on a PostgreSQL journal, whose functions and types refuse other values
    (a NUL in text, past 64 bits): each is that message's refusal, never the journal's end."""
    asyncio.run(play(messages, journal_url=new_database(postgres_server)))
