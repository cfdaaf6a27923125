"""engine.ahead.Ahead: an iterator's items made in a thread ahead of the caller (shared
windows decode a video's next steps while the model runs), with the caller's time
limits and errors where they would have come."""

from __future__ import annotations

import itertools
import time

import pytest

from vidclass.engine.ahead import Ahead
from vidclass.errors import VidclassError
from vidclass.limits import TimeLimitExceeded, check_time, time_limit


def _counted(items, made: list, closed: list, wait: float = 0.0):
    """Yields `items`, noting each one made and whether it was closed; each takes `wait`
    seconds, checking the time limit as decoding does."""
    try:
        for item in items:
            time.sleep(wait)
            check_time()
            made.append(item)
            yield item
    finally:
        closed.append(True)


def test_ahead_gives_the_items_in_order_making_at_most_depth_before_they_are_taken():
    made, closed = [], []
    ahead = Ahead(_counted(range(10), made, closed), depth=2)
    assert next(ahead) == 0
    time.sleep(0.3)  # the thread fills the queue, then one more waits to be put
    assert len(made) <= 4
    assert list(ahead) == list(range(1, 10))
    with pytest.raises(StopIteration):
        next(ahead)
    assert closed == [True]


def test_ahead_raises_an_item_s_error_where_it_would_have_been_taken():
    def failing():
        yield 1
        raise VidclassError("damaged packet")

    ahead = Ahead(failing(), depth=2)
    assert next(ahead) == 1
    with pytest.raises(VidclassError, match="damaged packet"):
        next(ahead)
    with pytest.raises(StopIteration):
        next(ahead)


def test_ahead_counts_only_the_time_spent_making_items_against_its_limit():
    made, closed = [], []
    slow = Ahead(_counted(range(100), made, closed, wait=0.05), 2, timeout=0.3, what="v.mp4")
    with pytest.raises(TimeLimitExceeded, match=r"v.mp4 took over 0.3 s"):
        list(slow)
    # Waiting for the caller does not count: 4 items at 0.05 s each, taken slowly.
    ahead = Ahead(_counted(range(4), [], [], wait=0.05), 1, timeout=1.0)
    taken = []
    for item in ahead:
        time.sleep(0.4)
        taken.append(item)
    assert taken == [0, 1, 2, 3]


def test_ahead_works_under_the_caller_s_time_limit_and_stops_when_closed():
    def checked():
        while True:
            time.sleep(0.01)
            check_time()  # the caller's deadline holds in the thread
            yield 1

    with time_limit(0.2, "the request"):
        ahead = Ahead(checked(), 2)
    with pytest.raises(TimeLimitExceeded, match="the request took over 0.2 s"):
        list(ahead)
    made, closed = [], []
    ahead = Ahead(_counted(itertools.count(), made, closed), 2)
    next(ahead)
    ahead.close()
    time.sleep(0.5)
    assert closed == [True] and len(made) <= 5


def test_ahead_dropped_unclosed_stops_its_thread():
    import gc

    made, closed = [], []
    ahead = Ahead(_counted(itertools.count(), made, closed), 2)
    next(ahead)
    del ahead
    gc.collect()
    time.sleep(0.5)
    assert closed == [True] and len(made) <= 5
