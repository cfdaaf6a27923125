"""Options several verbs share; a verb may change one's default or help (Option.but)."""

from __future__ import annotations

from ..devices import PRECISIONS
from ..label_choice import MAX_LABELS_TEXT, MAX_PROMPT_CHARS
from ..limits import DEFAULT_VIDEO_TIMEOUT
from ..models import DEFAULT_MODEL
from ..runtimes import DEFAULT_MAX_CLIPS, RUNTIMES
from .option import Option

ENGINES = ("local", "ray")
DEFAULT_MOMENT = 2.0  # seconds a stored moment of a vision-language model spans


def table(*options: Option) -> dict[str, Option]:
    return {o.name: o for o in options}


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
STRIDE = Option("stride", float, 1.0, "seconds between windows", ge=0.04, le=3600, none_means="1 s")
UNKNOWN = Option(
    "unknown",
    str,
    "auto",
    "auto: each result's ood_score, and 'unknown' where it passes the model's threshold "
    "(a model trained or calibrated by vidclass has one); off: neither",
    choices=("auto", "off"),
)
FALSE_UNKNOWN = Option(
    "false_unknown",
    float,
    0.05,
    "the share of clips of its own videos the unknown threshold calls unknown, each "
    "scored without its own video",
    gt=0,
    le=0.5,
    metavar="RATE",
)
PER_WINDOW = Option(
    "per_window",
    bool,
    False,
    "score each window on its own rather than all from one pass over the video (what a "
    "model whose windows share their computation does by default: I3D and heads trained "
    "on it; slower at short strides, and near-equal: see the timelines guide)",
)
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
KNOWN_ONLY = Option(
    "known_only", bool, False, "leave out videos answered unknown (outside what the model knows)"
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
