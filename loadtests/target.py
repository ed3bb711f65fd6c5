"""The system under load, in a process of its own: `python -m loadtests.target`.

Importing locust monkey-patches the whole process with gevent, so the switch and the mock
banks must never share Locust's process. This starts them (switch, banks, treasury inbound on
127.0.0.1), then writes a target file telling Locust users where the switch is, which
credentials to sign with, and whom they may pay; it stops on SIGTERM or after --seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import tempfile
from pathlib import Path

from banks.behaviour import Behaviour
from banks.population import TREASURY_BIC, Mix, generate_population
from switchlab.world import SWITCH_BIC, World, WorldSettings

LOAD_PARTICIPANTS = {"BFTVVNVX": 0.5, "ICBVVNVX": 0.2, "BIDVVNVX": 0.15, "EWLAVNV1": 0.15}
MAX_SECONDS = 3_600


async def serve_target(target_file: Path, accounts: int, seconds: float) -> None:
    population = generate_population(accounts, 42, Mix(
        participants=LOAD_PARTICIPANTS, no_account=0, closed=0, blocked=0, name_mismatch=0,
        deceased=0, dies_after_payment=0))
    with tempfile.TemporaryDirectory(prefix="switchlab-load-") as run_dir:
        world = World(WorldSettings(Path(run_dir), {b: Behaviour() for b in LOAD_PARTICIPANTS}))
        await world.start(population)
        target = {
            "switch_url": world.switch_url, "switch_bic": SWITCH_BIC,
            "admin_token": world.admin_token,
            "participants": {bic: world.secrets[bic] for bic in
                             [TREASURY_BIC, *LOAD_PARTICIPANTS]},
            "treasury_bic": TREASURY_BIC,
            "payees": [[b.participant_bic, b.account_id, b.full_name, b.citizen_id]
                       for b in population.payable()],
        }
        target_file.write_text(json.dumps(target, ensure_ascii=False), encoding="utf-8")
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        try:
            await asyncio.wait_for(stop.wait(), min(seconds, MAX_SECONDS))
        except TimeoutError:
            pass
        finally:
            await world.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.target", description=__doc__)
    parser.add_argument("--target-file", type=Path, required=True)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=600)
    args = parser.parse_args(argv)
    asyncio.run(serve_target(args.target_file, args.accounts, args.seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
