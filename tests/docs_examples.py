"""The fenced examples of the README and the documentation site: found, marked, run.

A block runs by its language: ``sh``/``bash`` as a bash script, ``console`` as its ``$``
commands with the output shown under each checked, ``python`` as a script, ``pycon`` as a
doctest (output checked). Data blocks (``text``, ``json``, ...) are shown, not run. An
HTML comment on the line before the fence marks a block that needs something:

    <!-- test: ci -->          what .ci/run runs (install, the tests themselves)
    <!-- test: background -->  runs until stopped (a server): started, its port awaited,
                               stopped after the page's last block
    <!-- test: registry -->    needs pip's package index; skipped where it cannot be reached
    <!-- test: gpu -->         needs a CUDA GPU
    <!-- test: hub -->         needs the Hugging Face hub (never reachable from the tests)
    <!-- test: camera -->      needs a camera
    <!-- test: varies -->      runs, but its shown output is not compared

Each page's blocks run in order in one folder of their own (WORKSPACE below), so a block
may use what an earlier one made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN = {"sh", "bash", "console", "python", "pycon"}
SHOWN = {"text", "json", "csv", "yaml", "toml", "ini", "sql", "http", "html", "javascript"}
MARKS = {"ci", "background", "registry", "gpu", "hub", "camera", "varies"}

# What every page's folder holds before its first block: names under the shared videos.
WORKSPACE = {
    "video.mp4": "arm_wrestling.mp4",
    "scenes.mp4": "long/scene_cuts_bikes.mp4",
    "people.mp4": "long/people_139s.mp4",
    "videos/arm_wrestling.mp4": "arm_wrestling.mp4",
    "videos/eating_spaghetti.mp4": "eating_spaghetti.mp4",
    "videos/flipping_pancake.mkv": "flipping_pancake.mkv",
    "train/squat/squat_1.mp4": "dev/squat_1.mp4",
    "train/squat/squat_2.mp4": "dev/squat_2.mp4",
    "train/bench_pressing/bench_pressing_1.mp4": "dev/bench_pressing_1.mp4",
    "train/bench_pressing/bench_pressing_2.mp4": "dev/bench_pressing_2.mp4",
    "test/squat/squat_3.mp4": "dev/squat_3.mp4",
    "test/bench_pressing/bench_pressing_3.mp4": "dev/bench_pressing_3.mp4",
}


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    marks: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


FENCE = re.compile(r"^(?P<indent>[ ]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)$")
MARK = re.compile(r"^\s*<!--\s*test:\s*(?P<marks>[a-z, -]+?)\s*-->\s*$")


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(page: Path) -> list[Block]:
    """Every fenced block of a page, with its language and the marks above it."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        language = opening["info"].strip().split(" ")[0].lower()
        body, j = [], i + 1
        while j < len(lines) and lines[j].strip() != fence:
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        mark = MARK.match(lines[i - 1]) if i else None
        marks = {m.strip() for m in mark["marks"].split(",")} if mark else set()
        found.append(Block(page, i + 1, language, "\n".join(body) + "\n", marks))
        i = j + 1
    return found


def console_steps(text: str) -> list[tuple[str, list[str]]]:
    """A console block's ``$`` commands (``\\`` continues one) and the lines shown under each."""
    steps: list[tuple[str, list[str]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            if steps:
                steps[-1][1].append(lines[i])
            i += 1
            continue
        command = lines[i][2:]
        while command.endswith("\\") and i + 1 < len(lines):
            i += 1
            command = command[:-1] + " " + lines[i].strip()
        steps.append((command, []))
        i += 1
    return steps


NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _pattern(expected: str) -> re.Pattern:
    """A shown line as a regex: ``...`` is any text, numbers are captured to compare."""
    parts = []
    for piece in re.split(r"(\.\.\.|-?\d+(?:\.\d+)?)", " ".join(expected.split())):
        if piece == "...":
            parts.append(".*?")
        elif NUMBER.fullmatch(piece):
            parts.append(r"(-?\d+(?:\.\d+)?)")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts))


def _close(shown: str, got: str) -> bool:
    """Scores and sizes differ a little between CPUs (bf16 or fp32): within 0.02 or 5 %."""
    a, b = float(shown), float(got)
    return abs(a - b) <= max(0.02, 0.05 * abs(a))


def line_matches(expected: str, actual: str) -> bool:
    match = _pattern(expected).fullmatch(" ".join(actual.split()))
    if not match:
        return False
    shown = NUMBER.findall(re.sub(r"\.\.\.", "", " ".join(expected.split())))
    return all(_close(s, g) for s, g in zip(shown, match.groups(), strict=True))


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """The shown lines against the output: a line of ``...`` alone stands for any lines."""
    expected = [e for e in expected if e.strip()]
    actual = [a for a in actual if a.strip()]

    def match(i: int, j: int) -> bool:
        if i == len(expected):
            return j == len(actual)
        if expected[i].strip() == "...":
            return any(match(i + 1, k) for k in range(j, len(actual) + 1))
        return j < len(actual) and line_matches(expected[i], actual[j]) and match(i + 1, j + 1)

    return match(0, 0)
