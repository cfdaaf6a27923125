"""Every example in the README and the documentation site runs, on the shared videos, and
prints what the page shows (tests/docs_examples.py says how blocks are found and marked)."""

from __future__ import annotations

import functools
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import MISSING, VIDEOS, free_port
from .docs_examples import (
    MARKS,
    ROOT,
    RUN,
    SHOWN,
    WORKSPACE,
    Block,
    blocks,
    console_steps,
    line_matches,
    output_matches,
    pages,
)

TIMEOUT = 600  # seconds for one block
SKIPS = {
    "ci": ".ci/run runs it (tests/test_readme.py checks that it does)",
    "hub": "needs the Hugging Face hub, which the tests never reach",
    "camera": "needs a camera",
}


def runnable() -> list[Block]:
    return [b for page in pages() for b in blocks(page) if b.language in RUN]


# --- the pages' shape: every block is run or shown, every mark is known (fast) -----------


def test_every_block_is_run_or_shown_and_every_mark_is_known():
    problems = []
    for page in pages():
        for block in blocks(page):
            if block.language not in RUN | SHOWN:
                problems.append(f"{block.name}: language {block.language or '(none)'!r}")
            if block.marks - MARKS:
                problems.append(f"{block.name}: unknown marks {sorted(block.marks - MARKS)}")
            if block.language == "console" and not console_steps(block.text):
                problems.append(f"{block.name}: a console block with no '$ ' command")
    assert not problems, "\n".join(problems)


def test_there_are_examples_to_run_in_the_readme_and_the_guides():
    names = {b.page.relative_to(ROOT).as_posix() for b in runnable() if "ci" not in b.marks}
    assert "README.md" in names
    assert sum(n.startswith("docs/guides/") for n in names) >= 8


def test_the_readme_is_short_and_a_click_from_each_answer():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    links = set(re.findall(r"\]\(([^)#]+)", readme))
    for page in (
        "docs/getting-started/install.md",  # how to install
        "docs/guides/classify-many.md",  # how to run a folder of videos
        "docs/guides/own-classifier.md",  # how to train on their labels
        "docs/reference/cli.md",  # every option of a command
        "docs/reference/file-formats.md",  # every field of a result file
        "docs/reference/http.md",  # every endpoint of the server
    ):
        assert page in links and (ROOT / page).is_file(), page


def test_shown_output_is_compared_with_tolerance_and_ellipses():
    assert line_matches("  arm wrestling  0.998", "arm wrestling 1.000")
    assert not line_matches("arm wrestling 0.90", "arm wrestling 1.000")
    assert not line_matches("arm wrestling 0.998", "arm wrestling 0.998 extra")
    assert line_matches("2 classified in ... s", "2 classified in 12.5 s")
    assert output_matches(["a 1", "...", "z"], ["a 1.001", "b", "c", "z"])
    assert not output_matches(["a 1", "z"], ["a 1", "b", "z"])


# --- running them (slow: each starts vidclass) ----------------------------------------


class Workspace:
    """One page's folder, its environment and the servers its blocks started."""

    def __init__(self, folder: Path):
        self.folder = folder
        for name, source in WORKSPACE.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).symlink_to(VIDEOS / source)
        self.port = free_port()
        self.env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "VIDCLASS_OFFLINE": "1",
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("VIDCLASS_API_KEY", None)
        self.background: list[subprocess.Popen] = []

    def text(self, block: Block) -> str:
        """The block as the page shows it, the server's port made this page's own."""
        return re.sub(r"\b8000\b", str(self.port), block.text)

    def run(self, command: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            command,
            input=stdin,
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )

    def start(self, command: str) -> None:
        log = open(self.folder / f"background-{len(self.background)}.log", "w")  # noqa: SIM115
        process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=self.folder,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.background.append(process)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"{command} ended ({process.returncode}):\n{read(log)}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.3)
        raise AssertionError(f"{command}: nothing listened on {self.port} in 180 s")

    def stop(self) -> None:
        for process in self.background:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
        self.background.clear()


def read(log) -> str:
    log.flush()
    return Path(log.name).read_text()[-3000:]


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory):
    made: dict[Path, Workspace] = {}

    def of(page: Path) -> Workspace:
        if page not in made:
            made[page] = Workspace(tmp_path_factory.mktemp(page.stem))
        return made[page]

    yield of
    for workspace in made.values():
        workspace.stop()


@functools.cache
def registry_reachable() -> bool:
    """Asked of pip, which the examples use: it knows the index and proxy configured."""
    try:
        asked = subprocess.run(
            [sys.executable, "-m", "pip", "index", "versions", "pip"],
            capture_output=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        return False
    return asked.returncode == 0


def last_of_its_page(block: Block) -> bool:
    """Then the page's servers stop (not at the module's end, each holding a model)."""
    return block.name == [b.name for b in EXAMPLES if b.page == block.page][-1]


EXAMPLES = runnable()


@pytest.mark.slow
@pytest.mark.skipif(not VIDEOS.is_dir(), reason=MISSING)
@pytest.mark.parametrize("block", EXAMPLES, ids=[b.name for b in EXAMPLES])
def test_example_runs_as_shown(block: Block, workspaces):
    for mark, reason in SKIPS.items():
        if mark in block.marks:
            pytest.skip(reason)
    if "gpu" in block.marks and not _cuda():
        pytest.skip("needs a CUDA GPU; none here")
    if "registry" in block.marks and not registry_reachable():
        pytest.skip("needs pip's package index, which cannot be reached")
    workspace = workspaces(block.page)
    try:
        run_block(block, workspace)
    finally:
        if last_of_its_page(block):
            workspace.stop()


def run_block(block: Block, workspace: Workspace) -> None:
    text = workspace.text(block)
    if "background" in block.marks:
        workspace.start(text.strip())
        return
    if block.language in ("sh", "bash"):
        done = workspace.run(["bash", "-euo", "pipefail", "-c", text])
        assert done.returncode == 0, f"{block.name}:\n{text}\n{done.stdout}{done.stderr}"
    elif block.language == "python":  # from a file, as a user's script (spawned decoders
        script = workspace.folder / f"example_{block.line}.py"  # import it as __mp_main__)
        script.write_text(text, encoding="utf-8")
        done = workspace.run([sys.executable, script.name])
        assert done.returncode == 0, f"{block.name}:\n{done.stdout}{done.stderr}"
    elif block.language == "pycon":
        runner = Path(__file__).with_name("docs_pycon.py")
        mode = "varies" if "varies" in block.marks else "check"
        done = workspace.run([sys.executable, str(runner), mode], stdin=text)
        assert done.returncode == 0, f"{block.name}:\n{done.stdout}{done.stderr}"
    elif block.language == "console":
        for command, shown in console_steps(text):
            done = workspace.run(["bash", "-o", "pipefail", "-c", f"{{ {command}\n}} 2>&1"])
            got = done.stdout.splitlines()
            assert done.returncode == 0, f"{block.name}: $ {command}\n{done.stdout}"
            if "varies" not in block.marks and shown:
                assert output_matches(shown, got), (
                    f"{block.name}: $ {command}\nshown:\n" + "\n".join(shown) + "\ngot:\n"
                    "" + "\n".join(got)
                )


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_the_workspace_names_only_shared_videos():
    assert all(not Path(s).is_absolute() and ".." not in s for s in WORKSPACE.values())
    assert shutil.which("bash")


@pytest.mark.slow
def test_the_site_builds_strictly_and_loads_nothing_from_elsewhere(tmp_path):
    """What CI runs, and a site that works offline: no script, style or font from a host."""
    pytest.importorskip("mkdocs", reason="needs the docs extra")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    pages = list(tmp_path.rglob("*.html"))
    assert len(pages) >= 25
    loaded = re.compile(
        r"<(?:script|img|iframe)[^>]+src=\"(?:https?:)?//|<link[^>]+href=\"(?:https?:)?//"
    )
    assert not [p.name for p in pages if loaded.search(p.read_text(encoding="utf-8"))]
