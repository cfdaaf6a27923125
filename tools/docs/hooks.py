"""mkdocs hooks: the project's own Markdown files (benchmarks, changelog, contributing) as
pages of the site, their links to other files of the repository rewritten for it.

A page whose whole text is ``<!-- include: PATH -->`` shows PATH, a file of the repository.
Its links to files the site has as pages go to those pages; links to other files of the
repository (code, tests) become their path in code, since the site does not hold them.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INCLUDE = re.compile(r"^<!-- include: (?P<path>[\w./-]+) -->\s*$")
LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]+)\]\((?P<target>[^)\s]+)\)")
# Files of the repository that the site shows, and the page that shows each.
PAGES = {
    "README.md": "index.md",
    "benchmarks/README.md": "project/benchmarks.md",
    "CHANGELOG.md": "project/changelog.md",
    "CONTRIBUTING.md": "project/contributing.md",
}


def on_page_markdown(markdown: str, page, config, files) -> str:
    include = INCLUDE.match(markdown.strip())
    if not include:
        return markdown
    source = include["path"]
    if source not in PAGES or PAGES[source] != page.file.src_uri:
        raise ValueError(f"{page.file.src_uri}: includes {source}, which PAGES does not map")
    text = (ROOT / source).read_text(encoding="utf-8")
    return LINK.sub(lambda m: _link(m, source, page.file.src_uri), text)


def _link(match: re.Match, source: str, page: str) -> str:
    target = match["target"]
    if re.match(r"^[a-z]+:|^#", target):
        return match[0]
    path, _, anchor = target.partition("#")
    repo_path = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
    if repo_path.startswith("docs/"):
        shown = repo_path.removeprefix("docs/")
    elif repo_path in PAGES:
        shown = PAGES[repo_path]
    else:
        code = f"`{repo_path}`"
        return code if match["text"] in (repo_path, code) else f"{match['text']} ({code})"
    relative = posixpath.relpath(shown, posixpath.dirname(page))
    return f"[{match['text']}]({relative}{'#' + anchor if anchor else ''})"
