"""The generated reference pages (docs/reference/cli, http, python, models) are current:
regenerated from the code they equal what is committed, and each names every command,
option, endpoint, public name and model there is."""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference"
sys.path.insert(0, str(ROOT / "tools" / "docs"))
import reference  # noqa: E402  (tools/docs/reference.py)


def page(name: str) -> str:
    return (REFERENCE / name).read_text(encoding="utf-8")


@pytest.mark.skipif(
    sys.version_info[:2] != (3, 11),
    reason="argparse words its usage differently in other Pythons; the pages come from 3.11",
)
def test_the_generated_pages_are_what_the_code_makes_now():
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "docs" / "reference.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_command_and_option_has_its_place_in_the_cli_page():
    from vidclass.cli import build_parser

    text = page("cli.md")
    missing = []
    for name, parser in reference.commands(build_parser()):
        if f"\n## {name}\n" not in text:
            missing.append(name)
            continue
        section = text.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue
            for flag in action.option_strings:
                if f"`{flag}`" not in section:
                    missing.append(f"{name} {flag}")
    assert not missing, missing


def test_every_route_of_the_server_is_in_the_http_reference():
    pytest.importorskip("fastapi", reason="needs the serve extra")
    from vidclass.serve.app import ServeConfig, create_app

    app = create_app(ServeConfig(model="i3d.kinetics400"))
    http, live = page("http.md"), page("live-protocol.md")
    missing = []
    for route in app.routes:
        path = getattr(route, "path", "")
        if not path.startswith("/v1") and path != "/healthz":
            continue  # the page, its static files, the OpenAPI pages
        methods = getattr(route, "methods", None)
        if methods is None:  # a WebSocket
            if path not in live:
                missing.append(f"WebSocket {path}")
            continue
        for method in methods - {"HEAD", "OPTIONS"}:
            if f"\n## {method} {path}\n" not in http:
                missing.append(f"{method} {path}")
    assert not missing, missing


def test_every_public_name_is_in_the_python_reference():
    text = page("python.md")
    missing = []
    for package in reference.PACKAGES:
        for name in importlib.import_module(package).__all__:
            where = reference._where(package, name)
            shown = f"::: {where}\n" if where else f"`{package}.{name}`"
            if shown not in text:
                missing.append(f"{package}.{name}")
    assert not missing, missing


def test_every_registered_model_is_in_the_models_page():
    from vidclass.models.registry import list_entries

    text = page("models.md")
    assert all(f"\n## {entry.name}\n" in text for entry in list_entries())


def test_the_pages_say_they_are_generated():
    for name in reference.PAGES:
        assert page(name).startswith(reference.GENERATED)
    assert re.search(r"vidclass-classify", page("cli.md"))
