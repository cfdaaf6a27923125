"""What a bug report needs: versions, the device and precision in effect, threads, CPU
features and GPUs (`vidclass info`, and `/v1/info` in serve)."""

from __future__ import annotations

import importlib.metadata
import platform
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path

from .cpu import available_cores, native_bf16
from .devices import pick_precision, place
from .errors import VidclassError
from .version import __version__

# CPU features that decide how fast the model runs (and whether bf16 pays).
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_tile", "amx_bf16")
OPTIONAL = (
    "transformers",
    "fastapi",
    "uvicorn",
    "scikit-learn",
    "matplotlib",
    "ray",
    "openvino",
    "onnxruntime",
    "nncf",
)


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_name_and_features() -> tuple[str, list[str]]:
    """The CPU's name and the features of CPU_FLAGS it has (Linux reads /proc/cpuinfo)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    return name, [f for f in CPU_FLAGS if f in flags]


def cpu() -> dict:
    name, features = _cpu_name_and_features()
    return {
        "name": name,
        "cores": available_cores(),
        "features": features,
        "native_bf16": native_bf16(),
    }


def cpu_line() -> str:
    """One line for a benchmark's report: which machine its figures come from (without
    importing torch, so a benchmark's own timings are not changed by asking)."""
    name, features = _cpu_name_and_features()
    flags = " ".join(features) or f"none of {', '.join(CPU_FLAGS)}"
    return f"CPU: {name}, {available_cores()} cores; flags: {flags}"


def gpus() -> list[dict]:
    """The GPUs torch sees (none without torch: nothing else here could run on one)."""
    if find_spec("torch") is None:
        return []
    import torch

    found = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            found.append(
                {
                    "device": f"cuda:{i}",
                    "name": p.name,
                    "memory_gb": round(p.total_memory / 2**30, 1),
                    "capability": f"{p.major}.{p.minor}",
                }
            )
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append({"device": "mps", "name": "Apple GPU (MPS)"})
    return found


def system_info(device: str = "auto", precision: str = "auto") -> dict:
    """Everything above as one JSON-ready dict; a device that is not there is reported,
    not raised, since this is what someone asks for when things do not work."""
    import av
    import numpy

    torch = import_module("torch") if find_spec("torch") is not None else None
    try:
        if torch is not None:
            placement = place(device, precision)
            running = {"device": str(placement.device), "precision": placement.precision}
        elif str(device or "auto").strip().lower() in ("auto", "cpu"):  # no torch: the CPU
            chosen = pick_precision(precision, "cpu", native_bf16())
            running = {"device": "cpu", "precision": chosen}
        else:
            raise VidclassError(f"device {device}: needs torch: pip install 'vidclass[torch]'")
    except VidclassError as exc:
        running = {"device": device, "precision": precision, "error": str(exc)}
    libavcodec = av.library_versions.get("libavcodec")
    return {
        "vidclass": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {
            "torch": torch.__version__ if torch is not None else None,
            "av": av.__version__,
            "libavcodec": ".".join(map(str, libavcodec)) if libavcodec else None,
            "numpy": numpy.__version__,
            **{name: _version(name) for name in OPTIONAL},
        },
        **running,
        "threads": torch.get_num_threads() if torch is not None else available_cores(),
        "cpu": cpu(),
        "gpus": gpus(),
        "cuda": torch.version.cuda if torch is not None else None,
    }


def cpu_fingerprint() -> str:
    """The CPU's model and features, which `auto` precision and compiled graphs follow
    (x86: model name and flags; ARM: implementer, part and features)."""
    keys = ("model name", "flags", "Features", "CPU implementer", "CPU part")
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            text = f.read(1 << 16)
    except OSError:
        text = ""
    seen: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in keys:
            seen.setdefault(key.strip(), value.strip())
    return f"{platform.machine()}|{platform.processor()}|{sorted(seen.items())}"
