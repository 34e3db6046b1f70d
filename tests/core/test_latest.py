"""The newest reviewed slices reach a running training: no older set overwrites a newer one (issue 12, item 10)."""

from __future__ import annotations

import threading

from unetgui.core.latest import Latest


def test_put_replaces_and_take_empties():
    box: Latest[int] = Latest()
    assert box.take() is None
    box.put(1)
    box.put(2)
    assert box.take() == 2 and box.take() is None


def test_a_consumer_never_sees_an_older_value_after_a_newer_one():
    box: Latest[int] = Latest()
    taken: list[int] = []
    done = threading.Event()

    def consume() -> None:
        while not done.is_set():
            value = box.take()
            if value is not None:
                taken.append(value)
        value = box.take()
        if value is not None:
            taken.append(value)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for k in range(1, 20_001):  # the GUI thread: every review hands over the whole newer set
        box.put(k)
    done.set()
    consumer.join()
    assert taken == sorted(set(taken)) and taken[-1] == 20_000
