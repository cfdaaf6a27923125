"""Which engine runs a piece of work: the local one (this process and its decoding
processes) or Ray. The one place that picks; every command asks it for a runner."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import VidclassError
from ..options import ENGINES
from .driver import Driver, executor_for
from .executors import DecoderPool
from .work import ClipModel, Work


def runner_for(
    model: ClipModel,
    work: Work,
    count: int,
    *,
    engine: str = "local",
    workers: int | None = None,
    batch_size: int | None = None,
    decoders: DecoderPool | None = None,
    address: str | None = None,
    sink: Callable | None = None,
):
    """Something with `run(paths)` (yielding VideoResults) and `stats` for `count`
    videos. local: decoding processes (`workers`, `decoders` started early); ray: the
    cluster at `address` ($RAY_ADDRESS, else a local Ray), where `sink` lets the
    workers write the results themselves."""
    if engine not in ENGINES:
        raise VidclassError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "local":
        if sink is not None:
            raise VidclassError("the local engine has no sink; results come back here")
        return Driver(model, work, executor_for(workers, count, decoders), batch_size)
    if decoders is not None:
        decoders.close()
    from .cluster import ClusterRun

    recipe = getattr(model, "recipe", None)
    if recipe is None:
        raise VidclassError(
            "the ray engine loads the model on each worker by name; "
            "load it with vidclass.load_model(name)"
        )
    return ClusterRun(model, recipe, work, batch_size, address, sink=sink)
