"""The web page in a real browser: Debian's chromium, headless, driven by Playwright."""

from __future__ import annotations

import re

import pytest

from .conftest import video
from .helpers import ARTIFACTS, chromium


@pytest.fixture(scope="module")
def browser():
    yield from chromium()


# Every text the status line shows, with what the page held then: each status() call
# replaces the text node, so the records keep the ones shown between two callbacks too.
WATCH_STATUS = """() => {
  window.statusLog = [];
  const status = document.getElementById("status");
  new MutationObserver((records) => {
    for (const r of records) for (const n of r.addedNodes) window.statusLog.push({
      text: n.textContent,
      bars: document.querySelectorAll("#bars li").length,
      segments: document.querySelectorAll("#timeline .segment").length,
    });
  }).observe(status, { childList: true });
}"""


def open_page(browser, server):
    """A page of the server, its status line watched; (page, page errors, POSTs sent)."""
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    errors, posts = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.goto(server["url"] + "/")
    page.wait_for_selector("text=Model: i3d.kinetics400")
    page.evaluate(WATCH_STATUS)
    return page, errors, posts


@pytest.mark.slow
def test_upload_shows_bars_and_a_clickable_timeline(browser, server):
    page, errors, posts = open_page(browser, server)
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
    # One upload, one POST: the labels and the timeline come from the same answer, and
    # the page says so: the labels are the mean over all the windows of the timeline.
    assert len(posts) == 1 and "/v1/timeline?" in posts[0] and "progress=true" in posts[0]
    caption = page.locator("#labels-caption").text_content()
    found = re.fullmatch(r"Whole video: mean of (\d+) windows of 2\.56 s", caption)
    assert found, caption
    assert page.locator("#labels-caption").is_visible()
    assert page.locator("#timeline-caption").text_content().startswith("Per window: ")
    # Progress while the windows were scored, with the time so far, out of as many
    # windows as the caption names.
    texts = [e["text"] for e in page.evaluate("window.statusLog")]
    shown = r"Finding where things happen in arm_wrestling\.mp4… (\d+) of (\d+) windows, \d+ s"
    progress = [m for t in texts if (m := re.fullmatch(shown, t))]
    assert progress, texts
    assert {m[2] for m in progress} == {found[1]}
    assert int(progress[-1][1]) == int(found[1])
    assert texts[-1] == "Done: arm_wrestling.mp4"
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
    # ... and says why it has its label: each window's share, and parts of the picture
    page.wait_for_selector("#why-heading:has-text('Why arm wrestling')", timeout=180_000)
    assert page.locator("#why-seconds span").count() == int(found[1])
    assert page.locator("#why-regions figure").count() == 2
    assert page.locator("#why-regions .cells span").count() == 8  # 2x2 each
    assert "/v1/explain?" in posts[-1] and "label=arm+wrestling" in posts[-1]
    # the gallery search is there when the server has a gallery, a view away
    page.click("#view-gallery")
    page.fill("#query", "guitar")
    page.press("#query", "Enter")
    page.wait_for_selector("#results-caption:text-matches('^2 videos for')")
    hit = page.locator("#results .card").first
    assert hit.get_attribute("data-video") == "/v/a.mp4"
    text = hit.text_content()
    assert "a.mp4" in text and "undefined" not in text and "null" not in text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page.png"), full_page=True)
    assert (ARTIFACTS / "page.png").stat().st_size > 10_000
    assert errors == []
    page.close()


def test_a_file_that_fails_leaves_nothing_of_the_video_before(browser, server):
    page, errors, posts = open_page(browser, server)
    page.set_input_files("#file", str(video("cleaning_pool_1s.mp4")))
    page.wait_for_selector("text=Done: cleaning_pool_1s.mp4", timeout=180_000)
    assert page.locator("#bars li").count() > 0 and page.locator("#timeline .segment").count()
    page.set_input_files("#file", str(video("odd/not_a_video.mp4")))
    page.wait_for_selector("#status.error", timeout=60_000)
    assert (
        page.locator("#status")
        .text_content()
        .startswith("Could not classify not_a_video.mp4: not_a_video.mp4: not a readable video")
    )
    assert page.locator("#bars li").count() == 0
    assert page.locator("#timeline .segment").count() == 0
    for gone in ["#labels-heading", "#labels-caption", "#timeline", "#timeline-heading"]:
        assert page.locator(gone).is_hidden(), gone
    assert page.locator("#player").is_hidden()  # not the video before, nor a broken one
    # Cleared as soon as the file was chosen, not only once it failed.
    log = page.evaluate("window.statusLog")
    sending = next(e for e in log if e["text"].startswith("Sending not_a_video.mp4…"))
    assert sending["bars"] == 0 and sending["segments"] == 0
    assert len(posts) == 2 and errors == []
    page.close()


def test_search_hits_say_how_their_tags_and_moments_were_found(browser, server):
    """The server's gallery holds a long video whose tags are about its start and whose
    timeline has a stretch of tai chi: the hit shows both, and where each comes from."""
    page, errors, _ = open_page(browser, server)
    page.fill("#query", "tai chi")
    page.press("#query", "Enter")
    page.wait_for_selector("#results .moment")
    items = page.locator("#results > li")
    assert items.count() == 1
    hit = items.nth(0)
    assert hit.get_attribute("data-video") == "/v/taichi.mp4"
    assert hit.locator(".name").text_content() == "taichi.mp4"
    assert hit.locator(".meta").text_content() == "2:20 · score 0.81"
    assert hit.locator(".tags").text_content() == "tai chi 0.26"
    assert hit.locator(".made").text_content() == "tags: mean of its timeline's 138 windows"
    moments = hit.locator(".moments li").all_text_contents()
    assert moments == ["12.0–62.0 s: tai chi 0.81 (timeline)"]
    assert errors == []
    page.close()
