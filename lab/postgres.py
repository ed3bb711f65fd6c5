"""A throwaway PostgreSQL server for tests, scenarios and the bench: initdb in a temporary
folder, `postgres` on a free loopback port, removed when stopped.

It uses the server binaries of the Debian package (`apt-get install postgresql`), found on
PATH or under /usr/lib/postgresql/<version>/bin. PostgreSQL refuses to run as root, so a root
process runs it as the package's `postgres` user, in a folder that user owns.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

try:
    import asyncpg
except ImportError:  # the optional `postgres` extra is not installed
    asyncpg = None  # type: ignore[assignment]

from protocol.runtime import LOOPBACK, bind

# What a server that refuses us raises (bad password, no such database, no CREATEDB).
ERRORS: tuple[type[Exception], ...] = () if asyncpg is None else (
    asyncpg.PostgresError, asyncpg.InterfaceError)

START_TIMEOUT_S = 60
SUPERUSER = "postgres"
RUN_AS = "postgres"  # the Debian package's system user, for when we are root


@dataclass(frozen=True, slots=True)
class Server:
    """A running throwaway server: `url` for the superuser's own database."""

    url: str
    port: int
    folder: Path
    binaries: Path
    run_as: str | None
    options: str = ""  # the server's settings (pg_ctl -o), to start it again as it was


def binaries() -> Path | None:
    """The folder of initdb, pg_ctl and postgres, or None when PostgreSQL is not installed."""
    found = shutil.which("pg_ctl")
    if found is not None and shutil.which("initdb") is not None:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                      key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0)
    return versions[-1].parent if versions else None


def unavailable() -> str | None:
    """Why no throwaway server can start here (or the switch could not use it), or None."""
    if asyncpg is None:
        return "asyncpg is not installed: pip install 'switchlab[postgres]'"
    if binaries() is None:
        return ("PostgreSQL is not installed (apt-get install postgresql, or initdb and "
                "pg_ctl on PATH)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            return f"running as root, and there is no {RUN_AS!r} user to run PostgreSQL as"
    return None


def _run(command: list[str], run_as: str | None, **kwargs: object) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=START_TIMEOUT_S,
                   user=run_as, group=run_as, **kwargs)  # type: ignore[call-overload]


# What `statement_stats` loads: per-statement times, nested PL/pgSQL statements included (the
# switch's writes run server-side as functions), and the WAL's write and fsync times.
STATEMENT_STATS = ("-c shared_preload_libraries=pg_stat_statements"
                   " -c pg_stat_statements.track=all -c track_wal_io_timing=on")


def start(durable: bool = True, max_connections: int = 100, statement_stats: bool = False
          ) -> Server:
    """initdb and start a server on a free port of 127.0.0.1, trusting local connections.
    `durable=False` turns fsync off (tests that kill switch processes, never the server);
    `statement_stats` loads pg_stat_statements and times the WAL (the bench's scale stage,
    lab/pgstats.py). Raises RuntimeError naming why when it cannot."""
    why = unavailable()
    if why is not None:
        raise RuntimeError(why)
    bin_dir = binaries()
    assert bin_dir is not None
    run_as = RUN_AS if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="switchlab-pg-"))
    data = folder / "data"
    data.mkdir()
    if run_as is not None:
        user = pwd.getpwnam(run_as)
        folder.chmod(0o711)  # the server's user may pass through, not list
        os.chown(data, user.pw_uid, user.pw_gid)
    try:
        _run([str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust",
              "-E", "UTF8", "--no-locale", "--no-instructions"], run_as)
        port = bind().hand_over()
        options = (f"-c listen_addresses={LOOPBACK} -c port={port}"
                   f" -c unix_socket_directories={data} -c max_connections={max_connections}"
                   f" -c fsync={'on' if durable else 'off'}"
                   f" -c synchronous_commit={'on' if durable else 'off'}"
                   + (f" {STATEMENT_STATS}" if statement_stats else ""))
        _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"),
              "-o", options, "-w", "-t", str(START_TIMEOUT_S), "start"], run_as)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        shutil.rmtree(folder, ignore_errors=True)
        output = getattr(error, "stderr", b"") or b""
        raise RuntimeError(f"PostgreSQL did not start: {output.decode(errors='replace')}"
                           ) from None
    return Server(f"postgresql://{SUPERUSER}@{LOOPBACK}:{port}/{SUPERUSER}", port, folder,
                  bin_dir, run_as, options)


def halt(server: Server) -> None:
    """Stop the server at once, as a crash would (`pg_ctl stop -m immediate`: no checkpoint,
    every session cut; it recovers from its WAL at the next start). Its folder stays."""
    _run([str(server.binaries / "pg_ctl"), "-D", str(server.folder / "data"), "-m",
          "immediate", "-w", "stop"], server.run_as)


def resume(server: Server) -> None:
    """Start a halted server again, on the same port with the same settings; returns once
    it takes connections (after its crash recovery). Raises RuntimeError when it cannot."""
    try:
        _run([str(server.binaries / "pg_ctl"), "-D", str(server.folder / "data"), "-l",
              str(server.folder / "data" / "server.log"), "-o", server.options, "-w", "-t",
              str(START_TIMEOUT_S), "start"], server.run_as)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        output = getattr(error, "stderr", b"") or b""
        raise RuntimeError(f"PostgreSQL did not start again: "
                           f"{output.decode(errors='replace')}") from None


def stop(server: Server) -> None:
    """Stop the server (fast: open sessions are ended) and remove its folder."""
    try:
        _run([str(server.binaries / "pg_ctl"), "-D", str(server.folder / "data"), "-m", "fast",
              "-w", "stop"], server.run_as)
    finally:
        shutil.rmtree(server.folder, ignore_errors=True)


def without_password(url: str) -> str:
    """A libpq URL as it may be printed: the password left out."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def with_database(url: str, name: str) -> str:
    """The same server and credentials as `url`, another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def create_database(url: str, name: str) -> str:
    """A new empty database on the server `url` points to (its user needs CREATEDB); its
    URL. `name` must be a plain identifier."""
    await _on_server(url, 'CREATE DATABASE "{name}"', name)
    return with_database(url, name)


async def drop_database(url: str, name: str) -> None:
    """Drop a database `create_database` made, ending its sessions."""
    await _on_server(url, 'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', name)


async def _on_server(url: str, statement: str, name: str) -> None:
    if not name.isidentifier() or not name.isascii():
        raise ValueError(f"{name!r} is not a plain database name")
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement.format(name=name))
    finally:
        await connection.close()


async def fetch(url: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows of one query on the database `url` (the lab reading a journal, as an
    auditor would)."""
    connection = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await connection.fetch(sql)]
    finally:
        await connection.close()


def postmaster_pid(server: Server) -> int | None:
    """The server's main process (its sessions are its children), or None once stopped."""
    try:
        return int((server.folder / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


async def commits_per_s(url: str, count: int = 500) -> float:
    """One-row transactions a second on the server, each committed durably (the journal's
    floor there, as `machine.durable_commits_per_s` is SQLite's)."""
    assert 0 < count <= 100_000
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("CREATE TEMPORARY TABLE probe (n integer)")
        await connection.execute("SET synchronous_commit = on")
        started = time.perf_counter()
        for n in range(count):
            async with connection.transaction():
                await connection.execute("INSERT INTO probe VALUES ($1)", n)
        return count / (time.perf_counter() - started)
    finally:
        await connection.close()
