"""The live page of a running scenario, loaded in headless Chromium as an operator would open
it: the figures, the participants' health and the injected faults are on the page."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from lxml import html

from banks.behaviour import Behaviour
from scenarios.runner import run_scenario
from scenarios.spec import load_scenario
from scenarios.timeline import Event
from switchlab.demo import DemoSettings, run_demo

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


async def _dump_dom(url: str) -> str:
    """What headless Chromium shows of `url` once its scripts ran; AssertionError with the
    browser's own words when it shows nothing."""
    with tempfile.TemporaryDirectory() as profile:
        browser = await asyncio.create_subprocess_exec(
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={profile}", "--virtual-time-budget=4000",
            "--dump-dom", url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(browser.communicate(), BROWSER_TIMEOUT_S)
    assert out.strip(), f"chromium showed nothing of {url}: {err.decode()[-2_000:]}"
    return out.decode()


async def _rendered(url: str) -> str:
    """The page's DOM after its script has run and polled live.json a few times, once the
    run is under way."""
    await _once_under_way(url)
    return await _dump_dom(url)


async def _warm_browser() -> None:
    """Chromium's first start on a fresh machine (CI's, just installed) took longer than the
    run the test keeps up for the browser, which then found no page: the first start is paid
    before the run."""
    await _dump_dom("data:text/html,<p>ready</p>")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs "
                    "Debian's: apt-get install -y --no-install-recommends chromium)")
async def test_the_live_page_shows_the_run_as_it_happens(tmp_path: Path) -> None:
    # A bank signed off for the first seconds; one more event at 10 s keeps the run, and so
    # the page, up while the browser looks.
    scenario = load_scenario(LIBRARY / "bank-down-first-hour.yaml")
    scenario = scenario.model_copy(update={"timeline": [*scenario.timeline, Event(
        at_s=10, action="set_behaviour", participant="BFTVVNVX", behaviour=Behaviour())]})
    pages: list[asyncio.Task[str]] = []
    await _warm_browser()

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


async def _live_json(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}live.json") as reply:
        return await reply.json()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs "
                    "Debian's: apt-get install -y --no-install-recommends chromium)")
async def test_issue_26_a_held_day_longer_than_the_old_window_shows_its_start_and_both_cycles(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`demo --hold-s`, opened after more samples than the page used to keep (600): the
    charts still begin at the day's start; the positions say which cycle they are from, beside
    the closed one's; the cards are the charts' figures and the terminal's."""
    monkeypatch.setattr("lab.live.SAMPLE_EVERY_S", 0.005)  # 600 samples in seconds
    urls: list[str] = []
    settings = DemoSettings(beneficiaries=400, output_dir=tmp_path, progress=False,
                            hold_s=120)
    demo = asyncio.ensure_future(run_demo(settings, announce=lambda text: urls.extend(
        re.findall(r"live page (http://127\.0\.0\.1:\d+/)", text))))
    try:
        for _ in range(BROWSER_TIMEOUT_S * 10):
            if urls and (snapshot := await _live_json(urls[0]))["closed_cycle"] and (
                    snapshot["samples_taken"] > 2 * 600):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the day did not get past 1,200 samples with its cycle closed")
        assert snapshot["samples"][0]["t_s"] < 0.5  # the start of the day is still sent
        page = html.fromstring(await _rendered(urls[0]))
    finally:
        demo.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await demo

    def text(element_id: str) -> str:
        return page.get_element_by_id(element_id).text_content().strip()

    throughput = page.get_element_by_id("throughput")
    ticks = [t.text for t in throughput.findall(".//{*}text") if (t.text or "").endswith(" s")]
    assert ticks[0] == "0 s"
    first_x = float(throughput.find(".//{*}polyline").get("points").split()[0].split(",")[0])
    assert first_x < 80  # the settled line begins at the left edge: the day's start
    assert text("cycle").startswith("Net positions of settlement cycle 2 (open) beside "
                                    "cycle 1 (closed")
    rows = page.get_element_by_id("participants").findall("tr")
    closed_net = {row[0].text_content(): int(row[5].text_content().replace(",", ""))
                  for row in rows}
    assert closed_net["TRSYVNV1"] < 0 and sum(closed_net.values()) == 0
    legend = [t.text for t in page.get_element_by_id("latency").findall(".//{*}text")
              if (t.text or "").startswith("■ day p99 ")]
    assert legend == [f"■ day p99 {text('p99')}"]  # the card is the chart's line
    terminal = re.search(r"\(([\d,]+) transfers/s\)", capsys.readouterr().out)
    assert terminal is not None
    card = float(text("rate").replace(",", ""))
    assert abs(card - int(terminal.group(1).replace(",", ""))) <= 1 + card / 100
    assert "the payout's average" in text("rate-what")
    assert f"■ payout average {text('rate')}/s" in [
        t.text for t in page.get_element_by_id("throughput").findall(".//{*}text")]
    # Rates are over a second at least: a bulk report settling thousands at once is no
    # spike of many times the terminal's figure; a day shorter than a second peaks at what
    # settled in it.
    settled = int(text("settled").replace(",", ""))
    assert min(card, settled) / 2 <= float(text("peak").replace(",", "")) <= 2 * card
