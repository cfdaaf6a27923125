"""Every verb's options, declared once: type, default, bounds and help.

The CLI's parsers (cli/options.py), the server's query parameters (serve/params.py),
the live WebSocket's query and the Python verbs all check values against these
declarations, so a bound cannot differ between them (tests/test_options.py walks
each surface).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, replace

from .devices import PRECISIONS
from .errors import VidclassError
from .label_choice import MAX_LABELS_TEXT, MAX_PROMPT_CHARS, as_choice
from .limits import DEFAULT_VIDEO_TIMEOUT
from .models import DEFAULT_MODEL, exported
from .runtimes import DEFAULT_MAX_CLIPS, RUNTIMES

ENGINES = ("local", "ray")
DEFAULT_MOMENT = 2.0  # seconds a stored moment of a vision-language model spans
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_KINDS = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}


@dataclass(frozen=True)
class Option:
    """One option of a verb. `ge`/`gt` and `le` bound numbers; `choices` and `max_chars`
    bound text; a default of None means "not given" (the verb decides)."""

    name: str
    kind: type
    default: object = None
    help: str = ""
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    choices: tuple[str, ...] = ()
    max_chars: int | None = None
    flags: tuple[str, ...] = ()  # on the command line; else --name-with-dashes
    metavar: str | None = None
    none_means: str | None = None  # what None means to a Python verb, where it may be given

    def but(self, **changes) -> Option:
        """This option with another default or help, as one verb means it."""
        return replace(self, **changes)

    @property
    def cli_flags(self) -> tuple[str, ...]:
        return self.flags or ("--" + self.name.replace("_", "-"),)

    def need(self) -> str:
        """What a value must be, in words."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind is str:
            return f"text of 1 to {self.max_chars} characters" if self.max_chars else "text"
        text = _KINDS[self.kind]
        low = self.ge if self.ge is not None else self.gt
        if low is not None and self.le is not None:
            if self.gt is None:
                return f"{text} from {low:g} to {self.le:g}"
            return f"{text} more than {low:g} and at most {self.le:g}"
        if self.ge is not None:
            return f"{text} of at least {self.ge:g}"
        if self.gt is not None:
            return f"{text} more than {self.gt:g}"
        if self.le is not None:
            return f"{text} of at most {self.le:g}"
        return "a finite number" if self.kind is float else text

    def problem(self, value) -> str:
        given = repr(value[:40]) if isinstance(value, str) else repr(value)[:40]
        return f"{self.name} must be {self.need()}, got {given}"

    def check(self, value):
        """`value` as given to a Python verb, or VidclassError saying what it must be.
        None is accepted where the default is None or `none_means` says what it does."""
        if value is None and (self.default is None or self.none_means):
            return None
        if not self._fits(value):
            raise VidclassError(self.problem(value))
        return value

    def parse(self, text: str):
        """A value from text (a command line, a query string), checked."""
        try:
            value = self._convert(text)
        except (ValueError, OverflowError):
            raise VidclassError(self.problem(text)) from None
        if not self._fits(value):
            raise VidclassError(self.problem(text))
        return value

    def _convert(self, text: str):
        if len(text) > (self.max_chars or 40) and self.kind is not str:
            raise ValueError(text)
        if self.kind is bool:
            lowered = text.lower()
            if lowered in _TRUE + _FALSE:
                return lowered in _TRUE
            raise ValueError(text)
        return self.kind(text)

    def _fits(self, value) -> bool:
        if self.kind is bool:
            return isinstance(value, bool)
        if self.kind is str:
            return (
                isinstance(value, str)
                and len(value) >= 1
                and (self.max_chars is None or len(value) <= self.max_chars)
                and (not self.choices or value in self.choices)
            )
        if isinstance(value, bool) or not isinstance(
            value, numbers.Integral if self.kind is int else numbers.Real
        ):
            return False
        if not math.isfinite(value):
            return False
        return (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
        )


def _table(*options: Option) -> dict[str, Option]:
    return {o.name: o for o in options}


# Shared by several verbs; a verb may change the default or the help (Option.but).
TOP_K = Option("top_k", int, 5, "labels per video", ge=1, le=1000, flags=("-k", "--top-k"))
CLIPS = Option(
    "clips", int, 1, "clips spread over the video, scores averaged (1: its middle)", ge=1, le=16
)
WINDOW = Option(
    "window",
    float,
    None,
    "window length in seconds (the model's clip: 2.56 for the default model)",
    gt=0,
    le=60,
)
STRIDE = Option("stride", float, 1.0, "seconds between windows", ge=0.04, le=3600)
SMOOTH = Option("smooth", int, 3, "windows averaged for the leading label", ge=1, le=100)
LABELS = Option(
    "labels",
    str,
    None,
    "score only these labels, comma-separated: a closed-set model keeps these of its own "
    "(case, _ and - ignored) and renormalises; a vision-language model (X-CLIP, CLIP, "
    "SigLIP) scores any words",
    max_chars=MAX_LABELS_TEXT,
    metavar="'A, B, ...'",
)
PROMPT = Option(
    "prompt",
    str,
    None,
    "vision-language models: the text a label is put into, {} where it goes (X-CLIP: "
    "'{}'; CLIP, SigLIP: 'a photo of {}.')",
    max_chars=MAX_PROMPT_CHARS,
    metavar="TEMPLATE",
)
MULTI_LABEL = Option(
    "multi_label",
    bool,
    False,
    "vision-language models: score each label on its own (SigLIP: its sigmoid; CLIP, "
    "X-CLIP: the cosine similarity) and keep those from --threshold: tags",
)
LABEL_THRESHOLD = Option(
    "threshold",
    float,
    None,
    "with --multi-label: the score from which a label is a tag (SigLIP 0.5; CLIP, X-CLIP 0.25)",
    ge=-1,
    le=1,
)
LABEL_OPTIONS = (LABELS, PROMPT, MULTI_LABEL, LABEL_THRESHOLD)

MODEL = Option(
    "model",
    str,
    DEFAULT_MODEL,
    "a model name, a folder from vidclass train or models export, a transformers model "
    "folder or a hub id",
    max_chars=4096,
    flags=("-m", "--model"),
)
DEVICE = Option(
    "device",
    str,
    "auto",
    "where the model runs: auto picks a GPU where torch sees one, else the CPU",
    max_chars=20,
    metavar="auto|cpu|cuda|cuda:N|mps",
)
PRECISION = Option(
    "precision",
    str,
    "auto",
    "auto: bf16 on a CPU with native bf16 and on GPUs that have it, fp16 on other GPUs, "
    "else fp32; int8: what an int8 export computes in",
    choices=PRECISIONS,
)
RUNTIME = Option(
    "runtime",
    str,
    "auto",
    "what runs the model on a CPU: auto takes an exported folder's own runtime, else "
    "openvino for convolutional models (I3D) where it is installed, else torch",
    choices=RUNTIMES,
)
THREADS = Option("threads", int, None, "CPU threads (all available cores)", ge=1, le=4096)
MODEL_OPTIONS = (MODEL, DEVICE, PRECISION, RUNTIME, THREADS)

WORKERS = Option(
    "workers",
    int,
    None,
    "processes decoding ahead of the model (one per two cores; 0: none)",
    ge=0,
    le=1024,
)
BATCH_SIZE = Option(
    "batch_size",
    int,
    None,
    "clips of different videos scored together (2 on a CPU, 8 on a GPU)",
    ge=1,
    le=1024,
)
VIDEO_TIMEOUT = Option(
    "video_timeout",
    float,
    DEFAULT_VIDEO_TIMEOUT,
    "seconds one video's decoding may take; then it is stopped and recorded as failed",
    gt=0,
    metavar="S",
    none_means="no limit",
)
BATCH_OPTIONS = (WORKERS, BATCH_SIZE, VIDEO_TIMEOUT)
ENGINE = Option(
    "engine",
    str,
    "local",
    "local: this machine's decoding processes; ray: a Ray cluster (--ray-address, else "
    "$RAY_ADDRESS, else a local Ray; pip install 'vidclass[ray]')",
    choices=ENGINES,
)
RAY_ADDRESS = Option(
    "ray_address",
    str,
    None,
    "the Ray cluster to join, e.g. 10.0.0.5:6379 ($RAY_ADDRESS)",
    max_chars=1000,
    metavar="ADDR",
)
ENGINE_OPTIONS = (ENGINE, RAY_ADDRESS)
RECURSIVE = Option(
    "recursive",
    bool,
    False,
    "look in subfolders too (and ** in globs)",
    flags=("-r", "--recursive"),
)
LIMIT = Option("limit", int, 20, "results", ge=1, le=1000, flags=("-n", "--limit"))
CALIBRATION = (
    CLIPS.but(help="clips taken from each calibration video"),
    Option(
        "max_clips",
        int,
        DEFAULT_MAX_CLIPS,
        "calibration clips at most, from videos spread over the list; each is held decoded "
        "(9.6 MB for I3D)",
        ge=1,
        le=10_000,
    ),
    THREADS,
)

VERBS: dict[str, dict[str, Option]] = {
    "classify": _table(
        TOP_K, CLIPS, RECURSIVE, *LABEL_OPTIONS, *MODEL_OPTIONS, *BATCH_OPTIONS, *ENGINE_OPTIONS
    ),
    "timeline": _table(
        WINDOW,
        STRIDE,
        TOP_K.but(default=3, help="labels per window"),
        SMOOTH.but(help="windows whose scores are averaged before segmenting"),
        Option(
            "min_segment",
            float,
            None,
            "shorter segments join a neighbour (seconds; two strides)",
            gt=0,
            le=3600,
        ),
        *LABEL_OPTIONS,
        *MODEL_OPTIONS,
    ),
    "watch": _table(
        WINDOW,
        STRIDE,
        TOP_K.but(default=3, help="labels per window"),
        SMOOTH.but(
            help="windows averaged for the leading label (the last ones: live cannot look ahead)"
        ),
        Option("segments", bool, True, "also an event when the leading label changes"),
        Option("duration", float, None, "stop after S seconds", gt=0, metavar="S"),
        Option(
            "reconnect",
            bool,
            None,
            "reopen a dropped source with backoff (on for network streams)",
        ),
        Option(
            "timeout",
            float,
            10.0,
            "seconds without data after which a stream counts as dropped and a growing file "
            "as finished",
            gt=0,
            le=3600,
            metavar="S",
        ),
        Option(
            "give_up",
            float,
            None,
            "stop reconnecting after S seconds without the source (never)",
            gt=0,
            metavar="S",
        ),
        Option(
            "input_format",
            str,
            None,
            "FFmpeg's input format where it cannot be guessed: mpegts, v4l2, avfoundation...",
            max_chars=100,
            metavar="FMT",
        ),
        *LABEL_OPTIONS,
        *MODEL_OPTIONS,
    ),
    "index": _table(
        MODEL.but(
            default=None,
            help="a classifier (the gallery's own, else i3d.kinetics400) for tags, or a "
            "vision-language model (X-CLIP, CLIP, SigLIP) for moments to search by text",
        ),
        Option(
            "moment",
            float,
            DEFAULT_MOMENT,
            "vision-language models: seconds each stored moment spans",
            gt=0,
            le=60,
            metavar="S",
        ),
        Option("recursive", bool, True, "not into subfolders", flags=("--no-recursive",)),
        Option("timeline", bool, False, "also store timeline segments (slower)"),
        Option("prune", bool, False, "remove indexed videos no longer on disk"),
        TOP_K.but(help="tags per video"),
        *BATCH_OPTIONS,
        *ENGINE_OPTIONS,
        DEVICE,
        PRECISION,
        RUNTIME,
    ),
    "search": _table(
        Option(
            "by",
            str,
            "auto",
            "text: moments of the gallery's vision-language model nearest to the text; "
            "tags: tag words; auto: text where the gallery has moments",
            choices=("auto", "tags", "text"),
        ),
        Option(
            "min_score",
            float,
            None,
            "ignore weaker tags, or less similar moments",
            ge=-1,
            le=1,
        ),
        Option("label", str, None, "only this exact tag", max_chars=500),
        Option("min_duration", float, None, "at least S seconds", ge=0, metavar="S"),
        Option("max_duration", float, None, "at most S seconds", ge=0, metavar="S"),
        LIMIT,
    ),
    "similar": _table(
        Option(
            "using",
            str,
            "auto",
            "the classifier's features, or the vision-language model's embeddings (auto: "
            "embeddings where the gallery has them)",
            choices=("auto", "features", "embeddings"),
        ),
        LIMIT.but(default=10),
        DEVICE,
        PRECISION,
    ),
    "train": _table(
        MODEL.but(name="backbone", help="the backbone"),
        Option("val_fraction", float, 0.2, "held back for validation", gt=0, le=0.9),
        Option("seed", int, 0, "for the split and the head", ge=0, le=2**32 - 1),
        CLIPS.but(help="clips per video, each a training example"),
        Option("flip", bool, False, "also train on mirrored clips"),
        Option("head", str, "linear", "the classifier", choices=("linear", "mlp")),
        Option("hidden", int, 256, "MLP width", ge=1, le=65536),
        Option(
            "finetune",
            str,
            None,
            "also train the backbone's last blocks (I3D: Mixed_5b/5c), on cached maps of "
            "the frozen rest; slower, for more data or time",
            choices=("last-blocks",),
        ),
        Option(
            "prior",
            str,
            "auto",
            "auto: for labels the backbone already has (matched ignoring case, _ and -), "
            "start from its own head and learn a correction, so what it knows carries over "
            "to other videos; off: learn every label from scratch",
            choices=("auto", "off"),
        ),
        Option("epochs", int, None, "at most (300; 30 with --finetune)", ge=1, le=100_000),
        Option("lr", float, 1e-3, "learning rate", gt=0, le=10),
        Option(
            "patience",
            int,
            None,
            "stop after this many epochs without a better validation loss (30; 5 with --finetune)",
            ge=1,
            le=100_000,
        ),
        Option(
            "threshold",
            float,
            0.5,
            "multi-label: a score at or above it counts as a tag",
            gt=0,
            le=1,
        ),
        Option("force", bool, False, "replace MODEL_DIR if it exists"),
        *BATCH_OPTIONS,
        *ENGINE_OPTIONS,
        DEVICE,
        PRECISION,
        RUNTIME,
        THREADS,
    ),
    "evaluate": _table(
        TOP_K.but(help="for top-k accuracy"),
        CLIPS.but(help="clips per video"),
        Option(
            "threshold",
            float,
            None,
            "multi-label: tag threshold (the model's)",
            gt=0,
            le=1,
        ),
        *BATCH_OPTIONS,
        DEVICE,
        PRECISION,
        RUNTIME,
        THREADS,
    ),
    "export": _table(
        Option(
            "runtime",
            str,
            "openvino",
            "what runs it",
            choices=exported.RUNTIMES,
        ),
        Option(
            "precision",
            str,
            "fp32",
            "what it computes in by default: fp32, bf16 (OpenVINO; a run may still ask for "
            "fp32), int8 (OpenVINO, needs --calibrate)",
            choices=exported.PRECISIONS,
        ),
        *CALIBRATION,
        Option("force", bool, False, "replace an exported model in --out"),
    ),
    "serve": _table(
        Option("host", str, "127.0.0.1", "address to listen on", max_chars=255),
        Option("port", int, 8000, "port", ge=0, le=65535),
        Option("gallery", str, None, "a gallery database to search", max_chars=4096, metavar="DB"),
        Option(
            "media",
            str,
            None,
            "a folder whose videos requests may name",
            max_chars=4096,
            metavar="DIR",
        ),
        Option("max_upload_mb", float, 200.0, "largest upload", gt=0, le=1 << 20),
        Option(
            "queue",
            int,
            4,
            "requests running or waiting for the model; more get 503",
            ge=1,
            le=10_000,
        ),
        Option(
            "live",
            int,
            2,
            "WebSocket /v1/live sessions at once; more are refused (0: none)",
            ge=0,
            le=1000,
            metavar="N",
        ),
        Option("timeout", float, 120.0, "seconds per request", gt=0, le=86_400),
        *MODEL_OPTIONS,
    ),
}


def option(verb: str, name: str) -> Option:
    return VERBS[verb][name]


def check(verb: str, arguments: Mapping[str, object]) -> None:
    """Check a Python verb's arguments (its `locals()` on entry) against the verb's
    declared options; arguments that are not options (paths, callbacks) pass."""
    declared = VERBS[verb]
    for name, value in arguments.items():
        if name not in declared:
            continue
        if name == "labels" and value is not None and not isinstance(value, str):
            # Python also takes names or a LabelChoice: its parts are these options too
            choice = as_choice(value)
            declared["prompt"].check(choice.prompt)
            declared["threshold"].check(choice.threshold)
            continue
        declared[name].check(value)


def parse_query(verb: str, query: Mapping[str, str], names: tuple[str, ...]) -> dict:
    """The `names` options of `verb` from a query string (the live WebSocket's), each
    checked; missing ones take their default."""
    declared = VERBS[verb]
    return {
        name: declared[name].default
        if query.get(name) is None
        else declared[name].parse(query[name])
        for name in names
    }
