"""Damaged and crafted videos, made from the shared clips with a seeded random generator.

The same seed gives the same bytes, so a failure can be reproduced; `benchmarks/fuzz.py`
runs fresh seeds through the CLI. Nothing here is written outside the folder given.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from pathlib import Path

# Shared clips the mutations start from: several containers and codecs.
SOURCES = (
    "arm_wrestling.mp4",
    "soccer_juggling.avi",
    "flipping_pancake.mkv",
    "arm_wrestling_vp9.webm",
    "cricket_shot.gif",
    "odd/mjpeg.avi",
)


def flip_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 64)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randint(1, len(data) - 1)]


def zero_head(data: bytes, rng: random.Random) -> bytes:
    n = min(len(data), 4096)
    return bytes(n) + data[n:]


def random_head(data: bytes, rng: random.Random) -> bytes:
    n = min(len(data), 4096)
    return rng.randbytes(n) + data[n:]


def _chunks(data: bytes, rng: random.Random) -> list[bytes]:
    size = rng.choice((512, 4096, 16384))
    return [data[i : i + size] for i in range(0, len(data), size)]


def shuffle_chunks(data: bytes, rng: random.Random) -> bytes:
    chunks = _chunks(data, rng)
    head, rest = chunks[:1], chunks[1:]  # keep the header: the file still opens
    rng.shuffle(rest)
    return b"".join(head + rest)


def duplicate_chunks(data: bytes, rng: random.Random) -> bytes:
    chunks = _chunks(data, rng)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(chunks))
        chunks.insert(rng.randrange(len(chunks)), chunks[i])
    return b"".join(chunks)


def garbage_middle(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data) // 4, len(data) * 3 // 4)
    return data[:at] + rng.randbytes(rng.choice((100, 4096, 65536))) + data[at:]


MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    f.__name__: f
    for f in (
        flip_bytes,
        truncate,
        zero_head,
        random_head,
        shuffle_chunks,
        duplicate_chunks,
        garbage_middle,
    )
}


def _atoms(data: bytes, name: bytes):
    """Offsets of the payloads of every MP4 box called `name` (a plain scan)."""
    at = data.find(name)
    while at >= 4:
        yield at + 4
        at = data.find(name, at + 1)


def patch_mp4(data: bytes, what: str) -> bytes:
    """An MP4 whose header claims something absurd: huge frame size, duration, counts."""
    out = bytearray(data)
    for box in _atoms(data, b"mvhd"):
        if what == "duration":
            struct.pack_into(">II", out, box + 12, 1, 0xFFFFFFFF)  # timescale 1, ~136 years
    for box in _atoms(data, b"mdhd"):
        if what == "duration":
            struct.pack_into(">II", out, box + 12, 1, 0xFFFFFFFF)
    for box in _atoms(data, b"tkhd"):
        if what == "size":
            struct.pack_into(">II", out, box + 76, 0xFFFF0000, 0xFFFF0000)
    for box in _atoms(data, b"avc1"):
        if what == "size":
            struct.pack_into(">HH", out, box + 24, 0xFFFF, 0xFFFF)
    for box in _atoms(data, b"stts"):
        if what == "counts":
            struct.pack_into(">II", out, box + 8, 0x7FFFFFFF, 1)  # 2^31 frames, tick 1
    for box in _atoms(data, b"stsz"):
        if what == "counts":
            struct.pack_into(">I", out, box + 8, 0x7FFFFFFF)
    return bytes(out)


def patch_avi(data: bytes, what: str) -> bytes:
    """An AVI whose headers claim a huge frame size or frame count."""
    out = bytearray(data)
    for box in _atoms(data, b"avih"):
        if what == "counts":
            struct.pack_into("<I", out, box + 4 + 16, 0x7FFFFFFF)  # dwTotalFrames
        if what == "size":
            struct.pack_into("<II", out, box + 4 + 32, 60000, 60000)
    for box in _atoms(data, b"strf"):
        if what == "size":
            struct.pack_into("<ii", out, box + 4 + 4, 60000, 60000)  # biWidth, biHeight
    return bytes(out)


def gif_bomb(width: int = 16000, height: int = 16000, frames: int = 3) -> bytes:
    """A few hundred bytes of GIF that claims width x height frames."""
    data = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + bytes(3) + b"\xff" * 3
    for _ in range(frames):
        data += b"\x21\xf9\x04\x00\x04\x00\x00\x00"  # 40 ms a frame
        data += b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
        data += b"\x02\x02\x4c\x01\x00"  # a few pixels of LZW data
    return data + b"\x3b"


def raw_m4v(source: Path, target: Path) -> Path:
    """The MPEG-4 Part 2 stream of an AVI, remuxed raw (`.m4v`): a valid file with no
    index, where every seek lands back at the start."""
    import av

    with av.open(str(source)) as src, av.open(str(target), "w", format="m4v") as out:
        stream = src.streams.video[0]
        copy = out.add_stream_from_template(stream)
        for packet in src.demux(stream):
            if packet.dts is not None:
                packet.stream = copy
                out.mux(packet)
    return target


def crafted(videos: Path, folder: Path) -> list[Path]:
    """The crafted files: huge sizes, durations and counts, the raw remux, a GIF bomb."""
    folder.mkdir(parents=True, exist_ok=True)
    mp4 = (videos / "arm_wrestling.mp4").read_bytes()
    avi = (videos / "soccer_juggling.avi").read_bytes()
    made = {
        "mp4_huge_size.mp4": patch_mp4(mp4, "size"),
        "mp4_huge_duration.mp4": patch_mp4(mp4, "duration"),
        "mp4_huge_counts.mp4": patch_mp4(mp4, "counts"),
        "avi_huge_size.avi": patch_avi(avi, "size"),
        "avi_huge_counts.avi": patch_avi(avi, "counts"),
        "gif_bomb.gif": gif_bomb(),
        "gif_bomb_many_frames.gif": gif_bomb(4096, 4096, 2000),
        # A Matroska header that no longer says the frame size (0 x 0): divided by
        # zero in the memory check, found by benchmarks/fuzz.py.
        "mkv_unknown_size.mkv": found_by_fuzzing(videos, 1030, 1),
    }
    paths = []
    for name, data in made.items():
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    paths.append(raw_m4v(videos / "soccer_juggling.avi", folder / "raw_remux.m4v"))
    return paths


def _mutate(videos: Path, rng: random.Random) -> tuple[str, bytes]:
    """(name, bytes): one shared clip put through one to three mutations."""
    source = rng.choice(SOURCES)
    data = (videos / source).read_bytes()
    names = rng.sample(sorted(MUTATIONS), rng.randint(1, 3))
    for name in names:
        data = MUTATIONS[name](data, rng)
    return "+".join(names) + Path(source).suffix, data


def mutated(videos: Path, folder: Path, seed: int, count: int) -> list[Path]:
    """`count` mutated files (see _mutate) made with `seed`."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        name, data = _mutate(videos, rng)
        path = folder / f"{seed}_{i:03d}_{name}"
        path.write_bytes(data)
        paths.append(path)
    return paths


def found_by_fuzzing(videos: Path, seed: int, index: int) -> bytes:
    """File `index` of `mutated(..., seed, ...)`, kept because it once found a bug."""
    rng = random.Random(seed)
    for _ in range(index):
        _mutate(videos, rng)
    return _mutate(videos, rng)[1]


def outcome(path: str, model_dir: str | None = None) -> tuple[str, str, int]:
    """What vidclass makes of one file, in this process: ("ok" or "error", detail,
    peak RSS in MB). Probes it, reads the default model's middle clip, and with
    `model_dir` (a small model) computes its timeline. Any exception other than
    VidclassError comes back as "crash"."""
    import traceback

    from vidclass.errors import VidclassError
    from vidclass.models import get_entry
    from vidclass.video import probe
    from vidclass.video.clips import read_clip_frames

    try:
        probe(path)
        groups, _ = read_clip_frames(path, get_entry("i3d.kinetics400").input, 2)
        detail = f"{sum(len(g) for g in groups)} frames"
        if model_dir is not None:
            detail += f", {len(_timeline_model(model_dir).timeline(path).windows)} windows"
        kind = "ok"
    except VidclassError as exc:
        kind, detail = "error", str(exc)
    except Exception:
        kind, detail = "crash", traceback.format_exc()
    return kind, detail, _peak_rss_mb()


def _peak_rss_mb() -> int:
    """This process's peak resident memory in MB: VmHWM, the peak of its own memory map.
    Not ru_maxrss, which on Linux keeps the peak of the image before exec: a worker
    spawned from a large pytest process (a fork, then exec) would report the parent's."""
    import resource

    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


_models: dict = {}


def _timeline_model(folder: str):
    if folder not in _models:
        import vidclass

        _models[folder] = vidclass.load_model(folder, precision="fp32")
    return _models[folder]
