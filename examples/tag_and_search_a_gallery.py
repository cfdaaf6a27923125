"""Index a folder of videos into a gallery, then find videos by tag.

    python examples/tag_and_search_a_gallery.py VIDEOS_DIR gallery.sqlite "wrestling"

Indexing again only classifies new or changed files.
"""

import sys

from vidclass import Gallery


def main(folder: str, database: str, words: str) -> int:
    with Gallery(database) as gallery:
        print(gallery.index([folder]).describe())
        for hit in gallery.search(words, limit=5):
            best = hit.tags[0] if hit.tags else {"label": "?", "score": 0.0}
            print(f"{hit.score:.3f}  {hit.path}  ({best['label']} {best['score']:.2f})")
        for tag in gallery.tags()[:5]:
            print(f"{tag['videos']:4d} videos tagged {tag['label']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
