"""GET /v1/info and /v1/models: what runs the served model, and which model it is."""

from __future__ import annotations

from fastapi import APIRouter

from ..state import Server

router = APIRouter()


@router.get("/info")
def info(state: Server):
    """Versions, the device and precision the model runs in, threads, CPU features
    and GPUs: what `vidclass info` prints."""
    from ...info import system_info

    model = state.model
    found = system_info(str(model.device), model.precision)
    return {**found, "runtime": model.runtime, "model": model.name}


@router.get("/models")
def models(state: Server):
    model = state.model
    return [{**model.entry.summary(), "serving": True}] if model is not None else []
