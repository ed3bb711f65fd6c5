"""A Prometheus server for a lab's day (`--prometheus`): the real one (Debian's `prometheus`
package), started on 127.0.0.1 with the shipped rules (switch/monitoring/rules.yml), scraping
the switch and the mock participants, its data kept in the run folder.

What the lab gives Prometheus is what an operator's configuration would: each target's
`/metrics` with its token in a file (never on the command line, where `ps` shows it). The lab's
days last seconds, so it scrapes and evaluates every second; a real deployment keeps
Prometheus's defaults (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import yaml

from protocol.exposition import METRICS_PATH
from protocol.runtime import LOOPBACK, bind, stop_process
from switch.monitoring import RULES

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
READY_POLL_S = 0.1
LOG_TAIL_CHARS = 2_000  # of Prometheus's log, in the error when it will not start


class PrometheusUnavailable(RuntimeError):
    """Prometheus is not installed, or did not start; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Target:
    """One scrape target: its base URL (http://host:port), the bearer token its `/metrics`
    takes, and labels to tell it apart (a participant's `participant` BIC)."""

    job: str
    base_url: str
    token: str
    labels: Mapping[str, str] = field(default_factory=dict)


def binary() -> str | None:
    """The `prometheus` executable, or None where it is not installed."""
    return shutil.which("prometheus")


def configuration(targets: list[Target], folder: Path, interval_s: float) -> dict[str, object]:
    """prometheus.yml's content for `targets`: a scrape job for each job name and token (a
    job takes one credentials file), the tokens in files of their own in `folder`."""
    interval = f"{round(interval_s * 1000)}ms"
    jobs: dict[tuple[str, str], dict[str, object]] = {}
    for target in targets:
        job = jobs.get((target.job, target.token))
        if job is None:
            token_file = folder / f"token-{len(jobs)}"
            token_file.write_text(target.token, encoding="utf-8")
            token_file.chmod(0o600)
            named = sum(1 for name, _ in jobs if name == target.job)
            job = jobs[target.job, target.token] = {
                "job_name": f"{target.job}-{named}" if named else target.job,
                "metrics_path": METRICS_PATH,
                "authorization": {"credentials_file": str(token_file)}, "static_configs": []}
        job["static_configs"].append({  # type: ignore[attr-defined]
            "targets": [target.base_url.split("://", 1)[1].rstrip("/")],
            "labels": dict(target.labels)})
    return {"global": {"scrape_interval": interval, "evaluation_interval": interval,
                       "scrape_timeout": interval},
            "rule_files": [str(RULES)], "scrape_configs": list(jobs.values())}


class PrometheusServer:
    """Prometheus on 127.0.0.1 (a port the OS chose), scraping `targets` every `interval_s`
    and evaluating the shipped rules as often; configuration, tokens, data and log under
    `folder`. `url` is set once it is ready."""

    def __init__(self, targets: list[Target], folder: Path, interval_s: float = 1.0) -> None:
        self.targets = targets
        self.folder = folder.resolve()
        self.interval_s = interval_s
        self.url = ""
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> str:
        """Start it and wait until it says it is ready (`GET /-/ready`); its URL. Raises
        PrometheusUnavailable (not installed, or it ended or did not get ready in
        START_TIMEOUT_S, with the end of its log)."""
        executable = binary()
        if executable is None:
            raise PrometheusUnavailable(
                "prometheus is not installed (Debian: apt-get install prometheus)")
        self.folder.mkdir(parents=True, exist_ok=True)
        config_file = self.folder / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(
            configuration(self.targets, self.folder, self.interval_s), sort_keys=False),
            encoding="utf-8")
        port = bind().hand_over()
        self.url = f"http://{LOOPBACK}:{port}"
        log_path = self.folder / "prometheus.log"
        with log_path.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                executable, f"--config.file={config_file}",
                f"--storage.tsdb.path={self.folder / 'data'}",
                f"--web.listen-address={LOOPBACK}:{port}", "--log.level=warn",
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.folder)
        try:
            await asyncio.wait_for(self._until_ready(), START_TIMEOUT_S)
        except (TimeoutError, PrometheusUnavailable) as error:
            await self.stop()
            said = log_path.read_text(encoding="utf-8", errors="replace")[-LOG_TAIL_CHARS:]
            why = "it ended" if isinstance(error, PrometheusUnavailable) else (
                f"not ready in {START_TIMEOUT_S:g} s")
            raise PrometheusUnavailable(f"prometheus did not start ({why}); its log "
                                        f"{log_path}:\n{said}") from None
        return self.url

    async def _until_ready(self) -> None:
        assert self._process is not None
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while self._process.returncode is None:
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with session.get(f"{self.url}/-/ready") as reply:
                        if reply.status == 200:
                            return
                await asyncio.sleep(READY_POLL_S)
        raise PrometheusUnavailable(f"exit status {self._process.returncode}")

    async def stop(self) -> None:
        """SIGTERM (Prometheus closes its storage cleanly), SIGKILL if it will not go."""
        if self._process is not None:
            await stop_process(self._process, STOP_TIMEOUT_S)
            self._process = None


def lab_targets(switch_url: str, bank_urls: Mapping[str, str], token: str) -> list[Target]:
    """The switch and each mock participant of a lab, all behind the lab's one admin token."""
    return [Target("switchlab-switch", switch_url, token), *(
        Target("switchlab-participants", url, token, {"participant": bic})
        for bic, url in bank_urls.items())]

