"""`switchlab simulate`: seeded histories of the switch until one breaks an invariant."""

from __future__ import annotations

import argparse
from typing import Any

from protocol.wording import count
from sim.history import INVARIANTS
from sim.plants import PLANTS
from sim.runner import MAX_HISTORIES, run

DEFAULT_HISTORIES = 300  # the budget within which the planted bugs must be found
HELD, FAILED = 0, 1


def _count(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 7
            and 1 <= int(text) <= MAX_HISTORIES):
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_HISTORIES:,}")
    return int(text)


def _seed(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise argparse.ArgumentTypeError("must be a whole number from 0 to 10^18 - 1")
    return int(text)


def add_parser(commands: Any) -> None:
    command = commands.add_parser(
        "simulate", help="play seeded histories of the switch (loss, crashes, hostile "
        "participants) and check its invariants after every step",
        description="Deterministic simulation of the switch's core on its real SQLite journal: "
        "participants, network and time simulated, all randomness from the seed; each history "
        "then plays the same seed's escrow slices of a debtor's cap shared by several virtual "
        "switch processes (the PostgreSQL deployment's rules, issue #24). History n "
        "plays seed S + n; a broken invariant prints its seed, and --seed SEED --histories 1 "
        "replays it step for step. Exit status: 0 every invariant held, 1 one broke, 2 a "
        "mistake in the command.")
    command.add_argument("--seed", type=_seed, default=0, help="the first history's seed "
                         "(default 0)")
    command.add_argument("--histories", type=_count, default=DEFAULT_HISTORIES,
                         help=f"how many histories (default {DEFAULT_HISTORIES})")
    command.add_argument("--plant", choices=sorted(PLANTS),
                         help="plant a known bug first, to see the simulator find it")
    command.add_argument("--trace", action="store_true",
                         help="print the events of the broken (or the only) history")
    command.set_defaults(handler=simulate, command="simulate")


def simulate(args: argparse.Namespace) -> int:
    """Run the histories; print the rate and the first broken invariant with its seed."""
    if args.plant is None:
        result = run(args.seed, args.histories)
    else:
        with PLANTS[args.plant]():
            result = run(args.seed, args.histories)
    noun = "history" if result.histories == 1 else "histories"
    print(f"{result.histories:,} {noun} in {result.seconds:.2f} s" + (
        f" ({result.histories_per_s:,.1f} histories/s)" if result.histories > 1 else ""))
    print("exercised: " + ", ".join(f"{what} {count:,}" for what, count in
                                     sorted(result.tally.items())))
    broken = result.first_broken
    if broken is None:
        last = result.last
        if args.histories == 1 and last is not None:
            if args.trace:
                print("\n".join(last.trace))
            print(f"seed {last.seed}: {count(last.steps, 'step')}, trace {last.digest}")
        where = ("the history" if result.histories == 1 else
                 f"all {count(result.histories, 'history', 'histories')}")
        print(f"every invariant held in {where}: {', '.join(INVARIANTS)}")
        return HELD
    assert broken.broken is not None
    if args.trace:
        print("\n".join(broken.trace))
    print(f"seed {broken.seed}: {broken.broken} (after {count(broken.steps, 'step')}, trace "
          f"{broken.digest}); replay: switchlab simulate --seed {broken.seed} --histories 1"
          + (f" --plant {args.plant}" if args.plant else ""))
    return FAILED
