"""`vidclass serve`: the REST API and its page."""

from __future__ import annotations

import logging
import os
import sys

from ..errors import VidclassError
from .options import add_model_options, non_negative_int, port, positive_float, positive_int

log = logging.getLogger("vidclass")


def add(sub) -> None:
    sv = sub.add_parser(
        "serve",
        help="a REST API and a web page to try the model",
        description="Serve POST /v1/classify and /v1/timeline (multipart upload, raw "
        "video bytes, or a path under --media), GET /v1/models, /v1/info, /v1/search, and "
        "with --gallery GET /v1/similar (a path under --media) and POST /v1/similar (an "
        "upload), WebSocket /v1/live (labels of a recording as it is sent, such as the "
        "page's camera); /healthz, the OpenAPI schema at /openapi.json, and a page at / to try it. "
        "Needs the serve extra: pip install 'vidclass[serve]'.",
    )
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    sv.add_argument("--port", type=port, default=8000, help="port (8000)")
    sv.add_argument("--gallery", metavar="DB", help="a gallery database to search")
    sv.add_argument("--media", metavar="DIR", help="a folder whose videos requests may name")
    sv.add_argument(
        "--max-upload-mb", type=positive_float, default=200.0, help="largest upload (200)"
    )
    sv.add_argument(
        "--queue",
        type=positive_int,
        default=4,
        help="requests running or waiting for the model; more get 503 (4)",
    )
    sv.add_argument(
        "--live",
        type=non_negative_int,
        default=2,
        metavar="N",
        help="WebSocket /v1/live sessions at once; more are refused (2; 0: none)",
    )
    sv.add_argument(
        "--timeout", type=positive_float, default=120.0, help="seconds per request (120)"
    )
    sv.add_argument(
        "--api-key",
        default=os.environ.get("VIDCLASS_API_KEY"),
        help="require 'Authorization: Bearer KEY' on /v1/ (/v1/live also takes it as the "
        "subprotocol vidclass.key.BASE64URL_KEY) ($VIDCLASS_API_KEY; printable ASCII); "
        "give one when --host is not a loopback address",
    )
    add_model_options(sv)
    sv.set_defaults(run=run)


def run(args) -> int:
    from ..cpu import tune_allocator

    # Before any thread starts: the model thread then shares the tuned main heap.
    tune_allocator()
    try:
        import uvicorn
        import websockets  # noqa: F401  uvicorn's WebSocket protocol, for /v1/live

        from ..serve.app import ServeConfig, check_api_key, create_app
        from ..serve.live import MAX_MESSAGE
        from ..serve.protocols import uvicorn_protocols
    except ImportError as exc:
        raise VidclassError(
            f"serve needs FastAPI and uvicorn ({exc.name} is missing): "
            "pip install 'vidclass[serve]'"
        ) from None
    if args.api_key:
        check_api_key(args.api_key)  # before the model loads: a bad key is said at once
    if args.gallery:
        from ..gallery import Gallery

        if not os.path.isfile(args.gallery):
            raise VidclassError(
                f"{args.gallery}: no gallery here; make one with vidclass index DIR"
            )
        Gallery(args.gallery).close()  # not a gallery, or damaged: said now, not per request
    if args.media and not os.path.isdir(args.media):
        raise VidclassError(f"{args.media}: no such folder")
    if not args.api_key and not _is_loopback(args.host):
        log.warning(f"serving on {args.host} without --api-key: anyone who can reach it can use it")
    config = ServeConfig(
        model=args.model,
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
    from ..loading import load_model

    # Loaded before the port opens: a bad name or missing weights is one line here.
    model = load_model(
        args.model,
        precision=args.precision,
        threads=args.threads,
        device=args.device,
        runtime=args.runtime,
    )
    print(f"vidclass: serving {args.model} on http://{args.host}:{args.port}/", file=sys.stderr)
    uvicorn.run(
        create_app(config, model),
        host=args.host,
        port=args.port,
        log_level="warning",
        # Connections beyond this get 503 from uvicorn itself: open sockets stay bounded.
        limit_concurrency=max(64, 8 * args.queue),
        # /v1/live's messages: its own limit gives the error message, this one the memory
        # bound; recorded video does not compress, so no per-message deflate.
        ws_max_size=MAX_MESSAGE + (64 << 10),
        ws_per_message_deflate=False,
        # h11 and websockets as uvicorn runs them, with a time limit on a request's head
        # and limits on its size that are answered (see serve/protocols.py).
        **uvicorn_protocols(),
    )
    return 0


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
