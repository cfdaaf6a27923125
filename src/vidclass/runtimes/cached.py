"""The graphs the runtimes keep in the cache (ONNX, in CACHE/graphs), read back only as
they were written.

Each graph is written whole with its sha256 beside it (files.write_checked) and read
back as bytes checked against it, which go to the runtime from memory: nothing reads
the file again after the check. A damaged one is files.Damaged, and its caller makes it
again (runtimes.module: converted again through torch) with a one-line warning. Where
the cache cannot be written (full, read-only), a graph stays in this process's memory
for the run (`keep`), under the name it would have had. Torch-free: reading
needs no torch.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from ..files import discard as discard_file
from ..files import read_checked, recorded_digest, sha256_hex, store
from ..models.weights import cache_dir

_memory: dict[str, bytes] = {}  # graphs the cache could not take, by their path
_lock = threading.Lock()


def graphs_dir() -> Path:
    return cache_dir() / "graphs"


def _key(path: str | os.PathLike) -> str:
    return os.path.abspath(path)


def is_cached_graph(path: str | os.PathLike) -> bool:
    """Whether `path` names a graph of the cache (ours: checked when read), not a file
    of the user's (a quantized model's graph, run as it is)."""
    return os.path.dirname(_key(path)) == _key(graphs_dir())


def keep(path: Path, data: bytes) -> bool:
    """Store the graph `data` at `path` with its digest; where the cache cannot take it,
    keep it in memory for this run (said once: files.store). Whether it is on disk."""
    if store(path, data):
        with _lock:
            _memory.pop(_key(path), None)
        return True
    with _lock:
        _memory[_key(path)] = bytes(data)
    return False


def in_memory(path: str | os.PathLike) -> bool:
    with _lock:
        return _key(path) in _memory


def present(path: str | os.PathLike) -> bool:
    """Whether there is something at `path` to try (in memory, or any file: it is checked
    when read)."""
    return in_memory(path) or os.path.lexists(path)


def load(path: str | os.PathLike) -> bytes:
    """The graph's bytes as written: FileNotFoundError where there is none, Damaged
    where the file is not what was written."""
    with _lock:
        data = _memory.get(_key(path))
    if data is not None:
        return data
    return read_checked(path, "cached graph", graphs_dir())


def digest(path: str | os.PathLike) -> str:
    """The graph's sha256 as recorded when it was written (read from beside it, not from
    the graph: cheap, for keys); Unrecorded or Damaged where there is none to read."""
    with _lock:
        data = _memory.get(_key(path))
    if data is not None:
        return sha256_hex(data)
    return recorded_digest(path)[0]


def discard(path: str | os.PathLike) -> None:
    """Forget a damaged graph: from memory, and from the cache where it can be removed."""
    with _lock:
        _memory.pop(_key(path), None)
    discard_file(path)
