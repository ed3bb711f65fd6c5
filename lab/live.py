"""Watching a payout day while it runs: the monitor that reads the switch's admin API, and the
live page that shows it.

The monitor polls `GET /v1/admin/stats` and `GET /v1/admin/participants` over HTTP, as an
operator's tool would (never the switch's internals), and keeps what the bar, the timeline's
progress triggers, the live page and the report need: counts over time, who is down, the
positions, the faults as they were injected, and the treasury's latency to final status.

The live page is one self-contained HTML file (`live.html`, no external JS or CSS) served on
127.0.0.1 beside `live.json`, which it polls every second. `live.json` holds the whole day at
most PAGE_POINTS points a chart: older samples are merged into coarser ones, never dropped
(the counts are cumulative, so a merged point's rate is the exact average over its span; the
in-flight count keeps its peak; latency percentiles are computed again over the merged span
from the treasury's log). Rates are per second over at least RATE_WINDOW_S, so a chart's peak
is comparable with the terminal's transfers a second, not a quarter second's burst.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web

from lab.progress import Progress
from lab.prometheus import PrometheusServer, lab_targets
from lab.world import World
from protocol import reasons
from protocol.runtime import bind, serve

SAMPLE_EVERY_S = 0.25
MAX_SAMPLES = 20_000  # past this the oldest half is merged in pairs: a day stays small
MAX_FAULTS = 1_000
PAGE_POINTS = 600  # points of each chart on the page, for the whole day
RATE_WINDOW_S = 1.0  # a rate on the page is over at least this long
PAGE = Path(__file__).with_name("live.html")
MONITOR = web.AppKey("monitor", "Monitor")


class Monitor:
    """The switch's figures over time, read over its admin API every SAMPLE_EVERY_S.

    `total` is the payment table's size (for "% settled"); `progress`, once set, counts the
    transfers final at the switch (settled or rejected) with figures beside it.
    """

    def __init__(self, world: World, total: int) -> None:
        self.world = world
        self.total = total
        self.progress: Progress | None = None  # set once the start has been announced
        self.started_s = time.monotonic()
        self.samples: list[dict[str, float]] = []  # t_s, settled, rejected, returned, in_flight
        self.stats: dict[str, Any] = {}  # the last GET /v1/admin/stats
        self.participants: list[dict[str, Any]] = []  # the last GET /v1/admin/participants
        self.faults: list[dict[str, Any]] = []
        self.reachable = False
        self.finished = False  # the payout is over: progress will not move any more
        self._changed = asyncio.Condition()
        self._latency_seen = 0  # treasury latency samples already summarised
        # Each interval's span of the treasury's latency log: t_s, start, end (indexes).
        self.latency: list[dict[str, float]] = []
        self.cycle_id = 0  # the open settlement cycle, as the switch last said
        self.closed_cycle: dict[str, Any] | None = None  # the last closed cycle's summary
        self.payout_per_s: float | None = None  # final transfers a second, once finished

    def elapsed_s(self) -> float:
        return round(time.monotonic() - self.started_s, 3)

    @property
    def settled(self) -> int:
        return int(self.samples[-1]["settled"]) if self.samples else 0

    @property
    def settled_pct(self) -> float:
        return 100.0 * self.settled / self.total if self.total else 100.0

    async def run(self) -> None:
        """Sample until cancelled; a switch that does not answer leaves a gap."""
        while True:
            await self.sample()
            await asyncio.sleep(SAMPLE_EVERY_S)

    async def sample(self) -> None:
        try:
            self.stats = await self.world.switch_admin("GET", "/v1/admin/stats")
            self.participants = await self.world.switch_admin("GET", "/v1/admin/participants")
            self.reachable = True
        except (aiohttp.ClientError, OSError, TimeoutError):
            self.reachable = False
        if self.reachable:
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):  # next time
                await self._follow_cycle(int(self.stats.get("cycle_id", 0)))
        if self.reachable:
            self._take(self.stats)
        self._summarise_latency()
        self._show()
        async with self._changed:
            self._changed.notify_all()

    def _take(self, stats: dict[str, Any]) -> None:
        by_state = stats.get("by_state", {})

        def count(state: str) -> int:
            return int(by_state.get(state, {}).get("count", 0))

        self.samples.append({
            "t_s": self.elapsed_s(),
            "settled": count("SETTLED") + count("RETURNED"),
            "rejected": count("REJECTED"),
            "returned": int(stats.get("returns", {}).get("count", 0)),
            "in_flight": int(stats.get("in_flight", 0)),
        })
        _bound(self.samples, _last_with_peak)

    async def _follow_cycle(self, cycle_id: int) -> None:
        """Once the switch opens a new cycle, read the one it closed (its net positions)."""
        if cycle_id > self.cycle_id and cycle_id > 1:
            self.closed_cycle = await self.world.switch_admin(
                "GET", f"/v1/admin/settlement/cycles/{cycle_id - 1}")
        self.cycle_id = cycle_id

    def _summarise_latency(self) -> None:
        """The span of the treasury's latency log that became final since the last sample."""
        end = len(self.world.treasury.latencies)
        if end > self._latency_seen:
            self.latency.append({"t_s": self.elapsed_s(), "start": self._latency_seen,
                                 "end": end})
            self._latency_seen = end
            _bound(self.latency, _latency_span)

    def _show(self) -> None:
        if self.progress is None:
            return
        if not self.reachable:
            self.progress.figures(switch="unreachable")
            return
        last = self.samples[-1]
        self.progress.figures(settled=int(last["settled"]), rejected=int(last["rejected"]),
                              in_flight=int(last["in_flight"]),
                              down=",".join(self.down()) or "none")
        self.progress.update_to(min(last["settled"] + last["rejected"], self.total))

    def down(self) -> list[str]:
        """Participants signed off or with their breaker open, as the switch last said."""
        return [p["bic"] for p in self.participants if p["signed_off"] or p["breaker_open"]]

    def fault(self, at_s: float, action: str, participant: str | None, note: str,
              trigger: str) -> None:
        """Record an injected fault (begun `at_s` from the start), for the page and the
        report."""
        if len(self.faults) < MAX_FAULTS:
            self.faults.append({"at_s": at_s, "action": action,
                                "participant": participant or "", "note": note,
                                "trigger": trigger})

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Return once `condition()` holds, checked after each sample and at `finish()`."""
        async with self._changed:
            await self._changed.wait_for(condition)

    async def finish(self, final_rows: int | None = None) -> None:
        """The payout is over: waiters for progress that will not come are woken, and the bar
        ends here (its rate is the payout's, not that of what follows). `final_rows`, the
        rows the treasury holds final (settled, rejected, or stopped before sending, which
        the switch never saw), puts the bar where the summary will: at 100 % when every row
        is final, whatever the switch's last sample counted."""
        if final_rows is not None and self.progress is not None:
            self.progress.update_to(min(final_rows, self.total))
        self.finished = True
        treasury = self.world.treasury
        if treasury.elapsed_s > 0:  # the terminal's figure: final transfers over the payout
            self.payout_per_s = len(treasury.latencies) / treasury.elapsed_s
        if self.progress is not None:
            self.progress.close()
            self.progress = None
        async with self._changed:
            self._changed.notify_all()

    def snapshot(self) -> dict[str, Any]:
        """What the live page shows, as JSON: the whole day in at most PAGE_POINTS points a
        chart, and the figures of its cards taken from the same data as its charts."""
        by_state = self.stats.get("by_state", {})
        samples = merged(self.samples, PAGE_POINTS)
        throughput = rates(samples)
        log = np.frombuffer(self.world.treasury.latencies.latency_ms, dtype=np.float64)
        latency = [{"t_s": span["t_s"], **percentiles(log[int(span["start"]):int(span["end"])])}
                   for span in merged(self.latency, PAGE_POINTS, _latency_span)]
        return {
            "elapsed_s": self.elapsed_s(), "total": self.total, "reachable": self.reachable,
            "finished": self.finished, "switch_url": self.world.switch_url,
            "samples": samples, "samples_taken": len(self.samples), "throughput": throughput,
            "latency": latency,
            "day": {"p99_ms": percentiles(log)["p99"],
                    "peak_settled_per_s": max((r[1] for r in throughput), default=0.0),
                    "settled_per_s": throughput[-1][1] if throughput else 0.0,
                    "payout_per_s": self.payout_per_s},
            "cycle_id": self.cycle_id, "closed_cycle": self.closed_cycle,
            "outcomes": outcomes(by_state, int(self.stats.get("in_flight", 0))),
            "rejected_by_reason": by_reason(by_state.get("REJECTED", {})),
            "returned_by_reason": by_reason(by_state.get("RETURNED", {})),
            "returned": self.stats.get("returns", {"count": 0, "amount_vnd": 0}),
            "participants": self.participants, "faults": self.faults,
            "notices_backlog": self.stats.get("notices_backlog", 0),
        }


Sample = dict[str, float]


def outcomes(by_state: Mapping[str, Mapping[str, int]], in_flight: int) -> dict[str, int]:
    """The switch's counts by state (admin stats' `by_state`) in the terminal's words
    (banks/payout.py PayoutStatus): `paid` settled and kept, `returned` settled then sent back
    (pacs.004), `rejected`; they add up with `in_flight` to the transfers the switch holds.
    `settled` (debited) is paid + returned, as the terminal's "settled (debited)" line."""
    def count(state: str) -> int:
        return int(by_state.get(state, {}).get("count", 0))

    paid, returned = count("SETTLED"), count("RETURNED")
    return {"paid": paid, "returned": returned, "rejected": count("REJECTED"),
            "in_flight": in_flight, "settled": paid + returned}


def by_reason(entry: Mapping[str, int]) -> list[dict[str, Any]]:
    """A state's counts by reason code (admin stats' `count_<code>`), most first, each with
    the code's meaning as the terminal prints it (protocol/reasons.py)."""
    counts = [(key.removeprefix("count_"), int(value)) for key, value in entry.items()
              if key.startswith("count_")]
    return [{"code": code, "text": reasons.DESCRIPTIONS.get(code, "reason not described"),
             "count": count} for code, count in sorted(counts, key=lambda c: (-c[1], c[0]))]


def _last_with_peak(group: Sequence[Sample]) -> Sample:
    """Consecutive samples as one: the last's time and cumulative counts, the peak in flight."""
    return group[-1] | {"in_flight": max(s["in_flight"] for s in group)}


def _latency_span(group: Sequence[Sample]) -> Sample:
    """Consecutive spans of the latency log as one: the last's time, from the first's start."""
    return group[-1] | {"start": group[0]["start"]}


def merged(series: Sequence[Sample], at_most: int,
           merge: Callable[[Sequence[Sample]], Sample] = _last_with_peak) -> list[Sample]:
    """`series` in at most `at_most` points (2 or more): the first as it is (the day's
    start), then each merging as many consecutive ones as it takes."""
    if len(series) <= at_most:
        return list(series)
    size = math.ceil((len(series) - 1) / (at_most - 1))
    return [series[0], *(merge(series[i:i + size]) for i in range(1, len(series), size))]


def _bound(series: list[Sample], merge: Callable[[Sequence[Sample]], Sample]) -> None:
    """Past MAX_SAMPLES, the older half merged in pairs by `merge`: coarser, none dropped."""
    if len(series) > MAX_SAMPLES:
        half = MAX_SAMPLES // 2
        series[:half] = merged(series[:half], half // 2, merge)


def rates(samples: Sequence[Sample]) -> list[list[float]]:
    """[t_s, settled a second, rejected a second] at each sample after the first, each over
    the last RATE_WINDOW_S at least (from the latest sample that far back; over the first
    second, from the start and counted as a whole second)."""
    out: list[list[float]] = []
    back = 0
    for i in range(1, len(samples)):
        now = samples[i]
        while back + 1 < i and samples[back + 1]["t_s"] <= now["t_s"] - RATE_WINDOW_S:
            back += 1
        then = samples[back]
        span_s = max(now["t_s"] - then["t_s"], RATE_WINDOW_S)
        out.append([now["t_s"], round(max(0.0, now["settled"] - then["settled"]) / span_s, 1),
                    round(max(0.0, now["rejected"] - then["rejected"]) / span_s, 1)])
    return out


def percentiles(latency_ms: np.ndarray) -> dict[str, float]:
    """p50 and p99 of latencies in ms (linear interpolation, as statistics' inclusive
    method); 0 when there are none."""
    if not len(latency_ms):
        return {"p50": 0.0, "p99": 0.0}
    p50, p99 = np.percentile(latency_ms, [50, 99])
    return {"p50": round(float(p50), 2), "p99": round(float(p99), 2)}


async def _page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE.read_text(encoding="utf-8"), content_type="text/html")


async def _snapshot(request: web.Request) -> web.Response:
    return web.json_response(request.app[MONITOR].snapshot(),
                             dumps=lambda data: json.dumps(data, ensure_ascii=False))


class LiveView:
    """The live page of a monitor, served on 127.0.0.1 (port 0: the OS chooses)."""

    def __init__(self, monitor: Monitor, port: int = 0) -> None:
        self.monitor = monitor
        self.port = port
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app[MONITOR] = self.monitor
        app.router.add_get("/", _page)
        app.router.add_get("/live.json", _snapshot)
        bound = bind(port=self.port)
        self._runner = await serve(app, bound)
        self.url = f"{bound.base_url}/"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@contextlib.asynccontextmanager
async def watching(world: World, total: int, what: str, progress: bool, live_port: int | None,
                   announce: Callable[[str], None] = print, prometheus: bool = False
                   ) -> AsyncIterator[Monitor]:
    """Watch a started world's payout of `total` transfers: announce where the switch, its
    admin API, (with `live_port` not None) the live page and (with `prometheus`) a Prometheus
    server scraping the day are, then sample the switch for the bar, the page and the report
    until the block ends. Raises PrometheusUnavailable when Prometheus will not start."""
    monitor = Monitor(world, total)
    live = LiveView(monitor, live_port) if live_port is not None else None
    scraper = PrometheusServer(
        lab_targets(world.switch_url, world.bank_urls, world.admin_token),
        world.run_dir / "prometheus") if prometheus else None
    sampling: list[asyncio.Future[None]] = []
    try:
        live_url = await live.start() if live else None
        announce(where_to_look(world, live_url, await scraper.start() if scraper else None))
        monitor.progress = Progress(what, total, enabled=progress)
        sampling.append(asyncio.ensure_future(monitor.run()))
        yield monitor
    finally:
        if monitor.progress is not None:
            monitor.progress.close()
        for task in sampling:
            task.cancel()
        await asyncio.gather(*sampling, return_exceptions=True)
        if live is not None:
            await live.stop()
        if scraper is not None:
            await scraper.stop()


def where_to_look(world: World, live_url: str | None, prometheus_url: str | None = None
                  ) -> str:
    """The lines printed at start: where the switch is, its admin API, the live page and
    Prometheus."""
    lines = [f"switch    {world.switch_url}  ({world.journal_named()})",
             f"admin API curl -H 'Authorization: Bearer {world.admin_token}' "
             f"{world.switch_url}/v1/admin/stats"]
    if live_url:
        lines.append(f"live page {live_url}")
    if prometheus_url:
        lines.append(f"prometheus {prometheus_url}/alerts  (rules and data: "
                     f"{world.run_dir / 'prometheus'})")
    return "\n".join(lines)
