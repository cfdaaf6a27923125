"""Starting the server: checks that fail at once rather than per request, the model
loaded before the port opens, then uvicorn with the limits the server relies on."""

from __future__ import annotations

import logging
import os
import sys

from ..errors import VidclassError

log = logging.getLogger("vidclass")


def run_server(
    model: str, host: str = "127.0.0.1", port: int = 8000, threads: int | None = None, **config
) -> None:
    """Serve `model` on host:port until interrupted; `config`: the other ServeConfig
    fields (gallery, media, api_key, queue, ...), as `vidclass serve` takes them."""
    from ..cpu import tune_allocator

    # Before any thread starts: the model thread then shares the tuned main heap.
    tune_allocator()
    try:
        import uvicorn
        import websockets  # noqa: F401  uvicorn's WebSocket protocol, for /v1/live

        from .app import ServeConfig, check_api_key, create_app
        from .live import MAX_MESSAGE
        from .protocols import uvicorn_protocols
    except ImportError as exc:
        raise VidclassError(
            f"serve needs FastAPI and uvicorn ({exc.name} is missing): "
            "pip install 'vidclass[serve]'"
        ) from None
    from ..options import check

    check("serve", {"host": host, "port": port, "threads": threads})
    settings = ServeConfig(model=model, **config)  # every option checked before any work
    api_key, gallery, media = settings.api_key, settings.gallery, settings.media
    if api_key:
        check_api_key(api_key)  # before the model loads: a bad key is said at once
    if gallery:
        from ..gallery import Gallery

        if not os.path.isfile(gallery):
            raise VidclassError(f"{gallery}: no gallery here; make one with vidclass index DIR")
        Gallery(gallery).close()  # not a gallery, or damaged: said now, not per request
    if media and not os.path.isdir(media):
        raise VidclassError(f"{media}: no such folder")
    if not api_key and not _is_loopback(host):
        log.warning(f"serving on {host} without --api-key: anyone who can reach it can use it")
    from .. import load_model

    # Loaded before the port opens: a bad name or missing weights is one line here.
    loaded = load_model(
        model,
        precision=settings.precision,
        threads=threads,
        device=settings.device,
        runtime=settings.runtime,
    )
    print(f"vidclass: serving {model} on http://{host}:{port}/", file=sys.stderr)
    uvicorn.run(
        create_app(settings, loaded),
        host=host,
        port=port,
        log_level="warning",
        # Connections beyond this get 503 from uvicorn itself: open sockets stay bounded.
        limit_concurrency=max(64, 8 * settings.queue),
        # /v1/live's messages: its own limit gives the error message, this one the memory
        # bound; recorded video does not compress, so no per-message deflate.
        ws_max_size=MAX_MESSAGE + (64 << 10),
        ws_per_message_deflate=False,
        # h11 and websockets as uvicorn runs them, with a time limit on a request's head
        # and limits on its size that are answered (see serve/protocols.py).
        **uvicorn_protocols(),
    )


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
