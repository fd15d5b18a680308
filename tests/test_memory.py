"""Handing memory back and keeping a server's long-lived objects out of collections."""

from __future__ import annotations

import gc
import weakref

from restorelab.memory import freeze_what_lives


class Node:
    """An object that can point at itself: a cycle only the cyclic collector frees."""


def cycle() -> Node:
    node = Node()
    node.me = node
    return node


def test_freezing_collects_garbage_first_leaves_the_living_out_and_still_frees_later_garbage():
    garbage = cycle()
    gone_before = weakref.ref(garbage)
    del garbage
    living = cycle()
    try:
        assert freeze_what_lives() == gc.get_freeze_count() > 0
        assert gone_before() is None  # collected, not frozen
        assert not any(o is living for o in gc.get_objects())  # out of every generation's scan
        later = cycle()
        gone_after = weakref.ref(later)
        del later
        gc.collect()
        assert gone_after() is None
    finally:
        gc.unfreeze()
    assert any(o is living for o in gc.get_objects())
