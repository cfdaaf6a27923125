"""Which "unknown" score tells clips outside a model's labels from clips inside them?

    python benchmarks/unknown.py [--clips 4]

Measures the candidate scores on the shared videos, and vidclass's own (vidclass.unknown:
msp for pretrained models, knn over the backbone's class probabilities for trained
heads), for two models:

- A head on the five labels of videos/dev with two or more videos (archery, bench
  pressing, push up, shooting basketball, squat), a multinomial logistic regression on
  the default backbone's pooled clip features (a stand-in for `vidclass train`'s linear
  head). Inside: each dev video's clips, scored by a head fit without that video (leave
  one video out). Outside: the shared clips of other actions (arm wrestling, eating
  spaghetti, ..., and dev's pull ups and situp, near the labels) and scenes (the two
  long videos), scored by the head fit on every dev video.
- The pretrained default model (Kinetics-400). Inside: every labelled shared clip and
  dev clip (all Kinetics actions). Outside: the two long videos, which show no Kinetics
  action (a street with bikes and cars, people crossing a hall): few, so a weak check.

Scores (higher: further outside): msp (1 - the top softmax score), energy (-logsumexp
of the logits), maxlogit (-the top logit), and on the features mahalanobis (the nearest
class mean under a shared, shrunk covariance), knn (cosine distance to the nearest
training clip) and knn_classes (what `vidclass train` ships: each clip as the backbone's
own class probabilities, one minus the Bhattacharyya coefficient to the nearest training
clip). Printed per method: AUROC (outside against inside), and at the threshold that
calls 5 % of inside clips unknown (each inside clip scored without its own video, as
`vidclass train` sets it: its default), the share of outside clips called unknown, and
per video (a video's score: the mean of its clips', as classify --clips gives it) the
shares of inside and outside videos called unknown.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "videos"
DEV_LABELS = ("archery", "bench pressing", "push up", "shooting basketball", "squat")
OTHER_ACTIONS = [
    "arm_wrestling.mp4",
    "eating_spaghetti.mp4",
    "flipping_pancake.mkv",
    "soccer_juggling.avi",
    "cricket_shot.gif",
    "cleaning_pool_1s.mp4",
    "dev/pull_ups_1.mp4",
    "dev/situp_1.mp4",
]
SCENES = ["long/scene_cuts_bikes.mp4", "long/people_139s.mp4"]
FALSE_UNKNOWN = 0.05


def clip_outputs(model, path: Path, clips: int) -> tuple[np.ndarray, np.ndarray]:
    """(logits, features) of each of `clips` clips spread over the video."""
    batch = np.stack(model.read_clips(path, clips=clips))
    _, features = model.scores_and_features(batch)
    return model.logits(batch), features


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def logit_scores(logits: np.ndarray) -> dict[str, np.ndarray]:
    top = logits.max(axis=1)
    energy = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
    return {"msp": 1 - softmax(logits).max(axis=1), "energy": -energy, "maxlogit": -top}


def normed(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def feature_scores(train_x, train_y, x, head) -> dict[str, np.ndarray]:
    from sklearn.covariance import LedoitWolf

    from vidclass.unknown import Detector, bank_of

    shipped = Detector("knn", bank=bank_of(train_x, head), head=head).score(None, x)

    train_x, x = normed(train_x), normed(x)
    means = np.stack([train_x[train_y == c].mean(axis=0) for c in np.unique(train_y)])
    centred = train_x - means[np.searchsorted(np.unique(train_y), train_y)]
    precision = LedoitWolf().fit(centred).precision_
    d = x[:, None, :] - means[None]
    mahalanobis = np.einsum("nci,ij,ncj->nc", d, precision, d).min(axis=1)
    knn = 1 - (x @ train_x.T).max(axis=1)
    return {"mahalanobis": mahalanobis, "knn": knn, "knn_classes": shipped}


def head(train_x, train_y):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, max_iter=2000).fit(normed(train_x), train_y)


def report(title: str, inside: dict[str, list], outside: dict[str, list]):
    """Per method: AUROC over clips; at the threshold calling FALSE_UNKNOWN of the inside
    clips unknown, the outside clips caught, and the inside and outside videos (a video:
    the mean of its clips) called unknown."""
    from sklearn.metrics import roc_auc_score

    clips_in = {k: np.concatenate(v) for k, v in inside.items()}
    clips_out = {k: np.concatenate(v) for k, v in outside.items()}
    n_in, n_out = len(next(iter(clips_in.values()))), len(next(iter(clips_out.values())))
    videos = f"{len(next(iter(inside.values())))} / {len(next(iter(outside.values())))}"
    print(f"\n{title}: {n_in} clips inside, {n_out} outside (videos {videos})")
    print(
        f"  {'method':12s} {'AUROC':>6s} {'caught':>7s} "
        f"{'videos: false unknown':>22s} {'caught':>7s}"
    )
    for method in clips_in:
        y = np.r_[np.zeros(n_in), np.ones(n_out)]
        s = np.r_[clips_in[method], clips_out[method]]
        threshold = np.quantile(clips_in[method], 1 - FALSE_UNKNOWN)
        caught = (clips_out[method] > threshold).mean()
        false_videos = np.mean([v.mean() > threshold for v in inside[method]])
        caught_videos = np.mean([v.mean() > threshold for v in outside[method]])
        print(
            f"  {method:12s} {roc_auc_score(y, s):6.3f} {caught:7.2f} {false_videos:22.2f} "
            f"{caught_videos:7.2f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=4, help="clips per video (4)")
    args = parser.parse_args()
    if not VIDEOS.is_dir():
        print(f"no shared videos at {VIDEOS}", file=sys.stderr)
        return 1
    import vidclass
    from vidclass.info import cpu_line

    print(f"{cpu_line()}; vidclass {vidclass.__version__}; clips per video: {args.clips}")
    model = vidclass.load_model()
    own_head = backbone_head()
    started = time.monotonic()
    with open(VIDEOS / "dev" / "MANIFEST.tsv", newline="") as f:
        dev = [(r["file"], r["label"]) for r in csv.DictReader(f, delimiter="\t")]
    dev = [(f"dev/{name}", label) for name, label in dev if label in DEV_LABELS]
    names = sorted({n for n, _ in dev} | set(OTHER_ACTIONS) | set(SCENES))
    out = {name: clip_outputs(model, VIDEOS / name, args.clips) for name in names}
    print(f"clips scored in {time.monotonic() - started:.0f} s")

    # The dev head, each video held out in turn.
    labels = sorted(DEV_LABELS)
    inside: dict[str, list] = {}
    for held, _label in dev:
        rest = [(n, lb) for n, lb in dev if n != held]
        x = np.concatenate([out[n][1] for n, _ in rest])
        y = np.concatenate([[labels.index(lb)] * len(out[n][1]) for n, lb in rest])
        fitted = head(x, y)
        logits = fitted.decision_function(normed(out[held][1]))
        scores = {**logit_scores(logits), **feature_scores(x, y, out[held][1], own_head)}
        for k, v in scores.items():
            inside.setdefault(k, []).append(v)
    x = np.concatenate([out[n][1] for n, _ in dev])
    y = np.concatenate([[labels.index(lb)] * len(out[n][1]) for n, lb in dev])
    fitted = head(x, y)
    outside: dict[str, list] = {}
    for name in OTHER_ACTIONS + SCENES:
        logits = fitted.decision_function(normed(out[name][1]))
        scores = {**logit_scores(logits), **feature_scores(x, y, out[name][1], own_head)}
        for k, v in scores.items():
            outside.setdefault(k, []).append(v)
    report("head on the 5 dev labels (leave one video out)", inside, outside)

    # The pretrained model's own 400 logits.
    kin_in = [n for n in names if n not in SCENES]

    def by_video(names: list[str]) -> dict[str, list]:
        per = [logit_scores(out[n][0]) for n in names]
        return {k: [p[k] for p in per] for k in per[0]}

    report(
        "pretrained i3d.kinetics400 (every Kinetics clip inside, the long videos outside)",
        by_video(kin_in),
        by_video(SCENES),
    )
    print(f"in all {time.monotonic() - started:.0f} s")
    score_cost(own_head)
    return 0


def score_cost(own_head) -> None:
    """What knn_classes adds to a clip: its score against a full bank (MAX_BANK_ROWS),
    from the features its forward pass already gave (median of 200 runs after 20)."""
    from vidclass.unknown import MAX_BANK_ROWS, Detector, bank_of

    rng = np.random.default_rng(0)
    detector = Detector(
        "knn", bank=bank_of(rng.random((MAX_BANK_ROWS, 1024)), own_head), head=own_head
    )
    clip = rng.random((1, 1024)).astype(np.float32)
    times = []
    for _ in range(220):
        start = time.perf_counter()
        detector.score(None, clip)
        times.append(time.perf_counter() - start)
    times = times[20:]  # the first runs warm the caches and the BLAS threads
    ms = np.median(times) * 1000
    print(f"knn_classes score of one clip against {MAX_BANK_ROWS} rows: {ms:.2f} ms")


def backbone_head():
    """The default backbone's own head as (weight, bias), as `vidclass train` keeps it."""
    from vidclass.loading import load_torch
    from vidclass.training.prior import linear_head

    module = load_torch("i3d.kinetics400", runtime="torch").module
    weight, bias = linear_head(module, 1024)
    return weight.numpy(), bias.numpy()


if __name__ == "__main__":
    sys.exit(main())
