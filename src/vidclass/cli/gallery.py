"""The gallery commands: index, search, similar, tags, export."""

from __future__ import annotations

import csv
import json
import os
import sys

from ..errors import VidclassError
from .options import add_db, add_verb_options


def add(sub) -> None:
    ix = sub.add_parser(
        "index",
        help="classify a folder of videos into a searchable gallery",
        description="Classify every video under the folders given and store its tags, "
        "features, size, duration and resolution in the gallery. Reruns classify only new "
        "or changed files; moved files are recognised by content. Interrupt it at any "
        "time: each video is saved on its own.",
    )
    ix.add_argument("folders", nargs="+", metavar="DIR", help="folders (or videos) to index")
    add_db(ix)
    add_verb_options(ix, "index")

    se = sub.add_parser(
        "search",
        help="find videos in the gallery by text or tag",
        description="By text (galleries indexed with a vision-language model): rank "
        "videos by their moments nearest to the text, and print those moments with "
        "times. By tags: rank videos by tags matching the words: each word matches a tag "
        "word or its start ('guit' finds 'playing guitar'), with stems (dance, dancing) "
        "and a few synonyms (football, soccer); videos indexed with --timeline show the "
        "moments where the tag occurs.",
    )
    se.add_argument("text", metavar="TEXT", help="what to look for")
    add_db(se)
    se.add_argument("--format", choices=("table", "json"), default="table", help="output (table)")
    add_verb_options(se, "search")

    si = sub.add_parser(
        "similar",
        help="indexed videos that look like a video",
        description="The nearest indexed videos by cosine similarity of model features. "
        "VIDEO may be outside the gallery.",
    )
    si.add_argument("video", metavar="VIDEO", help="the video to match: in the gallery or not")
    add_db(si)
    si.add_argument("--format", choices=("table", "json"), default="table", help="output (table)")
    add_verb_options(si, "similar")

    tg = sub.add_parser(
        "tags",
        help="the gallery's tags with counts",
        description="Every tag of the gallery's videos, with how many videos have it.",
    )
    add_db(tg)
    tg.add_argument("--format", choices=("table", "json"), default="table", help="output (table)")

    ex = sub.add_parser(
        "export",
        help="write the gallery as CSV or JSON",
        description="The gallery's videos with their tags and scores, as CSV or JSON (not a "
        "model export: that is vidclass models export).",
    )
    add_db(ex)
    ex.add_argument(
        "out", nargs="?", metavar="FILE", help="a .csv or .json file (default: JSON on stdout)"
    )
    for name, parser in (
        ("index", ix),
        ("search", se),
        ("similar", si),
        ("tags", tg),
        ("export", ex),
    ):
        parser.set_defaults(run=run, gallery_command=name)


def _open_gallery(args, create: bool = False):
    from ..gallery import Gallery

    if not create and not os.path.isfile(args.db):
        raise VidclassError(f"{args.db}: no gallery here; make one with vidclass index DIR")
    return Gallery(args.db)


def run(args) -> int:
    with _open_gallery(args, create=args.gallery_command == "index") as gallery:
        return {
            "index": _run_index,
            "search": _run_search,
            "similar": _run_similar,
            "tags": _run_tags,
            "export": _run_export,
        }[args.gallery_command](gallery, args)


def _run_index(gallery, args) -> int:
    summary = gallery.index(
        args.folders,
        model=args.model,
        recursive=args.recursive,
        timeline=args.timeline,
        prune=args.prune,
        top_k=args.top_k,
        workers=args.workers,
        batch_size=args.batch_size,
        precision=args.precision,
        device=args.device,
        runtime=args.runtime,
        progress=sys.stderr.isatty(),
        video_timeout=args.video_timeout,
        engine=args.engine,
        ray_address=args.ray_address,
        moment=args.moment,
    )
    print(f"vidclass: {args.db}: {summary.describe()}", file=sys.stderr)
    return 1 if summary.failed else 0


def _duration(seconds) -> str:
    return "?" if seconds is None else f"{seconds:.1f} s"


def _run_search(gallery, args) -> int:
    hits = gallery.search(
        args.text,
        min_score=args.min_score,
        label=args.label,
        min_duration=args.min_duration,
        max_duration=args.max_duration,
        limit=args.limit,
        by=args.by,
        known_only=args.known_only,
    )
    if args.format == "json":
        json.dump([h.as_dict() for h in hits], sys.stdout, indent=2)
        print()
        return 0
    if not hits:
        print(f"no videos found for {args.text!r}", file=sys.stderr)
    for h in hits:
        tags = ", ".join(f"{t['label']} {t['score']:.2f}" for t in h.tags)
        unknown = "  unknown: outside what its model knows" if h.unknown else ""
        print(f"{h.score:.3f}  {_duration(h.duration):>9}  {h.path}{unknown}")
        if tags:  # the whole video's tags, and how they were made
            print(f"       {tags}" + (f"  (whole video: {h.tags_from})" if h.tags_from else ""))
        for m in h.moments:
            source = f"  ({m['source']})" if m.get("source") else ""
            print(
                f"       {m['start']:.1f}-{m['end']:.1f} s  {m['label']} {m['score']:.2f}{source}"
            )
    return 0


def _run_similar(gallery, args) -> int:
    found = gallery.similar(
        args.video,
        limit=args.limit,
        precision=args.precision,
        device=args.device,
        using=args.using,
    )
    if args.format == "json":
        json.dump(found, sys.stdout, indent=2)
        print()
    else:
        for f in found:
            print(f"{f['similarity']:.3f}  {f['video']}")
    return 0


def _run_tags(gallery, args) -> int:
    rows = gallery.tags()
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=2)
        print()
    else:
        for r in rows:
            print(f"{r['videos']:6d}  {r['best_score']:.2f}  {r['label']}")
    return 0


def _run_export(gallery, args) -> int:
    rows = gallery.export()
    out = args.out
    if out and not out.lower().endswith((".csv", ".json")):
        raise VidclassError(f"{out}: name a .csv or .json file")
    if out and out.lower().endswith(".csv"):
        with open(out, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(
                [
                    "video",
                    "hash",
                    "size",
                    "duration",
                    "width",
                    "height",
                    "model",
                    "tags",
                    "tags_from",
                    "ood_score",
                    "unknown",
                    "segments",
                    "error",
                ]
            )
            for r in rows:
                tags = "|".join(f"{t['label']}:{t['score']:.4f}" for t in r["tags"])
                segments = "|".join(
                    f"{s['start']:.2f}-{s['end']:.2f}:{s['label']}" for s in r["segments"]
                )
                writer.writerow(
                    [
                        r["video"],
                        r["hash"],
                        r["size"],
                        r["duration"],
                        r["width"],
                        r["height"],
                        r["model"],
                        tags,
                        r["tags_from"] or "",
                        "" if r["ood_score"] is None else f"{r['ood_score']:.6f}",
                        {None: "", True: "true", False: "false"}[r["unknown"]],
                        segments,
                        r["error"] or "",
                    ]
                )
    elif out:
        with open(out, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)
            f.write("\n")
    else:
        json.dump(rows, sys.stdout, indent=2)
        print()
    if out:
        print(f"vidclass: {len(rows)} videos written to {out}", file=sys.stderr)
    return 0
