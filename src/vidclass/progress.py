"""Progress bars for long work: on stderr when it is a terminal, otherwise nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

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


@contextmanager
def counted(
    desc: str | None = None, unit: str = "window", enabled=True
) -> Iterator[Callable[[int, int | None], None]]:
    """A bar for work that reports (done, total or None) as it goes, such as a timeline's
    windows; yields the function to report to."""
    with tqdm(
        total=None, desc=desc, unit=unit, leave=False, dynamic_ncols=True, disable=not enabled
    ) as bar:

        def report(done: int, total: int | None) -> None:
            if total is not None and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)
            if total is not None and done >= total:
                bar.refresh()  # the end drawn, though it came within tqdm's redraw interval

        yield report
