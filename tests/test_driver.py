"""The engine's Driver with a fake model and a fake decoder: which clips share a forward
pass, in what order results come, and what fails a video. No video is decoded and no
network runs, so these take milliseconds."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from vidclass.engine import Clips, Driver, Windows, Work
from vidclass.engine.driver import NonFiniteScores
from vidclass.engine.executors import DecoderPool, Event, LocalProcesses
from vidclass.engine.prepare import Prepared
from vidclass.errors import VidclassError

LABELS = ("low", "high", "middle")
SMALL = (2, 4, 4, 3)  # two clip shapes (frames, height, width, channels)
LARGE = (2, 6, 6, 3)
POISON = 255  # a clip of this value gives a NaN row


def clip(value: int, shape=SMALL) -> np.ndarray:
    """A clip whose every pixel is `value`: the fake model's rows say which clip it was."""
    return np.full(shape, value, dtype=np.uint8)


class FakeClipModel:
    """A model whose rows are worked out from each clip's value v: scores (v, 100 - v,
    50) and features (v, 2v). `passes`: the clip values of each forward pass, in order."""

    labels = LABELS
    spec = None  # handed to the executor only, which the fake one ignores
    batch_size_hint = 3
    min_score = None

    def __init__(self):
        self.passes: list[list[int]] = []

    def batch(self, clips: list[np.ndarray]) -> np.ndarray:
        assert len({c.shape for c in clips}) == 1, "clips of different shapes in one batch"
        x = np.stack(clips).astype(np.float32)
        self.passes.append([int(c.flat[0]) for c in clips])
        return x

    @staticmethod
    def _values(x: np.ndarray) -> np.ndarray:
        v = x.reshape(len(x), -1)[:, 0].astype(np.float64)
        return np.where(v == POISON, np.nan, v)

    def logits(self, x):
        v = self._values(x)
        return np.stack([v, 100 - v, np.full_like(v, 50)], axis=1)

    def activate(self, logits):
        return logits

    def embed(self, x):
        v = self._values(x)
        return np.stack([v, 2 * v], axis=1)

    def scores_and_features(self, x):
        return self.activate(self.logits(x)), self.embed(x)

    def trunk(self, x):
        return x.reshape(len(x), -1)


class FakeDecoder:
    """An executor that hands the driver prepared clips on a script: each pull gives the
    next step's events. `pulls`: how many steps have been given."""

    workers = 0

    def __init__(self, steps: list[list[Event]], most_ready: int | None = None, **flags):
        self.steps = deque(steps)
        self.most_ready = most_ready
        self.pulls = 0
        self.closed = False
        self.jobs: list = []
        for name, value in flags.items():  # raise_errors
            setattr(self, name, value)

    def open(self, spec, work, jobs, batch_size: int) -> int:
        self.jobs = list(jobs)
        return self.most_ready or batch_size

    def pending(self) -> bool:
        return bool(self.steps)

    def pull(self) -> list[Event]:
        self.pulls += 1
        return self.steps.popleft()

    def close(self) -> None:
        self.closed = True


def decoded(videos: dict[str, list | str]) -> list[list[Event]]:
    """Steps decoding `videos` one after another as InProcess does, a clip or an end a
    step: {path: its clips, or the error its decoding ends with}."""
    steps = []
    for i, (path, clips) in enumerate(videos.items()):
        job = (i, path)
        if isinstance(clips, str):
            steps.append([Event(job, end=Prepared(error=clips))])
            continue
        steps += [[Event(job, clip=(k, c))] for k, c in enumerate(clips)]
        steps.append([Event(job, end=Prepared(spans={k: (k, k + 1) for k in range(len(clips))}))])
    return steps


def run(videos, batch_size=4, work: Work | None = None, **options):
    """(results, model, decoder, driver) of running `videos` (see `decoded`), all of
    them decoded before the model would wait."""
    model = FakeClipModel()
    decoder = FakeDecoder(decoded(videos), most_ready=100)
    driver = Driver(model, work or Work(top_k=2), decoder, batch_size=batch_size, **options)
    return list(driver.run(list(videos))), model, decoder, driver


# -- forward passes ----------------------------------------------------------------------------
def test_clips_of_one_shape_from_different_videos_share_a_pass_up_to_batch_size():
    videos = {"a": [clip(1), clip(2)], "b": [clip(3), clip(4), clip(5)], "c": [clip(6)]}
    results, model, _, _ = run(videos, batch_size=4)
    assert model.passes == [[1, 2, 3, 4], [5, 6]]
    assert [r.error for r in results] == [None, None, None]
    # each video's rows are its own clips', in its clips' order
    rows = {r.video: r.clip_scores[:, 0].tolist() for r in results}
    assert rows == {"a": [1, 2], "b": [3, 4, 5], "c": [6]}


def test_clips_of_different_shapes_never_share_a_pass():
    videos = {
        "a": [clip(1), clip(2, LARGE)],
        "b": [clip(3, LARGE), clip(4)],
        "c": [clip(5), clip(6, LARGE)],
    }
    results, model, _, _ = run(videos, batch_size=4)
    assert model.passes == [[1, 4, 5], [2, 3, 6]]
    assert {r.video: r.clip_scores[:, 0].tolist() for r in results} == {
        "a": [1, 2],
        "b": [3, 4],
        "c": [5, 6],
    }


def test_a_full_batch_of_one_shape_goes_before_the_oldest_clip_of_another():
    videos = {"a": [clip(1, LARGE)], "b": [clip(2), clip(3)]}
    _, model, _, _ = run(videos, batch_size=2)
    assert model.passes == [[2, 3], [1]]


def test_a_video_handed_over_whole_is_scored_batch_size_clips_at_a_time():
    """Decoding processes hand over all of a video's clips at once: more than a batch."""
    job = (0, "a")
    steps = [[*(Event(job, clip=(k, clip(k + 1))) for k in range(5)), Event(job, end=Prepared())]]
    model = FakeClipModel()
    (result,) = Driver(model, Work(), FakeDecoder(steps), batch_size=2).run(["a"])
    assert model.passes == [[1, 2], [3, 4], [5]]
    assert result.clip_scores[:, 0].tolist() == [1, 2, 3, 4, 5]


def test_batch_size_one_scores_each_clip_alone():
    _, model, _, _ = run({"a": [clip(1), clip(2)], "b": [clip(3)]}, batch_size=1)
    assert model.passes == [[1], [2], [3]]


def test_the_model_s_hint_is_the_batch_size_when_none_is_given():
    model = FakeClipModel()
    decoder = FakeDecoder(decoded({"a": [clip(v) for v in range(1, 8)]}), most_ready=100)
    list(Driver(model, Work(), decoder).run(["a"]))
    assert model.passes == [[1, 2, 3], [4, 5, 6], [7]]  # FakeClipModel.batch_size_hint


# -- the order of results ----------------------------------------------------------------------
def _slow_first():
    """Video 0's second clip decodes after all of video 1: 1 finishes first."""
    a, b = (0, "a"), (1, "b")
    return [
        [Event(a, clip=(0, clip(1)))],
        [Event(b, clip=(0, clip(2)))],
        [Event(b, end=Prepared())],
        [Event(a, clip=(1, clip(3)))],
        [Event(a, end=Prepared())],
    ]


def test_results_come_as_videos_finish():
    decoder = FakeDecoder(_slow_first())
    results = Driver(FakeClipModel(), Work(), decoder, batch_size=1).run(["a", "b"])
    first = next(results)
    assert first.video == "b"
    assert decoder.pulls == 3, "b's result waited for a's decoding"
    assert [r.video for r in results] == ["a"]
    assert decoder.closed


def test_ordered_results_come_in_the_order_given():
    decoder = FakeDecoder(_slow_first())
    driver = Driver(FakeClipModel(), Work(), decoder, batch_size=1, ordered=True)
    results = list(driver.run(["a", "b"]))
    assert [r.video for r in results] == ["a", "b"]
    assert [r.clip_scores[:, 0].tolist() for r in results] == [[1, 3], [2]]


# -- what fails a video ------------------------------------------------------------------------
def test_a_video_that_fails_to_decode_gets_its_error_and_the_others_go_on():
    videos = {"a": [clip(1)], "bad": "bad: not a readable video", "c": [clip(3)]}
    results, model, _, driver = run(videos, batch_size=4, ordered=True)
    assert [r.video for r in results] == ["a", "bad", "c"]
    assert results[1].error == "bad: not a readable video" and results[1].predictions is None
    assert [r.predictions[0]["label"] for r in (results[0], results[2])] == ["high", "high"]
    assert model.passes == [[1, 3]]
    assert (driver.stats.succeeded, driver.stats.failed) == (2, 1)


def test_a_video_that_fails_after_some_of_its_clips_is_failed_and_the_others_go_on():
    """InProcess decodes a clip at a time: a video can end in an error (its time limit)
    with clips of it still waiting for the model."""
    a, b = (0, "a"), (1, "b")
    steps = [
        [Event(a, clip=(0, clip(1)))],
        [Event(a, end=Prepared(error="a: decoding took over 1 s; stopped"))],
        [Event(b, clip=(0, clip(2)))],
        [Event(b, end=Prepared())],
    ]
    driver = Driver(FakeClipModel(), Work(), FakeDecoder(steps), batch_size=4, ordered=True)
    results = list(driver.run(["a", "b"]))
    assert [(r.video, r.error) for r in results] == [
        ("a", "a: decoding took over 1 s; stopped"),
        ("b", None),
    ]
    assert results[1].clip_scores[:, 0].tolist() == [2]
    assert (driver.stats.succeeded, driver.stats.failed) == (1, 1)


def test_a_nan_row_fails_only_its_own_video():
    videos = {"a": [clip(1), clip(2)], "nan": [clip(3), clip(POISON)], "c": [clip(4)]}
    results, model, _, driver = run(videos, batch_size=8, ordered=True)
    assert model.passes == [[1, 2, 3, POISON, 4]]  # one pass, NaN row and all
    assert results[0].error is None and results[2].error is None
    assert results[1].error.startswith("nan: the model gave non-finite scores")
    assert results[1].predictions is None and results[1].scores is None
    assert results[0].clip_scores[:, 0].tolist() == [1, 2] and results[2].scores[0] == 4
    assert (driver.stats.succeeded, driver.stats.failed) == (2, 1)


def test_a_nan_feature_fails_its_video_with_features_asked_for():
    videos = {"nan": [clip(POISON)], "b": [clip(2)]}
    results, _, _, _ = run(videos, work=Work(Clips(), outputs="features"), ordered=True)
    assert results[0].error.startswith("nan: the model gave non-finite features")
    assert results[1].error is None


def test_a_nan_row_is_raised_with_raise_errors():
    model = FakeClipModel()
    steps = decoded({"nan": [clip(POISON)]})
    driver = Driver(model, Work(), FakeDecoder(steps, raise_errors=True), batch_size=1)
    with pytest.raises(NonFiniteScores, match="nan: the model gave non-finite scores"):
        list(driver.run(["nan"]))


# -- what comes back ---------------------------------------------------------------------------
def test_scores_give_the_mean_of_the_clips_and_top_k():
    results, _, _, _ = run({"a": [clip(10), clip(30)]}, work=Work(Clips(2), top_k=2))
    (r,) = results
    assert r.clip_scores.tolist() == [[10, 90, 50], [30, 70, 50]]
    assert r.scores.tolist() == [20, 80, 50] and r.features is None
    assert r.predictions == [{"label": "high", "score": 80.0}, {"label": "middle", "score": 50.0}]


@pytest.mark.parametrize("outputs", ["features", "both"])
def test_features_come_per_clip(outputs):
    work = Work(Clips(2), outputs=outputs)
    results, _, _, _ = run({"a": [clip(1), clip(2)], "b": [clip(3)]}, work=work, ordered=True)
    assert [r.features.tolist() for r in results] == [[[1, 2], [2, 4]], [[3, 6]]]
    if outputs == "both":
        assert [r.clip_scores[:, 0].tolist() for r in results] == [[1, 2], [3]]
        assert results[0].predictions[0]["label"] == "high"
    else:
        assert all(r.clip_scores is None and r.predictions is None for r in results)


def test_windows_give_each_clip_its_span():
    work = Work(Windows(1.0, 1.0), top_k=1)
    results, _, _, _ = run({"a": [clip(1), clip(2), clip(3)]}, work=work)
    (r,) = results
    assert r.spans == [(0, 1), (1, 2), (2, 3)]
    assert r.clip_scores[:, 0].tolist() == [1, 2, 3] and r.predictions is None


def test_on_scored_is_called_with_the_clips_of_each_pass():
    scored = []
    videos = {"a": [clip(1), clip(2), clip(3)], "b": [clip(4, LARGE)]}
    _, model, _, _ = run(videos, batch_size=2, on_scored=scored.append)
    assert scored == [len(p) for p in model.passes] == [2, 1, 1]


def test_run_stats_count_passes_clips_and_videos():
    videos = {"a": [clip(1), clip(2), clip(3)], "bad": "bad: empty file", "c": [clip(POISON)]}
    _, model, _, driver = run(videos, batch_size=2)
    stats = driver.stats
    assert (stats.forward_passes, stats.clips) == (len(model.passes), 4) == (2, 4)
    assert (stats.succeeded, stats.failed) == (1, 2)
    assert stats.wall_seconds > 0 and 0 <= stats.model_seconds <= stats.wall_seconds


def test_nothing_to_run_runs_nothing():
    results, model, decoder, driver = run({})
    assert results == [] and model.passes == [] and decoder.closed
    assert driver.stats.forward_passes == 0


def test_a_video_past_its_timeout_in_this_process_fails_naming_the_limit():
    """Real decoding in this process, timed clip by clip: a long video stopped partway
    fails (its clips made so far are dropped, not scored: that was a KeyError) and its
    error names the limit given (it named the time left of it, "took over 0.0131 s");
    the next video still gets its result."""
    import re

    from vidclass.engine.executors import InProcess
    from vidclass.models import DEFAULT_MODEL, get_entry

    from .conftest import video

    model = FakeClipModel()
    model.spec = get_entry(DEFAULT_MODEL).input  # decoded as the default model's clips
    work = Work(Windows(2.56, 1.0), video_timeout=0.3)
    paths = [str(video("long/people_139s.mp4")), str(video("cleaning_pool_1s.mp4"))]
    long, short = Driver(model, work, InProcess(), batch_size=8, ordered=True).run(paths)
    assert long.error is not None
    assert re.fullmatch(r".*people_139s\.mp4: decoding took over 0\.3 s; stopped", long.error)
    assert short.error is None and len(short.spans) == 1


# -- clips decoded elsewhere (a live source's windows) ----------------------------------------
def test_a_handed_clip_is_scored_as_its_own_job_with_its_span():
    from vidclass.engine import Handed

    model, handed = FakeClipModel(), Handed()
    driver = Driver(model, Work(Windows(2.0, 1.0)), handed, batch_size=1)
    for value, span in ((7, (0.0, 2.0)), (9, (1.0, 3.0))):
        handed.hand(np.full((2, 2), value, np.uint8), span)
        (result,) = driver.run(["live"])
        assert result.spans == [span] and result.clip_scores[0][0] == value
    assert model.passes == [[7], [9]]


def test_a_handed_clip_left_over_is_refused_not_scored_for_the_next_window():
    from vidclass.engine import Handed
    from vidclass.errors import VidclassError

    model, handed = FakeClipModel(), Handed()
    driver = Driver(model, Work(Windows(2.0, 1.0)), handed, batch_size=1)
    handed.hand(np.full((2, 2), 1, np.uint8), (0.0, 2.0))
    handed.hand(np.full((2, 2), 2, np.uint8), (1.0, 3.0))  # one too many: a lost job
    with pytest.raises(VidclassError, match="1 jobs were run with 2 clips"):
        list(driver.run(["live"]))
    handed.hand(np.full((2, 2), 3, np.uint8), (2.0, 4.0))  # the next window is its own
    (result,) = driver.run(["live"])
    assert result.clip_scores[0][0] == 3 and model.passes == [[3]]


def test_decoding_processes_refuse_shared_windows():
    """Their videos come back whole: a long video's every frame would be held at once."""
    pool = DecoderPool(1)
    try:
        work = Work(Windows(2.56, 1.0, shared=True))
        with pytest.raises(VidclassError, match="decoded in the model's process"):
            LocalProcesses(pool).open(None, work, [(0, "a.mp4")], 4)
    finally:
        pool.close()
