"""Why a label: which seconds and which regions of the picture drive it, by occlusion.

No gradients: only the ClipModel's forward passes, so any runtime explains (torch,
OpenVINO, ONNX Runtime, int8 exports). Every clip goes through the engine's one loop,
the Driver: the windows as `vidclass timeline` makes them, then greyed-out copies of
the chosen windows' clips, handed over (engine.Handed) in chunks so memory stays
bounded however fine the grid.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from .engine import ClipModel, Clips, Driver, Handed, InProcess, Windows, Work
from .engine.prepare import Preparation
from .engine.stretch import reads_map
from .errors import VidclassError
from .label_choice import NEEDS_LABELS, match_labels
from .models.spec import InputSpec
from .options import check
from .timelines import DEFAULT_WINDOW, planned_steps, planned_windows, stated_duration

__all__ = ["Explanation", "Region", "Span", "explain"]

log = logging.getLogger("vidclass")

CHUNK = 8  # greyed-out clips held at once (9.6 MB each for I3D), at least a batch


@dataclass
class Span:
    """One window: the label's `score` in it and its `importance` for the whole video."""

    start: float
    end: float
    score: float
    importance: float


@dataclass
class Region:
    """One explained window: `grid[row][column]` is how much the label's score drops
    when that cell of the picture (what the model sees: the centre crop) is greyed out
    in every frame of the window; negative where greying it out raises the score."""

    start: float
    end: float
    score: float
    grid: list[list[float]]


@dataclass
class Explanation:
    """What `explain` found. `score`: the label's score over the whole video (the mean
    of its windows'); `passes`: clips scored in all (the windows, then the greyed-out
    copies), never over `budget`; `regions`: the windows explained, in time order;
    `frames`: the middle frame each of those windows shows the model (uint8 RGB, for
    pictures); `note`: what the budget left out, if anything."""

    video: str
    label: str
    score: float
    window: float
    stride: float
    grid: int
    budget: int
    passes: int
    seconds: list[Span]
    regions: list[Region]
    note: str | None = None
    frames: list[np.ndarray] = field(default_factory=list, repr=False)
    map_passes: int = 0  # the passes of the video's map, where its windows were read off it

    def as_dict(self) -> dict:
        """The JSON form (`vidclass explain --format json`)."""
        return {
            "video": self.video,
            "label": self.label,
            "passes": self.passes,
            "seconds": [asdict(s) for s in self.seconds],
            "regions": [asdict(r) for r in self.regions],
            "score": self.score,
            "window": self.window,
            "stride": self.stride,
            "grid": self.grid,
            "budget": self.budget,
            "note": self.note,
            "map_passes": self.map_passes,
        }


def explain(
    model: str | os.PathLike | ClipModel,
    path: str | os.PathLike,
    label: str | None = None,
    window: float | None = None,
    stride: float = 1.0,
    grid: int = 3,
    budget: int = 200,
    *,
    per_window: bool = False,
    labels=None,
    precision: str = "auto",
    device: str = "auto",
    runtime: str = "auto",
    threads: int | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> Explanation:
    """Which seconds and which regions of the picture drive `label` in a video.

    `model`: a loaded model (`vidclass.load_model`: load it once to explain many videos),
    or a name, loaded with `precision`, `device`, `runtime` and `threads`; `labels`: only
    these (a vision-language model needs them; see `Classifier.with_labels`). `label`:
    the video's top label when None. The windows are the timeline's (`window` seconds,
    the model's clip by default, every `stride` seconds), read off one map of the video
    where the model has one and that takes fewer passes than the windows (they
    overlap), unless `per_window`.

    Seconds: a window's importance is its score for the label minus the mean score of
    the other windows. The whole video's score is the mean of its windows', so this is
    exactly how much leaving the window out lowers it (times the number of windows, so
    that it reads on the scale of a score whatever the length): positive where the
    window shows the label more than the rest does. It costs no pass beyond the
    timeline's, where greying out a window's frames would re-score every window that
    overlaps it, on frames the model never saw in training.

    Regions: each cell of a `grid` x `grid` split of the picture is greyed out (the
    colour the model's input centres on) in every frame of a window, which is scored
    again, alone: the drop from the window's own score alone is the cell's importance.
    `budget` bounds the passes in all: the windows (or the map's steps) first, then
    `grid`² per explained window (and the window alone, where they came off the map),
    the windows most important for the label first when it cannot cover them all.
    `progress(done, total)` is called as passes are made.
    """
    loaded = not isinstance(model, (str, os.PathLike))
    check("explain", {k: v for k, v in locals().items() if not (k == "model" and loaded)})
    if not loaded:
        from .loading import load_model

        model = load_model(model, precision, threads, device, runtime)
    if labels is not None:
        model = model.with_labels(labels)
    if not model.labels:
        raise VidclassError(NEEDS_LABELS)
    wanted = None if label is None else match_labels(model.labels, [label])[0]
    window = window or model.spec.clip_seconds or DEFAULT_WINDOW
    stride = 1.0 if stride is None else stride
    # The timeline's windows: read off the video's map where the model has one and that
    # takes fewer passes (the windows overlap), else each scored alone.
    duration = stated_duration(path)
    planned = planned_windows(duration, window, stride)
    steps = planned_steps(duration, model.spec.fps) if reads_map(model, per_window) else None
    shared = steps is not None and planned is not None and steps < planned
    needed = steps if shared else planned
    if needed is not None and needed > budget:
        what = f"its {planned} windows of {window:g} s every {stride:g} s take"
        if shared:
            what = "its map (its windows read off one pass over the video) takes"
        raise VidclassError(
            f"{path}: {what} {needed} passes, over the budget of {budget}; give a budget "
            f"of at least {needed}" + ("" if shared else " or a longer stride")
        )
    done = 0

    def scored(n: int) -> None:
        nonlocal done
        done += n
        if done > budget:  # more windows than planned (a duration not known ahead)
            raise VidclassError(
                f"{path}: its windows of {window:g} s every {stride:g} s take over the budget "
                f"of {budget} passes; give a larger budget or a longer stride"
            )
        if progress is not None:
            progress(done, total)

    total = needed
    covered = 0

    def mapped(n: int) -> None:  # windows whose frames are in: the map's passes so far
        nonlocal covered
        covered += n
        if progress is not None:
            progress(min(needed, covered * needed // planned), total)

    work = Work(Windows(window, stride, shared), video_timeout=None, unknown=False)
    driver = Driver(
        model, work, InProcess(raise_errors=True), on_scored=mapped if shared else scored
    )
    result = next(driver.run([path]))
    map_passes = driver.stats.forward_passes if shared else 0
    if shared:
        scored(map_passes)
    probs, spans = result.clip_scores, result.spans
    k = int(probs.mean(axis=0).argmax()) if wanted is None else wanted
    scores = probs[:, k].astype(np.float64)
    n = len(scores)
    importance = scores - (scores.sum() - scores) / (n - 1) if n > 1 else scores.copy()
    seconds = [
        Span(_num(a), _num(b), _num(s), _num(i))
        for (a, b), s, i in zip(spans, scores, importance, strict=True)
    ]

    # The regions of the windows the budget covers, the most important first. Each drop
    # compares greyed-out copies with the window, all scored alone (off the map, the
    # window alone costs a pass of its own).
    per_region = grid * grid + int(shared)
    room = max(0, (budget - done) // per_region)
    chosen = sorted(np.argsort(-importance, kind="stable")[:room].tolist())
    total = done + len(chosen) * per_region
    note = None
    if len(chosen) < n:
        note = (
            f"the budget of {budget} passes covers the regions of {len(chosen)} of {n} "
            f"windows: the most important for {model.labels[k]}"
        )
        log.info(note)
    regions, frames = [], []
    for row, clip in _clips(path, model.spec, Windows(window, stride), spans, chosen):
        name = f"{path} ({spans[row][0]:g}-{spans[row][1]:g} s)"
        alone, after = _occluded_scores(model, clip, grid, k, name, scored, shared)
        base = scores[row] if alone is None else alone
        drop = [[_num(base - s) for s in line] for line in after]
        start, end = spans[row]
        regions.append(Region(_num(start), _num(end), _num(base), drop))
        frames.append(clip[len(clip) // 2].copy())
    if len(regions) < len(chosen):  # the file decoded less the second time
        lost = f"{len(chosen) - len(regions)} of the windows chosen did not decode again"
        note = f"{note}; {lost}" if note else lost
        log.warning(f"{path}: {lost}")
    return Explanation(
        video=str(path),
        label=model.labels[k],
        score=_num(scores.mean()),
        window=float(window),
        stride=float(stride),
        grid=grid,
        budget=budget,
        passes=done,
        seconds=seconds,
        regions=regions,
        note=note,
        frames=frames,
        map_passes=map_passes,
    )


def _num(x) -> float:
    return round(float(x), 6)


def _clips(path, spec: InputSpec, sampling: Windows, spans: list, wanted: list[int]):
    """(row, uint8 clip) of the windows in rows `wanted` of the timeline (whose windows
    span `spans`), from a second pass over the file that stops after the last one.
    Windows are known by their start: off the map, a timeline's last windows end where
    the frames that decode do, and alone where the file says."""
    rows = {spans[row][0]: row for row in wanted}
    if not rows:
        return
    preparation = Preparation(path, spec, sampling)
    made = iter(preparation)
    try:
        for index, clip in made:
            row = rows.pop(preparation.spans[index][0], None)
            if row is not None:
                yield row, clip
            if not rows:
                return
    finally:
        made.close()  # the file, where the last one came before its end


def fill_colour(spec: InputSpec) -> np.ndarray:
    """The uint8 RGB the model's input centres on: its normalisation mean where it has
    one, else mid-grey."""
    if spec.mean is None or spec.value_range is None:
        return np.full(3, 128, np.uint8)
    lo, hi = spec.value_range
    return np.clip(np.round((np.asarray(spec.mean) - lo) / (hi - lo) * 255), 0, 255).astype(
        np.uint8
    )


def cells(height: int, width: int, grid: int) -> Iterator[tuple[int, int, slice, slice]]:
    """(row, column, rows, columns) of a grid x grid split of a picture, row by row."""
    ys = np.linspace(0, height, grid + 1).round().astype(int)
    xs = np.linspace(0, width, grid + 1).round().astype(int)
    for i in range(grid):
        for j in range(grid):
            yield i, j, slice(ys[i], ys[i + 1]), slice(xs[j], xs[j + 1])


def _occluded_scores(
    model: ClipModel, clip: np.ndarray, grid: int, k: int, name: str, scored, whole: bool
) -> tuple[float | None, list[list[float]]]:
    """The label's score (index `k`) of `clip` alone where `whole` (else None), and with
    each grid cell greyed out in turn.

    The copies go through the Driver as jobs of one clip each, handed over CHUNK at a
    time; the Driver batches them (batch_size_hint) as it batches any videos' clips."""
    colour = fill_colour(model.spec)
    out = np.zeros((grid, grid))
    alone = None
    todo = list(cells(clip.shape[1], clip.shape[2], grid))
    if whole:
        todo.insert(0, None)  # the window itself, ungreyed
    step = max(CHUNK, model.batch_size_hint)
    for first in range(0, len(todo), step):
        part = todo[first : first + step]
        handed = Handed()
        for cell in part:
            copy = clip.copy()
            if cell is not None:
                copy[:, cell[2], cell[3]] = colour
            handed.hand(copy, (0.0, 0.0))
        work = Work(Clips(), video_timeout=None)
        driver = Driver(model, work, handed, ordered=True, on_scored=scored)
        names = [f"{name}, {_cell_name(cell)}" for cell in part]
        for cell, result in zip(part, driver.run(names), strict=True):
            if cell is None:
                alone = float(result.clip_scores[0, k])
            else:
                out[cell[0], cell[1]] = float(result.clip_scores[0, k])
    return alone, out.tolist()


def _cell_name(cell) -> str:
    return "whole" if cell is None else f"cell {cell[0] + 1},{cell[1] + 1}"
