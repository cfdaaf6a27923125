"""`vidclass models quantize`: post-training int8 quantization of a model's backbone with
NNCF, calibrated on clips of videos the user names, written as a model folder.

The fp32 graph is the cached ONNX export (checked against torch); NNCF inserts int8
quantizers from the activation ranges it sees on the calibration clips (and corrects
the biases), and OpenVINO runs the result with int8 kernels (VNNI where the CPU has it).
The head stays in torch, as in the other runtimes.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import VidclassError
from ..models import folder_config, quantized
from ..progress import tracked
from ..version import __version__
from ..video.transforms import clip_to_tensor, stack_clip
from . import cached, require

if TYPE_CHECKING:  # imported where it runs: `vidclass models` lists its options without it
    import torch

log = logging.getLogger("vidclass")
# Calibration clips are kept decoded (uint8, a quarter of their float size: 9.6 MB for
# one I3D clip) while NNCF passes over them: this bounds that memory.
DEFAULT_MAX_CLIPS = 64
PRESET = "performance"  # symmetric quantizers: what OpenVINO's CPU kernels run fastest


@dataclass
class QuantizeResult:
    folder: Path
    clips: int  # calibration clips used
    videos: int  # videos they came from
    skipped: list[dict]  # videos that could not be read, with why
    top1_same: int  # calibration clips whose top-1 label int8 keeps
    top5_move: float  # the largest change of a top-5 score (fp32 -> int8) on them


def _writable_out(out: Path, force: bool) -> None:
    """`out` may be written: absent, an empty folder, or with `force` a quantized model
    folder (ours). Anything else is the user's and is left alone."""
    if not out.exists():
        return
    if not out.is_dir():
        raise VidclassError(f"{out} is a file; --out needs a folder")
    if not any(out.iterdir()):
        return
    if not force:
        raise VidclassError(f"{out} exists and is not empty; give --force to replace it")
    if not quantized.is_quantized_dir(str(out)):
        raise VidclassError(f"{out} is not a quantized model folder; --force replaces only one")


def _calibration_clips(model, videos: list[str], per_video: int, max_clips: int, progress):
    """Up to `max_clips` prepared clips (uint8, as decoding hands them over), `per_video`
    from each video, of videos spread over the list where it has more than needed; the
    number of videos used and those that could not be read."""
    wanted = -(-max_clips // per_video)
    if len(videos) > wanted:  # evenly spread: sorted folders group videos by label
        videos = [videos[int(i)] for i in np.linspace(0, len(videos) - 1, wanted).round()]
    clips: list[np.ndarray] = []
    used, skipped = 0, []
    for path in tracked(videos, len(videos), "calibration clips", enabled=progress):
        if len(clips) >= max_clips:
            break
        try:
            frames = model.clip_frames(path, per_video)
        except VidclassError as exc:
            skipped.append({"video": os.path.basename(path), "error": str(exc)})
            log.warning(f"{path}: skipped ({exc})")
            continue
        clips += [stack_clip(f, model.spec) for f in frames][: max_clips - len(clips)]
        used += 1
    return clips, used, skipped


def _scores(model, features: torch.Tensor) -> torch.Tensor:
    return model.activate(model.module.head_logits(features))


def quantize(
    name: str,
    calibrate: list[str],
    out: str | Path,
    clips_per_video: int = 1,
    max_clips: int = DEFAULT_MAX_CLIPS,
    threads: int | None = None,
    force: bool = False,
    progress: bool = False,
) -> QuantizeResult:
    """Quantize model `name`'s backbone to int8 on clips of the videos `calibrate` names
    (folders, globs, list files: as classify takes them) and write the model folder
    `out`. The folder runs like any model (`--model out`), in OpenVINO on a CPU."""
    from ..batch import expand_inputs
    from ..models.resolve import parse_model_name
    from ..pipeline import load_model
    from .module import RuntimeModule

    require("openvino")
    try:
        import nncf
    except ImportError:
        raise VidclassError("quantizing needs NNCF: pip install 'vidclass[int8]'") from None
    out = Path(out)
    _writable_out(out, force)
    if clips_per_video < 1 or max_clips < 1:
        raise VidclassError("--clips and --max-clips must be at least 1")
    kind = parse_model_name(name).kind
    if kind == "quantized":
        raise VidclassError(f"{name} is already quantized; quantize its base model")
    videos = expand_inputs(list(calibrate), recursive=True)
    if not videos:
        raise VidclassError(f"no videos in {', '.join(calibrate)} to calibrate on")

    model = load_model(name, precision="fp32", threads=threads, runtime="openvino")
    if not isinstance(model.module, RuntimeModule):
        raise VidclassError(f"{name} cannot be quantized: it runs in torch only")
    clips, used, skipped = _calibration_clips(model, videos, clips_per_video, max_clips, progress)
    if not clips:
        raise VidclassError("none of the calibration videos could be read")
    shapes = {c.shape for c in clips}
    fp32_graph = model.module.graph_file(tuple(clip_to_tensor(clips[0], model.spec).shape))
    if not model.module.any_frames and len(shapes) > 1:
        raise VidclassError(f"{name} takes clips of one shape; the videos gave {len(shapes)}")

    import openvino as ov

    logging.getLogger("nncf").setLevel(logging.WARNING)
    data = nncf.Dataset(clips, lambda c: clip_to_tensor(c, model.spec).numpy()[None])
    # NNCF draws its progress bars on stdout; stdout is the command's result.
    with contextlib.redirect_stdout(sys.stderr):
        int8 = nncf.quantize(
            ov.Core().read_model(cached.load(fp32_graph)),  # read back checked
            data,
            preset=nncf.QuantizationPreset.PERFORMANCE,
            subset_size=len(clips),
        )

    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        ov.save_model(int8, str(partial / quantized.GRAPH), compress_to_fp16=False)
        if kind == "trained":  # the labels and head come along: the folder stands alone
            (partial / quantized.BASE_DIR).mkdir()
            for file in (
                folder_config.CONFIG,
                folder_config.HEAD_WEIGHTS,
                folder_config.BACKBONE_WEIGHTS,
                folder_config.TRAINED_ON,  # so that evaluate still knows its videos
            ):
                if Path(name, file).is_file():
                    shutil.copyfile(Path(name, file), partial / quantized.BASE_DIR / file)
        same, move = _check(model, partial, clips, progress)
        base = str(Path(name).resolve()) if kind == "transformers" and Path(name).is_dir() else name
        config = {
            "format": folder_config.FORMAT,
            "kind": quantized.KIND,
            "base": base,
            "base_copied": kind == "trained",
            "precision": "int8",
            "runtime": "openvino",
            "calibration": {
                "source": [str(Path(c).resolve()) for c in calibrate],
                "videos_found": len(videos),
                "videos_used": used,
                "skipped": skipped,
                "clips": len(clips),
                "clips_per_video": clips_per_video,
                "clip_frames": sorted({s[0] for s in shapes}),
                "method": "nncf.quantize",
                "preset": PRESET,
                "fast_bias_correction": True,
                "nncf": nncf.__version__,
                "openvino": ov.__version__,
                "vidclass": __version__,
                "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "check": {"clips": len(clips), "top1_same": same, "top5_max_move": move},
            },
        }
        (partial / folder_config.CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        _writable_out(out, force)  # again: minutes passed, and it is about to go
        if out.exists():  # empty, or ours with --force
            shutil.rmtree(out)
        os.replace(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return QuantizeResult(out, len(clips), used, skipped, same, move)


def _check(model, folder: Path, clips: list[np.ndarray], progress) -> tuple[int, float]:
    """How the int8 graph in `folder` scores the calibration clips against fp32: clips
    whose top-1 label it keeps, and the largest move of a top-5 score."""
    import torch

    from .module import RuntimeModule

    base = model.module
    int8 = RuntimeModule(base.module, "openvino", "int8", model.name, folder / quantized.GRAPH)
    same, move = 0, 0.0
    with torch.inference_mode():
        for clip in tracked(clips, len(clips), "checking int8", "clip", enabled=progress):
            x = clip_to_tensor(clip, model.spec)[None]
            want = _scores(model, base.embed(x))[0]
            got = _scores(model, int8.embed(x))[0]
            same += int(want.argmax() == got.argmax())
            top5 = want.topk(min(5, want.numel())).indices
            move = max(move, float((got[top5] - want[top5]).abs().max()))
    return same, round(move, 6)
