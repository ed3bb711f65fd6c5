"""The shipped rules and dashboard on a real Prometheus (Debian's `prometheus`), started on
127.0.0.1 as `--prometheus` starts it, scraping a lab whose bank goes down: the alert fires
and Prometheus's HTTP API says so; every rule evaluates without error; every query of the
Grafana dashboard is one Prometheus answers (issue #26)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from banks.behaviour import Behaviour
from banks.payment_table import read_payment_table
from banks.population import Mix, generate_population
from banks.treasury import TreasurySettings
from lab import prometheus
from lab.world import World, WorldSettings
from switch.monitoring import DASHBOARD
from tests.harness import BANK_A, BANK_B

pytestmark = pytest.mark.skipif(prometheus.binary() is None, reason="prometheus is not "
                                "installed (Debian's prometheus package; .ci/run installs it)")
INTERVAL_S = 0.5
ALERT_WAIT_S = 30.0


async def api(session: aiohttp.ClientSession, url: str, path: str, **params: str) -> Any:
    """Prometheus's HTTP API: the `data` of a success, or the test fails with its error."""
    async with session.get(f"{url}/api/v1/{path}", params=params) as reply:
        body = await reply.json()
    assert body["status"] == "success", (path, params, body)
    return body["data"]


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


async def firing(session: aiohttp.ClientSession, url: str, alertname: str
                 ) -> list[dict[str, Any]]:
    alerts = (await api(session, url, "alerts"))["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == alertname
            and a["state"] == "firing"]


async def test_issue_26_a_bank_going_down_fires_the_alert_on_a_real_prometheus(
        tmp_path: Path) -> None:
    population = generate_population(200, 7, Mix(participants={BANK_A: 0.5, BANK_B: 0.5}))
    population.write_payment_table(tmp_path / "table.csv")
    world = World(WorldSettings(tmp_path / "lab", {BANK_A: Behaviour(), BANK_B: Behaviour()},
                                treasury=TreasurySettings(mode="bulk", bulk_size=50)))
    await world.start(population)
    server = prometheus.PrometheusServer(
        prometheus.lab_targets(world.switch_url, world.bank_urls, world.admin_token),
        tmp_path / "prometheus", INTERVAL_S)
    try:
        url = await server.start()
        await world.treasury.run(read_payment_table(tmp_path / "table.csv"))
        await world.switch_admin("POST", f"/v1/admin/participants/{BANK_B}/sign-off")
        async with aiohttp.ClientSession() as session:
            deadline_s = asyncio.get_running_loop().time() + ALERT_WAIT_S
            while not (down := await firing(session, url, "SwitchlabParticipantDown")):
                assert asyncio.get_running_loop().time() < deadline_s, "no alert fired"
                await asyncio.sleep(INTERVAL_S)
            assert [alert["labels"]["bic"] for alert in down] == [BANK_B]
            assert down[0]["labels"]["job"] == "switchlab-switch"

            # A target not yet scraped reads "unknown": wait for its first scrape, bounded.
            targets = (await api(session, url, "targets"))["activeTargets"]
            while "unknown" in {t["health"] for t in targets}:
                assert asyncio.get_running_loop().time() < deadline_s, targets
                await asyncio.sleep(INTERVAL_S)
                targets = (await api(session, url, "targets"))["activeTargets"]
            assert {t["health"] for t in targets} == {"up"}, [
                (t["scrapeUrl"], t["health"], t.get("lastError")) for t in targets]
            assert len(targets) == 3  # the switch and the two banks, with their tokens
            rules = [rule for group in (await api(session, url, "rules"))["groups"]
                     for rule in group["rules"]]
            assert {rule["health"] for rule in rules} == {"ok"}, [
                (rule["name"], rule.get("lastError")) for rule in rules]
            for query in dashboard_queries():
                await api(session, url, "query", query=query)
            settled = await api(session, url, "query",
                                query='sum(switchlab_transfers_total{state="SETTLED"})')
            assert float(settled["result"][0]["value"][1]) > 0
    finally:
        await server.stop()
        await world.stop()
