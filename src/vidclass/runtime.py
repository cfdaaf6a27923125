"""Process-wide settings that make CPU inference fast: threads, the allocator, and
whether the CPU computes bf16 natively."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import torch

_tuned = False


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def native_bf16() -> bool:
    """True where the CPU computes bf16 in hardware (avx512_bf16 or AMX).

    Elsewhere oneDNN emulates bf16, which is over 100x slower than fp32.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def tune_allocator() -> bool:
    """Keep freed memory in glibc's heap instead of returning it to the OS.

    A forward pass allocates and frees ~1.3 GB of activations; by default glibc gives
    large blocks back with munmap and page-faults them in again on the next pass, which
    costs about 18 %. Same effect as MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=...
    Set VIDCLASS_TUNE_MALLOC=0 to leave the allocator alone.
    """
    global _tuned
    if _tuned or os.environ.get("VIDCLASS_TUNE_MALLOC") == "0":
        return _tuned
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    m_trim_threshold, m_top_pad, m_mmap_max = -1, -2, -4
    ok = mallopt(m_mmap_max, 0) and mallopt(m_trim_threshold, 2**31 - 1)
    ok = ok and mallopt(m_top_pad, 256 << 20)
    _tuned = bool(ok)
    return _tuned


def configure_threads(threads: int | None = None) -> int:
    """Use every core we may run on (torch's default can count fewer or more)."""
    n = threads or available_cores()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
