"""The job runner: results, progress, failures and cancel arrive on the GUI thread; no leaked threads."""

from __future__ import annotations

import threading
import time

import pytest

from unetgui.core.errors import FormatError

pytestmark = pytest.mark.gui


@pytest.fixture
def runner(qtbot):
    from unetgui.workers.jobs import JobRunner

    r = JobRunner()
    yield r
    r.shutdown()


def test_result_progress_and_items_arrive_on_the_gui_thread(qtbot, runner):
    main = threading.get_ident()
    seen = {"threads": set(), "progress": [], "items": []}

    def work(progress, cancel):
        for i in range(3):
            progress(i + 1, 3, "step")
            yield i * 10
        return "all done"

    def note(kind):
        def handler(*args):
            seen["threads"].add(threading.get_ident())
            seen[kind].append(args)
        return handler

    result = []
    runner.start(work, "gen", on_progress=note("progress"), on_item=note("items"),
                 on_finished=lambda v: (seen["threads"].add(threading.get_ident()), result.append(v)))
    qtbot.waitUntil(lambda: bool(result) and not runner.busy, timeout=10_000)
    assert result == ["all done"] and [a[0] for a in seen["items"]] == [0, 10, 20]
    assert [a[0] for a in seen["progress"]] == [1, 2, 3]
    assert seen["threads"] == {main}


def test_failures_become_messages_and_cancel_stops(qtbot, runner):
    errors, cancelled = [], []

    def bad(progress, cancel):
        raise FormatError("broken.dcm: pixel data cannot be decoded")

    def bug(progress, cancel):
        return 1 / 0

    runner.start(bad, "load", on_failed=errors.append)
    runner.start(bug, "compute", on_failed=errors.append)
    qtbot.waitUntil(lambda: len(errors) == 2 and not runner.busy, timeout=10_000)
    assert "broken.dcm" in " ".join(errors) and "ZeroDivisionError" in " ".join(errors)

    def slow(progress, cancel):
        while True:
            cancel.raise_if_set()
            time.sleep(0.01)

    job = runner.start(slow, "slow", on_cancelled=lambda: cancelled.append(True))
    job.cancel()
    qtbot.waitUntil(lambda: bool(cancelled) and not runner.busy, timeout=10_000)


def test_shutdown_stops_a_running_job(qtbot, runner):
    def slow(progress, cancel):
        while True:
            cancel.raise_if_set()
            time.sleep(0.01)

    runner.start(slow, "slow")
    assert runner.busy
    assert runner.shutdown(5_000) and not runner.busy


def test_workers_import_qtcore_only():
    import ast
    from pathlib import Path

    import unetgui.workers

    for path in Path(unetgui.workers.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("PySide6"):
                assert node.module == "PySide6.QtCore", f"{path.name} imports {node.module}"


def test_shutdown_never_drops_a_thread_that_still_runs(qtbot, runner):
    def uncancellable(progress, cancel):
        time.sleep(1.0)  # e.g. reading one large file

    runner.start(uncancellable, "read")
    assert runner.shutdown(100) is False and runner.busy  # still referenced, not destroyed
    assert runner.shutdown() is True and not runner.busy


def test_a_runner_deleted_with_its_window_while_a_job_runs_leaves_no_error(qtbot):
    """A window deleted while a job still runs takes the runner and the job's relay with it; the thread's
    "finished", which comes when the job ends, must find nothing to delete twice (it raised "Internal C++ object
    (_Relay) already deleted" in Qt's event loop, in whatever test came next)."""
    import shiboken6
    from PySide6.QtCore import QObject

    from unetgui.workers.jobs import JobRunner

    window = QObject()
    runner = JobRunner(window)
    release = threading.Event()
    job = runner.start(lambda progress, cancel: release.wait(5), "slow")
    thread = runner._running[job]
    shiboken6.delete(window)  # the window's C++ side, its runner and the job's relay with it
    assert not shiboken6.isValid(job.relay)
    release.set()
    assert thread.wait(5_000)
    qtbot.wait(200)  # pytest-qt fails the test on an exception in Qt's event loop
