"""`vidclass classify`: top-k labels for each video, one or thousands."""

from __future__ import annotations

import json
import logging
import sys

from ..formats import csv_header, csv_line, csv_row, predictions_table, result_json
from .options import add_verb_options, chosen_labels

log = logging.getLogger("vidclass")


def add(sub) -> None:
    c = sub.add_parser(
        "classify",
        help="top-k labels for each video, one or thousands",
        description="Print the top-k labels with scores for each video, or write them to a "
        "results file with --output. A file that cannot be read is reported with its error; "
        "the others are still classified. An interrupted run given the same --output "
        "carries on where it stopped.",
    )
    c.add_argument(
        "videos",
        nargs="+",
        metavar="VIDEO",
        help="video files, folders, globs (quoted: 'clips/*.mp4') or .txt (.list, .lst) "
        "files listing videos one per line",
    )
    c.add_argument(
        "--format", choices=("table", "json", "csv"), default="table", help="output (table)"
    )
    c.add_argument(
        "--json", dest="format", action="store_const", const="json", help="same as --format json"
    )
    c.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write results to FILE (.jsonl, .csv or .sqlite) as each video finishes, "
        "skipping videos it already holds; with --engine ray also a folder (DIR/) of "
        "Parquet parts written by the workers",
    )
    add_verb_options(c, "classify")
    c.set_defaults(run=run)


class _StdoutResults:
    """Prints each result as it finishes in the chosen format; JSON is one list at the end,
    in the order the videos were named. JSON and CSV carry a failed video as a record of
    its error (data a program reads); the table, read by a person, leaves it out: its
    error is already on stderr, once (`vidclass: error: VIDEO: cause`)."""

    def __init__(self, fmt: str, videos: list[str], model: str, top_k: int):
        self.format = fmt
        self.order = {v: i for i, v in enumerate(videos)}
        self.model = model
        self.top_k = top_k
        self.collected: list[dict] = []
        if fmt == "csv":
            sys.stdout.write(csv_line(csv_header(top_k)))

    def __call__(self, r) -> None:
        if self.format == "table":
            if r.error is not None:
                return  # on stderr already (run's on_result)
            sys.stdout.write(predictions_table(r))
        elif self.format == "csv":
            record = {"model": self.model, **result_json(r)}
            sys.stdout.write(csv_line(csv_row(record, self.top_k)))
        else:
            self.collected.append(result_json(r))
        sys.stdout.flush()

    def finish(self) -> None:
        if self.format == "json":
            self.collected.sort(key=lambda r: self.order.get(r["video"], len(self.order)))
            json.dump(self.collected, sys.stdout, indent=2)
            print()


def run(args) -> int:
    from .. import classify_batch
    from ..batch.sources import expand_inputs

    labels = chosen_labels(args)
    videos = expand_inputs(args.videos, recursive=args.recursive)
    printer = None if args.output else _StdoutResults(args.format, videos, args.model, args.top_k)

    def on_result(r) -> None:
        if r.error is not None:
            log.error(r.error)
        if printer is not None:
            printer(r)

    summary = classify_batch(
        videos,
        args.output,
        model=args.model,
        top_k=args.top_k,
        clips=args.clips,
        workers=args.workers,
        batch_size=args.batch_size,
        precision=args.precision,
        device=args.device,
        runtime=args.runtime,
        threads=args.threads,
        progress=len(videos) > 1 and sys.stderr.isatty(),
        on_result=on_result,
        video_timeout=args.video_timeout,
        engine=args.engine,
        ray_address=args.ray_address,
        labels=labels,
        unknown=args.unknown,
    )
    if printer is not None:
        printer.finish()
    if summary.total > 1 or args.output:
        print(f"vidclass: {summary.describe()}", file=sys.stderr)
    return 1 if summary.failed else 0
