"""`switchlab payout TABLE.csv`: pay the user's own payment table, resumable, and report.

By default in an embedded lab: the switch and the participants the table names, in this
process on 127.0.0.1. The lab's world may come from files: `--accounts DIR` (a bank's
accounts, `<BIC>.csv` in banks/accounts_file.py's format: open, closed, blocked, deceased,
any holder's name), `--register FILE` (the population register, register/citizens.py: the
ministry's check stops the dead, the unknown and the mismatched before paying) and `--links
FILE` (citizens' own link requests: citizen_id, participant_bic, account_id). Without them,
the table's accounts are opened at the named banks for the person the rows name (an account
that rows name for different people is opened for none: the lab cannot tell whose it is), and
each citizen paid by citizen id links the first account the table gives them.
Everything the lab knows lives in files under `OUTPUT/lab/`, so that a run killed at any
point comes back as it was. With `--switch URL` the treasury pays through a switch that is
already running, with its BIC and key.

Steps: check the table (bad rows listed with their line, the good ones go on); verify each
account against the row's citizen id and name (acmt.023) unless told not to; pay in bulk files
or instant transfers, bounded in concurrency and rate; then report, reconcile and write the
lists for people. The run's own state is `OUTPUT/run.sqlite` (banks/payout_state.py); what
every run of the treasury paid or listed, its payout register (banks/payout_register.py),
lives beside the runs: a corrected table pays only what no run paid or listed.

Exit status: 0 when every good row is paid or on a list (cash, deceased, table errors);
1 when the books do not reconcile or a row is left unresolved; 2 when the table or the
arguments are wrong (nothing is paid); 141 when the terminal's reader closed the output
(`| head`: switchlab/cli.py OUTPUT_CLOSED), the run's files written.
"""

from __future__ import annotations

import csv
import json
import logging
import secrets
import shutil
from array import array
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp
from tqdm import tqdm

from banks import cash_list
from banks.accounts_file import AccountsFileError, read_accounts
from banks.behaviour import Behaviour
from banks.ledger import Account, Ledger
from banks.ministry import check_table, payment_notices, stop_codes, write_findings
from banks.payment_table import (
    EXCEL_ENCODING,
    CheckedTable,
    Payment,
    PaymentTable,
    PaymentTableError,
    check_payment_table,
    excel_cell,
    retry_id,
)
from banks.payout import PayoutResult, PayoutStatus
from banks.payout_register import Entry, PayoutRegister, RegisterError, Settled, key_of
from banks.payout_report import write_report
from banks.payout_state import PayoutState
from banks.payout_trace import (
    CASH,
    DECEASED,
    TRACE_COLUMNS,
    Figures,
    RunRows,
    register_state,
    trace,
)
from banks.population import Population
from banks.reconcile import Mismatch, SwitchTotals, reconcile
from banks.registry import PARTICIPANTS, TREASURY, TREASURY_BIC
from banks.treasury import Treasury, TreasuryConfig, TreasurySettings
from banks.verification import UNANSWERED, SwitchNotReached, answered
from lab.citizens import lab_citizen, read_link_requests, write_verdicts
from lab.world import World, WorldSettings
from protocol.http import idempotency_key
from protocol.ids import is_bic
from protocol.keys import SwitchKeys
from protocol.messages import TxStatus
from protocol.names import same_name
from protocol.wording import count, vietnam_now
from register.citizens import Register, read_register

TABLE_SHA256, LAB_READY, STARTED, FINISHED = "table_sha256", "lab_ready", "started", "finished"
RUN_ID = "run_id"  # this run's name in the payout register, made once and kept for resumes
REGISTER_FOLDER = "payout-register"  # beside the output folder: <BIC>.sqlite a treasury
SETTLE_BATCH = 10_000  # register entries settled a transaction
DIRECTORY_PAGE = 1_000  # the switch's limit on directory changes a request
DIRECTORY_TIMEOUT_S = 30.0  # a page of it
MAX_DIRECTORY_PAGES = 100_000  # 100 million changes: far past any directory
# How resent rows are named (banks/payment_table.py retry_id); a folder started before it was
# recorded named them otherwise, and resuming it here could pay a row twice.
ATTEMPT_IDS, ATTEMPT_IDS_NOW = "attempt_ids", "hmac-run-secret"
# The run's secret (hex): the key of its derived and resent rows' end-to-end ids, so that no
# bank can compute them and spend them first (issue #22, observation 1); kept in the run's
# state, so a resumed run derives the very same ids and pays nobody twice.
ID_SECRET = "id_secret"
# A row rejected because its transfer could not reach a final word from the creditor (AB05
# no answer in time, AB06 in flight when the switch stopped, AB08 creditor offline) moved no
# money and is final at the switch: it is sent again under a new end-to-end id, at most this
# many times in all, while the run is not finished. Never after: by then the row may be on a
# cash list the post office pays.
MAX_ATTEMPTS = 3
TOTALS_BATCH = 1_000  # end-to-end ids a request for the switch's totals names (its maximum)
ADMIN_TIMEOUT_S = 60.0  # one request to the switch's admin API


class PayoutRefused(Exception):
    """Nothing can be paid: a table that cannot be read, or an output folder that holds the
    run of another table. The sentence says what to do."""


class SwitchFailed(Exception):
    """The switch could not be asked or paid through: it refuses the treasury (a wrong key or
    --switch-bic) or cannot be reached. The run is kept; the sentence names the cause."""


@dataclass
class RemoteSwitch:
    """A running switch, and who the treasury is to it."""

    url: str
    bic: str
    keys: SwitchKeys  # the treasury's key towards the switch, in the scheme's signing mode
    switch_bic: str
    inbound_host: str
    inbound_port: int
    admin_token: str | None = None  # to reconcile against the switch's books


@dataclass
class PayoutSettings:
    table: Path
    output: Path
    treasury: TreasurySettings = field(default_factory=lambda: TreasurySettings(verify=True))
    remote: RemoteSwitch | None = None
    returns_wait_s: float = 0.0
    progress: bool = True
    accounts_dir: Path | None = None  # the embedded lab's bank account files, <BIC>.csv
    register_file: Path | None = None  # its population register, checked before paying
    links_file: Path | None = None  # citizens' own link requests
    payout_register: Path | None = None  # the treasury's; None: register_path()

    @property
    def treasury_bic(self) -> str:
        return self.remote.bic if self.remote is not None else TREASURY_BIC

    @property
    def issuer(self) -> str:
        """The treasury as the lists for people name it: its name and BIC in the lab."""
        return (self.treasury_bic if self.remote is not None
                else f"{TREASURY.name} — {TREASURY_BIC}")

    def register_path(self) -> Path:
        """The register given, or REGISTER_FOLDER/<treasury BIC>.sqlite beside the output:
        one register per treasury per folder of runs (docs/payment-table.md)."""
        if self.payout_register is not None:
            return self.payout_register
        return self.output.resolve().parent / REGISTER_FOLDER / f"{self.treasury_bic}.sqlite"


@dataclass
class Report:
    """What a run ends with: the outcome, the books' agreement, and the files written."""

    result: PayoutResult  # this run's transfers: the books reconciled
    mismatches: list[Mismatch]
    files: dict[str, Path]
    table: CheckedTable
    resumed_final: int  # rows final before this command started (a resumed run)
    reconciled_with: str
    figures: Figures  # every row of the table: the counts shown everywhere
    notes: list[str] = field(default_factory=list)  # what the lab and the register said
    register_path: Path | None = None  # the treasury's payout register this run used
    not_reconciled: str = ""  # why the switch's books could not be read (admin_failure)
    unreached: str = ""  # why the switch left rows unresolved: it gave no answer

    @property
    def exit_code(self) -> int:
        """1 when a check failed: a mismatch, books that could not be read, or a row
        unresolved; else 0."""
        return 1 if (self.mismatches or self.not_reconciled
                     or self.result.by_status[PayoutStatus.UNRESOLVED]) else 0


def _run_secret(output: Path) -> bytes:
    """The secret of the run in `output`: the one it keeps, or a new one (kept once the table
    is read, by _open_state)."""
    path = output / "run.sqlite"
    if path.is_file():
        state = PayoutState(path)
        try:
            known = state.get(ID_SECRET)
        finally:
            state.close()
        if known is not None:
            return bytes.fromhex(known)
    return secrets.token_bytes(32)


def _open_state(settings: PayoutSettings, table: CheckedTable, id_key: bytes) -> PayoutState:
    state = PayoutState(settings.output / "run.sqlite")
    known = state.get(TABLE_SHA256)
    if known is not None and known != table.sha256:
        state.close()
        raise PayoutRefused(
            f"{settings.output} holds the run of another table (SHA-256 {known[:12]}…, this "
            f"one is {table.sha256[:12]}…): pay a corrected table into a new --output folder")
    if state.get(STARTED) is not None and state.get(ATTEMPT_IDS) != ATTEMPT_IDS_NOW:
        state.close()
        raise PayoutRefused(
            f"{settings.output} holds a run started by an earlier switchlab, which named resent "
            "rows otherwise: finish it with that version, or pay into a new --output folder")
    state.set(TABLE_SHA256, table.sha256)
    state.set(ATTEMPT_IDS, ATTEMPT_IDS_NOW)
    if state.get(ID_SECRET) is None:
        state.set(ID_SECRET, id_key.hex())
    if state.get(RUN_ID) is None:
        state.set(RUN_ID, secrets.token_hex(8))
    return state


def _lab_accounts(payments: Iterable[Payment], accounts_dir: Path | None
                  ) -> tuple[dict[str, list[Account]], int]:
    """The lab's accounts by participant: a bank's file in `accounts_dir` (`<BIC>.csv`) when
    there is one, else the accounts the table names, held by the rows' person; and how many
    accounts rows name for different people, opened for none of them (which row came last
    must not decide who holds an account)."""
    named: dict[str, dict[str, Account | None]] = defaultdict(dict)
    for p in payments:
        if p.creditor_bic in PARTICIPANTS:
            held = named[p.creditor_bic]
            account = Account(p.account_id, p.full_name, p.citizen_id)
            other = held.get(p.account_id, account)
            same = other is not None and other.citizen_id == p.citizen_id and same_name(
                other.holder_name, p.full_name)
            held[p.account_id] = other if same else None
    accounts = {bic: [a for a in by_id.values() if a is not None]
                for bic, by_id in named.items()}
    ambiguous = sum(a is None for by_id in named.values() for a in by_id.values())
    if accounts_dir is not None:
        for path in sorted(accounts_dir.glob("*.csv")):
            if not is_bic(path.stem):
                continue  # not a bank's file (the register, the table…)
            if path.stem not in PARTICIPANTS:
                raise PayoutRefused(f"{path}: {path.stem} is no lab participant; name a bank's "
                                    f"file <BIC>.csv, one of {', '.join(PARTICIPANTS)}")
            try:
                accounts[path.stem] = [row.ledger_account() for row in read_accounts(path)]
            except AccountsFileError as error:
                raise PayoutRefused(str(error)) from None
            ambiguous -= sum(a is None for a in named.get(path.stem, {}).values())
    return accounts, ambiguous


def _links(payments: Sequence[Payment]) -> list[dict[str, str]]:
    """Directory links the citizens the table pays by citizen id ask for: the first account
    the table names for them, if any."""
    wanted = {p.citizen_id for p in payments if not p.account_id}
    links: list[dict[str, str]] = []
    for p in payments:
        if p.citizen_id in wanted and p.account_id and p.creditor_bic in PARTICIPANTS:
            wanted.discard(p.citizen_id)
            links.append({"citizen_id": p.citizen_id, "participant_bic": p.creditor_bic,
                          "account_id": p.account_id})
    return links


async def _start_lab(settings: PayoutSettings, state: PayoutState, payments: PaymentTable
                     ) -> tuple[World, list[str]]:
    """The embedded lab, set up once (accounts, links) and after that reopened as it was."""
    lab = settings.output / "lab"
    ready = state.get(LAB_READY) is not None
    accounts, ambiguous = _lab_accounts(payments, settings.accounts_dir)
    notes = [f"Lab: {count(ambiguous, 'account')} that rows name for different people, opened "
             "for none of them (the lab cannot tell whose each is): give --accounts DIR"
             ] if ambiguous else []
    if not ready:  # nothing was sent before the lab was ready: start it afresh
        shutil.rmtree(lab, ignore_errors=True)
        lab.mkdir(parents=True)
        for bic, opened in accounts.items():
            ledger = Ledger(lab / f"{bic}.sqlite")
            ledger.open_accounts(opened)
            ledger.close()
    links = (_links(payments) if settings.links_file is None
             else read_link_requests(settings.links_file))
    if settings.register_file is not None:
        read_register(settings.register_file)  # refused here, naming its bad lines
    register_file = settings.register_file or lab / "citizens.csv"
    if links and settings.register_file is None and not ready:  # as the table's rows say
        Register(lab_citizen(cid, name) for cid, name in {
            p.citizen_id: p.full_name for p in payments}.items()).write(register_file)
    world = World(WorldSettings(
        run_dir=lab, behaviours={bic: Behaviour() for bic in sorted(accounts)},
        treasury=settings.treasury, ledger_dir=lab, keep_journal=True,
        register_file=register_file if links or settings.register_file else None))
    try:
        await world.start(Population(seed=0, beneficiaries=[]))
    except BaseException:
        await world.stop()
        raise
    if not ready:
        try:
            verdicts = await world.link_citizens(links)
        except BaseException:
            await world.stop()
            raise
        write_verdicts(lab / "links.csv", verdicts)
        refused = sum(v["status"] == "refused" for v in verdicts)
        if refused:
            notes.append(f"Lab: {refused:,} of {len(verdicts):,} citizens' link requests "
                         f"refused, each with why, in {lab / 'links.csv'}")
        state.set(LAB_READY, "1")
    return world, notes


async def _remote_treasury(settings: PayoutSettings) -> Treasury:
    remote = settings.remote
    assert remote is not None
    treasury = Treasury(TreasuryConfig(
        bic=remote.bic, **remote.keys.model_dump(exclude_none=True),
        switch_url=remote.url.rstrip("/"), switch_bic=remote.switch_bic,
        inbound_host=remote.inbound_host, inbound_port=remote.inbound_port,
        **settings.treasury.model_dump()))
    await treasury.start_inbound()
    return treasury


async def _directory_links(url: str, token: str, citizens: set[str]
                           ) -> dict[str, tuple[str, str]]:
    """The account the switch's directory links each of `citizens` to now (the admin API's
    changes, a page at a time, at most MAX_DIRECTORY_PAGES): where a row paid by citizen id
    went. A directory that cannot be read leaves them unknown (empty), with a warning: what
    was paid stands."""
    links: dict[str, tuple[str, str]] = {}
    after_seq = 0
    async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=DIRECTORY_TIMEOUT_S)) as session:
        for _ in range(MAX_DIRECTORY_PAGES):
            try:
                async with session.get(f"{url.rstrip('/')}/v1/admin/directory/changes",
                                       params={"after_seq": after_seq, "limit": DIRECTORY_PAGE}
                                       ) as response:
                    response.raise_for_status()
                    changes = (await response.json())["changes"]
                for change in changes:
                    citizen_id = change["citizen_id"]
                    if citizen_id not in citizens:
                        continue
                    if change["action"] == "unlink":
                        links.pop(citizen_id, None)
                    else:
                        links[citizen_id] = (str(change["participant_bic"]),
                                             str(change["account_id"]))
                if len(changes) < DIRECTORY_PAGE:
                    break
                after_seq = int(changes[-1]["seq"])
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as error:
                logging.getLogger(__name__).warning(
                    "the switch's directory could not be read (%s): the bank and account of "
                    "rows paid by citizen id are left empty in results.csv", error)
                return {}
    return links


def admin_failure(url: str, error: BaseException) -> str:
    """One sentence for a request to the switch's admin API (`POST /v1/admin/totals`) that
    failed: the refused token, the unreachable switch, its error or its unreadable answer."""
    where = f"{url.rstrip('/')}/v1/admin/totals"
    if isinstance(error, aiohttp.ClientResponseError) and error.status in (401, 403):
        return (f"the switch refused the admin token (--admin-token-file) at {where}: HTTP "
                f"{error.status} {error.message}; the payment stands, but it is not "
                "reconciled against the switch's books")
    if isinstance(error, aiohttp.ClientResponseError):
        what = f"answered HTTP {error.status} {error.message}"
    elif isinstance(error, aiohttp.ClientError | OSError | TimeoutError):
        what = f"could not be reached ({str(error) or type(error).__name__})"
    else:
        what = f"answered with figures that cannot be read ({error!r})"
    return (f"the switch's admin API at {where} {what}; the payment stands, but it is not "
            "reconciled against the switch's books")


async def switch_totals_of(remote: RemoteSwitch, end_to_end_ids: Sequence[str]
                           ) -> SwitchTotals:
    """The switch's books over this run's own transfers (`POST /v1/admin/totals`, the ids in
    batches of TOTALS_BATCH, one request at a time), whatever else went through the same
    switch: a second table paid through it must not read as a mismatch (issue #24). Raises
    aiohttp.ClientError for a refused request, ValueError for figures out of range."""
    parts = []
    async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {remote.admin_token}"},
            timeout=aiohttp.ClientTimeout(total=ADMIN_TIMEOUT_S)) as session:
        for start in range(0, len(end_to_end_ids), TOTALS_BATCH):
            # A POST, for its body (a thousand ids outgrow a URL): the admin API asks a key
            # of every POST.
            async with session.post(f"{remote.url.rstrip('/')}/v1/admin/totals", json={
                    "debtor": remote.bic,
                    "end_to_end_ids": list(end_to_end_ids[start:start + TOTALS_BATCH])},
                    headers=idempotency_key()) as response:
                response.raise_for_status()
                parts.append(SwitchTotals.from_stats(await response.json()))
    return SwitchTotals.summed(parts)


def _attempt_id(e2e: str, attempt: int, id_key: bytes) -> str:
    """The end-to-end id of a row's n-th attempt (0: the table's own), under the run's key."""
    return e2e if attempt == 0 else retry_id(e2e, attempt, id_key)


def _transient(treasury: Treasury, e2e: str) -> bool:
    verdict = treasury.final.get(e2e)
    return (verdict is not None and verdict.status == TxStatus.REJECTED
            and verdict.reason_code in UNANSWERED)


def _attempts(payments: PaymentTable, treasury: Treasury, more: bool, id_key: bytes
              ) -> bytes:
    """Each row's latest attempt (0 the first): the next one after a transient rejection
    while `more` attempts may be made."""
    attempts = bytearray(len(payments))
    for row in range(len(payments)):
        e2e = payments.end_to_end_id(row)
        attempt = 0
        while _transient(treasury, _attempt_id(e2e, attempt, id_key)) and (
                attempt + 1 < MAX_ATTEMPTS) and (
                more or _attempt_id(e2e, attempt + 1, id_key) in treasury.final):
            attempt += 1
        attempts[row] = attempt
    return bytes(attempts)


def _final_already(treasury: Treasury, current: PaymentTable) -> int:
    """Rows of the run with their outcome known: a final status, or verification's no."""
    return sum(1 for e2e in map(current.end_to_end_id, range(len(current)))
               if e2e in treasury.final or (
                   answered(v := treasury.verified.get(e2e)) and v is not None
                   and not v.verified))


def _current(payments: PaymentTable, attempts: bytes, id_key: bytes) -> PaymentTable:
    """Each row as its attempt: the table itself while every row is at its first."""
    if not any(attempts):
        return payments
    return PaymentTable.of(replace(payment, end_to_end_id=_attempt_id(payment.end_to_end_id,
                                                                      attempt, id_key))
                           for payment, attempt in zip(payments, attempts, strict=True))


async def pay_table(settings: PayoutSettings) -> Report:
    """Check, verify, pay, wait and reconcile; raises PayoutRefused when nothing can be paid,
    OSError when the table cannot be opened."""
    try:
        id_key = _run_secret(settings.output)
        table = check_payment_table(settings.table, id_key)
    except PaymentTableError as error:
        raise PayoutRefused(str(error)) from None
    if not table.payments:  # the ministry still gets the reasons, in the file it expects
        errors = settings.output / "table_errors.csv"
        settings.output.mkdir(parents=True, exist_ok=True)
        write_table_errors(errors, table)
        shown = "".join(f"\nline {line}: {problem}" for line, problem in table.problems[:20])
        raise PayoutRefused(f"{settings.table}: no row can be paid (each reason is in "
                            f"{errors}){shown}")
    state = _open_state(settings, table, id_key)
    run_id = state.get(RUN_ID)
    assert run_id is not None
    try:
        register = PayoutRegister(settings.register_path())
    except RegisterError as error:
        state.close()
        raise PayoutRefused(str(error)) from None
    world: World | None = None
    remote: Treasury | None = None
    notes: list[str] = []
    not_reconciled = unreached = ""
    try:
        earlier = register.claim(run_id, settings.output, settings.table, table.sha256,
                                 zip(table.lines, table.payments, strict=True))
        rows: Sequence[int] = range(len(table.payments))
        payments = table.payments
        if earlier:  # paid, listed or being paid by another run: not this run's to pay
            rows = array("q", (row for row in rows if table.lines[row] not in earlier))
            payments = table.payments.take(rows)
        if settings.remote is None:
            world, notes = await _start_lab(settings, state, table.payments)
            treasury = world.treasury
        else:
            treasury = remote = await _remote_treasury(settings)
        state.restore(treasury)
        if world is not None and world.ministry is not None and settings.register_file:
            findings = await check_table(world.ministry, payments)
            treasury.stop(stop_codes(payments, findings))
            found = write_findings(settings.output / "register_findings.csv", payments,
                                   findings)
            notes.append(f"Population register: {count(found, 'row')} stopped before paying (dead, "
                         "unknown, or another name or birth date), each with why, in "
                         f"{settings.output / 'register_findings.csv'}")
        finished = state.get(FINISHED) is not None
        attempts = _attempts(payments, treasury, not finished, id_key)
        current = _current(payments, attempts, id_key)
        resumed_final = 0
        if state.get(STARTED) is not None:
            resumed_final = _final_already(treasury, current)
            treasury.maybe_sent = {e2e for e2e in map(current.end_to_end_id, range(len(current)))
                                   if e2e not in treasury.final}
        state.set(STARTED, "1")
        verifying = settings.treasury.verify
        bar = tqdm(total=len(current), unit="row", disable=not settings.progress,
                   desc=VERIFYING if verifying else PAYING)
        try:
            for _ in range(MAX_ATTEMPTS):
                await treasury.run(current, lambda done, total: _show(bar, done, total))
                again = _attempts(payments, treasury, not finished, id_key)
                if again == attempts:
                    break
                attempts, current = again, _current(payments, again, id_key)
        except SwitchNotReached as error:
            raise SwitchFailed(f"{error}. The run is kept in {settings.output}: once the "
                               "cause is fixed, the same command finishes it and pays "
                               "nobody twice") from None
        finally:
            bar.close()
        if settings.returns_wait_s:
            await treasury.wait_for_returns(len(current), settings.returns_wait_s)
            treasury.flush()
        result = treasury.result(current)
        if treasury.switch_trouble and result.by_status[PayoutStatus.UNRESOLVED]:
            unreached = (f"the switch {treasury.switch_trouble}: the unresolved rows were "
                         "not answered by it (no bank is to blame); run the same command "
                         "again once it answers")
        if world is not None and world.ministry is not None:  # for citizens to look up
            await world.ministry.report_payments(payment_notices(result))
        token = (world.admin_token if world is not None else
                 settings.remote.admin_token if settings.remote is not None else None)
        url = world.switch_url if world is not None else (
            settings.remote.url if settings.remote is not None else "")
        by_citizen = {p.citizen_id for p in payments if not p.account_id}
        linked = await _directory_links(url, token, by_citizen) if token and by_citizen else {}
        if world is not None:
            mismatches = await world.reconcile(result)
            reconciled_with = "the switch's settlement and the banks' ledgers"
        elif settings.remote is not None and settings.remote.admin_token:
            try:
                mismatches = reconcile(result, await switch_totals_of(settings.remote, [
                    _attempt_id(payments.end_to_end_id(index), attempt, id_key)
                    for index in range(len(payments))
                    for attempt in range(attempts[index] + 1)]))
                reconciled_with = "the switch's settlement"
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError, KeyError,
                    TypeError) as error:  # the money moved: the files are written first
                mismatches, reconciled_with = [], ""
                not_reconciled = admin_failure(settings.remote.url, error)
        else:
            mismatches, reconciled_with = [], ""
        run = RunRows(rows, result, lambda index: [
            _attempt_id(payments.end_to_end_id(index), attempt, id_key)
            for attempt in range(attempts[index] + 1)], treasury.verified, linked)
        files, figures = write_files(settings.output, table, earlier, run, mismatches,
                                     register, run_id, settings.issuer, settings.table,
                                     not_reconciled, unreached)
    finally:
        if world is not None:
            await world.stop()
        if remote is not None:
            await remote.stop_inbound()
        state.close()
        register.close()
    if not result.by_status[PayoutStatus.UNRESOLVED]:
        finished_state = PayoutState(settings.output / "run.sqlite")
        finished_state.set(FINISHED, "1")  # the lists are out: no row is attempted again
        finished_state.close()
    return Report(result, mismatches, files, table, resumed_final, reconciled_with, figures,
                  notes, settings.register_path(), not_reconciled, unreached)


VERIFYING = "verifying accounts (acmt.023)"  # the bar's label before the first final status
PAYING = "paying (rows final)"


def _show(bar: tqdm, done: int, total: int) -> None:
    """The bar at `done` rows final of `total` the run pays (its stopped rows are not among
    them): it reaches 100 % when every row is final. Its first call ends verification: the
    bar is labelled as paying from then on."""
    if not bar.disable and bar.desc != PAYING:  # a disabled bar (--no-progress) has no label
        bar.set_description_str(PAYING, refresh=False)
    bar.total, bar.n = total, done
    bar.refresh()


def write_table_errors(path: Path, table: CheckedTable) -> None:
    """Each bad row's line and reason, for the ministry to correct (Excel's encoding)."""
    with path.open("w", newline="", encoding=EXCEL_ENCODING) as file:
        writer = csv.writer(file, delimiter=table.delimiter)
        writer.writerow(("line", "problem"))
        writer.writerows((line, excel_cell(problem)) for line, problem in table.problems)


def write_files(out: Path, table: CheckedTable, earlier: Mapping[int, Entry], run: RunRows,
                mismatches: list[Mismatch], register: PayoutRegister, run_id: str,
                issuer: str, table_file: Path, not_reconciled: str = "", unreached: str = ""
                ) -> tuple[dict[str, Path], Figures]:
    """Results (every row of the table, in one pass that also counts and settles this run's
    keys in the register), the lists for people, the table's errors, the summary and the
    report; their paths, and the figures. `not_reconciled` (admin_failure) and `unreached`
    (why the switch left rows unresolved) go into the summary and the page as they go to the
    terminal: a clerk who reads only report.html must see them too."""
    files = {name: out / name for name in ("results.csv", "table_errors.csv", "summary.json",
                                           "report.html")}
    figures = Figures()
    listed: dict[str, list[dict[str, object]]] = {CASH: [], DECEASED: []}
    settled: list[Settled] = []
    with files["results.csv"].open("w", newline="", encoding=EXCEL_ENCODING) as file:
        writer = csv.DictWriter(file, fieldnames=TRACE_COLUMNS, delimiter=table.delimiter)
        writer.writeheader()
        for row in trace(table, earlier, run):
            writer.writerow({column: excel_cell(value) for column, value in row.items()})
            figures.add(row)
            if row["listed"]:
                listed[row["listed"]].append(cash_list.list_row(row))
            state = register_state(row)
            if state is not None:
                settled.append((key_of(row["citizen_id"], row["programme"], row["period"],
                                       row["arrears"]), state, row["reason_code"],
                                row["creditor_bic"], row["account_id"]))
                if len(settled) >= SETTLE_BATCH:
                    register.settle(run_id, settled)
                    settled.clear()
    register.settle(run_id, settled)
    written_at = vietnam_now()  # documents for Vietnamese clerks: Vietnam's date and time
    heading = cash_list.Heading(issuer, written_at.date())
    files |= cash_list.write_list(out, "cash_list", listed[CASH], cash_list.CASH_LIST, heading,
                                  table.delimiter)
    files |= cash_list.write_list(out, "deceased", listed[DECEASED], cash_list.DECEASED_LIST,
                                  heading, table.delimiter)
    write_table_errors(files["table_errors.csv"], table)
    summary: dict[str, object] = figures.as_dict() | {
        "settled_vnd": run.result.settled_vnd, "returned_vnd": run.result.returned_vnd,
        "elapsed_s": round(run.result.elapsed_s, 3),
        "messages": {"pacs008": run.result.submissions, "pacs028": run.result.inquiries,
                     "resent_after_ag09": run.result.resends},
        "table": table_file.name, "written_at": written_at.isoformat(timespec="seconds"),
        "treasury": issuer,
        "table_sha256": table.sha256, "run_id": run_id, "register": str(register.path),
        "ignored_columns": table.ignored_columns,
        "reconciliation": [m.as_dict() for m in mismatches],
        "not_reconciled": not_reconciled or None, "unresolved_because": unreached or None}
    files["summary.json"].write_text(json.dumps(summary, indent=1, ensure_ascii=False),
                                     encoding="utf-8")
    write_report(files["report.html"], summary)
    return files, figures


COUNT_LABELS = {  # the terminal's words for the counts (docs/payment-table.md)
    "rows": "rows in the table", "refused": "refused by the check",
    "earlier": "paid or listed by another run", "stopped": "stopped before sending",
    "sent": "sent", "resent": "  of which resent under a new id", "paid": "paid",
    "returned": "returned by the bank", "rejected": "rejected", "unresolved": "unresolved",
    "cash": "on the cash list", "deceased": "on the deceased list"}


def describe(report: Report) -> str:
    """The run for a terminal: the counts (as in summary.json), reconciliation, the lists and
    where they are."""
    result, table, figures = report.result, report.table, report.figures
    pace = (f"in {result.elapsed_s:,.2f} s" if result.submissions
            else "(no transfer sent by this command)")
    lines = [f"Payout of {count(figures.counts['rows'], 'row')} {pace}"]
    for name, label in COUNT_LABELS.items():
        amount_vnd = figures.amounts_vnd[name] if name not in ("rows", "refused", "resent") else 0
        money = f"  {amount_vnd:>20,} VND" if amount_vnd else ""
        lines.append(f"  {label:<34}{figures.counts[name]:>10,}{money}")
    lines += [f"  {'debited (settled)':<34}{'':>10}  {result.settled_vnd:>20,} VND",
              f"  messages: {result.submissions:,} pacs.008, {result.inquiries:,} pacs.028; "
              f"{count(result.resends, 'transfer')} resent after AG09 (same id)"]
    lines += [f"    {status:<10} {code or '-':<8}{count:>10,}  {text}"
              for (status, code), (count, _, text) in sorted(figures.by_reason.items())
              if status not in ("paid", "refused")][:20]
    lines += report.notes
    if report.resumed_final:
        lines.append(f"Resumed: {count(report.resumed_final, 'row was', 'rows were')} final "
                     "already; none was sent again.")
    if figures.counts["earlier"]:
        lines.append(f"Register: {count(figures.counts['earlier'], 'row')} paid, listed or "
                     "being paid by another run of this treasury in this folder, not paid "
                     "again (why: results.csv)")
    if report.register_path is not None:
        lines.append(f"Payout register (one per treasury per folder of runs; "
                     f"--payout-register for another): {report.register_path}")
    if table.problems:
        lines.append(f"Table: {count(figures.counts['refused'], 'bad row')} not paid, listed "
                     f"with their line in {report.files['table_errors.csv']}")
        lines += [f"  line {line}: {problem}" for line, problem in table.problems[:5]]
        if len(table.problems) > 5:
            lines.append(f"  … and {len(table.problems) - 5:,} more in table_errors.csv")
    if table.ignored_columns:
        lines.append(f"Table: columns ignored: {', '.join(table.ignored_columns)}")
    cash, deceased = figures.counts["cash"], figures.counts["deceased"]
    lines.append(f"Cash list for the post office: {count(cash, 'beneficiary', 'beneficiaries')}"
                 f" ({report.files['cash_list.xlsx']}, .html, .csv)")
    lines.append(f"Reported deceased, back to the ministry: {deceased:,} "
                 f"({report.files['deceased.xlsx']})")
    lines.append(f"Results, a line per table row: {report.files['results.csv']}; report: "
                 f"{report.files['report.html']}")
    unresolved = figures.counts["unresolved"]
    if unresolved:
        lines.append(f"{count(unresolved, 'row')} unresolved: run the same command again")
    if report.mismatches:
        lines.append("RECONCILIATION FAILED:\n  " + "\n  ".join(report.mismatches))
    elif report.reconciled_with:  # over this run's rows: say so when the table has others
        others = (f"; {count(figures.counts['earlier'], 'row')} of other runs are not in it "
                  "(each run reconciles its own)" if figures.counts["earlier"] else "")
        lines.append(f"Reconciled to the dong with {report.reconciled_with}, over this run's "
                     f"{count(len(result.outcomes), 'row')}{others}.")
    elif report.not_reconciled:
        lines.append(f"NOT RECONCILED: {report.not_reconciled}.")
    else:
        lines.append("Not reconciled against the switch's books: give --admin-token-file.")
    return "\n".join(lines)
