"""`vidclass models export`: a model written as a folder that runs without torch
(models.exported): its backbone and head as graphs, checked against torch, and for int8
its backbone quantized with NNCF on clips of videos the user names.

The fp32 graphs are the cached ONNX exports (graph.ensure: checked against torch); NNCF
inserts int8 quantizers from the activation ranges it sees on the calibration clips
(and corrects the biases), and OpenVINO runs the result with int8 kernels (VNNI where
the CPU has it). The folder records how int8 scores the calibration clips against fp32.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import VidclassError
from ..models import exported, folder_config
from ..models.resolve import parse_model_name
from ..models.spec import typical_clip
from ..progress import tracked
from ..unknown import BANK, bank_bytes
from ..version import __version__
from ..video.transforms import clip_to_array, stack_clip
from . import DEFAULT_MAX_CLIPS, INT8_HINT, cached, graph, require
from .sessions import SESSIONS

log = logging.getLogger("vidclass")
PRESET = "performance"  # symmetric quantizers: what OpenVINO's CPU kernels run fastest


@dataclass
class ExportResult:
    folder: Path
    runtime: str
    precision: str
    clips: int = 0  # int8: calibration clips used
    videos: int = 0  # int8: videos they came from
    skipped: list[dict] | None = None  # int8: videos that could not be read, with why
    top1_same: int = 0  # int8: calibration clips whose top-1 label int8 keeps
    top5_move: float = 0.0  # int8: the largest change of a top-5 score (fp32 -> int8)


def head_graph(module, features: int, label: str, runtime: str) -> Path:
    """The cached graph of `module.head_logits` (fp32) for `features`-wide rows, made
    where it is missing and checked against torch in `runtime`."""
    path = graph.graph_path(graph.state_digest(module), (features,), part="head_logits")
    threads, make = torch.get_num_threads(), SESSIONS[runtime]
    return graph.ensure(
        module,
        (features,),
        path,
        f"{label} head",
        lambda candidate, dims: make(candidate, "fp32", threads, dims, False),
        False,
        "head_logits",
    )


def _ir(onnx: bytes, name: str) -> dict[str, bytes]:
    """An ONNX graph (one torch exported and checked here) as OpenVINO IR, the form an
    OpenVINO export holds: NAME.xml and NAME.bin. IR names no other file, where ONNX may
    (external data), so a forged export cannot make OpenVINO read one. OpenVINO writes
    it only to files: a disk that cannot take them is an OSError, as any write's."""
    import openvino as ov

    with tempfile.TemporaryDirectory() as tmp:
        try:
            ov.save_model(ov.Core().read_model(onnx), f"{tmp}/{name}.xml", compress_to_fp16=False)
        except RuntimeError as exc:  # its file streams failing (full, over a size limit)
            first = (str(exc).strip().splitlines() or ["?"])[0]
            raise OSError(errno.EIO, f"cannot write {name}'s graph ({first})") from None
        return {f"{name}.{ext}": Path(tmp, f"{name}.{ext}").read_bytes() for ext in ("xml", "bin")}


def _graph_bytes(path: Path) -> bytes:
    try:
        return cached.load(path)
    except Exception:  # damaged since it was made a moment ago: made again
        cached.discard(path)
        raise


def exportable(model) -> tuple[int, ...]:
    """The clip shape the model is exported for; a VidclassError where it cannot be
    (a vision-language model, one whose clips change shape with the video)."""
    from .module import RuntimeModule

    if model.zero_shot:
        raise VidclassError(f"{model.name} is a vision-language model: it runs in torch")
    if not isinstance(model.module, RuntimeModule):
        raise VidclassError(f"{model.name} cannot be exported: it runs in torch only")
    clip = typical_clip(model.spec)
    if clip is None or not (model.module.any_frames or model.spec.fps is None):
        raise VidclassError(
            f"{model.name}: its clips change shape with the video; it runs through torch"
        )
    return clip


def export(
    name: str,
    out: str | os.PathLike,
    runtime: str = "openvino",
    precision: str = "fp32",
    calibrate: list[str] | None = None,
    clips: int = 1,
    max_clips: int = DEFAULT_MAX_CLIPS,
    threads: int | None = None,
    force: bool = False,
    progress: bool = False,
    download: bool = True,
) -> ExportResult:
    """Write model `name` as the exported folder `out`: for `runtime` (openvino or
    onnxruntime), computing in `precision` (fp32, bf16: OpenVINO; int8: OpenVINO, its
    backbone calibrated on clips of the videos `calibrate` names)."""
    from ..options import check

    check("export", locals())  # before torch is imported: a bad value is said at once
    from ..torch_classifier import load_torch_model

    out = Path(out)
    if runtime == "onnxruntime" and precision != "fp32":
        raise VidclassError(
            "an ONNX Runtime export computes in fp32; int8 and bf16 run in OpenVINO"
        )
    if (precision == "int8") != bool(calibrate):
        raise VidclassError(
            "--calibrate VIDEOS goes with --precision int8 (and int8 needs it)"
            if calibrate
            else f"int8 is calibrated on your videos: {INT8_HINT}"
        )
    require(runtime, convert=True)
    exported.writable_out(out, force)
    if exported.is_exported_dir(name):
        raise VidclassError(f"{name} is exported already; export the model it was made from")
    model = load_torch_model(name, "fp32", threads, download, "cpu", runtime)
    clip = exportable(model)
    module = model.module
    embed = _graph_bytes(module.graph_file(clip))
    head_path = head_graph(module.module, module._session(clip).features(), model.name, runtime)
    head = _graph_bytes(head_path)
    files = {"head.onnx": head} if runtime == "onnxruntime" else _ir(head, "head")
    made = {
        "from": _source_name(name),
        "vidclass": __version__,
        "torch": torch.__version__.split("+")[0],
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    result = ExportResult(out, runtime, precision)
    if precision == "int8":
        per_video = clips
        clips, result = _calibrate(model, calibrate, per_video, max_clips, out, progress)
        files["embed.int8.xml"], files["embed.int8.bin"] = _quantize(embed, clips, model)
        embed_names = ["embed.int8.xml", "embed.int8.bin"]
        made["calibration"] = {
            "source": [str(Path(c).resolve()) for c in calibrate],
            "videos_used": result.videos,
            "skipped": result.skipped,
            "clips": result.clips,
            "clips_per_video": per_video,
            "method": "nncf.quantize",
            "preset": PRESET,
        }
    elif runtime == "onnxruntime":
        files["embed.onnx"] = embed
        embed_names = ["embed.onnx"]
    else:
        files.update(_ir(embed, "embed"))
        embed_names = ["embed.xml", "embed.bin"]
    stream = _stream(module, clip, model.name, runtime)
    if stream is not None:
        files.update(
            {"stream.onnx": stream[0]} if runtime == "onnxruntime" else _ir(stream[0], "stream")
        )
    if parse_model_name(name).kind == "trained" and Path(name, folder_config.TRAINED_ON).is_file():
        files[folder_config.TRAINED_ON] = Path(name, folder_config.TRAINED_ON).read_bytes()
    detector = model.detector  # a trained model's unknown answers go with it
    if detector.bank is not None:
        files[BANK] = bank_bytes(detector)
    manifest = {
        "format": exported.FORMAT,
        "version": exported.VERSION,
        "runtime": runtime,
        "precision": precision,
        "labels": list(model.entry.labels),
        "activation": model.entry.activation,
        "threshold": model.threshold,
        "temperature": model.entry.meta.get("temperature"),
        "unknown": detector.describe() if detector.threshold is not None else None,
        "input": folder_config.spec_to_dict(model.spec),
        "clip": list(clip),
        "any_frames": bool(module.any_frames),
        "features": int(module._session(clip).features()),
        "graphs": {"embed": embed_names, "head": [n for n in files if n.startswith("head.")]},
        "made": made,
    }
    if stream is not None:
        manifest["graphs"]["stream"] = [n for n in files if n.startswith("stream.")]
        manifest["stream"] = stream[1]
    check = None
    if precision == "int8":

        def check(folder: Path) -> dict:
            same, move = _check(model, folder, clips, progress)
            result.top1_same, result.top5_move = same, move
            return {"check": {"clips": len(clips), "top1_same": same, "top5_max_move": move}}

    exported.write(out, files, manifest, force, check)
    return result


def _stream(module, clip: tuple[int, ...], label: str, runtime: str):
    """(the graph, its manifest entry) of the model's map stream (runtimes.stream_graph),
    in fp32, where the model has one and it converts; else None (windows are then
    scored one at a time)."""
    from ..engine.stretch import STEP_FRAMES
    from .stream_graph import describe, stream_graph

    if module.temporal_map is None:
        return None
    source = module.embed_source()
    frames = (clip[0], STEP_FRAMES, *clip[2:])
    threads, make = torch.get_num_threads(), SESSIONS[runtime]
    try:
        path = stream_graph(
            source, frames, label, lambda data: make(data, "fp32", threads, (0,), False)
        )
        data = _graph_bytes(path)
    except VidclassError as exc:
        log.warning(str(exc))
        return None
    return data, describe(source.stream_step(), frames)


def _source_name(name: str) -> str:
    return str(Path(name).resolve()) if Path(name).is_dir() else name


def _calibrate(model, calibrate, per_video, max_clips, out, progress):
    """Up to `max_clips` clips (uint8, as decoding hands them over), `per_video` from
    each video, of videos spread over the list where it has more than needed."""
    from ..batch import expand_inputs

    require("openvino")
    videos = expand_inputs(list(calibrate), recursive=True)
    if not videos:
        raise VidclassError(f"no videos in {', '.join(calibrate)} to calibrate on")
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
    if not clips:
        raise VidclassError("none of the calibration videos could be read")
    if not model.module.any_frames and len({c.shape for c in clips}) > 1:
        raise VidclassError(f"{model.name} takes clips of one shape; the videos differ")
    return clips, ExportResult(out, "openvino", "int8", len(clips), used, skipped)


def _quantize(fp32: bytes, clips: list[np.ndarray], model) -> tuple[bytes, bytes]:
    """The backbone's int8 graph as OpenVINO IR (xml, weights), quantized by NNCF on
    `clips`."""
    try:
        import nncf
    except ImportError:
        raise VidclassError("int8 export needs NNCF: pip install 'vidclass[int8]'") from None
    import openvino as ov

    logging.getLogger("nncf").setLevel(logging.WARNING)
    data = nncf.Dataset(clips, lambda c: clip_to_array(c, model.spec)[None])
    # NNCF draws its progress bars on stdout; stdout is the command's result.
    with contextlib.redirect_stdout(sys.stderr):
        int8 = nncf.quantize(
            ov.Core().read_model(fp32),
            data,
            preset=nncf.QuantizationPreset.PERFORMANCE,
            subset_size=len(clips),
        )
    with tempfile.TemporaryDirectory() as tmp:
        ov.save_model(int8, f"{tmp}/embed.xml", compress_to_fp16=False)
        return Path(tmp, "embed.xml").read_bytes(), Path(tmp, "embed.bin").read_bytes()


def _check(model, folder: Path, clips: list[np.ndarray], progress) -> tuple[int, float]:
    """How the int8 export in `folder` scores the calibration clips against the fp32
    model: clips whose top-1 label it keeps, and the largest move of a top-5 score."""
    from .exported import ExportedClassifier

    int8 = ExportedClassifier(folder)
    same, move = 0, 0.0
    for clip in tracked(clips, len(clips), "checking int8", "clip", enabled=progress):
        want = model.activate(model.logits(model.batch([clip])))[0]
        got = int8.activate(int8.logits(int8.batch([clip])))[0]
        same += int(want.argmax() == got.argmax())
        top5 = np.argsort(-want)[:5]
        move = max(move, float(np.abs(got[top5] - want[top5]).max()))
    return same, round(move, 6)
