"""A VideoModule whose backbone runs in another runtime and whose head stays in torch."""

from __future__ import annotations

import logging
import threading

import numpy as np
import torch
from torch import nn

from ..models.trained import TrainedModule
from . import graph
from .sessions import SESSIONS

log = logging.getLogger("vidclass")


class RuntimeModule(nn.Module):
    """`module` with `embed` run by `runtime` from a cached ONNX graph, made for each clip
    shape when it is first seen (batch sizes share one). `module` keeps its weights for
    the head and is what the graph is exported from."""

    channels_last = False  # the runtime lays out its own memory

    def __init__(self, module: nn.Module, runtime: str, precision: str, label: str):
        super().__init__()
        self.module = module.eval()
        self.runtime = runtime
        self.precision = precision
        self.label = label
        self._digest: str | None = None
        self._sessions: dict[tuple[int, ...], object] = {}
        self._lock = threading.Lock()

    def _session(self, shape: tuple[int, ...]):
        with self._lock:  # one conversion per shape, however many threads ask
            session = self._sessions.get(shape)
            if session is None:
                session = self._sessions[shape] = self._open(shape)
            return session

    def _open(self, shape: tuple[int, ...]):
        if self._digest is None:
            # What `embed` computes from: a trained head's backbone alone, so that heads
            # trained on one backbone share its graph.
            part = self.module.backbone if isinstance(self.module, TrainedModule) else self.module
            self._digest = graph.state_digest(part)
        path = graph.graph_path(self._digest, shape)
        make = SESSIONS[self.runtime]
        threads = torch.get_num_threads()  # as configure_threads set it
        if path.is_file():
            try:
                return make(path, self.precision, threads)
            except Exception as exc:  # a damaged cache file (ours, by its name): make it anew
                log.warning(f"{path}: unreadable ({str(exc).splitlines()[0]}); converting again")
                path.unlink(missing_ok=True)

        def check(candidate, clip: np.ndarray) -> np.ndarray:
            return make(candidate, "fp32", threads)(clip)

        graph.export(self.module, shape, path, f"{self.label} ({self.runtime})", check)
        return make(path, self.precision, threads)

    def embed(self, clips: torch.Tensor) -> torch.Tensor:
        x = clips.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self._session(tuple(x.shape[1:]))(x))

    def head_logits(self, features: torch.Tensor) -> torch.Tensor:
        # The head in fp32 whatever autocast the caller set: it is small.
        with torch.autocast("cpu", enabled=False):
            return self.module.head_logits(features.float())

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.head_logits(self.embed(clips))

    def fold_batchnorm(self) -> RuntimeModule:
        return self  # folded before export
