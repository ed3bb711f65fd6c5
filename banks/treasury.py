"""The mock State Treasury as a participant: pays a payment table through the switch.

It is the debtor side of a payout day. It submits in bulk files (the switch answers ACTC and
pushes final statuses to its inbound endpoint) or one transfer at a time (the final status
comes back in the answer). It never resends blindly: when an answer is lost it asks the switch
(pacs.028) and resends only what the switch says it never received (AG09), which is the
scheme's rule and what keeps a retry from paying anyone twice. It ends with one final status
per beneficiary (banks/payout.py), which banks/reconcile.py checks against the switch's and
the banks' books.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Literal, Protocol

import aiohttp
from aiohttp import web
from aiolimiter import AsyncLimiter
from pydantic import BaseModel, ConfigDict, Field

from banks.config_types import Bic, HttpUrl
from banks.final_statuses import FinalStatuses
from banks.payment_table import MAX_ACCOUNT_CHARS, Payment, PaymentTable
from banks.payout import (
    LatencyLog,
    Outcomes,
    PayoutResult,
    PayoutStatus,
    Verdict,
    shared_verdict,
)
from banks.verification import (
    UNANSWERED,
    SwitchNotReached,
    answered,
    http_answer,
    verify_payments,
)
from protocol import reasons
from protocol.codec import MAX_TRANSACTIONS_PER_MESSAGE, CodecError, new_id
from protocol.http import SWITCH_MESSAGES_PATH, Peer, Reply, Sender, read_signed, sign_answers
from protocol.keys import SwitchKeys
from protocol.messages import (
    MAX_NAME_CHARS,
    CreditTransfer,
    CreditTransferMessage,
    PaymentReturn,
    PaymentReturnItem,
    PaymentStatusReport,
    Statement,
    StatusRequest,
    StatusRequestItem,
    TransactionStatus,
    TxStatus,
    VerificationResult,
)
from protocol.retry import with_backoff
from protocol.runtime import bind, serve

INBOUND_PATH = "/iso20022"
INBOUND_MAX_BYTES = 16 * 1024 * 1024  # the switch's reports carry at most 1,000 transactions
MAX_IDS_PER_INQUIRY = 1_000  # the scheme's limit for one pacs.028
MAX_CONCURRENCY = 10_000
MAX_FILES_IN_FLIGHT = 64
MAX_RETRIES = 20
MAX_BACKOFF_S = 5.0
MAX_WAIT_S = 3_600.0  # a request or a quiet period
MAX_RUN_S = 86_400.0  # a payout day
MAX_RATE_PER_S = 1_000_000.0
# Outcomes handed to the keeper at least this often (and at the end of each run), so that a
# run killed midway resumes from what it kept and asks the switch (pacs.028) about the rest.
KEEP_EVERY = 200
REASON_IN_TEXT = re.compile(r"([A-Z0-9]{4}):")
TREASURY = web.AppKey("treasury", "Treasury")


class TreasuryError(SwitchNotReached):
    """The switch refuses the treasury itself (credentials): no retry can help."""


class Keeper(Protocol):
    """Where a treasury that must survive a crash keeps what it learns, durably, before it
    answers the switch: final statuses, returns, and verifications that had an answer."""

    def keep(self, finals: Mapping[str, Verdict], returns: Mapping[str, PaymentReturnItem],
             verifications: Mapping[str, VerificationResult]) -> None: ...


# A scenario's run section is made of these same settings (scenarios/spec.py), so the limits
# a scenario file is checked against are the treasury's own.
RunTimeS = Annotated[float, Field(gt=0, le=MAX_RUN_S)]
WaitS = Annotated[float, Field(gt=0, le=MAX_WAIT_S)]


class TreasurySettings(BaseModel):
    """How hard the treasury may push and how long it waits: what an operator tunes.

    `concurrency` bounds instant requests in flight, `files_in_flight` bulk files in flight.
    Validating raises pydantic.ValidationError (a ValueError) naming each bad field.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["bulk", "instant"] = "bulk"
    bulk_size: int = Field(1_000, ge=1, le=MAX_TRANSACTIONS_PER_MESSAGE)  # per pacs.008
    concurrency: int = Field(64, ge=1, le=MAX_CONCURRENCY)
    files_in_flight: int = Field(4, ge=1, le=MAX_FILES_IN_FLIGHT)
    request_timeout_s: WaitS = 30.0
    quiet_period_s: WaitS = 2.0  # no news for this long: ask about the stragglers
    final_timeout_s: RunTimeS = 300.0  # the whole run, submission to last final status
    # inquiry-and-resend rounds per message, and final-poll resends
    max_retries: int = Field(5, ge=0, le=MAX_RETRIES)
    # the first pause after a lost answer; it doubles up to MAX_BACKOFF_S
    retry_backoff_s: float = Field(0.1, gt=0, le=MAX_BACKOFF_S)
    # ask the switch (acmt.023) whether each account is the row's person's before paying;
    # a payment whose answer is no is not sent, and goes to the cash list with the reason
    verify: bool = False
    rate_per_s: float | None = Field(None, gt=0, le=MAX_RATE_PER_S)  # transfers a second


class TreasuryConfig(TreasurySettings, SwitchKeys):
    """Who the treasury is, where the switch is and the keys between them (SwitchKeys), with
    its settings."""

    bic: Bic
    switch_url: HttpUrl
    switch_bic: Bic
    name: str = Field("Kho bạc Nhà nước", min_length=1, max_length=MAX_NAME_CHARS)
    # the debtor account
    account_id: str = Field("KBNN-TW-0001", min_length=1, max_length=MAX_ACCOUNT_CHARS)
    inbound_host: str = "127.0.0.1"
    inbound_port: int = Field(0, ge=0, le=65_535)  # 0: the OS chooses


class Treasury:
    """The debtor participant: submits, asks when unsure, keeps one final status per id.

    What it keeps of a payout of millions is by row of the tables it runs (a final status,
    a first submission time), not by id in dicts: see banks/final_statuses.py."""

    def __init__(self, config: TreasuryConfig) -> None:
        self.config = config
        # first final status per end-to-end id; knows every table ever run, for inbound news
        self.final = FinalStatuses()
        self.returned: dict[str, PaymentReturnItem] = {}  # first return per end-to-end id
        self.news = asyncio.Event()  # set whenever a status or return arrives
        self.session: aiohttp.ClientSession | None = None
        self.submissions = self.inquiries = self.resends = 0
        self.duplicates_refused = 0
        # Why the switch last gave no answer (a refused connection, a timeout, a 5xx), cleared
        # by its next answer: what a run left unresolved is put down to the switch, not to a bank.
        self.switch_trouble = ""
        # submission to final status, per transfer, bulk and instant alike
        self.latencies = LatencyLog()
        self.elapsed_s = 0.0  # in run(), every call of it added up
        # The current run: its table, the rows it pays (all, or those verification
        # confirmed), whether each row is one of them, and when each was first submitted
        # (time.monotonic(); 0.0 not yet).
        self._table = PaymentTable()
        self._running: Sequence[int] = ()
        self._in_run = bytearray()
        self._sent_s = array("d")
        self._done = 0
        self._progress: Callable[[int, int], None] | None = None
        self._runner: web.AppRunner | None = None
        self.verified: dict[str, VerificationResult] = {}  # acmt.024 answer per end-to-end id
        self.keeper: Keeper | None = None
        self._unkept: set[str] = set()  # ids learnt about since the keeper last kept
        self.maybe_sent: set[str] = set()  # an earlier run may have sent them: ask first
        self.senders = {config.switch_bic: Sender(config.credentials(), INBOUND_MAX_BYTES)}

    # ---- inbound: what the switch pushes ------------------------------------------------------

    def app(self) -> web.Application:
        """The inbound endpoint where the switch pushes bulk reports and returns."""
        app = web.Application(client_max_size=INBOUND_MAX_BYTES,
                              middlewares=[sign_answers(self.config.bic, self.senders)])
        app[TREASURY] = self
        app.router.add_post(INBOUND_PATH, _inbound)
        return app

    async def start_inbound(self) -> str:
        """Serve the inbound endpoint on the configured host and port; returns its URL."""
        bound = bind(self.config.inbound_host, self.config.inbound_port)
        self._runner = await serve(self.app(), bound)
        return f"{bound.base_url}{INBOUND_PATH}"

    async def stop_inbound(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def record(self, statuses: Iterable[TransactionStatus]) -> None:
        """Keep the first final status per end-to-end id; repeats and strangers change nothing.

        The switch's own DUPL (it refused a resent id; the original stands) and AG09 (it never
        received the id, in answer to an inquiry) say nothing final about a transfer. A
        creditor's RJCT is final whatever its code, DUPL and AG09 included: the switch names
        who gave a reason (pacs.002 StsRsnInf/Orgtr).
        """
        switch_bic = self.config.switch_bic
        for status in statuses:
            if status.status not in (TxStatus.SETTLED, TxStatus.REJECTED):
                continue
            by_switch = status.reason_originator_bic in (None, switch_bic)
            if by_switch and status.reason_code == reasons.DUPLICATE:
                self.duplicates_refused += 1
                continue
            if by_switch and status.reason_code == reasons.PAYMENT_NOT_RECEIVED:
                continue
            self._finish(status.original_end_to_end_id,
                         shared_verdict(status.status, status.reason_code))
        if len(self._unkept) >= KEEP_EVERY:
            self.flush()
        self.news.set()

    def take_returns(self, items: Iterable[PaymentReturnItem]) -> None:
        """Returns after settlement: the first per end-to-end id counts, repeats change nothing."""
        for item in items:
            e2e = item.original_end_to_end_id
            if not self.final.knows(e2e):  # not one of this treasury's transfers
                continue
            if e2e not in self.returned and self.keeper is not None:
                self._unkept.add(e2e)
            self.returned.setdefault(e2e, item)
            # a return proves the transfer had settled
            self._finish(e2e, shared_verdict(TxStatus.SETTLED))
        self.news.set()

    def _finish(self, e2e: str, verdict: Verdict) -> None:
        """The first final status of one of this treasury's transfers; later ones, and those
        of transfers it never sent, change nothing."""
        if not self.final.keep_first(e2e, verdict):
            return
        if self.keeper is not None:
            self._unkept.add(e2e)
        row = self._table.row_of(e2e)
        if row is not None and self._in_run[row]:
            sent_s = self._sent_s[row]
            if sent_s:
                now_s = time.monotonic()
                self.latencies.add(now_s, (now_s - sent_s) * 1000.0,
                                   self._table.creditor_bic(row),
                                   verdict.status == TxStatus.SETTLED)
            self._done += 1
            if self._progress is not None:
                self._progress(self._done, len(self._running))

    # ---- outbound: what the treasury sends ----------------------------------------------------

    @property
    def switch(self) -> Peer:
        assert self.session is not None, "the session exists only during run()"
        return Peer(self.session, f"{self.config.switch_url}{SWITCH_MESSAGES_PATH}",
                    self.config.bic, self.senders[self.config.switch_bic].credentials,
                    self.config.switch_bic,
                    timeout_s=self.config.request_timeout_s)

    def _transaction(self, end_to_end_id: str, amount_vnd: int, full_name: str,
                     account_id: str, creditor_bic: str, citizen_id: str, programme: str
                     ) -> CreditTransfer:
        """One CdtTrfTxInf, from the fields of a payment (`PaymentTable.paid`)."""
        return CreditTransfer(
            end_to_end_id, end_to_end_id, amount_vnd, self.config.name, self.config.account_id,
            self.config.bic, full_name, account_id,
            creditor_bic or self.config.switch_bic,  # by NIDN: the switch finds the bank
            citizen_id, programme or None, "VND", str(amount_vnd))

    def message(self, payments: Iterable[Payment]) -> CreditTransferMessage:
        """The pacs.008 the treasury sends for these payments."""
        return self._message([self._transaction(
            p.end_to_end_id, p.amount_vnd, p.full_name, p.account_id, p.creditor_bic,
            p.citizen_id, p.programme) for p in payments])

    def _message(self, transactions: list[CreditTransfer]) -> CreditTransferMessage:
        return CreditTransferMessage(
            msg_id=new_id("KBNN"), created_at=datetime.now(UTC),
            instructing_agent_bic=self.config.bic, instructed_agent_bic=self.config.switch_bic,
            transactions=transactions,
        )

    def _no_answer(self, error: BaseException) -> None:
        self.switch_trouble = (f"could not be reached at {self.config.switch_url} "
                               f"({str(error) or type(error).__name__})")

    def _check_credentials(self, reply: Reply) -> None:
        """Raise TreasuryError for a 401/403; any answer clears `switch_trouble`."""
        self.switch_trouble = "" if 200 <= reply.status < 500 else (
            f"at {self.config.switch_url} answered {http_answer(reply)}")
        if reply.status in (401, 403):
            raise TreasuryError(f"the switch refuses the treasury {self.config.bic} (its "
                                f"key, or --switch-bic {self.config.switch_bic}): "
                                f"{http_answer(reply)}")

    async def _submit(self, rows: Sequence[int]) -> list[str]:
        """Send one pacs.008 of these rows of the run; returns the ids whose fate it left
        unknown (the answer was lost).

        A timeout, a broken connection, a 5xx or an unreadable answer is a lost answer: the
        switch may or may not have the transfers. A 400 or 413 is a refusal of the whole
        message, which the switch makes before taking anything. A group DU01 (its MsgId was
        used before, for other content) refuses this message but leaves the original's
        transfers standing: their fate is unknown here, and asked for.
        """
        self.submissions += 1
        sent_s = time.monotonic()
        for row in rows:  # latency runs from the first submission, resends included
            if not self._sent_s[row]:
                self._sent_s[row] = sent_s
        transactions = [self._transaction(*self._table.paid(row)) for row in rows]
        ids = [tx.end_to_end_id for tx in transactions]
        try:
            reply = await self.switch.send(self._message(transactions))
        except (aiohttp.ClientError, OSError, TimeoutError, CodecError) as error:
            self._no_answer(error)
            return ids
        self._check_credentials(reply)
        if reply.status in (400, 413):
            found = REASON_IN_TEXT.match(reply.text)
            code = found.group(1) if found else reasons.INVALID_FILE_FORMAT
            self.record(TransactionStatus(e2e, e2e, TxStatus.REJECTED, code) for e2e in ids)
            return []
        report = reply.message.document if reply.message else None
        if not 200 <= reply.status < 300 or not isinstance(report, PaymentStatusReport):
            return ids
        if (report.group_status == TxStatus.REJECTED
                and report.group_reason_code == reasons.DUPLICATE_MESSAGE_ID):
            return ids
        if report.group_status == TxStatus.REJECTED:
            code = report.group_reason_code or reasons.NOT_SPECIFIED
            self.record(TransactionStatus(e2e, e2e, TxStatus.REJECTED, code) for e2e in ids)
        else:
            self.record(report.transactions)
        return []

    async def _inquire(self, ids: list[str]) -> tuple[list[str], list[str]]:
        """Ask the switch about ids (pacs.028, 1,000 a request) and record what is final.

        Returns (never received: safe to resend, not answered: still unknown).
        """
        never_received: list[str] = []
        unanswered: list[str] = []
        for start in range(0, len(ids), MAX_IDS_PER_INQUIRY):
            chunk = ids[start:start + MAX_IDS_PER_INQUIRY]
            self.inquiries += 1
            request = StatusRequest(msg_id=new_id("KBQ"), created_at=datetime.now(UTC),
                                    items=[StatusRequestItem(e2e, e2e) for e2e in chunk])
            try:
                reply = await self.switch.send(request)
            except (aiohttp.ClientError, OSError, TimeoutError, CodecError) as error:
                self._no_answer(error)
                unanswered += chunk
                continue
            self._check_credentials(reply)
            report = reply.message.document if reply.message else None
            if reply.status != 200 or not isinstance(report, PaymentStatusReport):
                unanswered += chunk
                continue
            self.record(report.transactions)
            asked = set(chunk)
            answered = {s.original_end_to_end_id for s in report.transactions} & asked
            never_received += [s.original_end_to_end_id for s in report.transactions
                               if s.reason_code == reasons.PAYMENT_NOT_RECEIVED
                               and s.original_end_to_end_id not in self.final
                               and s.original_end_to_end_id in asked]
            unanswered += [e2e for e2e in chunk if e2e not in answered]
        return never_received, unanswered

    async def _deliver(self, rows: Sequence[int], deadline_s: float) -> None:
        """Submit; if the answer is lost, ask, and resend only what the switch never received.

        At most max_retries rounds, backing off, none past the deadline; what stays unknown
        is left to the final poll, and reported unresolved if it stays so.
        """
        first_backoff_s = self.config.retry_backoff_s
        rounds = 0
        unsure: list[str] = []

        async def deliver_round() -> list[str]:
            """The submission first; then an inquiry, and a resend of what never arrived."""
            nonlocal rounds, unsure
            rounds += 1
            if rounds == 1:
                unsure = await self._submit(rows)
            else:
                never_received, unsure = await self._inquire(unsure)
                if never_received:
                    self.resends += len(never_received)
                    unsure += await self._submit(self._rows_of(never_received))
            unsure = [e2e for e2e in unsure if e2e not in self.final]
            return unsure

        def settled_or_out_of_time(still_unsure: list[str]) -> bool:
            """Nothing left to ask about, or the next pause (as with_backoff waits: doubling
            from the first, capped) would end past the deadline."""
            next_backoff_s = min(first_backoff_s * 2 ** (rounds - 1), MAX_BACKOFF_S)
            return not still_unsure or time.monotonic() + next_backoff_s >= deadline_s

        await with_backoff(deliver_round, attempts=1 + self.config.max_retries,
                           first_backoff_s=first_backoff_s, max_backoff_s=MAX_BACKOFF_S,
                           done=settled_or_out_of_time)

    def _rows_of(self, ids: Iterable[str]) -> list[int]:
        """The rows of the run paying these ids."""
        rows = (self._table.row_of(e2e) for e2e in ids)
        return [row for row in rows if row is not None]

    def _unfinished(self, rows: Sequence[int], skip: Iterable[str] = ()) -> Sequence[int]:
        """Those of the run's rows with no final status (nor an id in `skip`), in order; as
        an array, 8 bytes a row, for there may be millions."""
        skipped = set(skip)
        if not self.final and not skipped:
            return rows
        ids = map(self._table.end_to_end_id, rows)
        return array("q", (row for row, e2e in zip(rows, ids, strict=True)
                           if e2e not in self.final and e2e not in skipped))

    async def _pay(self, rows: Sequence[int], deadline_s: float) -> None:
        """Submit these rows of the run in messages of bulk_size (one each when instant), a
        bounded number in flight."""
        bulk = self.config.mode == "bulk"
        size = self.config.bulk_size if bulk else 1
        chunks: Iterator[Sequence[int]] = (rows[i:i + size] for i in range(0, len(rows), size))
        workers = min(self.config.files_in_flight if bulk else self.config.concurrency,
                      -(-len(rows) // size))
        rate = self.config.rate_per_s
        # A bucket that holds at least one message: a bulk file of 1,000 at 100 transfers a
        # second goes every 10 s.
        limiter = None if rate is None else AsyncLimiter(max(rate, size), max(rate, size) / rate)

        async def work() -> None:
            for chunk in chunks:  # shared: each worker takes the next message to send
                if limiter is not None:
                    await limiter.acquire(len(chunk))
                await self._deliver(chunk, deadline_s)

        tasks = [asyncio.ensure_future(work()) for _ in range(workers)]
        try:
            await asyncio.gather(*tasks)
        finally:  # a TreasuryError in one worker stops the others
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _await_final(self, deadline_s: float) -> None:
        """Wait for the switch's reports; after a quiet period, poll the stragglers (pacs.028)
        and resend those it never received, in at most max_retries rounds."""
        resend_rounds = 0
        while True:
            self.news.clear()
            remaining_s = deadline_s - time.monotonic()
            if self._done >= len(self._running) or remaining_s <= 0:
                return
            try:
                await asyncio.wait_for(self.news.wait(),
                                       min(self.config.quiet_period_s, remaining_s))
                continue
            except TimeoutError:
                pass
            missing = self._unfinished(self._running)
            never_received, _ = await self._inquire(
                [self._table.end_to_end_id(row) for row in missing])
            if never_received and resend_rounds < self.config.max_retries:
                resend_rounds += 1
                self.resends += len(never_received)
                await self._pay(self._rows_of(never_received), deadline_s)

    async def run(self, payments: Sequence[Payment],
                  progress: Callable[[int, int], None] | None = None) -> PayoutResult:
        """Pay every row once and wait, within final_timeout_s, for each one's final status.

        With `verify`, each row not yet final is first verified (acmt.023) and only those the
        holder's participant confirms are sent. `progress(done, total)` is called as final
        statuses arrive. Rows that already have a final status (from an earlier run) are not
        sent again, and rows in `maybe_sent` are asked about (pacs.028) before any is sent.
        `payments` is best a PaymentTable: a list is copied into one.
        """
        table = PaymentTable.of(payments)
        if table.repeated_ids():
            raise ValueError("end-to-end ids must be unique within a run")
        started_s = time.monotonic()
        deadline_s = started_s + self.config.final_timeout_s
        self.final.add_table(table)
        self._table = table
        self._in_run = bytearray(len(table))  # none until verification says which
        self._sent_s = array("d", [0.0]) * len(table)
        in_flight = self.config.files_in_flight if self.config.mode == "bulk" else (
            self.config.concurrency)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=in_flight + 1, ssl=self.config.client_ssl()))
        try:
            self._running = (await self._verified() if self.config.verify
                             else self._not_stopped())
            for row in self._running:
                self._in_run[row] = 1
            waiting = self._unfinished(self._running)
            self._done = len(self._running) - len(waiting)
            self._progress = progress
            if progress is not None:
                progress(self._done, len(self._running))
            in_switch = await self._ask_first(waiting)
            await self._pay(self._unfinished(waiting, in_switch), deadline_s)
            await self._await_final(deadline_s)
        finally:
            await self.session.close()
            self.session = None
            self._progress = None
            self._table, self._running = PaymentTable(), ()
            self._in_run, self._sent_s = bytearray(), array("d")
            self.elapsed_s += time.monotonic() - started_s
            self.flush()
        return self.result(table)

    async def _verified(self) -> Sequence[int]:
        """Verify (acmt.023) the run's rows not yet final nor answered; the rows to pay:
        those final already or confirmed."""
        table = self._table
        asked = array("q", (row for row in range(len(table))
                            if (e2e := table.end_to_end_id(row)) not in self.final
                            and not answered(self.verified.get(e2e))))
        if asked:
            results = await verify_payments(
                self.switch, table.take(asked), concurrency=self.config.files_in_flight,
                attempts=1 + self.config.max_retries,
                first_backoff_s=self.config.retry_backoff_s)
            self.verified.update(results)
            if self.keeper is not None:
                self._unkept.update(results)
            self.flush()
        return array("q", (row for row in range(len(table))
                           if (e2e := table.end_to_end_id(row)) in self.final
                           or ((v := self.verified.get(e2e)) is not None and v.verified)))

    def stop(self, codes: Mapping[str, str]) -> None:
        """Rows a check outside the treasury stopped before payment (the labour ministry's
        against the population register), by end-to-end id: never sent, their outcome
        STOPPED with the code; kept as verification answers are. A row final already
        keeps its outcome."""
        for e2e, code in codes.items():
            if e2e not in self.final:
                self.verified[e2e] = VerificationResult(e2e, False, code)
                self._unkept.add(e2e)
        self.flush()

    def _not_stopped(self) -> Sequence[int]:
        """Without verification: every row of the run but those stopped (`stop`)."""
        table, verified = self._table, self.verified
        if not verified:
            return range(len(table))
        return array("q", (row for row in range(len(table))
                           if (v := verified.get(table.end_to_end_id(row))) is None
                           or v.verified))

    async def _ask_first(self, rows: Sequence[int]) -> set[str]:
        """Ask the switch (pacs.028) about those of these rows an earlier run may have sent,
        and record what is final; the ids it holds but has not finished, or that it did not
        answer for: those are not sent again (the final poll asks once more)."""
        if not self.maybe_sent:
            return set()
        unsure = [e2e for e2e in map(self._table.end_to_end_id, rows)
                  if e2e in self.maybe_sent and e2e not in self.final]
        if not unsure:
            return set()
        never_received, _ = await self._inquire(unsure)
        self.flush()
        return set(unsure) - set(never_received) - set(self.final)

    def flush(self) -> None:
        """Hand what was learnt since the last flush to the keeper (nothing without one)."""
        if self.keeper is None or not self._unkept:
            return
        ids, self._unkept = self._unkept, set()
        self.keeper.keep(
            {e2e: self.final[e2e] for e2e in ids if e2e in self.final},
            {e2e: self.returned[e2e] for e2e in ids if e2e in self.returned},
            {e2e: v for e2e in ids if answered(v := self.verified.get(e2e)) and v is not None})

    def result(self, payments: Sequence[Payment]) -> PayoutResult:
        """Each payment's outcome as known now (returns may still arrive after a run): a
        code a row (`Outcomes`), not an object."""
        table = PaymentTable.of(payments)
        outcomes = Outcomes(table)
        for row in range(len(table)):
            outcomes.append(*self._outcome(table.end_to_end_id(row)))
        return PayoutResult(outcomes, self.elapsed_s, self.submissions, self.inquiries,
                            self.resends)

    def _outcome(self, e2e: str) -> tuple[PayoutStatus, str | None, int]:
        """(status, reason code, VND returned) of one payment."""
        verification = self.verified.get(e2e)
        if verification is not None and not verification.verified and e2e not in self.final:
            code = verification.reason_code or reasons.NOT_SPECIFIED
            return (PayoutStatus.UNRESOLVED if code in UNANSWERED else PayoutStatus.STOPPED,
                    code, 0)
        returned = self.returned.get(e2e)
        if returned is not None:
            return PayoutStatus.RETURNED, returned.reason_code, returned.returned_amount_vnd
        status = self.final.get(e2e)
        if status is None:
            return PayoutStatus.UNRESOLVED, None, 0
        if status.status == TxStatus.SETTLED:
            return PayoutStatus.PAID, None, 0
        return PayoutStatus.REJECTED, status.reason_code or reasons.NOT_SPECIFIED, 0

    def forget_outcomes(self) -> None:
        """Forget every final status, as an operator about to resubmit a file by mistake."""
        self.final.clear()

    async def wait_for_returns(self, expected: int, timeout_s: float) -> int:
        """Returns arrive after settlement; wait (bounded) until `expected` have come."""
        deadline_s = time.monotonic() + timeout_s
        while True:
            self.news.clear()
            remaining_s = deadline_s - time.monotonic()
            if len(self.returned) >= expected or remaining_s <= 0:
                return len(self.returned)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.news.wait(), remaining_s)


async def _inbound(request: web.Request) -> web.Response:
    treasury = request.app[TREASURY]
    config = treasury.config
    message = (await read_signed(request, treasury.senders, config.bic)).message
    document = message.document
    if isinstance(document, PaymentStatusReport):
        treasury.record(document.transactions)
    elif isinstance(document, PaymentReturn):
        treasury.take_returns(document.items)
    elif not isinstance(document, Statement):  # a closed cycle's camt.053: acknowledged
        raise web.HTTPBadRequest(text=f"FF01: the treasury takes pacs.002, pacs.004 and "
                                 f"camt.053, not {message.header.msg_def_id}\n")
    treasury.flush()  # kept before the switch hears "ok" and stops resending it
    return web.Response(text="ok\n")
