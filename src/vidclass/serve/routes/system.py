"""GET /v1/info and /v1/models: what runs the served model, and which model it is."""

from __future__ import annotations

from fastapi import APIRouter

from ..state import Server
from ..statuses import answers

router = APIRouter()


@router.get(
    "/info",
    responses=answers(
        "what vidclass info --format json prints, with the served model and its runtime"
    ),
)
def info(state: Server):
    """Versions, the device and precision the model runs in, threads, CPU features
    and GPUs: what `vidclass info` prints."""
    from ...info import system_info

    model = state.model
    found = system_info(str(model.device), model.precision)
    return {**found, "runtime": model.runtime, "model": model.name}


@router.get(
    "/models",
    responses=answers(
        "the served model's entry (name, labels, input, source, description, zero_shot, "
        "serving), as a list: the rows of vidclass models list --format json"
    ),
)
def models(state: Server):
    """The model this server runs."""
    model = state.model
    return [{**model.entry.summary(), "serving": True}] if model is not None else []
