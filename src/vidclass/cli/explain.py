"""`vidclass explain`: which seconds and regions of a video drive a label."""

from __future__ import annotations

import json
import logging
import sys

from ..errors import VidclassError
from ..progress import counted
from .options import add_verb_options, chosen_labels

log = logging.getLogger("vidclass")
BAR = 20  # characters for an importance of 1


def add(sub) -> None:
    e = sub.add_parser(
        "explain",
        help="which seconds and regions of a video drive a label",
        description="Say why the model gives a video a label, by occlusion (no gradients, "
        "so any runtime): each window's importance (its score for the label against the "
        "other windows'), and for the most important windows how much greying out each "
        "cell of a grid over the picture lowers the score. --budget bounds the clips "
        "scored; the count is printed.",
    )
    e.add_argument("video", metavar="VIDEO", help="a video file")
    e.add_argument(
        "--format",
        choices=("table", "json", "png"),
        default="table",
        help="output (table); png draws frames with the regions' heat and the importance "
        "over time, into --out",
    )
    e.add_argument("--out", metavar="FILE", help="write the output here (standard output)")
    add_verb_options(e, "explain")
    e.set_defaults(run=run)


def run(args) -> int:
    from .. import explain

    if args.format == "png":
        if not args.out:
            raise VidclassError("--format png draws a picture: give --out FILE.png")
        import matplotlib  # noqa: F401  (missing: the plot extra, said before the work)
    with counted("explain", unit="clip", enabled=sys.stderr.isatty()) as progress:
        ex = explain(
            args.model,
            args.video,
            label=args.label,
            window=args.window,
            stride=args.stride,
            grid=args.grid,
            budget=args.budget,
            per_window=args.per_window,
            labels=chosen_labels(args),
            precision=args.precision,
            device=args.device,
            runtime=args.runtime,
            threads=args.threads,
            progress=progress,
        )
    if args.format == "png":
        from ..plot import plot_explanation

        plot_explanation(ex, args.out)
        print(f"{args.out}: {ex.label} in {ex.video}; {passes_line(ex)}")
        return 0
    text = json.dumps(ex.as_dict(), indent=2) + "\n" if args.format == "json" else table(ex)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
        log.info(f"explanation written to {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def bar(importance: float) -> str:
    """`#` for each 1/BAR of importance, `-` where it is negative."""
    return ("#" if importance > 0 else "-") * round(abs(importance) * BAR)


def passes_line(ex) -> str:
    head = f"{ex.passes} passes of a budget of {ex.budget}"
    if not ex.map_passes:  # each window scored alone
        windows, greyed = len(ex.seconds), ex.passes - len(ex.seconds)
        return f"{head}: {_count(windows, 'window')}, {_count(greyed, 'greyed-out clip')}"
    regions = len(ex.regions)
    greyed = ex.passes - ex.map_passes - regions
    return (
        f"{head}: {ex.map_passes} over the video for its {_count(len(ex.seconds), 'window')}, "
        f"{_count(regions, 'window')} alone, {_count(greyed, 'greyed-out clip')}"
    )


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def table(ex) -> str:
    lines = [
        f"why {ex.label} in {ex.video}: {ex.score:.3f} over the whole video",
        f"{'start':>8} {'end':>8} {'score':>7} {'importance':>11}",
    ]
    for s in ex.seconds:
        line = (
            f"{s.start:8.2f} {s.end:8.2f} {s.score:7.3f} {s.importance:+11.3f}  {bar(s.importance)}"
        )
        lines.append(line.rstrip())
    if ex.regions:
        lines.append(
            f"regions: the score's drop with each cell greyed out, in a {ex.grid}x{ex.grid} "
            "grid over the picture the model sees"
        )
    for r in ex.regions:
        lines.append(f"{r.start:8.2f} {r.end:8.2f} {r.score:7.3f}")
        lines += ["        " + " ".join(f"{v:+7.3f}" for v in row) for row in r.grid]
    if ex.note:
        lines.append(ex.note)
    lines.append(passes_line(ex))
    return "\n".join(lines) + "\n"
