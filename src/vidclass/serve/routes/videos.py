"""POST /v1/classify, /v1/timeline and /v1/explain: labels of a video, labels over time,
and what drives a label."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from ...engine import Clips, Work
from ...errors import VidclassError
from ...formats import result_json
from ...label_choice import LabelChoice, fields_choice
from ..answers import answer, streamed
from ..inputs import VIDEO_BODY, video_input
from ..params import query
from ..state import Server, ServerState
from ..statuses import VIDEO, answers, errors
from ..streaming import NDJSON_RESPONSE

router = APIRouter()


def label_choice(
    labels: str | None = query("classify", "labels"),
    prompt: str | None = query("classify", "prompt"),
    multi_label: bool = query("classify", "multi_label"),
    threshold: float | None = query("classify", "threshold"),
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


@router.post(
    "/classify",
    openapi_extra={"requestBody": VIDEO_BODY},
    responses=answers(
        '{"video", "predictions": [{"label", "score"}, ...] best first, "ood_score", '
        '"unknown"}: what vidclass classify --format json gives for one video',
        *VIDEO,
    ),
)
async def classify(
    request: Request,
    state: Server,
    chosen: ChosenLabels,
    top_k: int = query("classify", "top_k"),
    clips: int = query("classify", "clips"),
    unknown: str = query("classify", "unknown"),
):
    """Top-k labels of a video (see the request body for the ways to send it), with
    its ood_score and unknown answer."""

    def work(model, local, name):  # in a request thread
        view = state.batcher.view(model, chosen)
        work = Work(Clips(clips), top_k=top_k, unknown=unknown != "off")
        result = state.batcher.run(view, local, work)
        result.video = name
        return result_json(result)

    return await answer(state, posted(request, state), work, "classify")


@router.post(
    "/timeline",
    openapi_extra={"requestBody": VIDEO_BODY},
    responses={**NDJSON_RESPONSE, **errors(*VIDEO)},
)
async def timeline(
    request: Request,
    state: Server,
    chosen: ChosenLabels,
    window: float | None = query("timeline", "window"),
    stride: float = query("timeline", "stride"),
    top_k: int = query("timeline", "top_k"),
    unknown: str = query("timeline", "unknown"),
    per_window: bool = query("timeline", "per_window"),
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
        tl = compute(
            view,
            local,
            window=window,
            stride=stride,
            top_k=top_k,
            progress=report,
            unknown=unknown,
            per_window=per_window,
        )
        result = tl.as_dict()
        result["video"] = name
        return result

    if progress:
        return await streamed(state, posted(request, state), work, "timeline")
    return await answer(state, posted(request, state), work, "timeline")


@router.post(
    "/explain",
    openapi_extra={"requestBody": VIDEO_BODY},
    responses=answers(
        '{"video", "label", "passes", "seconds": [{"start", "end", "score", "importance"}], '
        '"regions": [{"start", "end", "score", "grid"}], ...}: what vidclass explain '
        "--format json prints",
        *VIDEO,
        s422="a parameter out of bounds, a label the model lacks, or a video that decodes "
        "to nothing",
    ),
)
async def explain(
    request: Request,
    state: Server,
    chosen: ChosenLabels,
    label: str | None = query("explain", "label"),
    window: float | None = query("explain", "window"),
    stride: float = query("explain", "stride"),
    grid: int = query("explain", "grid"),
    budget: int = query("explain", "budget"),
    per_window: bool = query("explain", "per_window"),
):
    """Which seconds and which regions of the picture drive a label (the video's top
    label by default), by occlusion; at most `budget` passes, within --timeout."""
    from ...explanations import explain as explained

    def work(model, local, name):  # in a request thread
        view = state.batcher.view(model, chosen)
        found = explained(view, local, label, window, stride, grid, budget, per_window=per_window)
        result = found.as_dict()
        result["video"] = name
        return result

    return await answer(state, posted(request, state), work, "explain")
