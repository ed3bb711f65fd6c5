"""Verification (acmt.023 -> acmt.024): does this account belong to the person with this citizen
id and name? The switch answers for no participant: it routes each question to the participant
that holds the account, resolving a citizen id through the directory when no account is
given, and passes the participants' answers back in one acmt.024.

Privacy: the asker learns match or no match and the reason code; a holder's name is passed on
only masked (protocol/names.py), and only in the shape a mask has, so a participant that sent a
full name by mistake does not hand it on; the account a citizen id resolves to is never told.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import defaultdict
from datetime import UTC, datetime

from protocol import reasons
from protocol.codec import new_id
from protocol.ids import is_max35_id
from protocol.messages import (
    VerificationItem,
    VerificationReport,
    VerificationRequest,
    VerificationResult,
)
from switch.calls import exchange
from switch.state import SwitchState

log = logging.getLogger(__name__)
MAX_VERIFICATIONS_PER_MESSAGE = 1_000
_MASKED = re.compile(r"[A-Z0-9']\**(?: [A-Z0-9']\**)*")  # what protocol.names.mask_name writes


class RequestRefused(Exception):
    """The acmt.023 as a whole is not acceptable (FF01): too many or repeated ids."""


class Verification:
    def __init__(self, state: SwitchState) -> None:
        self.state = state
        config = state.config
        self._slots: dict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(config.max_forwards_in_flight_per_creditor))

    async def answer(self, asker_bic: str, request: VerificationRequest) -> VerificationReport:
        """The acmt.024 for an asker's acmt.023. Raises RequestRefused for a request over
        MAX_VERIFICATIONS_PER_MESSAGE or whose Vrfctn ids are not unique Max35 ids."""
        items = request.items
        if len(items) > MAX_VERIFICATIONS_PER_MESSAGE:
            raise RequestRefused(f"{len(items):,} Vrfctn in one acmt.023; at most "
                                 f"{MAX_VERIFICATIONS_PER_MESSAGE:,}")
        ids = [item.verification_id for item in items]
        bad = next((i for i in ids if not is_max35_id(i)), None)
        if bad is not None or len(set(ids)) != len(ids):
            raise RequestRefused(f"Vrfctn/Id {bad!r} is not a Max35Text id" if bad is not None
                                 else "a Vrfctn/Id appears twice")
        results: dict[str, VerificationResult] = {}
        routed: dict[str, list[VerificationItem]] = defaultdict(list)
        for item in items:
            route = self._route(item)
            if isinstance(route, VerificationResult):
                results[item.verification_id] = route
            else:
                routed[route.agent_bic or ""].append(route)
        for answers in await asyncio.gather(*(self.ask(bic, asked)
                                              for bic, asked in routed.items())):
            results.update(answers)
        ordered = [results[i] for i in ids]
        self.state.events.verified.fire(asker_bic=asker_bic, results=ordered)
        return VerificationReport(
            msg_id=new_id("SWV"), created_at=datetime.now(UTC),
            assigner_bic=self.state.config.bic, assignee_bic=asker_bic,
            original_msg_id=request.msg_id, results=ordered)

    def _route(self, item: VerificationItem) -> VerificationItem | VerificationResult:
        """The question as the holding participant is to be asked it, or the answer when the
        switch knows it already: BE23 for a citizen id with no linked account; RC01 for an
        account whose agent is missing, the switch itself, or not a participant that holds
        accounts."""
        state = self.state
        if not item.account_id:
            entry = state.directory.by_citizen.get(item.citizen_id or "")
            if entry is None:
                return VerificationResult(item.verification_id, False,
                                          reasons.NO_LINKED_ACCOUNT)
            item = VerificationItem(item.verification_id, item.name, item.citizen_id,
                                    entry.account_id, entry.participant_bic)
        holder = state.participants.get(item.agent_bic or "")
        if holder is None or holder.config.kind == "treasury":
            return VerificationResult(item.verification_id, False, reasons.WRONG_BIC)
        return item

    async def ask(self, participant_bic: str, items: list[VerificationItem]
                  ) -> dict[str, VerificationResult]:
        """One acmt.023 to the participant holding the accounts, within the creditor deadline.
        Every item it does not answer is not verified: AB08 when it is signed off, its breaker
        is open or the exchange failed; AB05 when it did not answer in time."""
        participant = self.state.participants[participant_bic]
        config = self.state.config
        ids = {item.verification_id for item in items}
        reason = reasons.OFFLINE_CREDITOR_AGENT
        answered: dict[str, VerificationResult] = {}
        request = VerificationRequest(
            msg_id=new_id("SWQ"), created_at=datetime.now(UTC), assigner_bic=config.bic,
            assignee_bic=participant_bic, items=items)
        book = self.state.book
        if book.admits(participant_bic, asyncio.get_running_loop().time()):
            async with self._slots[participant_bic]:
                reply, failure_reason = await exchange(
                    book, participant, request, config.creditor_timeout_s,
                    lambda reply: reply.status == 200 and isinstance(
                        reply.message.document if reply.message is not None else None,
                        VerificationReport))
            if reply is not None:
                assert reply.message is not None
                document = reply.message.document
                assert isinstance(document, VerificationReport)
                answered = {r.original_id: _passed_on(r) for r in document.results
                            if r.original_id in ids}
            else:
                assert failure_reason is not None
                reason = failure_reason
        return {i: answered.get(i) or VerificationResult(i, False, reason) for i in ids}


def _passed_on(result: VerificationResult) -> VerificationResult:
    """A participant's answer as the switch hands it on: a name only if it is masked."""
    masked = result.masked_name
    if masked is not None and not _MASKED.fullmatch(masked):
        masked = None
    return VerificationResult(result.original_id, result.verified, result.reason_code, masked)
