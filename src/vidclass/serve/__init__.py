"""`vidclass serve`: a REST API and a page to try it (the `serve` extra: FastAPI, uvicorn)."""
