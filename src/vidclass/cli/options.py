"""Options shared by several commands: number types, the model options, batch options."""

from __future__ import annotations

import argparse
import math
import os

from ..devices import DEVICES, PRECISIONS
from ..engine import ENGINES
from ..limits import DEFAULT_VIDEO_TIMEOUT
from ..models import DEFAULT_MODEL
from ..runtimes import RUNTIMES


def number(kind: str, convert, ok, need: str):
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


positive_int = number("a whole number", int, lambda v: v >= 1, "at least 1")
non_negative_int = number("a whole number", int, lambda v: v >= 0, "0 or more")
positive_float = number("a number", float, lambda v: 0 < v < math.inf, "more than 0")
fraction = number("a number", float, lambda v: 0 < v < 1, "between 0 and 1")
finite_float = number("a number", float, math.isfinite, "a finite number")
port = number("a port number", int, lambda v: 0 <= v <= 65535, "0 to 65535")


def add_model_options(parser: argparse.ArgumentParser, model: bool = True) -> None:
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
        "--device",
        default="auto",
        metavar="|".join(DEVICES),
        help="where the model runs: auto picks a GPU where torch sees one, else the CPU (auto)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto: bf16 on a CPU with native bf16 and on GPUs that have it, fp16 on other "
        "GPUs, else fp32; int8: what a model made by `vidclass models quantize` runs in (auto)",
    )
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="auto",
        help="what runs the model on a CPU: auto takes openvino for convolutional models "
        "(I3D) where it is installed, else torch; onnxruntime computes in fp32 (auto)",
    )
    parser.add_argument("--threads", type=positive_int, help="CPU threads (all available cores)")


def add_window_options(parser: argparse.ArgumentParser, segments: str, smooth: str) -> None:
    """--window, --stride, --top-k, --segments and --smooth: windows over time, in a file
    (timeline) or a stream (watch); `segments`, `smooth`: what those mean there."""
    parser.add_argument(
        "--window",
        type=positive_float,
        help="window length in seconds (the model's clip: 2.56 for the default model)",
    )
    parser.add_argument(
        "--stride", type=positive_float, default=1.0, help="seconds between windows (1)"
    )
    parser.add_argument("-k", "--top-k", type=positive_int, default=3, help="labels per window (3)")
    parser.add_argument("--segments", action="store_true", help=segments)
    parser.add_argument("--smooth", type=positive_int, default=3, help=smooth)


def add_batch_options(parser: argparse.ArgumentParser) -> None:
    """How many videos are read: decoding processes and clips per forward pass."""
    parser.add_argument(
        "--workers",
        type=non_negative_int,
        help="processes decoding ahead of the model (one per two cores; 0: none)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        help="clips of different videos scored together (2 on a CPU, 8 on a GPU)",
    )
    parser.add_argument(
        "--video-timeout",
        type=positive_float,
        default=DEFAULT_VIDEO_TIMEOUT,
        metavar="S",
        help="seconds one video's decoding may take; then it is stopped and recorded as "
        f"failed ({DEFAULT_VIDEO_TIMEOUT:g})",
    )


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """--engine and --ray-address: where the work runs."""
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="local: this machine's decoding processes; ray: a Ray cluster (--ray-address, "
        "else $RAY_ADDRESS, else a local Ray; pip install 'vidclass[ray]') (local)",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="the Ray cluster to join, e.g. 10.0.0.5:6379 ($RAY_ADDRESS)",
    )


def add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=os.environ.get("VIDCLASS_GALLERY", "gallery.sqlite"),
        help="the gallery database ($VIDCLASS_GALLERY, else ./gallery.sqlite)",
    )


def add_label_options(parser: argparse.ArgumentParser) -> None:
    """--labels / --labels-file, and for vision-language models --prompt, --multi-label
    and --threshold."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--labels",
        metavar="'A, B, ...'",
        help="score only these labels, comma-separated: a closed-set model keeps these of "
        "its own (case, _ and - ignored) and renormalises; a vision-language model (X-CLIP, "
        "CLIP, SigLIP) scores any words",
    )
    group.add_argument("--labels-file", metavar="FILE", help="the same, one label a line")
    parser.add_argument(
        "--prompt",
        metavar="TEMPLATE",
        help="vision-language models: the text a label is put into, {} where it goes "
        "(X-CLIP: '{}'; CLIP, SigLIP: 'a photo of {}.')",
    )
    parser.add_argument(
        "--multi-label",
        action="store_true",
        help="vision-language models: score each label on its own (SigLIP: its sigmoid; "
        "CLIP, X-CLIP: the cosine similarity) and keep those from --threshold: tags",
    )
    parser.add_argument(
        "--threshold",
        type=finite_float,
        help="with --multi-label: the score from which a label is a tag (SigLIP 0.5; "
        "CLIP, X-CLIP 0.25)",
    )


def chosen_labels(args: argparse.Namespace):
    """The LabelChoice the options give, or None."""
    from ..errors import VidclassError
    from ..label_choice import LabelChoice, parse_labels, read_labels_file

    if args.labels is not None:
        names = parse_labels(args.labels)
    elif args.labels_file is not None:
        names = read_labels_file(args.labels_file)
    elif args.prompt is not None or args.multi_label or args.threshold is not None:
        raise VidclassError("--prompt, --multi-label and --threshold need --labels")
    else:
        return None
    return LabelChoice(tuple(names), args.prompt, args.multi_label, args.threshold)
