"""Label a live source as it plays, one JSON line per event.

    python examples/live_to_jsonl.py rtsp://camera.local/stream events.jsonl 60

SOURCE is a stream URL, a camera (/dev/video0), a file being written or a named pipe;
the run stops after SECONDS, or when the source ends.
"""

import json
import sys

import vidclass


def main(source: str, output: str, seconds: str = "60") -> int:
    session = vidclass.watch(source, duration=float(seconds), stride=1.0, top_k=3)
    with open(output, "a", encoding="utf-8") as out:
        for event in session:  # windows, segments, and gaps when a stream drops
            out.write(json.dumps(event.as_dict()) + "\n")
            out.flush()
    summary = session.summary
    print(f"{summary.windows} windows, {summary.skipped} skipped; ended: {summary.ended}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
