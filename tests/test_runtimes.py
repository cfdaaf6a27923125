"""The OpenVINO and ONNX Runtime runtimes against torch, the reference: the same logits
within the precision's tolerance on real clips, for the built-in I3D, a trained head and
a transformers classifier; graphs converted once and cached; clear errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import vidclass
from vidclass.loading import load_torch as load_model
from vidclass.runtimes import pick_runtime
from vidclass.runtimes.module import RuntimeModule

from .conftest import own_cache, run_cli, save_random_head, video

pytest.importorskip("openvino", reason="the openvino extra is not installed")
pytest.importorskip("onnxruntime", reason="the onnxruntime extra is not installed")

CLIP = "arm_wrestling.mp4"
OTHER = "eating_spaghetti.mp4"


@pytest.fixture(scope="module")
def clips(reference):
    return np.stack([reference.read_clips(video(CLIP))[0], reference.read_clips(video(OTHER))[0]])


def _top5(logits: np.ndarray) -> list[list[int]]:
    return np.argsort(-logits, axis=1, kind="stable")[:, :5].tolist()


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["openvino", "onnxruntime"])
def test_fp32_logits_equal_torch_on_real_clips(runtime, reference, clips):
    model = load_model(precision="fp32", runtime=runtime)
    assert (model.runtime, model.precision) == (runtime, "fp32")
    expected = reference.logits(clips)
    got = model.logits(clips)  # a batch of two: the graph's batch size is free
    assert float(np.abs(got - expected).max()) < 1e-3
    assert _top5(got) == _top5(expected)
    # Features (what galleries and training store) too, and scores through the head.
    np.testing.assert_allclose(model.embed(clips), reference.embed(clips), atol=1e-4)
    np.testing.assert_allclose(model.scores(video(CLIP)), reference.scores(video(CLIP)), atol=1e-5)


@pytest.mark.slow
def test_openvino_bf16_moves_logits_little_and_keeps_the_labels(reference, clips):
    if not vidclass.cpu.native_bf16():
        pytest.skip("this CPU has no native bf16 (avx512_bf16 or AMX)")
    model = load_model(precision="bf16", runtime="openvino")
    expected, got = reference.logits(clips), model.logits(clips)
    # REFERENCE.md: torch's bf16 moves I3D's logits by at most 0.15 on the golden clip.
    assert float(np.abs(got - expected).max()) < 0.5
    assert got.argmax(1).tolist() == expected.argmax(1).tolist()
    assert [set(r) for r in _top5(got)] == [set(r) for r in _top5(expected)]


@pytest.mark.slow
def test_a_first_run_says_one_plain_line_while_it_converts(tmp_path_factory):
    """In a cache of its own (the module's cache may hold the graph already): what the
    first run waits for is one line; how the conversion went (its export, its check
    against torch) is debug logging."""
    with own_cache(tmp_path_factory):
        first = run_cli("classify", video(CLIP), "--runtime", "openvino", "--format", "json")
    assert first.returncode == 0, first.stderr
    said = [ln for ln in first.stderr.splitlines() if ln.startswith("vidclass:")]
    assert said == [
        f"vidclass: preparing {vidclass.DEFAULT_MODEL} for OpenVINO (once; later runs reuse it) ..."
    ]
    assert "torch" not in first.stderr and "converted" not in first.stderr


@pytest.mark.slow
def test_one_graph_serves_every_clip_length_and_is_cached(cache):
    graphs = cache / "graphs"
    first = run_cli("classify", video(CLIP), "--runtime", "openvino", "--format", "json")
    assert first.returncode == 0, first.stderr
    made = sorted(p.name for p in graphs.glob("embed-*.onnx"))
    # I3D's SAME pads are computed in the graph: its clip length is free.
    assert len(made) == 1 and "-3xTx224x224-" in made[0], made
    # Beside it, its head, for runs without torch (runtimes.light).
    assert [p.name.split("-")[:2] for p in graphs.glob("head-*.onnx")] == [["head", "1024"]]
    assert not list(graphs.glob("*partial*"))
    # A new process finds it: no conversion, the same answer.
    again = run_cli("classify", video(CLIP), "--runtime", "onnxruntime", "--format", "json")
    assert again.returncode == 0 and "preparing" not in again.stderr, again.stderr
    a, b = json.loads(first.stdout)[0], json.loads(again.stdout)[0]
    assert a["predictions"][0]["label"] == b["predictions"][0]["label"] == "arm wrestling"
    # 1 s windows (28 frames, an even length; the check ran 64 and 65) use the same
    # graph and score as torch does.
    runs = {}
    for runtime in ("openvino", "torch"):
        tl = run_cli(
            "timeline", video(CLIP), "--runtime", runtime, "--precision", "fp32",
            "--window", "1", "--stride", "1", "--format", "json",
        )  # fmt: skip
        assert tl.returncode == 0 and "preparing" not in tl.stderr, tl.stderr
        runs[runtime] = json.loads(tl.stdout)["windows"]
    assert len(list(graphs.glob("embed-*.onnx"))) == 1
    assert len(runs["openvino"]) == len(runs["torch"]) >= 9
    for got, want in zip(runs["openvino"], runs["torch"], strict=True):
        assert [p["label"] for p in got["predictions"]] == [p["label"] for p in want["predictions"]]
        for p, q in zip(got["predictions"], want["predictions"], strict=True):
            assert abs(p["score"] - q["score"]) < 1e-3


@pytest.mark.slow
def test_auto_runs_in_torch_what_cannot_be_converted(cache, reference, clips, monkeypatch, caplog):
    # An operator the exporter does not know, as a new architecture might have.
    def unsupported(*_args, **_kwargs):
        raise RuntimeError("Unsupported: ONNX export of operator foo")

    monkeypatch.setattr(torch.onnx, "export", unsupported)
    monkeypatch.setenv("VIDCLASS_CACHE", str(cache.parent / "empty-cache"))
    (cache.parent / "empty-cache" / "weights").mkdir(parents=True, exist_ok=True)
    weights = next((cache / "weights").iterdir())
    (cache.parent / "empty-cache" / "weights" / weights.name).symlink_to(weights.resolve())
    auto = load_model(precision="fp32")
    assert auto.runtime == "openvino"
    with caplog.at_level("WARNING", logger="vidclass"):
        got = auto.logits(clips[:1])
    assert "Unsupported: ONNX export of operator foo" in caplog.text
    assert "runs in torch instead" in caplog.text
    assert float(np.abs(got - reference.logits(clips[:1])).max()) < 1e-4
    asked = load_model(precision="fp32", runtime="openvino")
    with pytest.raises(vidclass.VidclassError, match="cannot convert it .*use --runtime torch"):
        asked.logits(clips[:1])


@pytest.mark.slow
def test_a_damaged_cached_graph_is_made_again(cache, reference, clips):
    load_model(precision="fp32", runtime="onnxruntime").logits(clips[:1])  # cached now
    path = next(cache.glob("graphs/embed-3xTx224x224-*.onnx"))
    path.write_bytes(b"not a graph")
    model = load_model(precision="fp32", runtime="openvino")
    got = model.logits(clips[:1])
    assert float(np.abs(got - reference.logits(clips[:1])).max()) < 1e-3
    assert path.stat().st_size > 1_000_000  # converted again, in place


@pytest.mark.slow
def test_a_trained_head_runs_with_its_backbone_graph(tmp_path, cache, reference, clips):
    load_model(precision="fp32", runtime="onnxruntime").logits(clips)  # the backbone's graph
    graphs = sorted(cache.glob("graphs/embed-*.onnx"))
    heads = set(cache.glob("graphs/head-*.onnx"))
    folder = tmp_path / "mine"
    save_random_head(folder, reference, clips, ["a", "b", "c"], hidden=16)
    expected = load_model(str(folder), precision="fp32", runtime="torch").logits(clips)
    for runtime in ("openvino", "onnxruntime"):
        model = load_model(str(folder), precision="fp32", runtime=runtime)
        assert model.runtime == runtime
        np.testing.assert_allclose(model.logits(clips), expected, atol=1e-3)
    # Its export (what `vidclass.load_model` runs on a CPU) adds a graph of the head alone.
    exported = vidclass.load_model(str(folder), precision="fp32")
    assert exported.runtime == "openvino" and not hasattr(exported, "module")
    np.testing.assert_allclose(exported.logits(clips), expected, atol=1e-3)
    # Only the head differs from the backbone: the backbone's graph served, none was made.
    assert sorted(cache.glob("graphs/embed-*.onnx")) == graphs
    assert len(set(cache.glob("graphs/head-*.onnx")) - heads) == 1


def test_a_transformers_classifier_runs_in_both(tmp_path):
    pytest.importorskip("transformers")
    from .helpers import make_hf_checkpoint

    folder = tmp_path / "videomae"
    make_hf_checkpoint(folder, "videomae")
    reference = load_model(str(folder), precision="fp32", runtime="torch")
    # auto: OpenVINO is faster for attention models too (benchmarks/runtimes.py).
    assert load_model(str(folder)).runtime == "openvino"
    x = np.stack(reference.read_clips(video(CLIP), clips=2))
    expected = reference.logits(x)
    for runtime in ("openvino", "onnxruntime"):
        got = load_model(str(folder), precision="fp32", runtime=runtime).logits(x)
        assert float(np.abs(got - expected).max()) < 1e-3, runtime


def test_auto_picks_openvino_for_i3d_on_a_cpu_however_few_its_clips(cache):
    # One rule, whatever the run (no count of clips, nothing the cache holds).
    model = load_model()
    assert model.runtime == "openvino" and isinstance(model.module, RuntimeModule)
    assert pick_runtime("auto", "cpu", True) == "openvino"
    assert pick_runtime("auto", "cpu", False) == "torch"  # a vision-language model


def test_runtime_errors_are_one_line(cache):
    done = run_cli("classify", video(CLIP), "--runtime", "onnxruntime", "--precision", "bf16")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "vidclass: error: --runtime onnxruntime computes in fp32, not bf16"
    )
    done = run_cli("classify", video(CLIP), "--runtime", "tensorrt")
    assert done.returncode == 2 and "invalid choice: 'tensorrt'" in done.stderr
    with pytest.raises(vidclass.VidclassError, match="unknown runtime"):
        load_model(runtime="tvm")
    with pytest.raises(vidclass.VidclassError, match="vision-language models run in torch"):
        pick_runtime("openvino", "cpu", convertible=False)
    with pytest.raises(vidclass.VidclassError, match="runs on the CPU"):
        pick_runtime("onnxruntime", "cuda", convertible=True)
    assert pick_runtime("auto", "cuda", convertible=True) == "torch"


def test_openvinos_cache_is_bounded_least_recently_used_first(tmp_path):
    from vidclass.runtimes.sessions import prune

    files = []
    for age, name in enumerate(["new.blob", "static/mid.xml", "old.blob", "oldest.blob"]):
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x" * 100)
        os.utime(path, (1e9 - age * 1000, 1e9 - age * 1000))  # (access, modification)
        files.append(path)
    kept = tmp_path / "kept.blob"  # older than all, but in use
    kept.write_bytes(b"x" * 100)
    os.utime(kept, (1e8, 1e8))
    assert prune(tmp_path, 300, keep=frozenset({kept})) == 200
    assert sorted(p.name for p in tmp_path.rglob("*.*")) == ["kept.blob", "mid.xml", "new.blob"]
    assert prune(tmp_path, 300) == 0  # within the bound: nothing more goes
