"""The reference pages against the code: docs/reference/environment.md lists every
environment variable vidclass reads, and docs/reference/file-formats.md names every
field of the files vidclass writes (results, timelines, live logs, model folders,
exports, galleries, evaluation reports), read from files the code really writes."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import re
import sqlite3
from pathlib import Path

import pytest

import vidclass

from .conftest import ROOT, link_videos, video

PAGES = ROOT / "docs" / "reference"
FORMATS = PAGES / "file-formats.md"
ENVIRONMENT = PAGES / "environment.md"
SRC = ROOT / "src" / "vidclass"
NAME = re.compile(r"\bVIDCLASS_[A-Z][A-Z0-9_]*\b")


def section(page: Path, heading: str) -> str:
    """The text under `## heading` of `page`, up to the next `## ` heading."""
    text = page.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"{page.name} has no section '## {heading}'"
    return match[1]


def named(text: str) -> set[str]:
    """What `text` names in code: each `span` whole, and each "quoted" word inside one
    (a key shown in `{"label", "score"}`)."""
    spans = re.findall(r"`([^`\n]+)`", text)
    quoted = {w for s in spans for w in re.findall(r'"([A-Za-z_][\w.]*)"', s)}
    return set(spans) | quoted


def unnamed(names, text: str) -> list[str]:
    return sorted(set(names) - named(text))


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.S | re.M)


@contextlib.contextmanager
def cli_in_process():
    """`vidclass.cli.main` in this process, the logger and environment it changes put
    back afterwards (it sets a handler, and defaults for transformers' variables)."""
    log = logging.getLogger("vidclass")
    state = (log.handlers[:], log.level, log.propagate)
    environ = dict(os.environ)
    try:
        from vidclass.cli import main

        yield main
    finally:
        log.handlers[:], log.level, log.propagate = state
        os.environ.clear()
        os.environ.update(environ)


# -- environment.md ----------------------------------------------------------------------


def source_texts() -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8") for p in SRC.rglob("*.py")}


def test_every_vidclass_variable_the_package_reads_is_listed():
    in_src = {n for text in source_texts().values() for n in NAME.findall(text)}
    assert {"VIDCLASS_CACHE", "VIDCLASS_OFFLINE", "VIDCLASS_MAX_WINDOWS"} <= in_src
    own = section(ENVIRONMENT, "vidclass's own")
    assert not unnamed(in_src, own), "environment.md lacks " + ", ".join(unnamed(in_src, own))


def test_every_variable_listed_is_still_read_somewhere():
    """A name the page lists is read by the package, or by the scripts and tests that
    the page says read it (install.sh, tests/, benchmarks/); none is a leftover."""
    page = ENVIRONMENT.read_text(encoding="utf-8")
    in_src = {n for text in source_texts().values() for n in NAME.findall(text)}
    others = [ROOT / "install.sh", *ROOT.glob("tests/*.py"), *ROOT.glob("benchmarks/*.py")]
    elsewhere = {
        n
        for path in others
        if path.is_file() and path.name != Path(__file__).name
        for n in NAME.findall(path.read_text(encoding="utf-8"))
    }
    listed = set(NAME.findall(page))
    assert "VIDCLASS_TEST_VIDEOS" in listed
    assert not listed - in_src - elsewhere, listed - in_src - elsewhere
    outside = section(ENVIRONMENT, "Outside vidclass itself")
    assert not unnamed(listed - in_src, outside)


def test_other_programs_variables_vidclass_reads_or_sets_are_listed():
    """Names the package reads from or puts into an environment (os.environ on the
    same line, and the allocator's variables for Ray actors) are on the page."""
    found = set()
    for text in source_texts().values():
        for line in text.splitlines():
            if "environ" in line or "getenv" in line:
                found |= set(re.findall(r'"([A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+_?)"', line))
    from vidclass.cpu import allocator_env

    found |= set(allocator_env())
    found = {n.upper() for n in found if not n.startswith("VIDCLASS_")}
    assert {"XDG_CACHE_HOME", "RAY_ADDRESS", "MALLOC_ARENA_MAX", "HTTPS_PROXY"} <= found
    page = named(ENVIRONMENT.read_text(encoding="utf-8"))
    assert not found - page, f"environment.md lacks {sorted(found - page)}"


def test_the_limits_defaults_on_the_page_are_the_code_s(monkeypatch):
    from vidclass import limits

    own = section(ENVIRONMENT, "vidclass's own")
    for name in ("VIDCLASS_MAX_FRAME_PIXELS", "VIDCLASS_MAX_FRAME_MB", "VIDCLASS_MAX_WINDOWS"):
        monkeypatch.delenv(name, raising=False)
    rows = {r.split("|")[1].strip(" `"): r.split("|")[2] for r in own.splitlines() if "|" in r}
    assert str(limits.max_frame_pixels()) in rows["VIDCLASS_MAX_FRAME_PIXELS"]
    assert str(limits.max_frame_bytes() >> 20) in rows["VIDCLASS_MAX_FRAME_MB"]
    assert str(limits.max_windows()) in rows["VIDCLASS_MAX_WINDOWS"]


# -- file-formats.md: the formats' names and the page's own examples -------------------


def test_the_results_section_names_every_results_extension_and_the_parquet_files():
    from vidclass.batch import parquet_folder
    from vidclass.batch.stores import FORMATS as EXTENSIONS

    results = section(FORMATS, "Results files")
    spans = named(results)
    for extension in EXTENSIONS:
        assert any(s.endswith(extension) for s in spans), extension
    assert parquet_folder.MARKER in spans
    assert parquet_folder.part_name(["a.mp4"]).startswith("part-")


def test_the_parquet_folder_s_marker_and_columns_are_named(tmp_path):
    pytest.importorskip("pyarrow", reason="Parquet results need pyarrow (the ray extra)")
    import pyarrow.parquet as pq

    from vidclass.batch.parquet_folder import MARKER, ParquetFolder, PartWriter
    from vidclass.results import VideoResult

    folder = ParquetFolder(tmp_path / "results", "i3d.kinetics400", 2)
    try:
        marker = json.loads((tmp_path / "results" / MARKER).read_text())
        PartWriter(str(folder.path), folder.model, 2)(
            [
                VideoResult("a.mp4", [{"label": "x", "score": 0.9}, {"label": "y", "score": 0.1}]),
                VideoResult("b.mp4", error="b.mp4: not a readable video"),
            ]
        )
    finally:
        folder.close()
    (part,) = (tmp_path / "results").glob("part-*.parquet")
    columns = pq.read_table(part).column_names
    assert pq.read_table(tmp_path / "results").num_rows == 2  # the folder reads as one table
    assert columns[:3] == ["video", "model", "error"]
    results = section(FORMATS, "Results files")
    assert not unnamed(marker, results)
    assert not unnamed(columns, results)


def test_the_model_folder_example_is_a_model_folder_vidclass_reads(tmp_path):
    from vidclass.models import folder_config

    text = section(FORMATS, "Model folders")
    example = blocks(text, "json")[0]
    (tmp_path / folder_config.CONFIG).write_text(example)
    entry = folder_config.read_entry(tmp_path)
    assert entry.labels == ("bench_pressing", "squat")
    assert entry.input.num_frames == 64
    config = json.loads(example)
    assert config["format"] == folder_config.FORMAT
    for name in (
        folder_config.CONFIG,
        folder_config.HEAD_WEIGHTS,
        folder_config.BACKBONE_WEIGHTS,
        folder_config.TRAINED_ON,
    ):
        assert name in named(text), name


def test_the_export_manifest_example_passes_the_checks_a_load_makes(tmp_path):
    from vidclass.models import exported

    text = section(FORMATS, "Exported folders")
    assert exported.MANIFEST in named(text)
    example = next(b for b in blocks(text, "json") if '"vidclass-export"' in b)
    (tmp_path / exported.MANIFEST).write_text(example)
    manifest = exported.read_manifest(tmp_path)  # types, names, digests' form, clip shape
    assert manifest["version"] == exported.VERSION
    assert not unnamed(manifest, text)
    assert not unnamed(manifest["made"], text)


def test_the_training_data_examples_read_as_the_page_says(tmp_path):
    from vidclass.label_choice import read_labels_file
    from vidclass.training import load_dataset

    text = section(FORMATS, "Training data files")
    (tmp_path / "data.csv").write_text(blocks(text, "csv")[0])
    table = load_dataset(tmp_path / "data.csv")
    assert table.labels == ("bench_pressing", "squat") and not table.multi_label
    assert sorted(s.split for s in table.samples) == ["train", "train", "val", "val"]
    (tmp_path / "data.jsonl").write_text(blocks(text, "json")[0])
    lines = load_dataset(tmp_path / "data.jsonl")
    assert lines.multi_label and lines.samples[0].labels == ("running", "outdoor")
    assert lines.samples[1].split == "val"

    lists = section(FORMATS, "Video lists and label files")
    listed, labels = blocks(lists, "text")
    (tmp_path / "clips.txt").write_text(listed)
    (tmp_path / "labels.txt").write_text(labels)
    from vidclass.batch.sources import LIST_EXTENSIONS, expand_inputs

    assert expand_inputs([str(tmp_path / "clips.txt")]) == [
        str(tmp_path / "2024" / "concert.mp4"),
        "/mnt/archive/party.mkv",
    ]
    assert read_labels_file(tmp_path / "labels.txt")[0] == "squat"
    assert all(extension in named(lists) for extension in LIST_EXTENSIONS)


# -- file-formats.md: what the code really writes --------------------------------------


def test_a_gallery_s_tables_columns_meta_and_exports_are_named(tmp_path):
    from vidclass.gallery import Gallery, VideoRecord, indexing, vector_index
    from vidclass.gallery import gallery as gallery_module

    db = tmp_path / "gallery.sqlite"
    with Gallery(db) as g:
        g.store.put(
            VideoRecord(
                "/v/a.mp4",
                "ab" * 32,
                10,
                0.0,
                "i3d.kinetics400",
                5.0,
                320,
                240,
                tags=[{"label": "tai chi", "score": 0.9}],
                segments=[{"start": 0.0, "end": 2.0, "label": "tai chi", "score": 0.8}],
                tags_from="its middle clip",
            )
        )
        exported = g.export()
        moments_file = g.moments().path.name
    conn = sqlite3.connect(db)
    tables = [
        name
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if name != "sqlite_sequence" and not name.startswith("labels_fts_")
    ]
    columns = {t: [r[1] for r in conn.execute(f'PRAGMA table_info("{t}")')] for t in tables}
    conn.close()
    text = section(FORMATS, "Galleries")
    assert {"meta", "videos", "tags", "moments"} <= set(tables)
    assert not unnamed(tables, text)
    for table, names in columns.items():
        assert not unnamed(names, text), (table, unnamed(names, text))
    meta_keys = [
        "model",
        gallery_module.TEXT_MODEL,
        indexing.MOMENT_SECONDS,
        vector_index.INDEX_FILE,
        vector_index.SAVED_AT,
    ]
    assert not unnamed(meta_keys, text)
    assert moments_file == "gallery.sqlite.moments.usearch" and moments_file in named(text)
    (record,) = exported
    assert not unnamed(record, text)
    assert not unnamed(record["tags"][0], text) and not unnamed(record["segments"][0], text)
    with cli_in_process() as main:
        assert main(["export", str(tmp_path / "gallery.csv"), "--db", str(db)]) == 0
    with open(tmp_path / "gallery.csv", newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    assert header == list(record)  # the CSV has the JSON's fields, in its order


@pytest.fixture(scope="module")
def results_files(tmp_path_factory):
    """Results of one video and one that fails, written through the Python API into
    each results format (the model loads once, for all three)."""
    folder = tmp_path_factory.mktemp("results")
    inputs = [str(video("arm_wrestling.mp4")), str(video("odd/not_a_video.mp4"))]
    for name in ("results.jsonl", "results.csv", "results.sqlite"):
        summary = vidclass.classify_batch(inputs, folder / name, top_k=2, workers=0)
        assert (summary.succeeded, summary.failed) == (1, 1)
    return folder


@pytest.mark.slow
def test_every_field_of_the_jsonl_results_is_named(results_files):
    records = [json.loads(line) for line in (results_files / "results.jsonl").open()]
    assert sorted(records[0]) != sorted(records[1])  # a result and an error
    keys = {k for r in records for k in r}
    keys |= {k for r in records for p in r.get("predictions", []) for k in p}
    assert {
        "video",
        "model",
        "predictions",
        "ood_score",
        "unknown",
        "error",
        "label",
        "score",
    } == keys
    assert not unnamed(keys, section(FORMATS, "Results files"))


@pytest.mark.slow
def test_every_column_of_the_csv_results_is_named(results_files):
    with open(results_files / "results.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    assert len(rows) == 3 and all(len(r) == len(header) for r in rows)
    assert header[-2:] == ["label_2", "score_2"]
    assert not unnamed(header, section(FORMATS, "Results files"))


@pytest.mark.slow
def test_every_column_of_the_sqlite_results_is_named(results_files):
    conn = sqlite3.connect(results_files / "results.sqlite")
    tables = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    columns = [r[1] for r in conn.execute("PRAGMA table_info(results)")]
    errors = conn.execute("SELECT count(*) FROM results WHERE error IS NOT NULL").fetchone()
    conn.close()
    assert tables == ["results"] and errors == (1,)
    text = section(FORMATS, "Results files")
    assert not unnamed(tables + columns, text)


@pytest.mark.slow
def test_every_field_of_a_timeline_is_named():
    from vidclass.formats import timeline_csv

    tl = vidclass.timeline(video("arm_wrestling.mp4"), stride=4.0, top_k=2)
    as_dict = tl.as_dict()
    assert as_dict["windows"] and as_dict["segments"] and as_dict["predictions"]
    keys = set(as_dict)
    for part in ("windows", "segments", "predictions"):
        keys |= set(as_dict[part][0])
    keys |= set(as_dict["windows"][0]["predictions"][0])
    for segments in (False, True):
        keys |= set(timeline_csv(tl, segments).splitlines()[0].split(","))
    text = section(FORMATS, "Results files")
    assert not unnamed(keys, text)


@pytest.mark.slow
def test_every_field_of_a_live_run_and_its_log_is_named(tmp_path, capsys):
    """`vidclass watch` over a finished MPEG-TS file (followed until it stops growing):
    the JSON lines and CSV rows it prints, and the lines `--output` appends."""
    from tests.streams import push
    from vidclass.live.capture import Gap

    stream = tmp_path / "clip.ts"
    push(str(video("arm_wrestling.mp4")), str(stream), speed=1000.0)
    watch = ["watch", str(stream), "--timeout", "1", "-k", "2"]
    with cli_in_process() as main:
        jsonl = ["--format", "json", "--segments", "--output", str(tmp_path / "a.jsonl")]
        assert main([*watch, *jsonl]) == 0
        printed = capsys.readouterr().out.splitlines()
        assert main([*watch, "--format", "csv", "--output", str(tmp_path / "a.csv")]) == 0
        rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    events = [json.loads(line) for line in printed]
    kinds = [e["type"] for e in events]
    assert {"window", "segment"} <= set(kinds) and kinds[-1] == "summary", kinds
    events.append(Gap(1.0, 3.0, 2.5, "stream ended").as_dict())  # a stream that drops
    appended = [json.loads(line) for line in (tmp_path / "a.jsonl").open()]
    assert appended and {a["type"] for a in appended} == {"window"}
    with open(tmp_path / "a.csv", newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    assert header[:7] == ["video", "model", "error", "start", "end", "captured", "latency"]
    assert rows[0] == header[3:] and len(rows) > 1
    keys = {k for e in events + appended for k in e} | set(kinds) | set(header)
    keys |= {k for e in events for p in e.get("predictions", []) for k in p}
    assert not unnamed(keys, section(FORMATS, "Results files"))


@pytest.fixture(scope="module")
def trained_folder(tmp_path_factory):
    """A model trained as the page's CSV example says (two labels of two dev videos
    each, its split), with a feature cache of its own; and the videos to test it on."""
    pytest.importorskip("sklearn", reason="training needs the train extra (scikit-learn)")
    from vidclass.training import train

    root = tmp_path_factory.mktemp("train")
    for label in ("squat", "bench_pressing"):
        link_videos(root / "train" / label, [f"dev/{label}_1.mp4", f"dev/{label}_2.mp4"])
        link_videos(root / "test" / label, [f"dev/{label}_3.mp4"])
    example = blocks(section(FORMATS, "Training data files"), "csv")[0]
    (root / "data.csv").write_text(example)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VIDCLASS_FEATURE_CACHE", str(root / "features"))
        train(root / "data.csv", root / "model", workers=0)
    return root


@pytest.mark.slow
def test_every_field_of_a_trained_model_folder_is_named(trained_folder):
    from safetensors import safe_open

    folder = trained_folder / "model"
    config = json.loads((folder / "vidclass.json").read_text())
    assert (config["training"]["train_videos"], config["training"]["val_videos"]) == (2, 2)
    assert config["training"]["validation"] in section(FORMATS, "Model folders")
    keys = set(config)
    for part in ("input", "head", "training", "metrics"):
        keys |= set(config[part])
    keys |= set(config["metrics"]["validation"])
    with safe_open(folder / "head.safetensors", "np") as weights:
        tensors = set(weights.keys())
    assert {"mean", "std", "prior_weight"} <= tensors
    files = {p.name for p in folder.iterdir()}
    text = section(FORMATS, "Model folders")
    assert not unnamed(keys, text)
    assert not unnamed(tensors, text)
    assert not unnamed(files, text)


@pytest.mark.slow
def test_every_field_of_an_evaluation_report_is_named(trained_folder):
    from vidclass.training import evaluate

    report = evaluate(
        str(trained_folder / "model"), trained_folder / "test", runtime="torch", workers=0
    )
    assert report["used_in_training"] == 0
    keys = set(report)
    for part in ("macro", "top_k", "confusion_matrix"):
        keys |= set(report[part])
    keys |= {k for row in report["per_class"] + report["videos"] for k in row}
    text = section(FORMATS, "Training data files")
    assert not unnamed(keys, text)
