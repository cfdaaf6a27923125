"""Labels a user names (`--labels`, `--labels-file`, serve's `labels`): read, bounded
and matched to a model's own labels."""

from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import VidclassError

NEEDS_LABELS = (
    "a vision-language model has no labels of its own: name the ones to score with "
    "--labels (Python: labels=[...])"
)

MAX_LABELS = 1000
MAX_LABEL_CHARS = 200
MAX_FILE_BYTES = 1 << 20
MAX_LABELS_TEXT = 20_000  # serve's `labels` field: up to a few hundred names
MAX_PROMPT_CHARS = 200


@dataclass(frozen=True)
class LabelChoice:
    """The labels to score, and for a vision-language model how: `prompt` the template
    a label is put into (None: the model's default), `multi_label` each label on its
    own (a tag where its score reaches `threshold`, None: the model's default)."""

    names: tuple[str, ...]
    prompt: str | None = None
    multi_label: bool = False
    threshold: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "names", tuple(check_labels(self.names)))
        if self.threshold is not None and not (
            isinstance(self.threshold, (int, float)) and math.isfinite(self.threshold)
        ):
            raise VidclassError(f"threshold must be a number, got {self.threshold!r}")

    @property
    def zero_shot_options(self) -> bool:
        return self.prompt is not None or self.multi_label or self.threshold is not None

    def describe(self) -> str:
        """What results files record beside the model's name."""
        text = f"labels: {', '.join(self.names)}"
        if self.prompt is not None:
            text += f"; prompt: {self.prompt}"
        if self.multi_label:
            text += "; multi-label"
        if self.threshold is not None:
            text += f"; threshold: {self.threshold:g}"
        return text


def as_choice(labels) -> LabelChoice | None:
    """A LabelChoice from what callers give: None, names (a list, or one comma-separated
    string), or a LabelChoice."""
    if labels is None or isinstance(labels, LabelChoice):
        return labels
    if isinstance(labels, str):
        return LabelChoice(tuple(parse_labels(labels)))
    if not isinstance(labels, (list, tuple)):
        raise VidclassError("labels must be a list of names")
    return LabelChoice(tuple(labels))


def fields_choice(
    labels: str | None,
    prompt: str | None = None,
    multi_label: bool = False,
    threshold: float | None = None,
) -> LabelChoice | None:
    """serve's label fields (`labels` comma-separated), each already checked as its
    option declares it, as one choice, the same for every endpoint; the
    vision-language options mean nothing without labels."""
    if labels is None:
        if prompt is not None or multi_label or threshold is not None:
            raise VidclassError("prompt, multi_label and threshold need labels")
        return None
    return LabelChoice(tuple(parse_labels(labels)), prompt, multi_label, threshold)


def parse_labels(text: str) -> list[str]:
    """Comma-separated names, as `--labels "a, b, c"` gives them; duplicates dropped."""
    return check_labels(text.split(","))


def read_labels_file(path: str | os.PathLike) -> list[str]:
    """One name a line; blank lines and lines starting with # are skipped."""
    path = Path(path)
    try:
        if not path.is_file():
            raise VidclassError(f"{path}: not a file of labels")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise VidclassError(f"{path}: over {MAX_FILE_BYTES >> 20} MB, too big for labels")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise VidclassError(f"{path}: labels must be UTF-8 text") from None
    except OSError as exc:
        raise VidclassError(f"cannot read labels from {path}: {exc.strerror}") from None
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return check_labels(lines)


def check_labels(names) -> list[str]:
    """Names stripped, blanks and repeats dropped, within the limits; at least one."""
    chosen: list[str] = []
    seen: set[str] = set()
    for raw in names:
        if not isinstance(raw, str):
            raise VidclassError("labels must be text")
        name = " ".join(raw.split())
        if not name:
            continue
        if len(name) > MAX_LABEL_CHARS:
            raise VidclassError(f"a label is over {MAX_LABEL_CHARS} characters: {name[:40]}...")
        if normalise(name) in seen:
            continue
        seen.add(normalise(name))
        chosen.append(name)
    if not chosen:
        raise VidclassError("no labels given")
    if len(chosen) > MAX_LABELS:
        raise VidclassError(f"{len(chosen)} labels given; at most {MAX_LABELS}")
    return chosen


def normalise(name: str) -> str:
    """What matching compares: case, `_` and `-` ignored."""
    return " ".join(re.sub(r"[_\-]", " ", name).lower().split())


def find_labels(available, names) -> tuple[dict[str, int], list[str]]:
    """({name: index into `available`} of the names it has, the names it lacks); a name
    matches exactly, else ignoring case, `_` and `-`."""
    exact = {label: i for i, label in enumerate(available)}
    loose = {normalise(label): i for i, label in enumerate(available)}
    found, unknown = {}, []
    for name in names:
        i = exact.get(name, loose.get(normalise(name)))
        if i is None:
            unknown.append(name)
        else:
            found[name] = i
    return found, unknown


def match_labels(available: tuple[str, ...], names: list[str]) -> tuple[int, ...]:
    """Indices into `available` of `names`, in the order named; an unknown name is an
    error that lists the model's closest labels."""
    found, unknown = find_labels(available, names)
    if unknown:
        loose = {normalise(label): label for label in available}
        close = difflib.get_close_matches(normalise(unknown[0]), list(loose), n=3, cutoff=0.5)
        hint = ", ".join(loose[c] for c in close) or "none is close"
        raise VidclassError(
            f"the model has no label {unknown[0]!r} (closest: {hint}); "
            "`vidclass models labels MODEL` lists them all"
        )
    return tuple(found[name] for name in names)
