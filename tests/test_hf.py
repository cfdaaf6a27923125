"""transformers checkpoints through vidclass: preprocessing mapped from the processor
config, logits equal to transformers' own processor + model and to its pipeline."""

from __future__ import annotations

import json
import sys
from functools import partial

import av
import numpy as np
import pytest
import torch

import vidclass
from vidclass.models import hf
from vidclass.video import read_frames

from .conftest import run_cli, video
from .helpers import HF_FRAMES as FRAMES
from .helpers import HF_LABEL_MAPS as LABEL_MAPS
from .helpers import HF_LABELS as LABELS
from .helpers import HF_SIZE as SIZE
from .helpers import hf_config, make_hf_checkpoint

transformers = pytest.importorskip(
    "transformers", reason="transformers not installed (pip install -e '.[hf,test]')"
)
pytest.importorskip("PIL", reason="transformers' image processors need Pillow")


@pytest.fixture(params=["videomae", "timesformer", "vivit"])
def checkpoint(request, tmp_path):
    folder = tmp_path / request.param
    model = make_hf_checkpoint(folder, request.param)
    return request.param, folder, model


def _direct_logits(model, processor, frames) -> torch.Tensor:
    inputs = processor(list(frames), return_tensors="pt")
    with torch.inference_mode():
        return model(**inputs).logits[0]


def test_processor_configs_become_input_specs(tmp_path):
    make_hf_checkpoint(tmp_path / "m", "videomae")
    spec = hf.read_entry(str(tmp_path / "m")).input
    assert (spec.num_frames, spec.fps, spec.short_side, spec.crop_hw) == (8, None, 32, (32, 32))
    assert spec.value_range == (0.0, 1.0)
    assert spec.mean == (0.45, 0.45, 0.45) and spec.std == (0.225, 0.225, 0.225)
    assert spec.interpolation == "bilinear"

    make_hf_checkpoint(tmp_path / "v", "vivit")
    spec = hf.read_entry(str(tmp_path / "v")).input
    assert spec.value_range == pytest.approx((-1.0, 1.0))
    assert spec.mean == (0.5, 0.5, 0.5)

    config = hf_config("videomae")
    spec = hf.processor_to_spec(
        config,
        {"size": {"height": 40, "width": 60}, "do_center_crop": False, "resample": 3},
    )
    assert spec.size == (40, 60) and spec.short_side is None and spec.crop_hw is None
    assert spec.interpolation == "bicubic"
    for resample in hf.RESAMPLE:  # every filter a processor names is one the decoder has
        processor = {"resample": resample, "size": {"shortest_edge": 40}}
        name = hf.processor_to_spec(config, processor).interpolation
        frames = read_frames(video("arm_wrestling.mp4"), [1.0], 40, interpolation=name)
        assert min(frames.frames[0].shape[:2]) == 40


def test_same_frames_give_the_processor_and_model_logits(checkpoint):
    """vidclass's decoded frames, fed through transformers' processor and model, give
    the logits vidclass computes itself."""
    kind, folder, model = checkpoint
    path = video("arm_wrestling.mp4")
    clf = vidclass.load_model(str(folder), precision="fp32")
    frames = clf.clip_frames(path)[0]
    assert len(frames) == FRAMES and min(frames[0].shape[:2]) == SIZE  # resized in decode
    ours = clf.logits(clf.read_clips(path)[0][None])[0]
    theirs = _direct_logits(model, transformers.AutoImageProcessor.from_pretrained(folder), frames)
    assert np.allclose(ours, theirs, atol=1e-4), (ours, theirs)
    # The check has teeth: the same frames mirrored move the logits far more.
    mirrored = [np.ascontiguousarray(f[:, ::-1]) for f in frames]
    other = _direct_logits(model, transformers.AutoImageProcessor.from_pretrained(folder), mirrored)
    assert (other - theirs).abs().max() > 1e-2


def test_frames_are_spread_over_the_whole_video(tmp_path):
    make_hf_checkpoint(tmp_path / "m", "videomae")
    clf = vidclass.load_model(str(tmp_path / "m"), precision="fp32")
    path = video("eating_spaghetti.mp4")
    groups = clf.clip_frames(path, clips=2)
    every = read_frames(path, None, SIZE)
    index = {f.tobytes(): t for f, t in zip(every.frames, every.times, strict=True)}
    times = [index[f.tobytes()] for g in groups for f in g]
    assert times == sorted(times) and len(times) == 2 * FRAMES
    end = every.times[-1]
    assert times[0] < 0.1 * end and times[-1] > 0.9 * end  # not only the first frames


def _write_clip(path, frames, fps=25):
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@pytest.mark.parametrize("kind", ["videomae", "timesformer"])
def test_logits_equal_the_transformers_pipeline(kind, tmp_path):
    """The pipeline decodes the first N frames at full size; a real clip cut to exactly
    N frames at the model's size makes those the frames vidclass spreads over."""
    model = make_hf_checkpoint(tmp_path / kind, kind)
    source = read_frames(video("arm_wrestling.mp4"), [1.0 + k / 5 for k in range(FRAMES)], SIZE)
    clip = tmp_path / "clip.mp4"
    _write_clip(clip, [f[:, :48] for f in source.frames])  # 48x32: the crop has work to do

    clf = vidclass.load_model(str(tmp_path / kind), precision="fp32")
    every = read_frames(clip, None).frames
    assert [f.tobytes() for f in clf.clip_frames(clip)[0]] == [f.tobytes() for f in every]
    ours = clf.logits(clf.read_clips(clip)[0][None])[0]

    pipe = transformers.pipeline("video-classification", model=str(tmp_path / kind))
    out = pipe(str(clip), top_k=len(LABELS), function_to_apply="none")
    theirs = torch.tensor([next(o["score"] for o in out if o["label"] == n) for n in LABELS])
    assert np.allclose(ours, theirs, atol=1e-4), (ours, theirs)
    theirs = pipe(str(clip), top_k=3)
    ours = clf.classify(clip, top_k=3)
    assert [p["label"] for p in ours] == [p["label"] for p in theirs]
    assert [p["score"] for p in ours] == pytest.approx([p["score"] for p in theirs], abs=1e-4)
    assert model.config.num_frames == FRAMES


def test_embed_is_what_the_head_sees(tmp_path):
    model = make_hf_checkpoint(tmp_path / "m", "videomae")
    clf = vidclass.load_model(str(tmp_path / "m"), precision="fp32")
    clip = clf.read_clips(video("arm_wrestling.mp4"))[0][None]
    with torch.inference_mode():
        features = clf.module.embed(torch.as_tensor(clip))
        assert features.shape == (1, model.config.hidden_size)
        assert np.allclose(model.classifier(features), clf.logits(clip), atol=1e-5)


def test_vjepa2_video_processor_config(tmp_path):
    """V-JEPA 2 ships a video processor config and takes `pixel_values_videos`."""
    config = transformers.VJEPA2Config(
        crop_size=SIZE,
        frames_per_clip=FRAMES,
        patch_size=8,
        tubelet_size=2,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        mlp_ratio=2,
        pred_hidden_size=32,
        pred_num_hidden_layers=1,
        pred_num_attention_heads=2,
        num_pooler_layers=1,
        **LABEL_MAPS,
    )
    torch.manual_seed(0)
    model = transformers.VJEPA2ForVideoClassification(config).eval()
    folder = tmp_path / "vjepa2"
    model.save_pretrained(folder)
    (folder / "video_preprocessor_config.json").write_text(
        json.dumps(
            {
                "video_processor_type": "VJEPA2VideoProcessor",
                "crop_size": {"height": SIZE, "width": SIZE},
                "size": {"shortest_edge": 36},
                "do_resize": True,
                "do_center_crop": True,
                "do_rescale": True,
                "rescale_factor": 1 / 255,
                "do_normalize": True,
                "image_mean": [0.485, 0.456, 0.406],
                "image_std": [0.229, 0.224, 0.225],
                "resample": 2,
            }
        )
    )
    clf = vidclass.load_model(str(folder), precision="fp32")
    assert clf.spec.short_side == 36 and clf.spec.crop_hw == (SIZE, SIZE)
    path = video("arm_wrestling.mp4")
    frames = np.stack(clf.clip_frames(path)[0])  # T, H, W, C
    top = (frames.shape[1] - SIZE) // 2
    left = (frames.shape[2] - SIZE) // 2
    x = frames[:, top : top + SIZE, left : left + SIZE].astype(np.float32) / 255
    x = (x - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    x = torch.from_numpy(x.astype(np.float32)).permute(0, 3, 1, 2)[None]
    with torch.inference_mode():
        theirs = model(pixel_values_videos=x).logits[0]
    ours = clf.logits(clf.read_clips(path)[0][None])[0]
    assert np.allclose(ours, theirs, atol=1e-4)


def test_missing_transformers_is_one_clear_error(tmp_path, monkeypatch):
    make_hf_checkpoint(tmp_path / "m", "videomae")
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(vidclass.VidclassError, match=r"pip install 'vidclass\[hf\]'"):
        vidclass.load_model(str(tmp_path / "m"))


def test_a_folder_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(vidclass.VidclassError, match="not a transformers model folder"):
        vidclass.load_model(str(tmp_path / "empty"))


_cli = partial(run_cli, timeout=300)


@pytest.mark.slow
def test_cli_classifies_with_a_local_checkpoint(tmp_path):
    make_hf_checkpoint(tmp_path / "m", "videomae")
    path = video("arm_wrestling.mp4")
    run = _cli("classify", "-m", str(tmp_path / "m"), "--top-k", "2", "--json", str(path))
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out[0]["video"] == str(path)
    assert [p["label"] in LABELS for p in out[0]["predictions"]] == [True, True]
    assert "Traceback" not in run.stderr

    listed = _cli("models", "list", "--format", "json", str(tmp_path / "m"))
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows[str(tmp_path / "m")]["labels"] == len(LABELS)
    assert "spread over the video" in rows[str(tmp_path / "m")]["input"]
    assert vidclass.DEFAULT_MODEL in rows


@pytest.mark.slow
@pytest.mark.parametrize("hub_offline", ["1", "0"])
def test_cli_unreachable_hub_id_is_one_line(tmp_path, hub_offline):
    """With HF_HUB_OFFLINE set, or with no network (no such repo, where there is one)."""
    name = "vidclass-tests/no-such-videomae"
    env = {"HF_HUB_OFFLINE": hub_offline, "HF_HOME": str(tmp_path / "hf")}
    run = _cli("classify", "-m", name, str(video("arm_wrestling.mp4")), env=env)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert name in lines[0] and "hub" in lines[0]
