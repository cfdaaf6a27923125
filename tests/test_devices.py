"""Device and precision choice, tested on the CPU for every device type (the choice is a
pure function of what the hardware offers); the CUDA path itself needs a GPU machine."""

from __future__ import annotations

import json

import pytest
import torch

import vidclass
from vidclass.devices import pick_precision, place, resolve_device
from vidclass.loading import load_torch

from .conftest import run_cli, video


@pytest.mark.parametrize(
    ("device", "bf16", "expected"),
    [
        ("cuda", True, "bf16"),  # Ampere and later
        ("cuda", False, "fp16"),  # older GPUs
        ("mps", False, "fp16"),
        ("cpu", True, "bf16"),  # avx512_bf16 or AMX
        ("cpu", False, "fp32"),
    ],
)
def test_auto_precision_is_what_the_device_does_well(device, bf16, expected):
    assert pick_precision("auto", device, bf16) == expected
    assert pick_precision("fp32", device, bf16) == "fp32"


def test_fp16_on_a_cpu_int8_on_a_gpu_and_unknown_precisions_are_refused():
    with pytest.raises(vidclass.VidclassError, match="fp16 is for GPUs"):
        pick_precision("fp16", "cpu", True)
    assert pick_precision("int8", "cpu", False) == "int8"
    for device in ("cuda", "mps"):
        with pytest.raises(vidclass.VidclassError, match="int8 models run on the CPU"):
            pick_precision("int8", device, True)
    with pytest.raises(vidclass.VidclassError, match="unknown precision"):
        pick_precision("int3", "cuda", True)


def test_auto_picks_a_gpu_only_where_torch_sees_one():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type in (expected, "mps")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(vidclass.VidclassError, match="unknown device"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_a_missing_gpu_is_one_line():
    with pytest.raises(vidclass.VidclassError, match="torch sees no CUDA GPU"):
        place("cuda:1")
    done = run_cli("classify", video("cleaning_pool_1s.mp4"), "--device", "cuda")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "vidclass: error: device cuda: torch sees no CUDA GPU here (use --device cpu)"
    )


def test_a_model_runs_where_it_was_placed(model):
    assert str(model.device) == "cpu" and model.precision == "fp32"
    torch_model = load_torch(precision="fp32", runtime="torch")
    assert next(torch_model.module.parameters()).device == torch.device("cpu")
    assert model.batch_size_hint == torch_model.batch_size_hint == 2  # the CPU default


def test_info_says_what_a_bug_report_needs():
    done = run_cli("info", "--format", "json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["vidclass"] == vidclass.__version__
    assert info["versions"]["torch"] == torch.__version__
    assert info["device"] in ("cpu", "mps") or info["device"].startswith("cuda")
    assert info["precision"] in ("fp32", "bf16", "fp16")
    assert info["threads"] >= 1 and info["cpu"]["cores"] >= 1
    assert set(info["cpu"]["features"]) <= {
        "avx2",
        "avx512f",
        "avx512_bf16",
        "avx512_vnni",
        "avx_vnni",
        "amx_tile",
        "amx_bf16",
    }
    text = run_cli("info")
    assert text.returncode == 0 and "native bf16:" in text.stdout
