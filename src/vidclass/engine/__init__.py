"""One pipeline for every command: a work description run by one driver over an
executor (this process, local decoding processes), or over a Ray cluster."""

from .driver import Driver, RunStats, executor_for
from .engines import ENGINES, runner_for
from .executors import DecoderPool, Handed, InProcess, LocalProcesses, default_workers
from .work import OUTPUTS, ClipModel, Clips, ModelRecipe, Windows, Work

__all__ = [
    "OUTPUTS",
    "Clips",
    "DecoderPool",
    "ENGINES",
    "Driver",
    "Handed",
    "InProcess",
    "LocalProcesses",
    "ModelRecipe",
    "RunStats",
    "ClipModel",
    "Windows",
    "Work",
    "default_workers",
    "executor_for",
    "runner_for",
]
