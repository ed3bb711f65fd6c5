"""Run the switch as a process of its own: `python -m switch --config switch.yaml`.

Scenario runs and crash tests start the switch this way, so that a SIGKILL is a real crash.
With a PostgreSQL journal, `--processes N` runs N of them on one port (switch/workers.py), and
`--reuse-port` lets independently started ones share a port.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from protocol.runtime import bind, run_event_loop, serve, settle_heap, stop_on_signals
from protocol.settings import SettingsError
from protocol.tls import server_context
from switch.app import SWITCH, create_app
from switch.config import load_config, weak_secrets
from switch.journal_errors import NotAJournal
from switch.workers import check_processes, supervise

EXIT_TAKEN_OVER = 3  # another process took this one's work over: start it again


async def run(config_path: Path, port: int | None, reuse_port: bool = False) -> int:
    """Serve until SIGTERM/SIGINT (0), or until another process took this one over
    (EXIT_TAKEN_OVER: its supervisor starts it again)."""
    config = load_config(config_path)
    bound = bind(config.host, config.port if port is None else port, reuse_port=reuse_port)
    app = create_app(config)
    runner = await serve(app, bound, None if config.tls is None else server_context(config.tls))
    settle_heap()
    for warning in weak_secrets(config):  # once it runs: a start that fails says only why
        print(f"switch: warning: {warning}", file=sys.stderr)
    with stop_on_signals() as stop:  # before the ready line: a stop right after it is clean
        print(f"switch {config.bic} listening on {bound.base_url}", flush=True)
        signalled = asyncio.ensure_future(stop.wait())
        ended = asyncio.ensure_future(app[SWITCH].ended())
        await asyncio.wait([signalled, ended], return_when=asyncio.FIRST_COMPLETED)
        taken_over = ended.done() and not signalled.done()
        for future in (signalled, ended):
            future.cancel()
    await runner.cleanup()
    if not taken_over:
        return 0
    print("switch: another switch process took this one's work over; ending, to be started"
          " again", file=sys.stderr)
    return EXIT_TAKEN_OVER


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m switch", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="switch YAML configuration")
    parser.add_argument("--port", type=int, help="override the configured port (0: any)")
    parser.add_argument("--processes", type=int, default=1,
                        help="switch processes on one port (needs a PostgreSQL journal)")
    parser.add_argument("--reuse-port", action="store_true",
                        help="share the port with other switch processes (SO_REUSEPORT)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    try:
        if args.processes == 1:
            return run_event_loop(run(args.config, args.port, args.reuse_port))
        config = load_config(args.config)
        why = check_processes(config, args.processes)
        if why is not None:
            print(f"switch: {why}", file=sys.stderr)
            return 2
        run_event_loop(supervise(config, args.config, args.port, args.processes,
                                 args.log_level))
    except SettingsError as error:
        print(f"switch: bad configuration: {error}", file=sys.stderr)
        return 2
    except NotAJournal as error:  # journal_path a folder, or a file that is no journal
        print(f"switch: cannot start: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the address, or a journal server that is not there
        print(f"switch: cannot start: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:  # a worker that would not start said why on stderr
        print(f"switch: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
