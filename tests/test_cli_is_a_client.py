"""The command line is a client of the Python API: cli/ does its work through the public
`vidclass` verbs and packages, and imports an internal module only from a short named
list (how things are shown, read and written, not what is done)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

CLI = Path(__file__).resolve().parents[1] / "src" / "vidclass" / "cli"

# Public packages: the cli may import what their __all__ offers.
PUBLIC = ("vidclass", "vidclass.gallery", "vidclass.training", "vidclass.serve")
# Internal modules the cli may use, and what for.
NAMED = {
    "vidclass.errors": "the one user-facing error",
    "vidclass.version": "--version",
    "vidclass.options": "the option declarations its parsers are made from",
    "vidclass.formats": "tables, CSV and JSON of results",
    "vidclass.subtitles": "SRT and VTT",
    "vidclass.plot": "pictures of timelines and reports",
    "vidclass.progress": "progress on a terminal",
    "vidclass.label_choice": "reading --labels and --labels-file",
    "vidclass.batch.sources": "the video lists a command names",
    "vidclass.batch.stores": "the results files watch appends to",
    "vidclass.info": "the system report of `vidclass info`",
    "vidclass.samples": "the videos `vidclass sample` fetches",
}


def imports_of(path: Path) -> list[tuple[str, tuple[str, ...]]]:
    """(absolute module, names imported from it) for each import in a cli module."""
    package = "vidclass.cli"
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((module, tuple(a.name for a in node.names)))
        elif isinstance(node, ast.Import):
            found += [(a.name, ()) for a in node.names]
    return [(m, names) for m, names in found if m.split(".")[0] == "vidclass"]


def test_the_cli_imports_only_public_names_and_the_named_internal_modules():
    offences = []
    for path in sorted(CLI.glob("*.py")):
        for module, names in imports_of(path):
            if module.startswith("vidclass.cli"):
                continue
            if module in PUBLIC:
                offered = set(importlib.import_module(module).__all__)
                offences += [f"{path.name}: {module}.{n}" for n in names if n not in offered]
            elif module not in NAMED:
                offences.append(f"{path.name}: {module}")
    assert not offences, "cli/ reaches past the public API: " + ", ".join(offences)


def test_the_check_sees_an_internal_import(tmp_path):
    """The walk finds what it must refuse, relative or absolute."""
    source = tmp_path / "x.py"
    source.write_text(
        "from ..loading import load_model\nfrom vidclass.engine import Driver\n"
        "def f():\n    from .. import classify\n"
    )
    found = imports_of(source)
    assert ("vidclass.loading", ("load_model",)) in found
    assert ("vidclass.engine", ("Driver",)) in found
    assert ("vidclass", ("classify",)) in found
