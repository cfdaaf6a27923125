"""The README's install and test commands are what CI runs, and install.sh's lock is
written as it says."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sh_commands(markdown: str) -> list[str]:
    """The commands of the ```sh blocks, comments and blank lines left out."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", markdown, flags=re.S):
        for line in block.splitlines():
            command = line.split("#", 1)[0].strip()
            if command:
                commands.append(command)
    return commands


def test_ci_runs_the_readmes_install_and_test_commands():
    readme = sh_commands((ROOT / "README.md").read_text())
    ci = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() in ("./install.sh", "python3 -m pytest")
    ]
    assert ci == ["./install.sh", "python3 -m pytest"]  # in that order, each once
    assert "./install.sh" in readme and "python3 -m pytest" in readme
    assert readme.index("./install.sh") < readme.index("python3 -m pytest")
    assert "python3 -m venv" in (ROOT / ".ci" / "run").read_text()  # a new environment


def test_the_lock_for_this_python_pins_every_package(tmp_path):
    """install.sh --write-lock writes this environment's exact versions (local build
    labels dropped, vidclass itself left out); the committed lock has the same shape."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    shutil.copy(ROOT / "install.sh", tmp_path)
    (tmp_path / "locks").mkdir()
    done = subprocess.run(
        [str(tmp_path / "install.sh"), "--write-lock"],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "PYTHON": sys.executable},
    )
    assert done.returncode == 0, done.stderr
    for lock in (tmp_path / "locks" / f"python{version}.txt", ROOT / "locks/python3.11.txt"):
        pins = [ln for ln in lock.read_text().splitlines() if ln and not ln.startswith("#")]
        assert pins and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.!]+", p) for p in pins)
        names = {p.split("==")[0].lower() for p in pins}
        assert {"torch", "numpy", "av", "pytest"} <= names and "vidclass" not in names


def test_install_sh_says_what_it_takes():
    done = subprocess.run([str(ROOT / "install.sh"), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--latest" in done.stdout and "--write-lock" in done.stdout
    bad = subprocess.run([str(ROOT / "install.sh"), "--newest"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown option --newest" in bad.stderr
