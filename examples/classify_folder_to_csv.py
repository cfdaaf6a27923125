"""Classify every video under a folder into a CSV file, one row per video.

    python examples/classify_folder_to_csv.py VIDEOS_DIR results.csv

Run it again after an interruption: videos already in the file are skipped.
"""

import sys

import vidclass


def main(folder: str, output: str) -> int:
    summary = vidclass.classify_batch([folder], output, recursive=True, top_k=3)
    print(f"{summary.succeeded} classified, {summary.failed} failed, {summary.skipped} skipped")
    return 1 if summary.failed else 0


if __name__ == "__main__":  # decoding runs in other processes: keep this guard
    sys.exit(main(*sys.argv[1:3]))
