"""`vidclass train` and `vidclass evaluate`: your own classifier, and how good it is."""

from __future__ import annotations

import json
import logging
import os
import sys

from .options import add_verb_options

log = logging.getLogger("vidclass")


def add(sub) -> None:
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
    tr.add_argument("--val", metavar="DATA", help="validation videos (default: a split of DATA)")
    add_verb_options(tr, "train")
    tr.set_defaults(run=run_train, extra="train")  # what a missing module is installed with

    ca = sub.add_parser(
        "calibrate",
        help="fit a pretrained model to your videos: unknown answers, calibrated scores",
        description="Write a model folder (like train's) that is MODEL with its own head, "
        "plus an unknown threshold set on DATA (videos of the kind the model will see: a "
        "folder, a list file or globs; labels are not needed) and, where DATA is labelled "
        "as for train with labels the model has, a temperature that calibrates its scores.",
    )
    ca.add_argument("model", metavar="MODEL", help="a registered or transformers model")
    ca.add_argument("data", metavar="DATA", help="videos, or labelled videos as for train")
    ca.add_argument("-o", "--out", required=True, metavar="MODEL_DIR", help="folder to write")
    add_verb_options(ca, "calibrate")
    ca.set_defaults(run=run_calibrate, extra="train")

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
    ev.add_argument(
        "--plots",
        metavar="DIR",
        help="write pictures here: the confusion matrix and the reliability diagram "
        "(single-label), or per-label scores (multi-label)",
    )
    ev.add_argument("--format", choices=("table", "json"), default="table", help="output (table)")
    add_verb_options(ev, "evaluate")
    ev.set_defaults(run=run_evaluate, extra="train")


def run_train(args) -> int:
    from ..training import train

    result = train(
        args.data,
        args.out,
        backbone=args.backbone,
        val=args.val,
        val_fraction=args.val_fraction,
        seed=args.seed,
        clips=args.clips,
        flip=args.flip,
        head=args.head,
        hidden=args.hidden,
        epochs=args.epochs,
        lr=args.lr,
        patience=args.patience,
        threshold=args.threshold,
        false_unknown=args.false_unknown,
        workers=args.workers,
        batch_size=args.batch_size,
        precision=args.precision,
        device=args.device,
        runtime=args.runtime,
        progress=sys.stderr.isatty(),
        threads=args.threads,
        finetune=args.finetune,
        video_timeout=args.video_timeout,
        engine=args.engine,
        ray_address=args.ray_address,
        prior=args.prior,
        force=args.force,
    )
    t = result.config["training"]
    shown = ", ".join(
        f"{k} {v:.3f}" for k, v in result.config["metrics"]["validation"].items() if k != "videos"
    )
    print(f"trained on {t['train_videos']} videos, validated on {t['val_videos']}: {shown}")
    print(
        f"features {result.extract_seconds:.1f} s ({t['features_from_cache']} from the cache), "
        f"head {result.head_seconds:.1f} s ({t['epochs_run']} epochs)"
    )
    print(_best_epoch(result.config))
    print(_unknown_line(result.config))
    if (c := result.config.get("calibration")) is not None:
        print(
            f"temperature {c['temperature']:.3g}, fit on {c['set_on']} validation clips "
            f"(their log loss {c['nll_before']:.3f} -> {c['nll_after']:.3f}); vidclass "
            "evaluate on other videos gives the calibration error"
        )
    if result.skipped:
        print(f"skipped {len(result.skipped)} unreadable videos: " + ", ".join(result.skipped))
    print(f"model written to {result.out}; use it with --model {result.out}")
    return 0


def run_calibrate(args) -> int:
    from ..training import calibrate

    result = calibrate(
        args.model,
        args.data,
        args.out,
        false_unknown=args.false_unknown,
        clips=args.clips,
        recursive=args.recursive,
        workers=args.workers,
        batch_size=args.batch_size,
        precision=args.precision,
        device=args.device,
        runtime=args.runtime,
        threads=args.threads,
        progress=sys.stderr.isatty(),
        force=args.force,
        video_timeout=args.video_timeout,
    )
    print(_unknown_line(result.config))
    c = result.config["calibration"]
    if c is None:
        print("no temperature: give labelled videos (as for train) to fit one")
    else:
        print(
            f"temperature {c['temperature']:.3g}, fit on {c['set_on']} clips of "
            f"{c['videos']} labelled videos (their log loss {c['nll_before']:.3f} -> "
            f"{c['nll_after']:.3f})"
        )
    if result.skipped:
        print(f"skipped {len(result.skipped)} unreadable videos: " + ", ".join(result.skipped))
    print(f"model written to {result.out}; use it with --model {result.out}")
    return 0


def _unknown_line(config: dict) -> str:
    """How the model says unknown, and how often it did on its own videos, each scored
    without itself."""
    u = config["unknown"]
    if u.get("false_unknown") is None:  # a folder not made by train or calibrate
        return f"unknown: past {u['threshold']:.3f}"
    return (
        f"unknown: past {u['threshold']:.3f} from the nearest of {u['bank_rows']} training "
        f"clips, set to call {u['false_unknown']:.0%} of its {u['set_on']} clips unknown, "
        f"each scored without its own video; its videos so answered: {u['unknown_rate']:.0%}"
    )


def _best_epoch(config: dict) -> str:
    """Which epoch's head was kept (the one with the lowest validation loss), and what
    epoch 0 means: the head as it started, before any training."""
    t = config["training"]
    best, run = t["best_epoch"], t["epochs_run"]
    name = "mAP" if config["multi_label"] else "accuracy"
    score = f"validation {name} {config['metrics']['validation'][name]:.3f}"
    line = f"best epoch {best} of {run} ({score}), kept"
    if best:
        return line
    prior = len(t.get("prior_labels") or ())
    start = f"the backbone's own head for {prior} of the labels" if prior else "untrained"
    return (
        f"{line}: the head as it started ({start}); no epoch of training lowered its "
        "validation loss"
    )


def _print_report(report: dict) -> None:
    if report["multi_label"]:
        m_ap = "-" if report["mAP"] is None else f"{report['mAP']:.3f}"
        print(f"{report['evaluated']} videos, threshold {report['threshold']:g}, mAP {m_ap}")
        averages = ("micro", "macro", "weighted", "samples")
    else:
        tops = "  ".join(f"{k.replace('_', '-')} {v:.3f}" for k, v in report["top_k"].items())
        print(f"{report['evaluated']} videos, accuracy {report['accuracy']:.3f}  {tops}")
        averages = ("macro", "weighted", "micro")
    if (c := report.get("calibration")) is not None:
        without = (
            f" ({c['ece_at_temperature_1']:.3f} without its temperature {c['temperature']:.3g})"
            if abs(c["temperature"] - 1.0) > 1e-3
            else ""
        )
        print(f"calibration error (ECE, {c['bins']} bins): {c['ece']:.3f}{without}")
    u = report["unknown_answers"]
    if u["false_unknown_here"] is not None and u.get("false_unknown") is not None:
        print(
            f"answered unknown: {u['false_unknown_here']:.1%} of these videos of its labels "
            f"(the threshold, {u['threshold']:.3f}, was set to call {u['false_unknown']:.0%} "
            "of its own clips unknown)"
        )
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


def run_evaluate(args) -> int:
    from ..training import evaluate

    report = evaluate(
        args.model,
        args.data,
        precision=args.precision,
        threads=args.threads,
        device=args.device,
        runtime=args.runtime,
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
        from ..plot import plot_confusion, plot_per_label, plot_reliability

        os.makedirs(args.plots, exist_ok=True)
        about = {"model": report["model"], "data": report["data"]}
        if report["multi_label"]:
            target = os.path.join(args.plots, "per_label.png")
            plot_per_label(report["per_class"], target, mean_ap=report["mAP"], **about)
        else:
            target = os.path.join(args.plots, "confusion_matrix.png")
            cm = report["confusion_matrix"]
            plot_confusion(cm["labels"], cm["matrix"], target, accuracy=report["accuracy"], **about)
            reliability = os.path.join(args.plots, "reliability.png")
            plot_reliability(report["calibration"], reliability, **about)
            log.info(f"picture written to {reliability}")
        log.info(f"picture written to {target}")
    return 0
