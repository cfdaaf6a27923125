"""Process-wide settings that make CPU inference fast: threads, the allocator, and
whether the CPU computes bf16 natively."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_tuned = False


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def native_bf16() -> bool:
    """True where the CPU computes bf16 in hardware (x86: avx512_bf16 or AMX; ARM: its
    bf16 instructions), read from /proc/cpuinfo so that runs without torch decide alike.

    Elsewhere oneDNN emulates bf16, which is over 100x slower than fp32.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            text = f.read(1 << 16)
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return bool({"avx512_bf16", "amx_bf16", "bf16"} & set(value.split()))
    return False


# glibc's mallopt parameters and the environment variables that set them at start-up
_MALLOC = {  # name: (mallopt parameter, value)
    "MALLOC_MMAP_MAX_": (-4, 0),  # large blocks from the heap, not from mmap
    "MALLOC_TRIM_THRESHOLD_": (-1, 2**31 - 1),  # and freed ones kept there
    "MALLOC_TOP_PAD_": (-2, 256 << 20),
    # One arena for every thread: a thread's own arena grows in heaps of at most 64 MB,
    # so a forward pass in a thread (serve's, a Ray actor's) got its activations from
    # mmap after all and ran 1.4x slower.
    "MALLOC_ARENA_MAX": (-8, 1),
}


def _tuning_wanted() -> bool:
    return os.environ.get("VIDCLASS_TUNE_MALLOC") != "0"


def tune_allocator() -> bool:
    """Keep freed memory in glibc's heap instead of returning it to the OS.

    A forward pass allocates and frees ~1.3 GB of activations; by default glibc gives
    large blocks back with munmap and page-faults them in again on the next pass, which
    costs about 18 %. Threads already running keep their own arenas: a process whose
    model runs in such a thread is started with `allocator_env()` instead.
    Set VIDCLASS_TUNE_MALLOC=0 to leave the allocator alone.
    """
    global _tuned
    if _tuned or not _tuning_wanted():
        return _tuned
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    _tuned = all(mallopt(param, value) for param, value in _MALLOC.values())
    return _tuned


def allocator_env() -> dict[str, str]:
    """tune_allocator's settings as environment variables, for a process started
    elsewhere (a Ray actor): there they hold before its first thread starts."""
    if not _tuning_wanted():
        return {}
    return {name: str(value) for name, (_, value) in _MALLOC.items()}


def configure_threads(threads: int | None = None) -> int:
    """Use every core we may run on (torch's default can count fewer or more)."""
    import torch

    n = threads or available_cores()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
