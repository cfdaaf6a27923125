"""Hugging Face transformers video classifiers, run through vidclass's own sampler,
decoder and transforms.

The checkpoint's processor config (frames, resize, crop, rescale, mean/std) becomes an
InputSpec, so frames are chosen by timestamp across the whole video and resized while
decoding, instead of the transformers pipeline's first-N-frames decode. transformers is
an optional extra, imported only here and only when such a model is asked for.
"""

from __future__ import annotations

import inspect
import json
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch

from ..errors import VidclassError
from . import vision_language
from .spec import InputSpec, ModelEntry

PROCESSOR_FILES = ("video_preprocessor_config.json", "preprocessor_config.json")
INSTALL_HINT = "pip install 'vidclass[hf]'"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# PIL resampling codes, as processor configs store them, onto FFmpeg scaler names.
RESAMPLE = {0: "point", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "area", 5: "bilinear"}
# What a processor class assumes for keys its saved config leaves out.
GENERIC_DEFAULTS: dict[str, Any] = {
    "do_resize": True,
    "do_center_crop": True,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "offset": False,
    "do_normalize": True,
    "image_mean": IMAGENET_MEAN,
    "image_std": IMAGENET_STD,
    "resample": 2,
}
CLASS_DEFAULTS: dict[str, dict[str, Any]] = {
    "VideoMAEImageProcessor": {"size": {"shortest_edge": 224}, "crop_size": 224},
    "VivitImageProcessor": {
        "size": {"shortest_edge": 256},
        "crop_size": 224,
        "rescale_factor": 1 / 127.5,
        "offset": True,
        "image_mean": (0.5, 0.5, 0.5),
        "image_std": (0.5, 0.5, 0.5),
    },
    "VJEPA2VideoProcessor": {"size": {"shortest_edge": 292}, "crop_size": 256},
}


def require_transformers():
    try:
        import transformers
    except ImportError:
        raise VidclassError(
            f"Hugging Face models need transformers, which is not installed: {INSTALL_HINT}"
        ) from None
    return transformers


def _cache_first(load, name: str, download: bool):
    """`load(local_files_only=...)` from the local cache, else from the hub.

    A cached hub model then runs with no network at all, as the built-in ones do.
    """
    if not download or Path(name).is_dir():
        return load(local_files_only=not download)
    try:
        return load(local_files_only=True)
    except Exception:
        _check_reachable()
        return load(local_files_only=False)


def _check_reachable() -> None:
    """Fail at once where the hub cannot be reached, not after the hub client's
    half a minute of retries. Skipped behind a proxy, which may reach it for us."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return
    from huggingface_hub import constants

    url = urlsplit(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=5).close()
    except OSError as exc:
        raise OSError(f"cannot reach {url.hostname} ({exc})") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _unavailable(name: str, exc: BaseException) -> VidclassError:
    if Path(name).is_dir():
        return VidclassError(f"{name}: not a transformers model folder ({_first_line(exc)})")
    return VidclassError(
        f"{name}: no such local folder, and the Hugging Face hub could not provide it "
        f"(offline, or not a hub id?): {_first_line(exc)}"
    )


def _read_processor_config(name: str, download: bool) -> tuple[str, dict]:
    local = Path(name)
    if local.is_dir():
        for filename in PROCESSOR_FILES:
            if (local / filename).is_file():
                return filename, _load_json(local / filename)
    else:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

        failure = None
        for filename in PROCESSOR_FILES:
            try:
                path = _cache_first(
                    lambda f=filename, **kw: hf_hub_download(name, f, **kw), name, download
                )
            except Exception as exc:
                missing_remotely = isinstance(exc, EntryNotFoundError) and not isinstance(
                    exc, LocalEntryNotFoundError
                )
                if not missing_remotely:  # offline and not cached, or no such repo
                    failure = failure or exc
                continue
            return filename, _load_json(Path(path))
        if failure is not None:
            raise _unavailable(name, failure) from failure
    raise VidclassError(
        f"{name}: has no {' or '.join(PROCESSOR_FILES)}, so its preprocessing is unknown"
    )


def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VidclassError(f"{path}: unreadable processor config ({exc})") from exc


def _hw(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int):
        return (value, value)
    if "height" in value and "width" in value:
        return (int(value["height"]), int(value["width"]))
    return None


def processor_to_spec(config: Any, processor: dict) -> InputSpec:
    """The InputSpec that reproduces a transformers processor's preprocessing."""
    kind = processor.get("image_processor_type") or processor.get("video_processor_type") or ""
    kind = kind.removesuffix("Fast").removesuffix("Pil")
    p = {**GENERIC_DEFAULTS, **CLASS_DEFAULTS.get(kind, {}), **processor}
    num_frames = getattr(config, "num_frames", None) or getattr(config, "frames_per_clip", None)
    num_frames = num_frames or p.get("num_frames")
    if not num_frames:
        raise VidclassError("the model's config gives no number of frames per clip")

    short_side = size = None
    if p["do_resize"]:
        s = p.get("size")
        if isinstance(s, int):
            short_side = s
        elif isinstance(s, dict) and "shortest_edge" in s:
            short_side = int(s["shortest_edge"])
        elif isinstance(s, dict) and _hw(s):
            size = _hw(s)
        else:
            raise VidclassError(f"unsupported resize in the processor config: size={s!r}")
    crop = _hw(p.get("crop_size")) if p["do_center_crop"] else None
    if crop is not None and crop[0] == crop[1]:
        crop = crop[0]

    if p["do_rescale"]:
        scale = float(p["rescale_factor"])
        low = -1.0 if p["offset"] else 0.0
        value_range = (low, low + 255.0 * scale)
    else:
        value_range = (0.0, 255.0)
    mean = std = None
    if p["do_normalize"]:
        mean = _triple(p["image_mean"])
        std = _triple(p["image_std"])
    return InputSpec(
        num_frames=int(num_frames),
        fps=None,
        short_side=short_side,
        size=size,
        crop_size=crop,
        value_range=value_range,
        mean=mean,
        std=std,
        interpolation=RESAMPLE.get(p["resample"], "bilinear"),
    )


def _triple(value: Any) -> tuple[float, float, float]:
    if isinstance(value, (int, float)):
        return (float(value),) * 3
    return tuple(float(v) for v in value)  # type: ignore[return-value]


def read_entry(name: str, download: bool = True) -> ModelEntry:
    """Labels and preprocessing of a transformers checkpoint, without its weights."""
    transformers = require_transformers()
    try:
        config = _cache_first(
            lambda **kw: transformers.AutoConfig.from_pretrained(name, **kw), name, download
        )
    except Exception as exc:  # OSError offline/missing, ValueError for odd configs
        raise _unavailable(name, exc) from exc
    archs = getattr(config, "architectures", None) or []
    if vision_language.family_of(config):
        processor_file, processor = _read_processor_config(name, download)
        spec = processor_to_spec(vision_language.frames_per_clip(config), processor)
        return vision_language.read_entry(name, config, processor_file, spec)
    if archs and not any(a.endswith("ForVideoClassification") for a in archs):
        raise VidclassError(
            f"{name}: a {archs[0]}, not a video classification or vision-language model"
        )
    id2label = getattr(config, "id2label", None) or {}
    labels = tuple(str(id2label[k]) for k in sorted(id2label, key=int))
    if not labels:
        raise VidclassError(f"{name}: its config has no id2label, so it has no labels")
    processor_file, processor = _read_processor_config(name, download)
    spec = processor_to_spec(config, processor)
    where = f"folder {name}" if Path(name).is_dir() else f"Hugging Face hub {name}"
    multi = getattr(config, "problem_type", None) == "multi_label_classification"
    return ModelEntry(
        name=str(name),
        description=f"transformers {archs[0] if archs else config.model_type}",
        labels=labels,
        input=spec,
        weights=None,
        build=None,
        activation="sigmoid" if multi else "softmax",
        source=f"transformers {where}",
        meta={"kind": "transformers", "processor": processor_file},
    )


class TransformersVideoModule(torch.nn.Module):
    """A transformers video classifier taking vidclass's (N, C, T, H, W) clips."""

    channels_last = False  # attention-bound: the memory format does not help
    any_frames = False  # position embeddings fix the clip length
    temporal_map = None  # attention over the whole clip: windows share nothing

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        params = inspect.signature(model.forward).parameters
        self.input_name = next(
            (n for n in ("pixel_values", "pixel_values_videos") if n in params), "pixel_values"
        )

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        frames = clips.permute(0, 2, 1, 3, 4)  # transformers wants (N, T, C, H, W)
        return self.model(**{self.input_name: frames}).logits

    def head_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from `embed`'s features: the classifier alone."""
        return self.model.classifier(features)

    def fold_batchnorm(self) -> TransformersVideoModule:
        return self  # layer norms only: nothing to fold

    def embed_source(self) -> torch.nn.Module:
        return self

    def embed(self, clips: torch.Tensor) -> torch.Tensor:
        """The features the classification head sees, (N, hidden)."""
        head = getattr(self.model, "classifier", None)
        if head is None:
            raise VidclassError(f"{type(self.model).__name__} has no classifier head to tap")
        seen: list[torch.Tensor] = []
        hook = head.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
        try:
            self.forward(clips)
        finally:
            hook.remove()
        return seen[-1]


def load_module(entry: ModelEntry, download: bool = True) -> torch.nn.Module:
    transformers = require_transformers()
    if entry.meta.get("kind") == "vision-language":
        try:
            return vision_language.load_module(
                entry, transformers, lambda load: _cache_first(load, entry.name, download)
            )
        except VidclassError:
            raise
        except Exception as exc:
            raise _unavailable(entry.name, exc) from exc
    try:
        model = _cache_first(
            lambda **kw: transformers.AutoModelForVideoClassification.from_pretrained(
                entry.name, dtype=torch.float32, **kw
            ),
            entry.name,
            download,
        )
    except Exception as exc:
        raise _unavailable(entry.name, exc) from exc
    return TransformersVideoModule(model.eval())


def _runnable(architecture: str) -> bool:
    return (
        architecture.endswith("ForVideoClassification")
        or architecture in vision_language.ARCHITECTURES
    )


def cached_hub_models() -> list[str]:
    """Hub ids of video classifiers and vision-language models already in the local
    Hugging Face cache."""
    try:
        import transformers  # noqa: F401  (without it they cannot run: list none)
        from huggingface_hub import scan_cache_dir
    except ImportError:
        return []
    try:
        cache = scan_cache_dir()
    except Exception:  # no cache folder yet
        return []
    found = []
    for repo in cache.repos:
        if repo.repo_type != "model":
            continue
        for revision in repo.revisions:
            config = next((f for f in revision.files if f.file_name == "config.json"), None)
            if config is None:
                continue
            try:
                archs = json.loads(Path(config.file_path).read_text()).get("architectures") or []
            except (OSError, ValueError):
                continue
            if any(_runnable(a) for a in archs):
                found.append(repo.repo_id)
                break
    return sorted(found)
