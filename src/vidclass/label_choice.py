"""Labels a user names (`--labels`, `--labels-file`, serve's `labels`): read, bounded
and matched to a model's own labels."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

from .errors import VidclassError

MAX_LABELS = 1000
MAX_LABEL_CHARS = 200
MAX_FILE_BYTES = 1 << 20


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
