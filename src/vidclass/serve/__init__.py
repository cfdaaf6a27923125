"""`vidclass serve`: a REST API and a page to try it (the `serve` extra: FastAPI, uvicorn)."""

from .server import run_server

__all__ = ["run_server"]
