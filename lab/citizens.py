"""The lab's citizens: the population register made from the generated population, the
register's service on its own socket (or process), and simulated citizens who link their own
accounts through it (the VNeID flow, docs/population.md).

A citizen's lab login is the register's `citizen_login` (HMAC of the CCCD under the register's
citizen key): the lab, as VNeID's stand-in, holds the key and signs each simulated citizen in.
"""

from __future__ import annotations

import csv
import hashlib
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from banks.payment_table import excel_cell
from banks.population import Population
from protocol.directory import MAX_ENTRIES_PER_REQUEST, DirectoryError
from protocol.ids import PROVINCE_CODES, birth_year
from protocol.population import CITIZEN_LINKS_PATH
from protocol.runtime import BoundSocket, serve, start_process
from protocol.wording import count
from register.citizens import Citizen, Register
from register.config import RegisterSettings
from register.service import citizen_login, create_register_app

REGISTER_ID = "CSDCVNV6"  # the lab's population register (C06), as it signs to the switch
MINISTRY_ID = "MOLIVNV1"  # the labour ministry, as it signs to the register
START_S = 30.0


def _digits(citizen_id: str, salt: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}{citizen_id}".encode()).digest()[:4], "big")


def lab_citizen(citizen_id: str, full_name: str, died_on: date | None = None,
                household_id: str | None = None, head: str | None = None) -> Citizen:
    """A citizen as the lab's register holds them: birth year from the CCCD, day and place
    drawn from it (the same CCCD, the same citizen, in every run)."""
    year = birth_year(citizen_id)
    born = date(year, 1, 1) + timedelta(days=_digits(citizen_id, "born") % 365)
    province = PROVINCE_CODES.get(citizen_id[:3], "Hà Nội")
    return Citizen(citizen_id, full_name, born, household_id or f"HK{citizen_id}",
                   head or citizen_id, f"Phường {_digits(citizen_id, 'commune') % 20 + 1}",
                   f"Quận {_digits(citizen_id, 'district') % 12 + 1}", province, died_on)


def register_of(population: Population, payout_date: date) -> Register:
    """The population register for a generated population: every beneficiary alive, but those
    who died after the ministry's list was made (`died_after_list`), registered dead a week
    before the payout; each their own household unless the population gives households."""
    register = Register()
    heads = {}
    for b in population.beneficiaries:
        if register.get(b.citizen_id) is None:  # one citizen, however many accounts
            died = payout_date - timedelta(days=7) if b.died_after_list else None
            register.add(lab_citizen(b.citizen_id, b.full_name, died, b.household_id or None,
                                     b.household_head or None))
            heads[b.household_id] = b.household_head
    for m in population.members:
        register.add(lab_citizen(m.citizen_id, m.full_name, None, m.household_id,
                                 heads[m.household_id]))
    return register


def register_settings(run_dir: Path, citizens_path: Path, switch_url: str, switch_bic: str,
                      keys_to_switch: Mapping[str, Any], ministry_key: Mapping[str, Any],
                      admin_token: str) -> RegisterSettings:
    """The lab register's settings: its file, its state beside the run, the switch's URL with
    its keys, and the ministry as the one party that signs to it."""
    return RegisterSettings.model_validate({
        "id": REGISTER_ID, "citizens_path": citizens_path,
        "state_path": run_dir / "state.sqlite", "admin_token": admin_token,
        "citizen_key": secrets.token_hex(32).encode(),
        "switch": {"url": switch_url, "bic": switch_bic, **keys_to_switch},
        "parties": [{"id": MINISTRY_ID, **ministry_key}]})


async def start_register(settings: RegisterSettings, bound: BoundSocket, process: bool,
                         run_dir: Path) -> Any:
    """The register serving on `bound`: in this process (its runner) or, with `process`, as
    `python -m register` (the process)."""
    if not process:
        return await serve(create_register_app(settings), bound)
    config = run_dir / "register.yaml"
    config.write_text(yaml.safe_dump({"register": settings.model_dump(mode="json")}),
                      encoding="utf-8")
    child, _ = await start_process("-m", "register", "--config", str(config), "--port",
                                   str(bound.hand_over()), cwd=run_dir,
                                   start_timeout_s=START_S)
    return child


LINK_REQUEST_COLUMNS = ("citizen_id", "participant_bic", "account_id")
LINKED = frozenset({"linked", "updated", "moved", "unchanged"})  # a verdict that links
MAX_LINK_REQUESTS = 1_000_000


class LinkRequestsError(ValueError):
    """A file of link requests that cannot be used: the text names the file and the lines."""


def read_link_requests(path: Path, columns: Sequence[str] = LINK_REQUEST_COLUMNS
                       ) -> list[dict[str, str]]:
    """Citizens' link requests from a CSV (UTF-8, a BOM allowed): `columns` each, a citizen
    once. Raises LinkRequestsError naming every bad line; the switch and the register check
    each value again."""
    problems, requests, seen = [], [], set()
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            reader = csv.DictReader(file, strict=True)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise LinkRequestsError(f"{path}, line 1: the header needs {', '.join(columns)}"
                                        f" (missing {', '.join(missing)})")
            for row in reader:
                line = reader.line_num
                if len(requests) >= MAX_LINK_REQUESTS:
                    problems.append(f"line {line}: more than {MAX_LINK_REQUESTS:,} requests")
                    break
                if None in row or any(row.get(c) is None for c in columns):
                    problems.append(f"line {line}: expected "
                                    f"{count(len(reader.fieldnames or []), 'field')}")
                    continue
                request = {c: row[c].strip() for c in columns}
                bad = [c for c in columns if not request[c] or not request[c].isprintable()
                       or len(request[c]) > 128]
                if bad:
                    problems.append(f"line {line}: {', '.join(bad)} empty or not printable")
                elif request["citizen_id"] in seen:
                    problems.append(f"line {line}: citizen {request['citizen_id']} asks twice")
                else:
                    seen.add(request["citizen_id"])
                    requests.append(request)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise LinkRequestsError(f"{path}: cannot be read ({error})") from None
    if problems:
        raise LinkRequestsError(f"{path}: {count(len(problems), 'bad line')}; nothing was asked\n"
                                + "\n".join(problems[:20]))
    return requests


def write_verdicts(path: Path, verdicts: Sequence[Mapping[str, str]]) -> None:
    """Each request's verdict (citizen_id, status, reason), as a CSV people open in Excel."""
    with path.open("w", newline="", encoding="utf-8-sig") as file:
        writer = csv.DictWriter(file, fieldnames=("citizen_id", "status", "reason"),
                                extrasaction="ignore", restval="")
        writer.writeheader()
        writer.writerows({key: excel_cell(value) for key, value in verdict.items()}
                         for verdict in verdicts)


async def link_from_file(requests_path: Path, register_url: str, verdicts_path: Path,
                         timeout_s: float = 600.0) -> dict[str, int]:
    """`switchlab link`: a user's own file of citizens' requests (citizen_id, participant_bic,
    account_id, login: each signed in as themselves), relayed to a running register; each
    verdict written to `verdicts_path`; the count by status. Raises LinkRequestsError for a
    bad file, DirectoryError when the register refuses a request, aiohttp.ClientError when it
    cannot be reached."""
    requests = read_link_requests(requests_path, (*LINK_REQUEST_COLUMNS, "login"))
    verdicts: list[dict[str, str]] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        for start in range(0, len(requests), MAX_ENTRIES_PER_REQUEST):
            async with session.post(
                    f"{register_url.rstrip('/')}{CITIZEN_LINKS_PATH}",
                    json={"links": requests[start:start + MAX_ENTRIES_PER_REQUEST]}) as response:
                if response.status != 200:
                    raise DirectoryError(response.status, await response.text())
                verdicts += (await response.json())["results"]
    write_verdicts(verdicts_path, verdicts)
    return dict(Counter(v["status"] for v in verdicts))


class Citizens:
    """Simulated citizens, signed in to the register as themselves."""

    def __init__(self, session: aiohttp.ClientSession, register_url: str,
                 citizen_key: bytes) -> None:
        self._session = session
        self._url = register_url.rstrip("/")
        self._key = citizen_key

    def login(self, citizen_id: str) -> str:
        return citizen_login(self._key, citizen_id)

    async def link(self, requests: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
        """Each (citizen_id, participant_bic, account_id) citizen links their account, signed
        in as themselves, relayed MAX_ENTRIES_PER_REQUEST at a time; a verdict each."""
        verdicts: list[dict[str, str]] = []
        for start in range(0, len(requests), MAX_ENTRIES_PER_REQUEST):
            links = [dict(r) | {"login": self.login(r["citizen_id"])}
                     for r in requests[start:start + MAX_ENTRIES_PER_REQUEST]]
            async with self._session.post(f"{self._url}{CITIZEN_LINKS_PATH}",
                                          json={"links": links}) as response:
                if response.status != 200:
                    raise DirectoryError(response.status, await response.text())
                verdicts += (await response.json())["results"]
        return verdicts

    async def payments(self, citizen_id: str, login: str | None = None) -> tuple[int, Any]:
        """What the citizen sees of their payments (status, JSON), signed in with `login`
        (their own by default)."""
        async with self._session.get(
                f"{self._url}/v1/citizens/{citizen_id}/payments",
                headers={"Authorization": f"Bearer {login or self.login(citizen_id)}"}
        ) as response:
            return response.status, await response.json()
