"""The port is exact: DeepMind's I3D logits for the golden clip, within 1e-3 in fp32."""

import json

import numpy as np
import pytest
import torch

from vidclass.models import get_entry
from vidclass.video import read_frames
from vidclass.video.transforms import frames_to_tensor

from .conftest import REFERENCE, video


@pytest.fixture(scope="module")
def golden():
    path = REFERENCE / "cricket_shot_i3d_logits.json"
    if not path.exists():
        pytest.skip(f"golden logits not found at {path}")
    return json.loads(path.read_text())


def test_packaged_labels_match_the_reference_list():
    path = REFERENCE / "kinetics400_labels.txt"
    if not path.exists():
        pytest.skip(f"reference label list not found at {path}")
    expected = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    assert list(get_entry("i3d.kinetics400").labels) == expected


def test_golden_logits_fp32(model, golden):
    gif = video("cricket_shot.gif")
    # As the reference was made: all 79 frames, no resize or crop, [-1, 1].
    decoded = read_frames(gif, None, short_side=None)
    assert len(decoded.frames) == 79
    x = frames_to_tensor(decoded.frames, model.spec, crop=False)
    assert x.shape == (3, 79, 224, 224)
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    assert model.precision == "fp32"
    logits = model.logits(x[None].numpy())[0]
    expected = np.array([golden["logits"][label] for label in model.labels], dtype=np.float32)
    diff = np.abs(logits - expected)
    assert diff.max() < 1e-3, (
        f"max logit difference {diff.max():.2e} at {model.labels[diff.argmax()]}"
    )
    probs = torch.softmax(torch.from_numpy(logits), 0)
    top5 = [model.labels[i] for i in torch.topk(probs, 5).indices]
    assert top5 == [label for label, _ in golden["top5"]]
    assert probs[model.labels.index("playing cricket")].item() == pytest.approx(0.9886, abs=1e-3)
