"""Which device runs the model and in which precision, decided once for every command.

`auto` picks a GPU where torch sees one (CUDA, else Apple's MPS), else the CPU; the
precision `auto` picks what the device computes well: bf16 on a GPU that has it (else
fp16), fp16 on MPS, bf16 on a CPU with native bf16 (avx512_bf16 or AMX), else fp32.
int8 is what an int8 export computes in (`vidclass models export --precision int8`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .cpu import native_bf16
from .errors import VidclassError

if TYPE_CHECKING:  # imported where a device is resolved: the option lists need no torch
    import torch

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
# Clips of 64x224x224 scored together by default: a CPU gains little past 2; a GPU
# needs more to be busy, and holds them easily (I3D: ~0.6 GB of activations a clip).
DEFAULT_BATCH = {"cpu": 2, "cuda": 8, "mps": 4}
# What `--device auto` could pick besides the CPU: NVIDIA's and AMD's device files, and
# WSL2's GPU bridge (there is no way to ask torch without importing it).
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def gpu_present() -> bool:
    """Whether `--device auto` could mean a GPU here, judged without torch."""
    return sys.platform == "darwin" or any(os.path.exists(p) for p in GPU_DEVICE_FILES)


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The torch device `device` names; one that is not there is a VidclassError."""
    import torch

    name = str(device or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    try:
        picked = torch.device(name)
    except RuntimeError:
        raise VidclassError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}") from None
    if picked.type == "cpu":
        return picked
    if picked.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise VidclassError(f"device {name}: torch sees no CUDA GPU here (use --device cpu)")
        index = picked.index if picked.index is not None else torch.cuda.current_device()
        if index >= count:
            raise VidclassError(f"device {name}: there are {count} CUDA GPUs (0 to {count - 1})")
        return torch.device("cuda", index)
    if picked.type == "mps":
        if not _mps_available():
            raise VidclassError(f"device {name}: MPS (Apple GPU) is not available here")
        return picked
    raise VidclassError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}")


def pick_precision(precision: str, device_type: str, bf16: bool) -> str:
    """The precision to run in: `precision` itself, or for "auto" what a `device_type`
    device does well (`bf16`: whether it computes bf16 natively). Pure, so it is
    tested for every device without the hardware."""
    if precision not in PRECISIONS:
        raise VidclassError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    if precision == "auto":
        if device_type == "cuda":
            return "bf16" if bf16 else "fp16"
        if device_type == "mps":
            return "fp16"
        return "bf16" if bf16 else "fp32"
    if precision == "fp16" and device_type == "cpu":
        raise VidclassError("fp16 is for GPUs; on a CPU use bf16 (native bf16 only) or fp32")
    if precision == "int8" and device_type != "cpu":
        raise VidclassError("int8 models run on the CPU; use --device cpu")
    return precision


def native_bf16_on(device: torch.device) -> bool:
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and native_bf16()


@dataclass(frozen=True)
class Placement:
    """Where and how a model runs."""

    device: torch.device
    precision: str  # fp32, bf16 or fp16

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    @property
    def default_batch_size(self) -> int:
        return DEFAULT_BATCH.get(self.device.type, 2)

    def describe(self) -> str:
        return f"{self.device} {self.precision}"


def place(device: str | torch.device | None = "auto", precision: str = "auto") -> Placement:
    picked = resolve_device(device)
    return Placement(picked, pick_precision(precision, picked.type, native_bf16_on(picked)))
