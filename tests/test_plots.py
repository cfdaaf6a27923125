"""Pictures, checked from what is drawn: text boxes in display pixels after drawing."""

from __future__ import annotations

import os

import numpy as np
import pytest

from vidclass.plot import (
    UNKNOWN_COLOUR,
    confusion_figure,
    per_label_figure,
    plot_timeline,
    reliability_figure,
    timeline_figure,
)
from vidclass.results import UNKNOWN, Segment, Timeline, Window

pytest.importorskip("matplotlib", reason="pictures need matplotlib (the plot extra)")

KINETICS = ["tai chi", "side kick", "dancing ballet", "stretching arm", "yoga", "zumba"]
LONG = "exercising with an exercise ball"  # a label wider than most segments


def made(duration: float, n: int, names: list[str], stride: float = 1.0, every=0) -> Timeline:
    """A timeline of `n` segments of varied lengths (some wide enough for their label,
    some not), neighbours never alike; with `every`, one in each `every` is unknown."""
    rng = np.random.default_rng(n)
    lengths = rng.uniform(0.1, 3.0, n)
    lengths[5::10] *= 20  # some wide enough for a label
    edges = np.concatenate([[0.0], np.cumsum(lengths) / lengths.sum() * duration])
    segments = [
        Segment(
            float(a), float(b), UNKNOWN if every and i % every == 2 else names[i % len(names)], 0.6
        )
        for i, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True))
    ]
    window = min(2.56, duration)
    starts = np.arange(0.0, duration - window + 1e-9, stride)
    windows = [
        Window(
            float(t),
            float(t) + window,
            [{"label": names[(i + k) % len(names)], "score": 0.9 / (k + 1)} for k in range(3)],
        )
        for i, t in enumerate(starts)
    ]
    return Timeline(f"/videos/{duration:g}s.mp4", duration, window, stride, windows, segments)


SYNTHETIC = {
    "2 s": made(2.0, 2, KINETICS[:3], stride=0.5),
    "139 s, many short segments": made(139.4, 60, [*KINETICS, LONG]),
    "2 hours, hundreds of segments": made(7200.0, 400, [f"label {i}" for i in range(40)], 2.0),
    "with unknown": made(139.4, 10, KINETICS[:4], every=4),
}


def strip(fig):
    return next(ax for ax in fig.axes if ax.get_label() == "segments")


def drawn_texts(fig) -> list:
    """Every text the figure draws, as it draws it (tick labels out of view left out)."""
    texts = [t for t in fig.texts]
    for legend in fig.legends:
        texts += legend.get_texts()
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        for axis, (low, high) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            low, high = sorted((low, high))
            for label in axis.get_ticklabels():
                at = label.get_position()[0 if axis is ax.xaxis else 1]
                texts += [label] if low <= at <= high else []
    return [t for t in texts if t.get_visible() and t.get_text()]


def check_readable(fig, tl: Timeline) -> list[str]:
    """The timeline picture's rules; the segment labels drawn."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    top = strip(fig)
    texts = drawn_texts(fig)
    band = top.get_window_extent(renderer)
    for text in top.texts:
        box = text.get_window_extent(renderer)
        at = text.get_position()[0]
        (seg,) = [s for s in tl.segments if s.start <= at <= s.end]
        assert text.get_text() == seg.label
        (x0, _), (x1, _) = top.transData.transform([(seg.start, 0), (seg.end, 0)])
        assert x0 <= box.x0 and box.x1 <= x1, f"{seg.label!r} spills out of {seg}"
        assert band.y0 <= box.y0 and box.y1 <= band.y1
        for other in texts:
            if other is not text:
                assert not box.overlaps(other.get_window_extent(renderer)), (
                    f"{seg.label!r} over {other.get_text()!r}"
                )

    (legend,) = fig.legends
    assert {t.get_text() for t in legend.get_texts()} == {s.label for s in tl.segments}
    assert legend.get_window_extent(renderer).y0 >= band.y1  # above the strip, not on it

    heat = next(ax for ax in fig.axes if ax.get_label() == "scores")
    ticks = [t for t in texts if t in heat.get_xticklabels()]
    assert len(ticks) >= 3 and heat.get_xlabel().startswith("time")
    boxes = sorted((t.get_window_extent(renderer) for t in ticks), key=lambda b: b.x0)
    assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:], strict=False)), "tick labels touch"

    titles = [t.get_text() for t in fig.texts if t.get_text()]
    assert titles and os.path.basename(tl.video) in titles[0]
    assert f"windows of {tl.window:g} s every {tl.stride:g} s" in titles[0]
    return [t.get_text() for t in top.texts]


@pytest.mark.parametrize("name", list(SYNTHETIC))
def test_a_timeline_picture_is_readable_at_any_length(name):
    tl = SYNTHETIC[name]
    labels = check_readable(timeline_figure(tl, model="i3d.kinetics400"), tl)
    if name == "2 s":
        assert labels == [s.label for s in tl.segments]  # wide enough: each labelled
    if name.startswith("139 s"):
        assert 0 < len(labels) < len(tl.segments)  # some fit, some are left out


def test_the_time_axis_reads_seconds_then_minutes_then_hours():
    def ticks(duration):
        fig = timeline_figure(made(duration, 3, KINETICS, stride=max(0.5, duration / 300)))
        fig.canvas.draw()
        heat = next(ax for ax in fig.axes if ax.get_label() == "scores")
        shown = [t for t in heat.get_xticklabels() if 0 <= t.get_position()[0] <= duration]
        return heat.get_xlabel(), [t.get_text() for t in shown]

    assert ticks(2.0)[0] == "time (s)" and "1.0" in ticks(2.0)[1]
    assert ticks(139.4)[0] == "time (m:ss)" and "1:00" in ticks(139.4)[1]
    assert ticks(7200.0)[0] == "time (h:mm:ss)" and "1:00:00" in ticks(7200.0)[1]
    for duration in (0.5, 10, 60, 91, 600, 3599, 3601, 36000):
        label, shown = ticks(duration)
        assert 3 <= len([t for t in shown if t]) <= 12, (duration, shown)


def test_unknown_is_grey_in_the_strip_and_the_legend():
    from matplotlib.colors import to_hex

    tl = SYNTHETIC["with unknown"]
    fig = timeline_figure(tl)
    (legend,) = fig.legends
    colours = {
        t.get_text(): to_hex(h.get_facecolor())
        for t, h in zip(legend.get_texts(), legend.legend_handles, strict=True)
    }
    assert colours[UNKNOWN] == UNKNOWN_COLOUR
    assert UNKNOWN_COLOUR not in {c for k, c in colours.items() if k != UNKNOWN}
    faces = strip(fig).collections[0].get_facecolors()
    for s, face in zip(tl.segments, faces, strict=True):
        assert (to_hex(face) == UNKNOWN_COLOUR) == (s.label == UNKNOWN)


def test_the_picture_is_written(tmp_path):
    out = tmp_path / "t.png"
    plot_timeline(SYNTHETIC["2 s"], out, model="i3d.kinetics400")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluation_charts_have_titles():
    def title(fig):
        return next(t.get_text() for t in fig.texts if t.get_text())

    fig = confusion_figure(
        ["a", "b"], [[3, 1], [0, 4]], model="my-model", data="test", accuracy=0.875
    )
    assert title(fig) == "my-model on test: accuracy 0.875 (8 videos)"
    calibration = {
        "reliability": [{"low": 0.5, "accuracy": 0.8, "confidence": 0.7, "count": 3}],
        "bins": 15,
        "ece": 0.1,
        "temperature": 1.0,
        "ece_at_temperature_1": 0.1,
    }
    assert "my-model" in title(reliability_figure(calibration, model="my-model", data="test"))
    rows = [{"label": "a", "precision": 1.0, "recall": 0.5, "f1": 0.67, "average_precision": 0.9}]
    fig = per_label_figure(rows, model="my-model", data="test", mean_ap=0.9)
    assert "my-model on test" in title(fig) and "0.900" in title(fig)


@pytest.mark.slow
def test_a_real_timeline_picture_is_readable(long_timeline, model, tmp_path):
    people = long_timeline
    fig = timeline_figure(people, model=model.name)
    check_readable(fig, people)
    assert model.name in next(t.get_text() for t in fig.texts if t.get_text())
    plot_timeline(people, tmp_path / "people.png", model=model.name)
    assert (tmp_path / "people.png").stat().st_size > 10_000
