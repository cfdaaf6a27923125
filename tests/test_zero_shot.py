"""Vision-language models (X-CLIP, CLIP, SigLIP) through vidclass: logits equal to
transformers' own processor, tokenizer and model on the same frames; zero-shot labels
with prompts and multi-label in Python, the CLI and results files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import vidclass
from vidclass import LabelChoice, VidclassError
from vidclass.models.vision_language import fill_prompt

from .conftest import run_cli, video
from .tiny_vl import FAMILIES, FRAMES, SIZE, make_checkpoint

transformers = pytest.importorskip(
    "transformers", reason="transformers not installed (pip install -e '.[hf,test]')"
)
pytest.importorskip("PIL", reason="transformers' image processors need Pillow")

LABELS = ["arm wrestling", "eating spaghetti", "dog on the beach", "surfing"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """{family: (folder, model, tokenizer, image processor)}, built once."""
    root = tmp_path_factory.mktemp("vl")
    return {f: (root / f, *make_checkpoint(root / f, f)) for f in FAMILIES}


@pytest.fixture(scope="module")
def loaded(checkpoints):
    return {f: vidclass.load_model(str(c[0]), precision="fp32") for f, c in checkpoints.items()}


def _transformers_logits(family, model, tokenizer, processor, frames, texts) -> torch.Tensor:
    """What transformers computes for these frames and texts: X-CLIP's logits_per_video;
    CLIP's and SigLIP's logits_per_image of each frame, averaged over the frames."""
    padding = "max_length" if family == "siglip" else True
    tokens = tokenizer(texts, padding=padding, max_length=16, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        if family == "xclip":
            pixels = processor(list(frames), return_tensors="pt").pixel_values
            out = model(
                input_ids=tokens.input_ids,
                attention_mask=tokens.attention_mask,
                pixel_values=pixels,
            )
            return out.logits_per_video[0]
        pixels = processor(images=list(frames), return_tensors="pt").pixel_values
        kwargs = {"input_ids": tokens.input_ids, "pixel_values": pixels}
        if family == "clip":
            kwargs["attention_mask"] = tokens.attention_mask
        return model(**kwargs).logits_per_image.mean(dim=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_logits_equal_transformers_on_the_same_frames(family, checkpoints, loaded):
    _, model, tokenizer, processor = checkpoints[family]
    clf = loaded[family]
    path = video("arm_wrestling.mp4")
    frames = clf.clip_frames(path)[0]
    assert len(frames) == FRAMES and min(frames[0].shape[:2]) == SIZE
    view = clf.with_labels(LABELS)
    assert view.labels == tuple(LABELS)
    ours = view.logits(view.read_clips(path)[0][None])[0]
    template = clf.entry.meta["prompt"]
    texts = [template.replace("{}", label) for label in LABELS]
    theirs = _transformers_logits(family, model, tokenizer, processor, frames, texts)
    assert np.allclose(ours, theirs, atol=1e-4), (ours, theirs)
    # The check has teeth: other texts move the logits.
    other = _transformers_logits(
        family, model, tokenizer, processor, frames, [f"a video of {x}" for x in LABELS]
    )
    assert (other - theirs).abs().max() > 1e-3
    # And the scores are the softmax of those logits, in classify as in Python.
    top = clf.classify(path, labels=LABELS, top_k=4)
    want = torch.softmax(theirs, dim=0)
    assert {p["label"]: p["score"] for p in top} == pytest.approx(
        {label: float(want[i]) for i, label in enumerate(LABELS)}, abs=1e-4
    )


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_embedding_gives_the_same_logits(family, loaded):
    """What a gallery stores (the pooled embedding) scores texts exactly as the clip."""
    view = loaded[family].with_labels(LABELS)
    clips = view.read_clips(video("eating_spaghetti.mp4"), clips=2)
    x = np.stack(clips)
    scores, features = view.scores_and_features(x)
    assert np.allclose(scores, view.activate(view.logits(x)), atol=1e-5)
    assert features.shape == (2, 16 if family == "clip" else 32)


def test_xclip_embedding_is_its_video_embedding(checkpoints, loaded):
    _, model, tokenizer, _ = checkpoints["xclip"]
    clf = loaded["xclip"]
    x = clf.read_clips(video("arm_wrestling.mp4"))[0][None]
    tokens = tokenizer(["dog"], return_tensors="pt")
    with torch.inference_mode():
        want = model(pixel_values=torch.as_tensor(x).permute(0, 2, 1, 3, 4), **tokens).video_embeds
    assert np.allclose(clf.embed(x), want, atol=1e-5)


def test_the_prompt_template_is_used(loaded):
    clf = loaded["clip"]
    x = clf.read_clips(video("arm_wrestling.mp4"))[0][None]
    by_template = clf.with_labels(LabelChoice(("dog", "cat"), prompt="a video of {} playing"))
    # The same texts written out in full, with a template that adds nothing.
    spelled_out = clf.with_labels(
        LabelChoice(("a video of dog playing", "a video of cat playing"), prompt="{}")
    )
    assert np.allclose(by_template.logits(x), spelled_out.logits(x), atol=1e-5)
    default = clf.with_labels(["dog", "cat"])
    assert np.abs(default.logits(x) - by_template.logits(x)).max() > 1e-3
    assert fill_prompt("a video of", "dog") == "a video of dog"  # no {}: the label follows
    with pytest.raises(VidclassError, match="at most one"):
        clf.with_labels(LabelChoice(("dog",), prompt="{} and {}"))


def test_multi_label_scores_each_label_on_its_own(loaded):
    path = video("arm_wrestling.mp4")
    siglip = loaded["siglip"]
    x = siglip.read_clips(path)[0][None]
    logits = siglip.with_labels(LABELS).logits(x)[0]
    multi = siglip.with_labels(LabelChoice(tuple(LABELS), multi_label=True, threshold=0.0))
    assert multi.entry.activation == "sigmoid"
    got = {p["label"]: p["score"] for p in multi.classify(path, top_k=4)}
    assert got == pytest.approx(
        {n: float(1 / (1 + np.exp(-v))) for n, v in zip(LABELS, logits, strict=True)}
    )

    clip = loaded["clip"]
    scale = float(clip.module.model.logit_scale.exp())
    logits = clip.with_labels(LABELS).logits(clip.read_clips(path)[0][None])[0]
    cosine = clip.with_labels(LabelChoice(tuple(LABELS), multi_label=True, threshold=-1.0))
    got = np.array([p["score"] for p in cosine.classify(path, top_k=4)])
    assert np.allclose(sorted(got), sorted(logits / scale), atol=1e-5)
    assert np.all(np.abs(got) <= 1.0)
    # The threshold keeps only the tags: from the middle score, about half of them.
    middle = float(np.median(got))
    tags = clip.classify(
        path, top_k=4, labels=LabelChoice(tuple(LABELS), multi_label=True, threshold=middle)
    )
    assert [t["score"] >= middle for t in tags] == [True] * len(tags) and 1 <= len(tags) < 4
    none = clip.classify(
        path, top_k=4, labels=LabelChoice(tuple(LABELS), multi_label=True, threshold=1.0)
    )
    assert none == []


def test_a_vision_language_model_needs_labels(loaded):
    clf = loaded["xclip"]
    assert clf.zero_shot and clf.labels == ()
    with pytest.raises(VidclassError, match="--labels"):
        clf.classify(video("arm_wrestling.mp4"))
    with pytest.raises(VidclassError, match="--labels"):
        clf.timeline(video("arm_wrestling.mp4"))


def test_prompts_are_for_vision_language_models_only(model):
    with pytest.raises(VidclassError, match="not a vision-language model"):
        model.with_labels(LabelChoice(("archery",), prompt="a video of {}"))
    assert not model.zero_shot


def test_timeline_over_the_given_labels(loaded):
    clf = loaded["siglip"]
    tl = clf.timeline(video("eating_spaghetti.mp4"), stride=2.0, labels=LABELS[:3])
    assert tl.windows and {p["label"] for w in tl.windows for p in w.predictions} <= set(LABELS[:3])
    assert {s.label for s in tl.segments} <= set(LABELS[:3])


@pytest.mark.slow
def test_cli_zero_shot(checkpoints, tmp_path):
    folder = checkpoints["xclip"][0]
    clip = video("arm_wrestling.mp4")
    r = run_cli(
        "classify", clip, "--model", folder, "--labels", "arm wrestling, dog, surfing",
        "--prompt", "a video of {}", "--format", "json", "--precision", "fp32",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    (result,) = json.loads(r.stdout)
    assert sorted(p["label"] for p in result["predictions"]) == ["arm wrestling", "dog", "surfing"]
    assert sum(p["score"] for p in result["predictions"]) == pytest.approx(1.0, abs=1e-4)

    r = run_cli("classify", clip, "--model", folder)
    assert r.returncode != 0 and "--labels" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("classify", clip, "--prompt", "a video of {}")
    assert r.returncode != 0 and "need --labels" in r.stderr and "Traceback" not in r.stderr

    # A results file records the labels and prompt: another prompt does not resume it.
    out = tmp_path / "r.jsonl"
    args = ("classify", clip, "--model", folder, "--labels", "dog, surfing", "-o", out)
    assert run_cli(*args).returncode == 0
    r = run_cli(*args, "--prompt", "a clip of {}")
    assert r.returncode != 0 and "--labels" in r.stderr and "Traceback" not in r.stderr
    assert len(out.read_text().splitlines()) == 1

    r = run_cli(
        "timeline", clip, "--model", folder, "--labels", "dog, surfing", "--format", "json",
        "--stride", "2",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    windows = json.loads(r.stdout)["windows"]
    named = {p["label"] for w in windows for p in w["predictions"]}
    assert windows and named <= {"dog", "surfing"}


def test_the_ray_recipe_carries_the_label_choice(checkpoints):
    clf = vidclass.load_model(str(checkpoints["clip"][0]), precision="fp32")
    choice = LabelChoice(("dog", "surfing"), prompt="a video of {}", multi_label=True)
    view = clf.with_labels(choice)
    again = view.recipe.load("cpu")
    x = clf.read_clips(video("arm_wrestling.mp4"))[0][None]
    assert again.identity == view.identity and again.min_score == view.min_score
    assert np.allclose(again.logits(x), view.logits(x), atol=1e-6)
