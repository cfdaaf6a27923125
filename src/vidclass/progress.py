"""Progress bars for long work: on stderr when it is a terminal, otherwise nothing."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from tqdm import tqdm


def tracked(
    items: Iterable, total: int, desc: str | None = None, unit: str = "video", enabled=True
) -> Iterator:
    """Iterate `items`, showing done, rate and ETA while `enabled`; the bar is closed
    however the loop ends."""
    with tqdm(
        items,
        total=total,
        desc=desc,
        unit=unit,
        leave=False,
        dynamic_ncols=True,
        disable=not enabled,
    ) as bar:
        yield from bar
