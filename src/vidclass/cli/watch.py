"""`vidclass watch`: labels from a camera or a stream as it plays."""

from __future__ import annotations

import json
import logging
import sys

from ..errors import VidclassError
from ..formats import UNKNOWN, csv_header, csv_line, csv_row
from .options import add_verb_options, chosen_labels

log = logging.getLogger("vidclass")

# The columns a live window adds to a result row (CSV output and --output).
LIVE_COLUMNS = ("start", "end", "captured", "latency")
SEGMENT_HEADER = ["start", "end", "label", "score", "next"]


def add(sub) -> None:
    w = sub.add_parser(
        "watch",
        help="labels from a camera or a stream as it plays",
        description="Label a live source every --stride seconds: a camera (/dev/video0), "
        "a network stream (rtsp://, rtmp://, udp://, tcp://, http(s):// and HLS), a file "
        "still being written, a named pipe, or - for standard input (ffmpeg ... -f mpegts - "
        "| vidclass watch -). When the model is slower than the stream, windows are "
        "skipped, never queued; the summary at the end (--duration, the stream's end, or "
        "Ctrl-C) counts them and gives the latency from a window's last frame to its labels.",
    )
    w.add_argument("source", metavar="SOURCE", help="a URL, a camera, a file, a pipe, or -")
    w.add_argument(
        "--segments",
        dest="show_segments",
        action="store_true",
        help="also a line when the leading label changes (CSV: only those lines)",
    )
    w.add_argument(
        "--format", choices=("table", "json", "csv"), default="table", help="output (table)"
    )
    w.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="also append each window's labels to this .jsonl or .csv file",
    )
    w.add_argument(
        "--input-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an FFmpeg option for the source, e.g. video_size=640x480 or framerate=30 for "
        "a camera (repeatable)",
    )
    add_verb_options(w, "watch", skip=("segments",))  # the session's segments: always
    w.set_defaults(run=run)


def input_options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise VidclassError(f"--input-option {pair!r}: write it as KEY=VALUE")
        options[key] = value
    return options


def run(args) -> int:
    from .. import watch

    labels = chosen_labels(args)
    store = None
    if args.output:  # a name that cannot be a live results file fails before the model loads
        from ..batch.stores import log_format, open_log

        log_format(args.output)
    try:
        session = watch(
            args.source,
            args.model,
            window=args.window,
            stride=args.stride,
            top_k=args.top_k,
            labels=labels,
            smooth=args.smooth,
            duration=args.duration,
            reconnect=args.reconnect,
            timeout=args.timeout,
            give_up=args.give_up,
            unknown=args.unknown,
            per_window=args.per_window,
            input_format=args.input_format,
            input_options=input_options(args.input_option),
            precision=args.precision,
            device=args.device,
            runtime=args.runtime,
            threads=args.threads,
        )
        model, source = session.model, session.source
        if args.output:
            store = open_log(args.output, model.identity, args.top_k, LIVE_COLUMNS)
        printer = Printer(args.format, args.top_k, args.show_segments)
        try:
            for event in session:
                printer.show(event)
                if store is not None and event.kind == "window":
                    record = {"video": source.name, "model": model.identity}
                    store.write({**record, **event.as_dict()})
        except KeyboardInterrupt:
            for event in session.close():
                printer.show(event)
        except VidclassError:
            if session.summary.frames:  # it ran before it failed: say how far
                printer.finish(session.summary)
            raise
        printer.finish(session.summary)
    finally:
        if store is not None:
            store.close()
    return 0


class Printer:
    """Events to standard output as they come, flushed line by line."""

    def __init__(self, fmt: str, top_k: int, segments: bool):
        self.fmt, self.top_k, self.segments = fmt, top_k, segments
        if fmt == "csv":
            header = SEGMENT_HEADER if segments else csv_header(top_k, LIVE_COLUMNS)[3:]
            self._out(csv_line(header))

    def _out(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def show(self, event) -> None:
        if event.kind == "segment" and not self.segments:
            return
        d = event.as_dict()
        if self.fmt == "json":
            self._out(json.dumps(d, ensure_ascii=False) + "\n")
        elif self.fmt == "csv":
            if event.kind == "window" and not self.segments:
                row = csv_row({"video": "", "model": "", **d}, self.top_k, LIVE_COLUMNS)
                self._out(csv_line(row[3:]))
            elif event.kind == "segment":
                row = [f"{d['start']:.3f}", f"{d['end']:.3f}", d["label"], f"{d['score']:.6f}"]
                self._out(csv_line([*row, d["next"] or ""]))
            elif event.kind == "gap":
                gap = f"{d['start']:.2f} s to {d['end']:.2f} s"
                log.warning(f"no frames from {gap} ({d['reason']})")
        else:
            self._out(table_line(event) + "\n")

    def finish(self, summary) -> None:
        if self.fmt == "json":
            self._out(json.dumps(summary.as_dict(), ensure_ascii=False) + "\n")
        else:
            print(summary.describe(), file=sys.stderr)


def table_line(event) -> str:
    when = f"{event.start:8.2f} {event.end:8.2f}"
    if event.kind == "window":
        labels = "  ".join(f"{p['label']} {p['score']:.3f}" for p in event.predictions)
        if event.unknown:
            labels = f"{UNKNOWN} (ood {event.ood_score:.3f})  {labels}"
        return f"{when}  {labels}  ({event.latency:.2f} s late)"
    if event.kind == "segment":
        then = f"; now {event.next}" if event.next else ""
        return f"{when}  == {event.label} {event.score:.3f}{then}"
    return f"{when}  -- lost for {event.seconds:.1f} s ({event.reason}); reconnected"
