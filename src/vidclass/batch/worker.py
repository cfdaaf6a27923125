"""What a decoding process runs: read a video's clips, ready for the model but for scaling."""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys

import numpy as np

from ..errors import VidclassError
from ..models.spec import InputSpec
from ..video.clips import read_clip_frames
from ..video.transforms import stack_clip


def init_worker() -> None:
    """Leave Ctrl-C to the main process (it stops the pool), and die with it if it is
    killed outright, so no orphaned decoders are left behind."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
        except (OSError, AttributeError):
            pass


def prepare_clips(
    path: str, spec: InputSpec, clips: int
) -> tuple[list[np.ndarray] | None, list[str], str | None]:
    """(uint8 (T, H, W, 3) clips, decoder warnings, error message or None).

    Errors come back as text: any exception, not only vidclass's own, must reach the
    main process as this video's error rather than break the pool.
    """
    try:
        groups, warnings = read_clip_frames(path, spec, clips)
        return [stack_clip(g, spec) for g in groups], warnings, None
    except VidclassError as exc:
        return None, [], str(exc)
    except Exception as exc:
        return None, [], f"{path}: unexpected {type(exc).__name__}: {exc}"
