"""`vidclass serve`: the REST API and its page."""

from __future__ import annotations

import os

from .options import add_verb_options


def add(sub) -> None:
    sv = sub.add_parser(
        "serve",
        help="a REST API and a web page to try the model",
        description="Serve POST /v1/classify, /v1/timeline and /v1/explain (multipart "
        "upload, raw video bytes, or a path under --media), GET /v1/models, /v1/info, "
        "GET /v1/media (video files under --media, with range requests), and with --gallery "
        "GET /v1/search, GET /v1/similar (a path under --media or an indexed video) and POST "
        "/v1/similar (an upload), GET /v1/gallery/... (pages of videos, tags, thumbnails); "
        "WebSocket /v1/live (labels of a recording as it is sent, such as the page's "
        "camera); /healthz, the OpenAPI schema at /openapi.json, and a page at / to browse "
        "the gallery and try videos. Needs the serve extra: pip install 'vidclass[serve]'.",
    )
    sv.add_argument(
        "--api-key",
        default=os.environ.get("VIDCLASS_API_KEY"),
        help="require 'Authorization: Bearer KEY' on /v1/ (/v1/live also takes it as the "
        "subprotocol vidclass.key.BASE64URL_KEY, /v1/media and /v1/gallery/thumbnail a cookie "
        "from POST /v1/session) ($VIDCLASS_API_KEY; printable ASCII); give one when "
        "--host is not a loopback address",
    )
    add_verb_options(sv, "serve")
    sv.set_defaults(run=run)


def run(args) -> int:
    from ..serve import run_server

    run_server(
        args.model,
        host=args.host,
        port=args.port,
        threads=args.threads,
        precision=args.precision,
        device=args.device,
        runtime=args.runtime,
        gallery=args.gallery,
        media=args.media,
        max_upload_mb=args.max_upload_mb,
        queue=args.queue,
        live=args.live,
        timeout=args.timeout,
        api_key=args.api_key or None,
    )
    return 0
