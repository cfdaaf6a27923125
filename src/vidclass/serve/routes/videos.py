"""POST /v1/classify and /v1/timeline: labels of a video, and labels over time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from ...engine import Clips, Work
from ...errors import VidclassError
from ...formats import result_json
from ...label_choice import MAX_LABELS_TEXT, MAX_PROMPT_CHARS, LabelChoice, fields_choice
from ..answers import answer, streamed
from ..inputs import VIDEO_BODY, video_input
from ..state import Server, ServerState
from ..streaming import NDJSON_RESPONSE

router = APIRouter()
MAX_CLIPS = 16  # clips per request: each is ~50 MB of frames and tensors
MAX_TOP_K = 1000

LABELS = Query(
    None,
    min_length=1,
    max_length=MAX_LABELS_TEXT,
    description="comma-separated: a closed-set model keeps only these of its labels (case, "
    "_ and - ignored); a vision-language model scores these words",
)


def label_choice(
    labels: str | None = LABELS,
    prompt: str | None = Query(
        None,
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        description="vision-language: template, {} the label",
    ),
    multi_label: bool = Query(False, description="vision-language: each label on its own"),
    threshold: float | None = Query(
        None, ge=-1, le=1, allow_inf_nan=False, description="multi-label: tags from this score"
    ),
) -> LabelChoice | None:
    """The label fields, checked before the video is read."""
    try:
        return fields_choice(labels, prompt, multi_label, threshold)
    except VidclassError as exc:
        raise HTTPException(422, str(exc)) from None


ChosenLabels = Annotated["LabelChoice | None", Depends(label_choice)]


def posted(request: Request, state: ServerState):
    """The video a request sends (its body: an upload, or JSON naming a path)."""
    config = state.config
    return lambda: video_input(request, config.media, config.upload_limit, config.max_upload_mb)


@router.post("/classify", openapi_extra={"requestBody": VIDEO_BODY})
async def classify(
    request: Request,
    state: Server,
    chosen: ChosenLabels,
    top_k: int = Query(5, ge=1, le=MAX_TOP_K, description="labels to return"),
    clips: int = Query(1, ge=1, le=MAX_CLIPS, description="clips averaged"),
):
    """Top-k labels of a video (see the request body for the ways to send it)."""

    def work(model, local, name):  # in a request thread
        view = state.batcher.view(model, chosen)
        result = state.batcher.run(view, local, Work(Clips(clips), top_k=top_k))
        result.video = name
        return result_json(result)

    return await answer(state, posted(request, state), work, "classify")


@router.post("/timeline", openapi_extra={"requestBody": VIDEO_BODY}, responses=NDJSON_RESPONSE)
async def timeline(
    request: Request,
    state: Server,
    chosen: ChosenLabels,
    window: float | None = Query(
        None, gt=0, le=600, allow_inf_nan=False, description="seconds (the model's clip)"
    ),
    stride: float | None = Query(
        None, ge=0.04, le=3600, allow_inf_nan=False, description="seconds (1)"
    ),
    top_k: int = Query(3, ge=1, le=MAX_TOP_K),
    progress: bool = Query(
        False,
        description="answer NDJSON: progress lines while the windows are scored, then "
        "the timeline (or an error) as the last line",
    ),
):
    """Windows and segments over time, and the whole video's top labels (the mean of
    its windows), as `vidclass timeline --format json`."""
    from ...timelines import compute

    def work(model, local, name, report=None):  # in a request thread
        view = state.batcher.view(model, chosen)
        tl = compute(view, local, window=window, stride=stride, top_k=top_k, progress=report)
        result = tl.as_dict()
        result["video"] = name
        return result

    if progress:
        return await streamed(state, posted(request, state), work, "timeline")
    return await answer(state, posted(request, state), work, "timeline")
