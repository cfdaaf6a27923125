"""GET /v1/info and /v1/models: what runs the served model, and which model it is; POST
/v1/session: the page's cookie for pictures and media."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ..state import Server, picture_cookie
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


@router.post(
    "/session",
    responses=answers(
        '{"cookie": NAME or null}: with --api-key, a cookie (HttpOnly, SameSite=Strict, '
        "path /v1) that lets the page's pictures and videos be read: /v1/media and "
        "/v1/gallery/thumbnail take it instead of the header; its value is derived from "
        "the key, not the key; null without --api-key"
    ),
)
def session(request: Request, response: Response, state: Server):
    """The cookie a browser page needs to show pictures and play media with --api-key
    (an <img> or <video> cannot send the header)."""
    key = state.config.api_key
    if key is None:
        return {"cookie": None}
    name, value = picture_cookie(request, key)
    response.set_cookie(
        name,
        value,
        path="/v1",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return {"cookie": name}
