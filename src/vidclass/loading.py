"""Loading a model for the verbs that run the engine's driver: from its record without
torch where one is current (runtimes.light), else through torch (pipeline.load_model)."""

from __future__ import annotations

from .classifier import Classifier


def load_classifier(
    name: str,
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
