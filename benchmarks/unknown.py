"""Which "unknown" score tells clips outside a model's labels from clips inside them?

    python benchmarks/unknown.py [--clips 4]

Measures, before vidclass has an unknown answer (issue 29), the candidate scores on the
shared videos, for two models:

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
class mean under a shared, shrunk covariance) and knn (cosine distance to the nearest
training clip). Printed per method: AUROC (outside against inside), and at the threshold
that calls 5 % of inside clips unknown, the share of outside clips called unknown.
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


def feature_scores(train_x, train_y, x) -> dict[str, np.ndarray]:
    from sklearn.covariance import LedoitWolf

    train_x, x = normed(train_x), normed(x)
    means = np.stack([train_x[train_y == c].mean(axis=0) for c in np.unique(train_y)])
    centred = train_x - means[np.searchsorted(np.unique(train_y), train_y)]
    precision = LedoitWolf().fit(centred).precision_
    d = x[:, None, :] - means[None]
    mahalanobis = np.einsum("nci,ij,ncj->nc", d, precision, d).min(axis=1)
    knn = 1 - (x @ train_x.T).max(axis=1)
    return {"mahalanobis": mahalanobis, "knn": knn}


def head(train_x, train_y):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, max_iter=2000).fit(normed(train_x), train_y)


def report(title: str, inside: dict[str, np.ndarray], outside: dict[str, np.ndarray]):
    from sklearn.metrics import roc_auc_score

    n_in, n_out = len(next(iter(inside.values()))), len(next(iter(outside.values())))
    print(f"\n{title}: {n_in} clips inside, {n_out} outside")
    print(f"  {'method':12s} {'AUROC':>6s}  {'outside called unknown at 5 % false unknowns':>45s}")
    for method in inside:
        y = np.r_[np.zeros(n_in), np.ones(n_out)]
        s = np.r_[inside[method], outside[method]]
        threshold = np.quantile(inside[method], 1 - FALSE_UNKNOWN)
        caught = (outside[method] > threshold).mean()
        print(f"  {method:12s} {roc_auc_score(y, s):6.3f}  {caught:45.2f}")


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
        for k, v in {**logit_scores(logits), **feature_scores(x, y, out[held][1])}.items():
            inside.setdefault(k, []).append(v)
    x = np.concatenate([out[n][1] for n, _ in dev])
    y = np.concatenate([[labels.index(lb)] * len(out[n][1]) for n, lb in dev])
    fitted = head(x, y)
    outside: dict[str, list] = {}
    for name in OTHER_ACTIONS + SCENES:
        logits = fitted.decision_function(normed(out[name][1]))
        for k, v in {**logit_scores(logits), **feature_scores(x, y, out[name][1])}.items():
            outside.setdefault(k, []).append(v)
    report(
        "head on the 5 dev labels (leave one video out)",
        {k: np.concatenate(v) for k, v in inside.items()},
        {k: np.concatenate(v) for k, v in outside.items()},
    )

    # The pretrained model's own 400 logits.
    kin_in = [n for n in names if n not in SCENES]
    report(
        "pretrained i3d.kinetics400 (every Kinetics clip inside, the long videos outside)",
        logit_scores(np.concatenate([out[n][0] for n in kin_in])),
        logit_scores(np.concatenate([out[n][0] for n in SCENES])),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
