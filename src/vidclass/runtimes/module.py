"""A VideoModule whose backbone runs in another runtime and whose head stays in torch."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import torch
from torch import nn

from ..errors import VidclassError
from ..files import Damaged, Unrecorded
from . import cached, graph, graph_shape
from .sessions import SESSIONS

log = logging.getLogger("vidclass")


class RuntimeModule(nn.Module):
    """`module` with `embed` run by `runtime` from a cached ONNX graph, made when a clip
    shape is first seen (one for all clip lengths where the module allows, and for all
    batch sizes). `module` keeps its weights for the head and is what the graph is
    exported from."""

    channels_last = False  # the runtime lays out its own memory

    def __init__(
        self,
        module: nn.Module,
        runtime: str,
        precision: str,
        label: str,
        fallback: bool = False,
    ):
        """`fallback`: a clip shape whose graph cannot be made runs in torch, with a
        warning, instead of failing (what `--runtime auto` asks for)."""
        super().__init__()
        self.module = module.eval()
        self.runtime = runtime
        self.precision = precision
        self.label = label
        self.any_frames = module.any_frames
        self.temporal_map = module.temporal_map
        self.fallback = fallback
        self._digest: str | None = None
        self._sessions: dict[tuple[int, ...], object] = {}
        self._lock = threading.Lock()

    def _session(self, shape: tuple[int, ...]):
        """The session for clips of `shape`; None where torch runs them (fallback)."""
        with self._lock:  # one conversion per shape, however many threads ask
            if shape not in self._sessions:
                try:
                    self._sessions[shape] = self._open(shape)
                except VidclassError as exc:
                    if not self.fallback:
                        raise
                    log.warning(f"{exc}; it runs in torch instead")
                    self._sessions[shape] = None
            return self._sessions[shape]

    def graph_file(self, shape: tuple[int, ...]) -> Path:
        """The cached fp32 graph that serves clips of `shape`, made (and checked against
        torch) where it is missing."""
        if self._digest is None:
            self._digest = graph.state_digest(self.module.embed_source())
        path = graph.graph_path(self._digest, graph_shape(shape, self.any_frames))
        make, threads = SESSIONS[self.runtime], torch.get_num_threads()
        return graph.ensure(
            self.module,
            shape,
            path,
            f"{self.label} ({self.runtime})",
            lambda candidate, dims: make(candidate, "fp32", threads, dims, False),
            self.any_frames,
            announce=graph.preparing(self.label, self.runtime),
        )

    def _open(self, shape: tuple[int, ...]):
        make = SESSIONS[self.runtime]
        threads = torch.get_num_threads()  # as configure_threads set it
        for attempt in (0, 1):
            path = self.graph_file(shape)
            try:
                # Read back whole even where a compiled model of it will serve: a damaged
                # graph is made again now, while torch is here to make it.
                cached.load(path)
                return make(path, self.precision, threads, shape, self.any_frames)
            except Damaged as exc:  # a cached graph not as written: converted again
                cached.discard(exc.path)
                if attempt:
                    raise VidclassError(f"{self.label}: {exc}; use --runtime torch") from None
                if not isinstance(exc, Unrecorded):  # an older vidclass's: made again quietly
                    log.warning(f"{exc}; converting it again")
            except VidclassError:
                raise
            except Exception as exc:  # a graph as written that the runtime cannot run
                raise VidclassError(
                    f"{self.label}: {self.runtime} cannot run it ({str(exc).splitlines()[0]}); "
                    "use --runtime torch"
                ) from None
        raise AssertionError("unreachable")

    def embed(self, clips: torch.Tensor) -> torch.Tensor:
        session = self._session(tuple(clips.shape[1:]))
        if session is None:  # not convertible: torch, under the caller's autocast
            return self.module.embed(clips)
        x = clips.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(session(x))

    def head_logits(self, features: torch.Tensor) -> torch.Tensor:
        # The head in fp32 whatever autocast the caller set: it is small.
        with torch.autocast("cpu", enabled=False):
            return self.module.head_logits(features.float())

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.head_logits(self.embed(clips))

    def embed_source(self) -> nn.Module:
        return self.module.embed_source()

    def fold_batchnorm(self) -> RuntimeModule:
        return self  # folded before export
