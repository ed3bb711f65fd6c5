"""Run the population register as a process of its own:
`python -m register --config register.yaml` (register/config.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from protocol.runtime import bind, run_event_loop, serve, until_stopped
from protocol.settings import SettingsError
from register.citizens import RegisterFileError
from register.config import load_settings
from register.service import create_register_app


async def run(config_path: Path, port: int | None) -> None:
    settings = load_settings(config_path)
    bound = bind(settings.host, settings.port if port is None else port)
    runner = await serve(create_register_app(settings), bound)
    print(f"register {settings.id} listening on {bound.base_url}", flush=True)
    await until_stopped()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m register", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="register YAML configuration")
    parser.add_argument("--port", type=int, help="override the configured port (0: any)")
    args = parser.parse_args(argv)
    try:
        run_event_loop(run(args.config, args.port))
    except SettingsError as error:
        print(f"register: bad configuration: {error}", file=sys.stderr)
        return 2
    except RegisterFileError as error:
        print(f"register: cannot load the register file: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"register: cannot start: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
