"""What a decoding process runs: read a video's clips, ready for the model but for scaling."""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys
from collections.abc import Callable

import numpy as np

from ..errors import VidclassError
from ..limits import time_limit
from ..models.spec import InputSpec
from ..video.clips import read_clip_frames
from ..video.transforms import stack_clip


def init_worker() -> None:
    """Leave Ctrl-C to the main process (it stops the pool), and die with it if it is
    killed outright, so no orphaned decoders are left behind."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the hard limit below ends the process
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
        except (OSError, AttributeError):
            pass


def hard_limit_seconds(timeout: float) -> float:
    """When a decoding process is killed: some slack past the cooperative time limit,
    which normally stops the work first."""
    return timeout + max(1.0, 0.1 * timeout)


def run_in_worker(task: Callable, timeout: float | None, *args):
    """Run `task(*args, timeout)` in a decoding process under a kernel alarm: if it is
    still running past the hard limit (stuck inside a C call, where the cooperative
    limit is never checked), SIGALRM ends the process and the pool reports it broken."""
    if timeout is not None:
        signal.setitimer(signal.ITIMER_REAL, hard_limit_seconds(timeout))
    try:
        return task(*args, timeout)
    finally:
        if timeout is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)


def prepare_clips(
    path: str, spec: InputSpec, clips: int, timeout: float | None = None
) -> tuple[list[np.ndarray] | None, list[str], str | None]:
    """(uint8 (T, H, W, 3) clips, decoder warnings, error message or None), within
    `timeout` seconds (None: no limit).

    Errors come back as text: any exception, not only vidclass's own, must reach the
    main process as this video's error rather than break the pool.
    """
    try:
        with time_limit(timeout, f"{path}: decoding"):
            groups, warnings = read_clip_frames(path, spec, clips)
            return [stack_clip(g, spec) for g in groups], warnings, None
    except VidclassError as exc:
        return None, [], str(exc)
    except Exception as exc:
        return None, [], f"{path}: unexpected {type(exc).__name__}: {exc}"
