"""The live page of a running scenario, loaded in headless Chromium as an operator would open
it: the figures, the participants' health and the injected faults are on the page."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from pathlib import Path

import aiohttp
import pytest
from lxml import html

from banks.behaviour import Behaviour
from scenarios.runner import run_scenario
from scenarios.spec import load_scenario
from scenarios.timeline import Event

pytestmark = pytest.mark.slow  # a browser and a whole run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LIBRARY = Path(__file__).resolve().parents[2] / "scenarios" / "library"
BROWSER_TIMEOUT_S = 60


async def _once_under_way(url: str) -> None:
    """Until live.json says transfers have settled: then the page has something to show."""
    async with aiohttp.ClientSession() as session:
        for _ in range(BROWSER_TIMEOUT_S * 10):
            async with session.get(f"{url}live.json") as reply:
                samples = (await reply.json())["samples"]
            if samples and samples[-1]["settled"] > 0:
                return
            await asyncio.sleep(0.1)
    raise AssertionError("nothing settled while the page was up")


async def _rendered(url: str) -> str:
    """The page's DOM after its script has run and polled live.json a few times, once the
    run is under way."""
    await _once_under_way(url)
    with tempfile.TemporaryDirectory() as profile:
        browser = await asyncio.create_subprocess_exec(
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={profile}", "--virtual-time-budget=4000",
            "--dump-dom", url, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        out, _ = await asyncio.wait_for(browser.communicate(), BROWSER_TIMEOUT_S)
    return out.decode()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs "
                    "Debian's: apt-get install -y --no-install-recommends chromium)")
async def test_the_live_page_shows_the_run_as_it_happens(tmp_path: Path) -> None:
    # A bank signed off for the first seconds; one more event at 10 s keeps the run, and so
    # the page, up while the browser looks.
    scenario = load_scenario(LIBRARY / "bank-down-first-hour.yaml")
    scenario = scenario.model_copy(update={"timeline": [*scenario.timeline, Event(
        at_s=10, action="set_behaviour", participant="BFTVVNVX", behaviour=Behaviour())]})
    pages: list[asyncio.Task[str]] = []

    def announce(text: str) -> None:
        url = re.search(r"live page (http://127\.0\.0\.1:\d+/)", text)
        assert url, text
        pages.append(asyncio.ensure_future(_rendered(url.group(1))))

    record = await run_scenario(scenario, tmp_path, ci=True, progress=False, live_port=0,
                                announce=announce)
    assert record.passed
    page = html.fromstring(await pages[0])

    def text(element_id: str) -> str:
        return page.get_element_by_id(element_id).text_content().strip()

    assert int(text("settled").replace(",", "")) > 0
    assert text("pct").endswith("%")
    rows = page.get_element_by_id("participants").findall("tr")
    assert {row[0].text_content() for row in rows} >= {"TRSYVNV1", "VBAAVNVX", "BFTVVNVX"}
    assert {row[3].text_content() for row in rows} <= {"up", "signed off", "breaker open"}
    assert "sign_off" in text("faults") and "VBAAVNVX" in text("faults")
    assert page.get_element_by_id("throughput").findall(".//{*}polyline")
    assert "AB08" in text("reasons")
