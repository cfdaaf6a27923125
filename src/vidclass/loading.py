"""Loading a model for the verbs that run the engine's driver: from its record without
torch where one is current (runtimes.light), else through torch (pipeline.load_model)."""

from __future__ import annotations

from .classifier import Classifier


def load_classifier(
    name: str,
    *,
    precision: str = "auto",
    threads: int | None = None,
    device: str = "auto",
    runtime: str = "auto",
    expected_clips: int | None = None,
    light: bool = True,
) -> Classifier:
    """`light=False` always loads through torch (a VideoClassifier): for callers that
    need its module or torch tensors (training, serving, live sessions, a cluster)."""
    if light:
        from .runtimes.light import load_light

        model = load_light(name, precision, device, runtime, threads)
        if model is not None:
            return model
    from .pipeline import load_model

    return load_model(
        name,
        precision=precision,
        threads=threads,
        device=device,
        runtime=runtime,
        expected_clips=expected_clips,
    )


def prepare(name: str, precision: str = "auto") -> str:
    """Convert model `name` for OpenVINO and record it, so that its CPU runs start
    without torch: one blank clip of its usual shape through it. Says what was done."""
    import numpy as np

    from .pipeline import load_model
    from .runtimes.light import record_path, runs_from_record, typical_clip

    model = load_model(name, precision=precision, device="cpu", runtime="openvino")
    clip = typical_clip(model.spec)
    if not runs_from_record(model.spec, model.module.any_frames):
        return f"{name}: its clips change shape with the video; it runs through torch"
    model.logits(model.batch([np.zeros((*clip[1:], 3), np.uint8)]))
    done = record_path(name, precision)
    if done is None or not done.is_file():
        return f"{name}: converted for OpenVINO, but runs of it still import torch"
    return f"{name}: converted for OpenVINO ({model.precision}); runs of it start without torch"
