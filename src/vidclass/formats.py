"""How results are written out: the JSON shapes, the one CSV shape of a classification
result, tables, timelines. Shared by the CLI, the results files and the server."""

from __future__ import annotations

import csv
import io

from .errors import VidclassError
from .results import UNKNOWN, Timeline, VideoResult


def check_same_model(where, found, model: str) -> None:
    """Results of one model (and label choice) only in one results file or folder."""
    if found != model:
        name, _, labels = str(found).partition(" [labels: ")
        how = f"--model {name}" + (f" --labels '{labels.removesuffix(']')}'" if labels else "")
        raise VidclassError(
            f"{where} holds results of model {found!r}; resume it with {how}, "
            "or write somewhere else"
        )


def result_json(result: VideoResult) -> dict:
    """`{"video", "predictions"}` or `{"video", "error"}`: `classify --format json`,
    one line of a .jsonl results file (with "model"), and the server's answer."""
    return result.as_dict()


# A result's unknown answer (vidclass.unknown), columns before its labels.
UNKNOWN_COLUMNS = ("ood_score", "unknown")


def csv_header(top_k: int, extra: tuple[str, ...] = (), unknown: bool = True) -> list[str]:
    """One row per video: video, model, error, the `extra` columns (a live window's
    start, end...), ood_score and unknown (`unknown`: a file begun before vidclass had
    them has not), then label_i, score_i for the top k."""
    header = ["video", "model", "error", *extra, *(UNKNOWN_COLUMNS if unknown else ())]
    for i in range(1, top_k + 1):
        header += [f"label_{i}", f"score_{i}"]
    return header


def result_columns(
    record: dict, top_k: int, extra: tuple[str, ...] = (), unknown: bool = True
) -> dict:
    """The columns of `csv_header(top_k, extra, unknown)`, typed (None where empty),
    for a `{"video", "model", "predictions"|"error"}`: a CSV row and a Parquet row."""
    row = {"video": record["video"], "model": record["model"], "error": record.get("error")}
    row.update({name: record.get(name) for name in extra})
    row.update({name: record.get(name) for name in UNKNOWN_COLUMNS if unknown})
    predictions = (record.get("predictions") or [])[:top_k]
    for i in range(1, top_k + 1):
        p = predictions[i - 1] if i <= len(predictions) else None
        row[f"label_{i}"] = p["label"] if p else None
        row[f"score_{i}"] = float(p["score"]) if p else None
    return row


def csv_row(
    record: dict, top_k: int, extra: tuple[str, ...] = (), unknown: bool = True
) -> list[str]:
    """The row of `csv_header(top_k, extra, unknown)` for a record."""
    return [_cell(v) for v in result_columns(record, top_k, extra, unknown).values()]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:.6f}" if isinstance(value, float) else value


def csv_line(row: list) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(row)
    return buf.getvalue()


def predictions_table(result: VideoResult) -> str:
    """The video's name, then its labels and scores (or its error), indented."""
    lines = [result.video]
    if result.error is not None:
        lines.append(f"  error: {result.error}")
    else:
        width = max(len(p["label"]) for p in result.predictions)
        if result.unknown:  # first: what it is not sure of, then its best guesses
            width = max(width, len(UNKNOWN))
            lines.append(f"  {UNKNOWN:<{width}}  ood {result.ood_score:.3f}")
        lines += [f"  {p['label']:<{width}}  {p['score']:.3f}" for p in result.predictions]
    return "\n".join(lines) + "\n"


def timeline_csv(tl: Timeline, segments: bool) -> str:
    """Segments (start, end, label, score) or windows (start, end, ood_score, unknown,
    rank, label, score)."""
    if segments:
        rows = [["start", "end", "label", "score"]] + [
            [f"{g.start:.3f}", f"{g.end:.3f}", g.label, f"{g.score:.6f}"] for g in tl.segments
        ]
    else:
        rows = [["start", "end", *UNKNOWN_COLUMNS, "rank", "label", "score"]] + [
            [f"{w.start:.3f}", f"{w.end:.3f}", _cell(w.ood_score), _cell(w.unknown)]
            + [rank, p["label"], f"{p['score']:.6f}"]
            for w in tl.windows
            for rank, p in enumerate(w.predictions, 1)
        ]
    return "".join(csv_line(r) for r in rows)


def timeline_table(tl: Timeline, segments: bool) -> str:
    """A header, a line per segment or window, and the whole video's top labels (the mean
    of all windows) with where they come from."""
    if segments:
        lines = [f"{'start':>8} {'end':>8}  label  score"]
        lines += [f"{g.start:8.2f} {g.end:8.2f}  {g.label}  {g.score:.3f}" for g in tl.segments]
    else:
        lines = [f"{'start':>8} {'end':>8}  top labels and scores"]
        lines += [
            f"{w.start:8.2f} {w.end:8.2f}  "
            + (f"{UNKNOWN} (ood {w.ood_score:.3f})  " if w.unknown else "")
            + "  ".join(f"{p['label']} {p['score']:.3f}" for p in w.predictions)
            for w in tl.windows
        ]
    if tl.predictions:
        count = len(tl.windows)
        lines.append(
            f"whole video (mean of {count} window{'s' * (count != 1)}): "
            + (f"{UNKNOWN} (ood {tl.ood_score:.3f})  " if tl.unknown else "")
            + "  ".join(f"{p['label']} {p['score']:.3f}" for p in tl.predictions)
        )
    return "".join(line + "\n" for line in lines)
