"""The system under load, in a process of its own: `python -m loadtests.target`.

Importing locust monkey-patches the whole process with gevent, so the switch and the mock
banks must never share Locust's process. This starts them (switch, the five demo participants,
the treasury's inbound endpoint, all on 127.0.0.1), then writes the participants file telling
Locust users where the switch is, which credentials to sign with and whom they may pay, and
last the port file, which says the target is ready. It stops on SIGTERM or after --seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from banks.behaviour import Behaviour
from banks.population import Population, generate_population
from banks.registry import DEFAULT_SHARES, PARTICIPANTS, SWITCH_BIC, TREASURY_BIC
from lab.world import World, WorldSettings
from protocol.runtime import run_event_loop, stop_on_signals

MAX_SECONDS = 3_600.0
DEFAULT_ACCOUNTS = 20_000
SEED = 2026


def valid_payees(population: Population) -> list[dict[str, str]]:
    """Accounts a transfer to will be accepted: active, alive, named as the bank names them.

    Closed, blocked, deceased and mismatched accounts are left out so that any rejection a
    load test sees is the scheme's doing, not a beneficiary's.
    """
    return [
        {"bic": b.participant_bic, "account_id": b.account_id, "holder_name": b.full_name,
         "citizen_id": b.citizen_id}
        for b in population.payable()
        if b.participant_bic and b.account_id and b.status == "active" and not b.deceased
        and not b.dies_after_payment and b.ledger_name == b.full_name
    ]


def describe(world: World, population: Population) -> dict[str, Any]:
    """The participants file: everything a Locust user needs, nothing of switchlab's code."""
    return {
        "switch_url": world.switch_url,
        "switch_bic": SWITCH_BIC,
        "admin_token": world.admin_token,
        "treasury": {"bic": TREASURY_BIC, "keys": world.keys.handed[TREASURY_BIC]},
        "banks": [{"bic": bic, "kind": PARTICIPANTS[bic].kind, "keys": world.keys.handed[bic],
                   "share": share} for bic, share in DEFAULT_SHARES.items()],
        "payees": valid_payees(population),
    }


def _write_atomically(path: Path, text: str) -> None:
    """Readers poll for the file: they must never see half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


async def serve_target(participants_file: Path, port_file: Path | None, accounts: int,
                       seconds: float) -> None:
    """Serve the world until SIGTERM/SIGINT or `seconds`, whichever comes first."""
    population = generate_population(accounts, SEED)
    # In the current folder (the load run's output folder), removed at the end.
    with tempfile.TemporaryDirectory(prefix="switchlab-load-", dir=Path.cwd()) as run_dir:
        world = World(WorldSettings(
            run_dir=Path(run_dir), behaviours={bic: Behaviour() for bic in DEFAULT_SHARES},
            switch_process=True))  # the switch gets a core of its own, as in the bench
        with stop_on_signals() as stop:  # a stop during the start counts too
            await _serve(world, population, stop, participants_file, port_file, seconds)


async def _serve(world: World, population: Population, stop: asyncio.Event,
                 participants_file: Path, port_file: Path | None, seconds: float) -> None:
    await world.start(population)
    try:
        _write_atomically(participants_file,
                          json.dumps(describe(world, population), ensure_ascii=False))
        if port_file is not None:
            _write_atomically(port_file, world.switch_url.rsplit(":", 1)[1] + "\n")
        print(f"load target: switch {world.switch_url}, participants in {participants_file}",
              flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), min(seconds, MAX_SECONDS))
    finally:
        await asyncio.wait_for(world.stop(), 30)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; 0 once the world has stopped cleanly."""
    parser = argparse.ArgumentParser(prog="python -m loadtests.target", description=__doc__)
    parser.add_argument("--participants-file", "--target-file", type=Path, required=True,
                        help="where to write the target JSON (SWITCHLAB_TARGET)")
    parser.add_argument("--port-file", type=Path,
                        help="written last, with the switch's port: the target is ready")
    parser.add_argument("--accounts", type=int, default=DEFAULT_ACCOUNTS,
                        help="population size (beneficiaries with accounts at the banks)")
    parser.add_argument("--seconds", type=float, default=600.0,
                        help=f"stop after this long (at most {MAX_SECONDS:.0f})")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.accounts <= 0:
        parser.error("--seconds and --accounts must be positive")
    run_event_loop(serve_target(args.participants_file, args.port_file, args.accounts,
                             args.seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
