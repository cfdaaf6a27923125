"""Nothing on disk makes vidclass crash, hang or lie (issue 26). What vidclass reads back
from its own disk (the moment index beside a gallery; the converted graphs, compiled
models, records and weights in its cache) is checked before use; what fails the check
is made again, or gone without, with a one-line warning; a cache that cannot be written
costs one warning, not the run. Written as an attacker would: real files (damaged in
place, FIFOs, folders, links), real SQLite, real OpenVINO, every run a child process
bounded in time, so a hang fails the test instead of stalling it and a SIGSEGV shows
as its signal."""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import own_cache, video

CLIP = "eating_spaghetti.mp4"  # scores spread over its top 5 (0.60, 0.10, 0.09 ...)
WARNING = "vidclass: warning:"


def _damage(path: Path, how: str, size: int = 4096) -> None:
    """Damage `path` in place as a disk or an attacker might."""
    if how == "middle":  # random bytes in the middle, the file's size kept
        data = bytearray(path.read_bytes())
        at = len(data) // 2
        data[at : at + size] = np.random.default_rng(26).bytes(min(size, len(data) - at))
        _rewrite(path, bytes(data))
    elif how == "start":  # bytes flipped near the start (a header)
        data = bytearray(path.read_bytes())
        for i in range(16, 80):
            data[i] ^= 0xFF
        _rewrite(path, bytes(data))
    elif how == "cut":
        _rewrite(path, path.read_bytes()[: path.stat().st_size // 2])
    elif how == "fifo":
        path.unlink()
        os.mkfifo(path)
    elif how == "folder":
        path.unlink()
        path.mkdir()
        (path / "inside").write_text("x")
    elif how == "zero":  # a link out of the folder, to a device that never ends
        path.unlink()
        path.symlink_to("/dev/zero")
    else:
        raise AssertionError(how)


def _rewrite(path: Path, data: bytes) -> None:
    """In place (same inode), as damage is."""
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate()


def _warnings(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith(WARNING)]


def _partials(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".partial-" in p.name]


# -- the moment index beside a gallery ----------------------------------------------------
DIM = 64
BELOW = 500  # EXACT_BELOW for these galleries: 1500 moments make them "large"
CHILD = r"""
import json, logging, sys
import numpy as np
from vidclass.gallery.store import SqliteGalleryStore
from vidclass.gallery.vector_index import MomentIndex

logging.basicConfig(format="vidclass: warning: %(message)s", level=logging.WARNING)
db, action, below = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = SqliteGalleryStore(db)
index = MomentIndex(store, db, exact_below=below)
if action == "refresh":
    print(json.dumps(index.refresh()))
else:
    queries = np.random.default_rng(7).standard_normal((4, int(sys.argv[4]))).astype("float32")
    print(json.dumps([[key for key, _ in index.search(q, 5)] for q in queries]))
"""


def _moments(db: Path, action: str, below: int = BELOW) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(db), action, str(below), str(DIM)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def gallery(tmp_path) -> Path:
    """A gallery of 1500 moments (30 videos of 50) whose moment index is built."""
    from vidclass.gallery.records import EmbeddedVideo
    from vidclass.gallery.store import SqliteGalleryStore

    db = tmp_path / "gallery.sqlite"
    rng = np.random.default_rng(0)
    store = SqliteGalleryStore(db)
    for i in range(30):
        vectors = rng.standard_normal((50, DIM)).astype(np.float32)
        moments = [(2.0 * j, 2.0 * j + 2, v) for j, v in enumerate(vectors)]
        store.put_embedded(EmbeddedVideo(f"/v/{i}.mp4", f"h{i}", 1, 0.0, "m", 100.0, None, moments))
    store.close()
    built = _moments(db, "refresh")
    assert built.returncode == 0 and "index" in built.stdout, built.stderr
    return db


def _approximately(found: list[list[int]], exact: list[list[int]]) -> None:
    """What an approximate index finds: most of the best moments of the queries together
    (HNSW over random vectors misses one now and then, even a query's best: CI saw it
    once), where a damaged index would find next to none."""
    hits = sum(len(set(got) & set(want)) for got, want in zip(found, exact, strict=True))
    assert hits >= 0.75 * sum(map(len, exact)), (found, exact)


def _recorded_as_saved(db: Path) -> bool:
    import sqlite3

    with sqlite3.connect(db) as conn:
        (value,) = conn.execute(
            "SELECT value FROM meta WHERE key = 'moments_index_file'"
        ).fetchone()
    data = Path(f"{db}.moments.usearch").read_bytes()
    entry = json.loads(value)[0]
    return (entry["sha256"], entry["size"]) == (hashlib.sha256(data).hexdigest(), len(data))


@pytest.mark.slow
@pytest.mark.parametrize(
    "how", ["middle", "start", "cut", "fifo", "zero", "other dimension", "unrecorded"]
)
def test_a_damaged_moment_index_answers_exactly_and_is_built_again(gallery, how):
    index = Path(f"{gallery}.moments.usearch")
    exact = _moments(gallery, "search", below=10**9)  # exact search, as the truth
    assert exact.returncode == 0, exact.stderr
    clean = _moments(gallery, "search")
    assert clean.returncode == 0 and not _warnings(clean.stderr), clean.stderr
    _approximately(json.loads(clean.stdout), json.loads(exact.stdout))  # the index serves
    if how == "other dimension":  # a real usearch file, of vectors of another size
        from usearch.index import Index

        other = Index(ndim=DIM // 2, metric="cos", dtype="f16")
        other.add(np.arange(1, 1501), np.ones((1500, DIM // 2), np.float32))
        index.unlink()
        other.save(str(index))
    elif how == "unrecorded":  # as an older vidclass left it: nothing in the meta table
        import sqlite3

        with sqlite3.connect(gallery) as conn:
            conn.execute("DELETE FROM meta WHERE key = 'moments_index_file'")
    else:
        _damage(index, how)

    damaged = _moments(gallery, "search")
    assert damaged.returncode == 0, (damaged.returncode, damaged.stderr[-2000:])
    assert json.loads(damaged.stdout) == json.loads(exact.stdout)  # exact, never wrong
    said = _warnings(damaged.stderr)
    assert len(said) == 1 and "unreadable moment index" in said[0], damaged.stderr
    assert "searching exactly" in said[0]

    rebuilt = _moments(gallery, "refresh")  # an index run builds it again
    assert rebuilt.returncode == 0, (rebuilt.returncode, rebuilt.stderr[-2000:])
    assert "index" in rebuilt.stdout and "(+1500, -0)" in rebuilt.stdout
    assert index.is_file() and not index.is_symlink() and _recorded_as_saved(gallery)
    again = _moments(gallery, "search")
    assert again.returncode == 0 and not _warnings(again.stderr), again.stderr
    _approximately(json.loads(again.stdout), json.loads(exact.stdout))


def test_an_index_run_names_a_moment_index_it_must_build(gallery):
    """With nothing new to add, an index run still needs to know the file is bad."""
    from vidclass.gallery.store import SqliteGalleryStore
    from vidclass.gallery.vector_index import MomentIndex

    store = SqliteGalleryStore(gallery)
    try:
        moments = MomentIndex(store, str(gallery), exact_below=BELOW)
        assert not moments.needs_refresh()
        _damage(moments.path, "middle")
        assert moments.needs_refresh()
        moments.refresh()
        assert not moments.needs_refresh()
    finally:
        store.close()


# -- the cache: graphs, compiled models, records, weights ---------------------------------
def _classify(cache: Path, runtime="openvino", wrap=(), preexec=None, timeout=420):
    return subprocess.run(
        [
            *wrap,
            sys.executable,
            "-m",
            "vidclass",
            "classify",
            str(video(CLIP)),
            "--runtime",
            runtime,
            "--precision",
            "fp32",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "VIDCLASS_OFFLINE": "1", "VIDCLASS_CACHE": str(cache)},
        preexec_fn=preexec,
    )


def _scores(done) -> dict[str, float]:
    assert done.returncode == 0, (done.returncode, done.stderr[-3000:])
    return {p["label"]: p["score"] for p in json.loads(done.stdout)[0]["predictions"]}


def _same(got: dict, want: dict, atol: float = 1e-4) -> None:
    assert list(got) == list(want), (got, want)
    assert all(abs(got[k] - want[k]) < atol for k in want), (got, want)


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A cache the default model was exported into (graphs, compiled models, its export)
    and the scores of CLIP from it: the run that exported it, then a run from it."""
    with own_cache(tmp_path_factory) as root:
        first = _classify(root)
        through_torch = _scores(first)
        light = _classify(root)
        scores = _scores(light)
        assert not _warnings(light.stderr), light.stderr
        _same(scores, through_torch)
        yield root, scores


def _copy(warm_cache: Path, to: Path) -> Path:
    """A copy of the warm cache (its export is keyed by the weights it came from,
    which the copy links to as the original does)."""
    shutil.copytree(warm_cache, to, symlinks=True)
    return to


def _checked(path: Path) -> bool:
    from vidclass.files import read_checked

    try:
        read_checked(path, "test")
    except Exception:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize(
    ("part", "how", "size"),
    [
        ("embed", "middle", 1 << 20),  # moved a top-1 score 0.9986 -> 0.4955 before
        ("head", "middle", 64 << 10),  # made every score NaN before
        ("embed", "start", 0),
        ("embed", "fifo", 0),  # hung every run before
        ("head", "zero", 0),
        ("embed", "folder", 0),
    ],
)
def test_a_damaged_compiled_model_is_compiled_again(warm, tmp_path, part, how, size):
    cache = _copy(warm[0], tmp_path / "cache")
    (blob,) = (cache / "openvino" / "compiled").glob(f"export-{part}-*.blob")
    _damage(blob, how, size)
    done = _classify(cache)
    _same(_scores(done), warm[1])  # from the record, the blob compiled again
    said = _warnings(done.stderr)
    assert len(said) == 1 and blob.name in said[0] and "compiling it again" in said[0], said
    assert blob.is_file() and not blob.is_symlink() and _checked(blob)  # made again
    again = _classify(cache)
    _same(_scores(again), warm[1])
    assert not _warnings(again.stderr), again.stderr


@pytest.mark.slow
def test_a_damaged_graph_is_converted_again(warm, tmp_path):
    """A cached graph damaged in place no longer matches its digest: the run through
    torch (here: onnxruntime) reads it back whole and converts it again."""
    cache = _copy(warm[0], tmp_path / "cache")
    (graph,) = (cache / "graphs").glob("embed-*.onnx")
    _damage(graph, "middle", 64 << 10)
    done = _classify(cache, "onnxruntime")
    _same(_scores(done), warm[1], 1e-3)
    said = _warnings(done.stderr)
    assert len(said) == 1 and graph.name in said[0] and "sha256" in said[0], said
    assert _checked(graph)  # converted again
    again = _classify(cache, "onnxruntime")
    _same(_scores(again), warm[1], 1e-3)
    assert not _warnings(again.stderr), again.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "how"),
    [
        ("embed.bin", "middle"),
        ("head.xml", "middle"),
        ("vidclass-export.json", "middle"),
        ("vidclass-export.json", "fifo"),  # opening it for reading would wait for a writer
        ("vidclass-export.json", "folder"),
        ("head.bin", "zero"),
    ],
)
def test_a_damaged_export_in_the_cache_is_exported_again(warm, tmp_path, name, how):
    cache = _copy(warm[0], tmp_path / "cache")
    (folder,) = (cache / "exports").iterdir()
    _damage(folder / name, how, 64)
    done = _classify(cache, timeout=300)
    _same(_scores(done), warm[1])
    said = _warnings(done.stderr)
    assert len(said) == 1 and name in said[0] and "exporting it again" in said[0], said
    assert (folder / name).is_file() and not (folder / name).is_symlink()
    again = _classify(cache)  # from the export made again
    _same(_scores(again), warm[1])
    assert not _warnings(again.stderr), again.stderr


@pytest.mark.slow
def test_damaged_cached_weights_are_never_loaded(warm, tmp_path):
    cache = _copy(warm[0], tmp_path / "cache")
    weights = cache / "weights"
    torch_run = _scores(_classify(cache, "torch"))
    # The folded copy (ours): folded again from the weights, with a warning.
    (folded,) = weights.glob("*.folded.safetensors")
    _damage(folded, "middle", 1 << 20)
    done = _classify(cache, "torch")
    _same(_scores(done), torch_run)
    said = _warnings(done.stderr)
    assert len(said) == 1 and folded.name in said[0] and "folding them again" in said[0], said
    assert _checked(folded)
    # The weights themselves (a copy here: the test's cache links the shared file).
    (pulled,) = (p for p in weights.glob("*.safetensors") if ".folded" not in p.name)
    data = pulled.read_bytes()
    pulled.unlink()
    pulled.write_bytes(data)
    folded.unlink()
    _damage(pulled, "middle", 4096)
    done = _classify(cache, "torch")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and pulled.name in done.stderr
    assert "sha256" in done.stderr and "vidclass models pull" in done.stderr


# -- a cache that cannot be written ---------------------------------------------------------
def _fresh(tmp_path_factory) -> Path:
    """A cache holding only the default weights (linked in, as own_cache does)."""
    with own_cache(tmp_path_factory) as made:
        return made


def _read_only(folder: Path) -> tuple[str, ...]:
    """A command prefix that runs the rest with `folder` mounted read-only (a bind mount
    in a mount namespace of its own): writes there fail with EROFS, even as root, which
    chmod would not stop."""
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", str(folder), "true"],
        capture_output=True,
        timeout=30,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount read-only here: {probe.stderr.decode()[:200]}")
    return ("unshare", "-rm", "sh", "-c", script, "sh", str(folder))


def _no_bigger_files_than(limit: int):
    """For a child: files it writes stop at `limit` bytes (EFBIG, SIGXFSZ ignored), as
    on a full disk; this holds for root too."""

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limited


@pytest.mark.slow
@pytest.mark.parametrize("how", ["read-only", "full"])
def test_a_cache_that_cannot_be_written_costs_one_warning(warm, tmp_path_factory, how):
    cache = _fresh(tmp_path_factory)
    before = sorted(p.relative_to(cache) for p in cache.rglob("*"))
    if how == "read-only":
        done = _classify(cache, wrap=_read_only(cache))
        gone_on = "read-only file system"
    else:
        done = _classify(cache, preexec=_no_bigger_files_than(1 << 20))
        gone_on = "file too large"
    _same(_scores(done), warm[1])  # converted and compiled in memory
    said = _warnings(done.stderr)
    assert len(said) == 1 and "cannot write to the cache" in said[0] and gone_on in said[0], (
        done.stderr
    )
    assert "Traceback" not in done.stderr and "unreadable" not in done.stderr
    assert not _partials(cache)
    if how == "read-only":
        assert sorted(p.relative_to(cache) for p in cache.rglob("*")) == before
    else:  # what fit is whole, and checks
        for path in cache.rglob("*"):
            if path.is_file() and path.suffix in (".onnx", ".blob", ".safetensors"):
                assert _checked(path), path
    # A cache that was filled before it became read-only serves without a word.
    if how == "read-only":
        filled = _copy(warm[0], tmp_path_factory.mktemp("filled") / "cache")
        done = _classify(filled, wrap=_read_only(filled))
        _same(_scores(done), warm[1])
        assert not _warnings(done.stderr), done.stderr


# -- the feature cache (training) -------------------------------------------------------------
def test_damaged_cached_features_are_extracted_again_never_used(tmp_path, caplog):
    """Random bytes, a FIFO, a folder, NaN written by someone else: each is passed over
    with one warning and made again by the next put; an older entry without a digest is
    taken once and its digest recorded."""
    from types import SimpleNamespace

    from vidclass.training.features import FeatureCache

    backbone = SimpleNamespace(name="b", spec="s", precision="fp32", runtime="torch")
    cache = FeatureCache(backbone, tmp_path)
    features = np.arange(8, dtype=np.float32).reshape(2, 4)
    cache.put("d", "v1", features)
    np.testing.assert_array_equal(cache.get("d", "v1"), features)
    path = cache._path("d", "v1")
    for damage in ("middle", "fifo", "folder", "nan"):
        caplog.clear()
        if damage == "middle":
            data = bytearray(path.read_bytes())
            data[-8:] = os.urandom(8)
            path.write_bytes(bytes(data))
        elif damage == "fifo":
            path.unlink()
            os.mkfifo(path)
        elif damage == "folder":
            path.unlink()
            path.mkdir()
        else:  # NaN, its digest recorded as if vidclass had written it
            from vidclass.files import write_checked

            buffer = io.BytesIO()
            np.save(buffer, np.full((2, 4), np.nan, np.float32))
            write_checked(path, buffer.getvalue())
        assert cache.get("d", "v1") is None, damage
        said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(said) == 1 and "damaged cached features" in said[0], (damage, said)
        assert not os.path.lexists(path)  # removed: the next extraction writes it again
        cache.put("d", "v1", features)
        np.testing.assert_array_equal(cache.get("d", "v1"), features)
    # An entry of an older vidclass: no digest beside it.
    Path(f"{path}.sha256").unlink()
    np.testing.assert_array_equal(cache.get("d", "v1"), features)
    assert Path(f"{path}.sha256").is_file()
