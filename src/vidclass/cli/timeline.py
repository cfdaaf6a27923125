"""`vidclass timeline`: labels over time in one video."""

from __future__ import annotations

import json
import logging
import sys

from ..formats import timeline_csv, timeline_table
from ..progress import counted
from .options import add_verb_options, chosen_labels

log = logging.getLogger("vidclass")


def add(sub) -> None:
    t = sub.add_parser(
        "timeline",
        help="labels over time in one video",
        description="Classify sliding windows across the whole video and print each "
        "window's top labels, or with --segments the stretches of one label. Subtitle "
        "formats (srt, vtt) always give segments.",
    )
    t.add_argument("video", metavar="VIDEO", help="a video file")
    t.add_argument(
        "--segments", action="store_true", help="print segments of one label, not windows"
    )
    t.add_argument(
        "--format",
        choices=("table", "json", "csv", "srt", "vtt"),
        default="table",
        help="output (table)",
    )
    t.add_argument("--plot", metavar="PNG", help="also draw the timeline into this picture")
    add_verb_options(t, "timeline")
    t.set_defaults(run=run)


def run(args) -> int:
    from .. import timeline

    labels = chosen_labels(args)
    with counted("timeline", enabled=sys.stderr.isatty()) as progress:
        tl = timeline(
            args.video,
            window=args.window,
            stride=args.stride,
            top_k=args.top_k,
            smooth=args.smooth,
            min_segment=args.min_segment,
            labels=labels,
            progress=progress,
            unknown=args.unknown,
            per_window=args.per_window,
            model=args.model,
            precision=args.precision,
            threads=args.threads,
            device=args.device,
            runtime=args.runtime,
        )
    out = sys.stdout
    if args.format == "json":
        json.dump(tl.as_dict(), out, indent=2)
        print(file=out)
    elif args.format in ("srt", "vtt"):
        from ..subtitles import to_srt, to_vtt

        out.write(to_srt(tl.segments) if args.format == "srt" else to_vtt(tl.segments))
    elif args.format == "csv":
        out.write(timeline_csv(tl, args.segments))
    else:
        out.write(timeline_table(tl, args.segments))
    if args.plot:
        from ..plot import plot_timeline

        plot_timeline(tl, args.plot, model=args.model)
        log.info(f"timeline picture written to {args.plot}")
    return 0
