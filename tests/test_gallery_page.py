"""The gallery on the page, in a real browser (Debian's chromium, headless): a folder
indexed as a user would, browsed, filtered by tag, played at a moment, searched by text,
and a long timeline that reads (checked from the boxes the browser drew)."""

from __future__ import annotations

import re

import pytest

from vidclass.gallery import Gallery
from vidclass.gallery.thumbnails import video_thumbnail

from .conftest import cut_piece, start_server, stop_server, video
from .helpers import ARTIFACTS, chromium

pytest.importorskip("fastapi", reason="serve needs the serve extra")
pytest.importorskip("transformers", reason="text search needs the hf extra")
pytest.importorskip("PIL", reason="transformers' image processors need Pillow")

# Debian's chromium plays no H.264: the media folder holds VP8 copies of dev videos.
PLAYABLE = {
    "squat_1.webm": ("dev/squat_1.mp4", 10.0),
    "squat_2.webm": ("dev/squat_2.mp4", 2.3),
    "bench_pressing_1.webm": ("dev/bench_pressing_1.mp4", 4.3),
    "push_up_1.webm": ("dev/push_up_1.mp4", 4.0),
    "archery_1.webm": ("dev/archery_1.mp4", 6.0),
}
LONG = "long/people_139s.mp4"


@pytest.fixture(scope="module")
def browser():
    yield from chromium()


@pytest.fixture(scope="module")
def site(tmp_path_factory, long_timeline):
    """`vidclass serve` over a gallery of the media folder, indexed with timelines by the
    default model and with moments by a tiny CLIP; and the 139 s video with its real
    timeline, held by the gallery but outside the media folder."""
    from .tiny_vl import make_checkpoint

    root = tmp_path_factory.mktemp("gallery-page")
    media = root / "media"
    media.mkdir()
    for name, (source, seconds) in PLAYABLE.items():
        cut_piece(video(source), 0.0, seconds, media / name, short=180)
    clip = root / "clip"
    make_checkpoint(clip, "clip")
    db = root / "gallery.sqlite"
    with Gallery(db) as g:
        summary = g.index([media], timeline=True, workers=0, precision="fp32")
        assert (summary.classified, summary.failed, summary.thumbnails) == (5, 0, 5)
        g.index([media], model=str(clip), workers=0, precision="fp32")
        long = str(video(LONG))
        from vidclass.gallery import VideoRecord

        tl = long_timeline
        g.store.put(
            VideoRecord(
                long,
                "people",
                1,
                0.0,
                "i3d.kinetics400",
                tl.duration,
                tags=tl.predictions[:3],
                segments=[vars(s) for s in tl.segments],
            )
        )
        g.store.put_thumbnail("people", video_thumbnail(long, tl.duration))
    proc, url, _ = start_server(root, "--gallery", str(db), "--media", str(media))
    yield {"url": url, "long": long, "segments": len(tl.segments)}
    stop_server(proc)


def open_page(browser, site, width: int):
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(site["url"] + "/")
    page.wait_for_selector("#results .card")
    return page, errors


def cards(page) -> list[str]:
    return page.locator("#results .card").evaluate_all("cs => cs.map(c => c.dataset.video)")


def pictures_loaded(page) -> bool:
    return page.evaluate(
        "[...document.querySelectorAll('#results img.thumb')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )


def caption_starts(page, text: str) -> None:
    """Wait for the results' caption to say `text` (not "Finding ...": still working)."""
    page.wait_for_function(
        f"document.getElementById('results-caption').textContent.startsWith({text!r})"
    )


def player_time(page) -> float:
    return page.evaluate("document.getElementById('player').currentTime")


@pytest.mark.slow
def test_browse_filter_play_at_a_moment_and_find_similar(browser, site):
    page, errors = open_page(browser, site, 1280)
    # The gallery view first, every video a card with its picture.
    assert page.locator("#gallery").is_visible()
    assert page.locator("#results-caption").text_content() == "All videos, by name: 1–6 of 6"
    assert len(cards(page)) == 6
    page.wait_for_function(
        "[...document.querySelectorAll('#results img.thumb')].every(i => i.complete)"
    )
    assert pictures_loaded(page)
    assert (
        "6 videos · tagged by i3d.kinetics400 · moments of"
        in page.locator("#gallery-line").text_content()
    )
    # The search box says what this gallery can do: words (moments) or tags.
    assert page.locator("#search-by option").all_text_contents()[1] == (
        "tags: labels whose words match"
    )

    # Filter by a tag: its count is the number of cards, each with that tag.
    squat = page.locator("#tag-filter button", has_text=re.compile(r"^squat\d+$"))
    count = int(squat.locator(".count").text_content())
    assert count >= 2
    squat.click()
    caption_starts(page, "Videos tagged squat")
    assert squat.get_attribute("aria-pressed") == "true"
    shown = cards(page)
    assert len(shown) == count and "squat" in shown[0]  # the best squat first
    assert all("squat" in t for t in page.locator("#results .card .tags").all_text_contents())

    # Open one: it plays from --media, with its stored timeline.
    page.locator("#results .card .open").first.click()
    page.wait_for_function("document.getElementById('player').readyState >= 1")
    assert "/v1/media?video=" in page.evaluate("document.getElementById('player').currentSrc")
    page.wait_for_selector("#timeline .segment")
    assert (
        page.locator("#timeline-caption")
        .text_content()
        .startswith("Stored when the gallery was indexed")
    )
    # The playhead follows the player, and the segment under it is marked.
    page.evaluate("document.getElementById('player').currentTime = 1.5")
    page.wait_for_function(
        "document.getElementById('segment-info').textContent.startsWith('Now 0:01: ')"
    )
    assert page.locator("#timeline .segment.current").count() == 1
    head = page.evaluate("parseFloat(document.getElementById('playhead').style.left)")
    duration = page.evaluate("document.getElementById('player').duration")
    assert head == pytest.approx(100 * 1.5 / duration, abs=2)

    # Similar videos of the one opened.
    first = shown[0]
    page.locator(f"#results .card[data-video='{first}'] .similar").click()
    caption_starts(page, "Videos like")
    similar = cards(page)
    assert similar and first not in similar
    assert all("similarity" in m for m in page.locator("#results .card .meta").all_text_contents())

    # Search by words: the moments that match, each a picture; one plays from its start.
    page.select_option("#search-by", "text")
    page.fill("#query", "a person doing a squat")
    page.press("#query", "Enter")
    page.wait_for_selector("#results .moment")
    assert "(moments nearest to the words)" in page.locator("#results-caption").text_content()
    page.wait_for_function(
        "[...document.querySelectorAll('#results img.thumb')].every(i => i.complete)"
    )
    assert pictures_loaded(page)
    moments = page.locator("#results .moment")
    chosen = moments.nth(min(1, moments.count() - 1))
    start = float(re.match(r"([\d.]+)–[\d.]+ s: ", chosen.text_content())[1])
    chosen.click()
    page.wait_for_function(
        f"Math.abs(document.getElementById('player').currentTime - {start}) < 1"
        " && document.getElementById('player').readyState >= 1"
    )
    assert abs(player_time(page) - start) < 1
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "gallery-1280.png"), full_page=True)
    assert errors == []
    page.close()


READ_TIMELINE = """() => {
  const box = (e) => {
    const r = e.getBoundingClientRect();
    return [r.left, r.right, r.top, r.bottom];
  };
  const names = [...document.querySelectorAll('#timeline .segment')].map((b) => {
    const n = b.querySelector('.name');
    const shown = !n.hidden && n.offsetWidth > 0;
    return { label: n.textContent, shown, name: box(n), segment: box(b) };
  });
  const ticks = [...document.querySelectorAll('#axis .tick span')]
    .map((t) => ({ text: t.textContent, box: box(t) }));
  const legend = [...document.querySelectorAll('#legend li')].map((l) => l.textContent);
  return { names, ticks, legend, axis: box(document.getElementById('axis')) };
}"""


def overlaps(a, b) -> bool:
    return a[0] < b[1] - 0.5 and b[0] < a[1] - 0.5 and a[2] < b[3] and b[2] < a[3]


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 420])
def test_a_long_timeline_reads_at_any_width(browser, site, width):
    """The 139 s video's timeline: a label is written whole inside its segment or left
    out, none overlap, the axis has ticks that do not collide, the legend names every
    label; the layout puts the player beside the results, or above them when narrow."""
    page, errors = open_page(browser, site, width)
    page.locator(f"#results .card[data-video='{site['long']}'] .open").click()
    page.wait_for_selector("#timeline .segment")
    assert "not under the server's --media folder" in page.locator("#player-note").text_content()
    drawn = page.evaluate(READ_TIMELINE)
    names = drawn["names"]
    assert len(names) == site["segments"]
    written = [n for n in names if n["shown"]]
    assert written, "no label fits at all"
    for n in written:
        left, right, top, bottom = n["name"]
        s_left, s_right, s_top, s_bottom = n["segment"]
        assert s_left - 0.5 <= left and right <= s_right + 0.5, n  # whole, not cut
        assert s_top - 0.5 <= top and bottom <= s_bottom + 0.5, n
    for i, a in enumerate(written):
        for b in written[i + 1 :]:
            assert not overlaps(a["name"], b["name"]), (a, b)
    if width == 420:  # a narrow screen cannot write them all
        assert len(written) < len(names)
    ticks = drawn["ticks"]
    assert len(ticks) >= 3 and ticks[0]["text"] == "0:00"
    assert all(re.fullmatch(r"\d+:\d\d", t["text"]) for t in ticks)
    for a, b in zip(ticks, ticks[1:], strict=False):
        assert a["box"][1] <= b["box"][0], (a, b)
    axis = drawn["axis"]
    assert all(axis[0] - 1 <= t["box"][0] and t["box"][1] <= axis[1] + 1 for t in ticks)
    labels = {n["label"] for n in names}
    assert {x.removesuffix(" (outside what the model knows)") for x in drawn["legend"]} == labels
    # Scores on hover.
    page.locator("#timeline .segment").nth(1).hover()
    assert re.search(r"score \d\.\d\d$", page.locator("#segment-info").text_content())

    stage = page.locator("#stage").bounding_box()
    side = page.locator("#side").bounding_box()
    if width >= 1000:
        assert stage["x"] + stage["width"] <= side["x"]  # side by side
    else:
        assert stage["y"] + stage["height"] <= side["y"] + 1  # stacked
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing sideways
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"gallery-long-timeline-{width}.png"), full_page=True)
    assert errors == []
    page.close()


@pytest.mark.slow
def test_an_example_from_the_media_folder_plays_at_its_own_size(browser, site):
    page, errors = open_page(browser, site, 1280)
    page.click("#view-try")
    example = page.locator("#examples button", has_text="squat_2.webm")
    example.click()
    page.wait_for_selector("text=Done: squat_2.webm", timeout=180_000)
    assert page.locator("#timeline .segment").count() >= 1
    assert page.locator("#bars li").count() > 0
    page.wait_for_function("document.getElementById('player').readyState >= 1")
    own, shown = page.evaluate(
        "(() => { const p = document.getElementById('player');"
        " return [p.videoWidth, p.clientWidth]; })()"
    )
    assert 0 < shown <= own  # at its own size or smaller, never stretched
    texts = page.locator("#status").text_content()
    assert texts == "Done: squat_2.webm"
    assert errors == []
    page.close()
