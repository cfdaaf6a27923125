"""One pipeline for every command: a work description run by one driver over an
executor (this process, local decoding processes)."""

from .driver import Driver, RunStats, executor_for
from .executors import DecoderPool, InProcess, LocalProcesses, default_workers
from .work import OUTPUTS, Clips, Runner, Windows, Work

__all__ = [
    "OUTPUTS",
    "Clips",
    "DecoderPool",
    "Driver",
    "InProcess",
    "LocalProcesses",
    "RunStats",
    "Runner",
    "Windows",
    "Work",
    "default_workers",
    "executor_for",
]
