"""The directory: each citizen id linked to at most one payout account (bank account, e-wallet
or mobile-money account), the counterpart of the VNeID social-security account registry.

Who may write what, and why:
- A participant registers, updates and unlinks entries for accounts it holds, over a signed API
  (`switch/directory_api.py`). The switch cannot see a bank's ledger, so "it holds" is
  enforced twice: an entry names the signer as the account's participant (no participant can
  point a citizen at another's accounts), and before an entry becomes active the switch asks
  that participant, with an acmt.023 over its message channel, whether the account belongs to
  the person with this citizen id and name; only an answer that it does activates it (yes,
  or AC04/AC06/MD07, which a participant gives only after the citizen id and name matched:
  whether the account can take a payment today is the payout's question, not the link's).
  That second step catches a registration that its own core system does not back (a front-end bug, a
  compromised API client, a typo in a number), from the system of record. A participant that
  lies in both is outside what a switch can check; the payout's own verification and the
  creditor's check of every transfer (BE01) remain.
- One citizen id has at most one active payout account, and one account serves at most one
  citizen id (it has one holder). Moving a link to another participant means the old one
  unlinks first: no participant can take over a link another holds.
- The operator imports entries from the national registry (VNeID, where citizens link their
  accounts themselves) over the admin API; those are the registry's word and are not asked of
  the participant. Stale or mistyped links are what a payout's verification (acmt.023) stops.
- Every change is journaled with who made it and when (`directory_changes`), in the same write
  as the entry itself; memory follows the journal, as everywhere in the switch. With a journal
  shared by several switch processes, the journal checks each change again against the
  directory it holds (another process may have changed it since this one looked), and every
  process's memory follows the journal's changes in their order (`Directory.follow`), its own
  included: on each write it makes and on each word (NOTIFY) that another made one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from protocol import reasons
from protocol.ids import citizen_id_problem
from protocol.messages import CreditTransfer, VerificationItem, VerificationResult
from switch.events import SwitchEvents
from switch.journal import Journal
from switch.records import DirectoryChange, DirectoryEntry

LINK, UPDATE, UNLINK = "link", "update", "unlink"
REGISTRY = "registry"  # who, for entries the operator imported from the national registry
LINKED_ELSEWHERE = ("the citizen id is linked to an account at another participant, which "
                    "must unlink it first")
ACCOUNT_TAKEN = "the account is linked to another citizen id"
# Why a shared journal refused a change its writer's memory allowed (switch_directory).
JOURNAL_REFUSALS = {"elsewhere": LINKED_ELSEWHERE, "taken": ACCOUNT_TAKEN,
                    "changed": "the entry was changed meanwhile by another switch process"}
# acmt.024 answers that confirm the account is this person's (citizen id and name checked
# first, then whether it can take a payment today, which is the payout's question).
OWNERSHIP_CONFIRMED = frozenset({reasons.CLOSED_ACCOUNT, reasons.BLOCKED_ACCOUNT,
                                 reasons.CREDITOR_DECEASED})
Verifier = Callable[[str, list[VerificationItem]], Awaitable[dict[str, VerificationResult]]]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What became of one entry of a request: linked, updated, unchanged, unlinked or
    refused, with a sentence when refused."""

    citizen_id: str
    status: str
    reason: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"citizen_id": self.citizen_id, "status": self.status, "reason": self.reason}


class Directory:
    """The active entries in memory, written only after the journal holds them."""

    def __init__(self) -> None:
        self.by_citizen: dict[str, DirectoryEntry] = {}
        self.by_account: dict[tuple[str, str], str] = {}  # (participant, account) -> citizen
        self._claimed: set[object] = set()  # citizen ids and accounts a change is writing
        self.seq = 0  # the journal's last change memory holds (a shared journal's order)
        self._following = asyncio.Lock()

    def load(self, entries: Iterable[DirectoryEntry], seq: int) -> None:
        """Memory from the journal, at start: its entries, which hold at least its changes up
        to `seq`."""
        for entry in entries:
            self._set(entry)
        self.seq = seq

    async def follow(self, store: Journal) -> None:
        """Apply the journal's changes after the last one memory holds, in their order (a
        journal shared by several processes: theirs and this one's)."""
        async with self._following:
            while True:
                rows = await store.directory_changes(after_seq=self.seq)
                self.apply([DirectoryChange(row["action"], DirectoryEntry(
                    row["citizen_id"], row["participant_bic"], row["account_id"],
                    row["holder_name"], row["at"], row["changed_by"]), row["changed_by"],
                    row["at"]) for row in rows])
                if not rows:
                    return
                self.seq = rows[-1]["seq"]

    def _set(self, entry: DirectoryEntry) -> None:
        old = self.by_citizen.get(entry.citizen_id)
        if old is not None:
            self.by_account.pop((old.participant_bic, old.account_id), None)
        self.by_citizen[entry.citizen_id] = entry
        self.by_account[(entry.participant_bic, entry.account_id)] = entry.citizen_id

    def apply(self, changes: Sequence[DirectoryChange]) -> None:
        """Changes the journal now holds."""
        for change in changes:
            if change.action == UNLINK:
                self.by_citizen.pop(change.entry.citizen_id, None)
                self.by_account.pop((change.entry.participant_bic, change.entry.account_id),
                                    None)
            else:
                self._set(change.entry)

    def resolve(self, tx: CreditTransfer) -> str | None:
        """A transfer that names the switch as creditor agent, pointed at the account its
        creditor's citizen id is linked to; the reason to refuse it otherwise. Scheme rule:
        such a transfer carries Cdtr/Id/PrvtId/Othr (scheme NIDN) and no CdtrAcct (RC01
        when it has one: the switch holds no accounts), BE23 when the citizen id is not
        valid or not linked."""
        if tx.creditor_account:
            return reasons.WRONG_BIC
        citizen_id = tx.creditor_citizen_id or ""
        entry = self.by_citizen.get(citizen_id)
        if entry is None:
            return reasons.NO_LINKED_ACCOUNT
        tx.creditor_agent_bic = entry.participant_bic
        tx.creditor_account = entry.account_id
        return None

    def claim(self, keys: Iterable[object]) -> bool:
        """Hold citizen ids and accounts while a change to them is verified and written, so
        that two requests cannot both pass the same check; False if one is held already."""
        keys = list(keys)
        if any(key in self._claimed for key in keys):
            return False
        self._claimed.update(keys)
        return True

    def release(self, keys: Iterable[object]) -> None:
        self._claimed.difference_update(keys)


class Registrations:
    """Participants' and the operator's changes: checked, verified, journaled, applied."""

    def __init__(self, directory: Directory, store: Journal, events: SwitchEvents,
                 verify: Verifier) -> None:
        self.directory = directory
        self.store = store
        self.events = events
        self.verify = verify

    def _problem(self, entry: DirectoryEntry, by: str) -> str | None:
        """Why this entry cannot be written now, against the directory as it stands."""
        directory = self.directory
        problem = citizen_id_problem(entry.citizen_id)
        if problem:
            return f"citizen_id {problem}"
        current = directory.by_citizen.get(entry.citizen_id)
        if current is not None and current.participant_bic != entry.participant_bic and (
                by != REGISTRY):
            return LINKED_ELSEWHERE
        holder = directory.by_account.get((entry.participant_bic, entry.account_id))
        if holder is not None and holder != entry.citizen_id:
            return ACCOUNT_TAKEN
        return None

    async def register(self, by: str, entries: list[DirectoryEntry], verified: bool
                       ) -> list[Verdict]:
        """Link or update entries for `by` (a participant's BIC, or REGISTRY); `verified`
        False asks the participant (acmt.023) before anything is written. One verdict per
        entry, in order. Raises JournalFailed/JournalBusy/WriteRefused when the journal did
        not take the write (then nothing changed)."""
        verdicts: dict[int, Verdict] = {}
        candidates: list[tuple[int, DirectoryEntry, str]] = []
        claimed: list[object] = []
        seen: set[object] = set()
        try:
            for index, entry in enumerate(entries):
                keys = (entry.citizen_id, (entry.participant_bic, entry.account_id))
                current = self.directory.by_citizen.get(entry.citizen_id)
                twice = next((k for k in keys if k in seen), None)
                problem = (f"{'citizen id' if twice == keys[0] else 'account'} "
                           f"{entry.citizen_id if twice == keys[0] else entry.account_id} "
                           "appears twice in the request" if twice is not None
                           else self._problem(entry, by))
                seen.update(keys)
                if problem is None and current is not None and (
                        current.participant_bic, current.account_id, current.holder_name) == (
                        entry.participant_bic, entry.account_id, entry.holder_name):
                    verdicts[index] = Verdict(entry.citizen_id, "unchanged")
                    continue
                if problem is None and not self.directory.claim(keys):
                    problem = "another change to this citizen id or account is in progress"
                if problem is not None:
                    verdicts[index] = Verdict(entry.citizen_id, "refused", problem)
                    continue
                claimed.extend(keys)
                candidates.append((index, entry, UPDATE if current else LINK))
            if candidates and not verified:
                candidates = await self._verified(by, candidates, verdicts)
            now_s = time.time()
            refused = await self._write([DirectoryChange(action, entry, by, now_s)
                                         for _, entry, action in candidates])
            for index, entry, action in candidates:
                verdicts[index] = Verdict(entry.citizen_id, "refused", JOURNAL_REFUSALS[
                    refused[entry.citizen_id]]) if entry.citizen_id in refused else Verdict(
                    entry.citizen_id, "linked" if action == LINK else "updated")
        finally:
            self.directory.release(claimed)
        return [verdicts[index] for index in range(len(entries))]

    async def _verified(self, by: str, candidates: list[tuple[int, DirectoryEntry, str]],
                        verdicts: dict[int, Verdict]) -> list[tuple[int, DirectoryEntry, str]]:
        """The candidates the participant's own ledger confirms (acmt.023); the others get
        their refusal with the participant's reason."""
        answers = await self.verify(by, [VerificationItem(
            verification_id=str(index), name=entry.holder_name, citizen_id=entry.citizen_id,
            account_id=entry.account_id, agent_bic=entry.participant_bic)
            for index, entry, _ in candidates])
        confirmed = []
        for index, entry, action in candidates:
            answer = answers.get(str(index))
            if answer is not None and (answer.verified
                                       or answer.reason_code in OWNERSHIP_CONFIRMED):
                confirmed.append((index, entry, action))
                continue
            code = answer.reason_code if answer is not None else reasons.NOT_SPECIFIED
            code = code or reasons.NOT_SPECIFIED
            verdicts[index] = Verdict(entry.citizen_id, "refused", (
                f"your ledger does not confirm it (acmt.024 {code}: "
                f"{reasons.DESCRIPTIONS.get(code, 'reason not described')})"))
        return confirmed

    async def unlink(self, by: str, citizen_id: str) -> bool:
        """Unlink `by`'s entry for the citizen id (the operator: anyone's); False when there
        is none for it to unlink."""
        current = self.directory.by_citizen.get(citizen_id)
        if current is None or by not in (current.participant_bic, REGISTRY):
            return False
        keys = (citizen_id, (current.participant_bic, current.account_id))
        if not self.directory.claim(keys):
            return False
        try:
            refused = await self._write([DirectoryChange(UNLINK, current, by, time.time())])
        finally:
            self.directory.release(keys)
        return not refused

    async def _write(self, changes: list[DirectoryChange]) -> dict[str, str]:
        """Journal the changes, then memory and the event; the citizen ids a shared journal
        refused (JOURNAL_REFUSALS' keys), which change nothing."""
        if not changes:
            return {}
        refused = await self.store.record_directory(changes) or {}
        done = [change for change in changes if change.entry.citizen_id not in refused]
        if self.store.shared:
            await self.directory.follow(self.store)
        else:
            self.directory.apply(done)
        if done:
            self.events.directory_changed.fire(changes=done)
        return refused
