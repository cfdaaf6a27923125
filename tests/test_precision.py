"""bf16 keeps the answers: top-1 on the labelled clips is the same as in fp32."""

import pytest

import vidclass
from vidclass.cpu import native_bf16
from vidclass.devices import place

from .conftest import VIDEOS, labelled_clips, video

# The labelled clips of MANIFEST.tsv: 14 when this was written; a comparison on fewer
# says little.
AT_LEAST = 10


def test_auto_precision_follows_the_cpu():
    assert place("cpu", "auto").precision == ("bf16" if native_bf16() else "fp32")
    assert place("cpu", "fp32").precision == "fp32"
    with pytest.raises(vidclass.VidclassError):
        place("cpu", "fp8")


@pytest.mark.slow
@pytest.mark.skipif(
    not native_bf16(),
    reason="this CPU has no native bf16 (avx512_bf16/AMX): emulated bf16 is over 100x "
    "slower than fp32, so vidclass uses fp32 here and this comparison cannot run",
)
def test_bf16_keeps_top1(model):
    clips = labelled_clips()
    if not clips:
        pytest.skip(
            f"no labelled clips to compare on: {VIDEOS / 'MANIFEST.tsv'} is missing or lists none"
        )
    assert len(clips) >= AT_LEAST, f"only {len(clips)} labelled clips to compare on in {VIDEOS}"
    bf16 = vidclass.load_model(precision="bf16")
    for name, _ in clips:
        path = video(name)
        assert bf16.classify(path, 1)[0]["label"] == model.classify(path, 1)[0]["label"], name
