"""Pooled backbone features per video, extracted once and cached on disk.

The cache key is the file's content (sha256) and the backbone with its preprocessing, so
renamed or moved videos are not extracted again, and a changed file or backbone is.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..digest import file_digest
from ..errors import VidclassError
from ..files import Damaged, discard, read_checked, store
from ..limits import DEFAULT_VIDEO_TIMEOUT
from ..models.weights import cache_dir
from ..progress import tracked

log = logging.getLogger("vidclass")


def backbone_key(model) -> str:
    """Names the backbone and what it is fed: a new key for anything that changes features."""
    spec = model.spec
    text = json.dumps([model.name, repr(spec), model.precision, model.runtime], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


FEATURE_CACHE_ENV = "VIDCLASS_FEATURE_CACHE"


def feature_cache_root() -> Path:
    """$VIDCLASS_FEATURE_CACHE, else features/ in vidclass's cache folder."""
    if os.environ.get(FEATURE_CACHE_ENV):
        return Path(os.environ[FEATURE_CACHE_ENV]).expanduser()
    return cache_dir() / "features"


class FeatureCache:
    """One .npy file per (video content, backbone, views), written whole with its sha256
    beside it and read back only as written (files.read_checked): a damaged, swapped or
    non-finite entry is extracted again, with one warning. Entries of an older vidclass
    (no digest; they were written whole) are taken once and their digest recorded. A
    cache that cannot be written costs one warning; training goes on from memory."""

    def __init__(self, model, root: Path | None = None):
        self.root = (root or feature_cache_root()) / backbone_key(model)

    def _path(self, digest: str, views: str) -> Path:
        return self.root / f"{digest}.{views}.npy"

    def get(self, digest: str, views: str) -> np.ndarray | None:
        path = self._path(digest, views)
        try:
            data = read_checked(path, "cached features", self.root, adopt=True)
            features = np.load(io.BytesIO(data), allow_pickle=False)
            if features.dtype.kind != "f" or not np.isfinite(features).all():
                raise ValueError("not finite numbers")
            return features
        except FileNotFoundError:
            return None
        except (Damaged, OSError, ValueError) as exc:
            why = exc.why if isinstance(exc, Damaged) else str(exc)
            log.warning(f"{path}: damaged cached features ({why}); extracting them again")
            discard(path)
            return None

    def put(self, digest: str, views: str, features: np.ndarray, half: bool = False) -> None:
        buffer = io.BytesIO()
        np.save(buffer, features.astype(np.float16 if half else np.float32), allow_pickle=False)
        store(self._path(digest, views), buffer.getbuffer())


def extract_features(
    model,
    paths: list[str],
    clips: int = 1,
    flip: bool = False,
    workers: int | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    cache: FeatureCache | None = None,
    on_video: Callable[[str], None] | None = None,
    stage: str = "pooled",
    video_timeout: float | None = DEFAULT_VIDEO_TIMEOUT,
    engine: str = "local",
    ray_address: str | None = None,
    digests: dict[str, str] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, str], int]:
    """({path: (views, D) features}, {path: error}, how many came from the cache).

    views = clips (x2 with `flip`, mirrored copies). stage "trunk" gives the frozen
    trunk's maps instead of pooled features (for --finetune; kept as float16 on disk).
    Unreadable files are returned as errors, not raised. `engine` "ray" extracts on a
    Ray cluster (`ray_address`); the cache is still kept here. `digests`, where given,
    is filled with {path: sha256 of its content} of the files read (the cache's key).
    """
    from ..engine import Clips, Work, runner_for

    cache = cache or FeatureCache(model)
    views = ("t" if stage == "trunk" else "") + f"c{clips}" + ("f" if flip else "")
    features: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    digests = {} if digests is None else digests
    for path in paths:
        try:
            digests[path] = file_digest(path)
        except VidclassError as exc:
            errors[path] = str(exc)
            continue
        except OSError as exc:
            errors[path] = f"{path}: cannot read ({exc.strerror or exc})"
            continue
        cached = cache.get(digests[path], views)
        if cached is not None:
            features[path] = cached
    from_cache = len(features)
    todo = [p for p in paths if p not in features and p not in errors]
    if from_cache:
        log.info(f"{from_cache} of {len(paths)} videos' features from the cache")
    outputs = "trunk" if stage == "trunk" else "features"
    work = Work(Clips(clips, flip), outputs=outputs, video_timeout=video_timeout)
    runner = runner_for(
        model,
        work,
        len(todo),
        engine=engine,
        workers=workers,
        batch_size=batch_size,
        address=ray_address,
    )
    for result in tracked(runner.run(todo), len(todo), "features", enabled=progress):
        if result.error is not None:
            errors[result.video] = result.error
        else:
            half = stage == "trunk"  # what the cache keeps, so reruns see the same
            found = result.features.astype(np.float16) if half else result.features
            features[result.video] = found
            cache.put(digests[result.video], views, found, half=half)
        if on_video is not None:
            on_video(result.video)
    return features, errors, from_cache
