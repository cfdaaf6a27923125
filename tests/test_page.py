"""The web page in a real browser: Debian's chromium, headless, driven by Playwright."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import ROOT, video

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("VIDCLASS_TEST_ARTIFACTS", ROOT / "test-artifacts"))
# As root with no network: no sandbox, and no background calls to Google's hosts.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium(*extra_flags: str):
    """Debian's chromium, headless, with FLAGS and `extra_flags` (a generator for a
    fixture: it yields the browser and closes it); skipped where it is missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the test extra")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: ./install.sh installs Debian's chromium")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=[*FLAGS, *extra_flags], headless=True
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def browser():
    yield from chromium()


def test_upload_shows_bars_and_a_clickable_timeline(browser, server):
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server["url"] + "/")
    page.wait_for_selector("text=Model: i3d.kinetics400")
    page.set_input_files("#file", str(video("arm_wrestling.mp4")))
    first = page.locator("#bars li .label").first
    first.wait_for(timeout=180_000)
    assert first.text_content() == "arm wrestling"
    assert page.locator("#bars li").count() == 5
    meter = page.locator("#bars .bar").first
    assert float(meter.get_attribute("aria-valuenow")) > 0.9
    segment = page.locator("#timeline .segment").first
    segment.wait_for(timeout=180_000)
    assert segment.text_content() == "arm wrestling"
    page.wait_for_selector("text=Done: arm_wrestling.mp4")
    # a segment, reached with the keyboard, seeks the player to its start
    page.evaluate("document.getElementById('player').currentTime = 6")
    page.wait_for_function("document.getElementById('player').currentTime > 5")
    segments = page.locator("#timeline .segment")
    last = segments.nth(segments.count() - 1)
    start = float(last.get_attribute("aria-label").split(" from ")[1].split(" s")[0])
    assert start < 5
    last.focus()
    page.keyboard.press("Enter")
    page.wait_for_function(f"Math.abs(document.getElementById('player').currentTime - {start}) < 1")
    # the gallery search is there when the server has a gallery
    page.fill("#query", "guitar")
    page.press("#query", "Enter")
    page.wait_for_selector("#results li")
    assert "/v/a.mp4" in page.locator("#results li").first.text_content()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page.png"), full_page=True)
    assert (ARTIFACTS / "page.png").stat().st_size > 10_000
    assert errors == []
    page.close()
