"""Run a plain function or generator on a QThread; its progress, yields and result become signals.

:meth:`JobRunner.run` runs a task (unetgui/tasks/) as ``fn(*args, **kwargs)``, adding ``progress``,
``cancel`` and ``emit`` (a thread-safe callback that emits ``item``) when ``fn`` takes parameters of those
names; :meth:`JobRunner.start` calls ``fn(progress, cancel)``. Either may return a value or be a generator
(each yielded item is emitted as ``item``, and what it returns as ``finished``). :class:`~unetgui.core.errors.Cancelled` becomes ``cancelled``;
any other exception becomes ``failed`` with a readable message, never a dead UI. The thread quits from
inside itself, so waiting for it from the GUI thread cannot deadlock (see TOOLCHAIN: QThread pitfalls).
"""

from __future__ import annotations

import inspect
import time
from typing import Any, Callable

import shiboken6
from PySide6.QtCore import QObject, QThread, Signal, Slot

from unetgui.core import crashlog
from unetgui.core.errors import Cancelled, UnetguiError
from unetgui.core.progress import CancelToken, run_to_end

WorkFn = Callable[..., Any]


class Job(QObject):
    """One unit of background work; lives in its worker thread while it runs."""

    progress = Signal(int, int, str)
    item = Signal(object)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    done = Signal()  # after any of finished / failed / cancelled

    def __init__(self, fn: WorkFn, name: str = "job", args: tuple = (), kwargs: dict | None = None,
                 plain: bool = True) -> None:
        super().__init__()
        self.fn, self.name, self.args, self.kwargs, self.plain = fn, name, args, dict(kwargs or {}), plain
        self.token = CancelToken()

    def _call(self):
        progress = lambda d, t, m="": self.progress.emit(int(d), int(t), str(m))  # noqa: E731
        if self.plain:
            return self.fn(progress, self.token)
        accepted = inspect.signature(self.fn).parameters
        extra = {"progress": progress, "cancel": self.token, "emit": self.item.emit}
        return self.fn(*self.args, **self.kwargs, **{k: v for k, v in extra.items() if k in accepted})

    def cancel(self) -> None:
        self.token.set()

    @Slot()
    def run(self) -> None:
        try:
            out = self._call()
            if inspect.isgenerator(out):
                out = run_to_end(out, self.item.emit)  # each yield as an item; then what the generator returned
            self.finished.emit(out)
        except Cancelled:
            self.cancelled.emit()
        except UnetguiError as exc:
            self.failed.emit(str(exc))
        except MemoryError:
            self.failed.emit(f"{self.name}: out of memory; close other programs or use a smaller input")
        except Exception as exc:  # a bug: report it readably (the traceback in a log file), keep the app alive
            self.failed.emit(f"{self.name} failed: {crashlog.report(exc, self.name)}")
        finally:
            self.done.emit()
            QThread.currentThread().quit()


class JobRunner(QObject):
    """Starts jobs on their own threads and keeps them alive until they end; cancels them on close."""

    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._running: dict[Job, QThread] = {}

    def start(self, fn: WorkFn, name: str = "job", *, on_finished: Callable | None = None,
              on_failed: Callable | None = None, on_progress: Callable | None = None, on_item: Callable | None = None,
              on_cancelled: Callable | None = None, on_done: Callable | None = None) -> Job:
        """Run ``fn(progress, cancel)`` on a new thread; the handlers are connected before it starts and
        are called on the GUI thread."""
        return self._start(Job(fn, name), on_finished, on_failed, on_progress, on_item, on_cancelled, on_done)

    def run(self, name: str, fn: WorkFn, *args: Any, on_finished: Callable | None = None,
            on_failed: Callable | None = None, on_progress: Callable | None = None, on_item: Callable | None = None,
            on_cancelled: Callable | None = None, on_done: Callable | None = None, **kwargs: Any) -> Job:
        """Run the task ``fn(*args, **kwargs)`` on a new thread (see the module docstring); the handlers are
        called on the GUI thread."""
        return self._start(Job(fn, name, args, kwargs, plain=False), on_finished, on_failed, on_progress, on_item,
                           on_cancelled, on_done)

    def _start(self, job: Job, on_finished, on_failed, on_progress, on_item, on_cancelled, on_done) -> Job:
        # plain callables connected to a worker's signal would run in the worker thread: a relay QObject
        # living in the GUI thread receives the signals (queued) and calls the handlers there
        relay = _Relay(self, on_finished, on_failed, on_progress, on_item, on_cancelled, on_done)
        job.finished.connect(relay.finished)
        job.failed.connect(relay.failed)
        job.progress.connect(relay.progress)
        job.item.connect(relay.item)
        job.cancelled.connect(relay.cancelled)
        job.done.connect(relay.done)
        job.relay = relay
        thread = QThread()
        thread.setObjectName(job.name)
        job.moveToThread(thread)
        thread.started.connect(job.run)
        thread.finished.connect(lambda j=job: self._forget(j))
        self._running[job] = thread
        thread.start()
        self.busy_changed.emit(True)
        return job

    def _forget(self, job: Job) -> None:
        thread = self._running.pop(job, None)
        if thread is not None:
            thread.deleteLater()
        # a runner closed with its window (after shutdown() waited for the thread) took the relay with it; the
        # thread's "finished" still arrives afterwards
        for obj in (job.relay, job):
            if shiboken6.isValid(obj):
                obj.deleteLater()
        if not self._running and shiboken6.isValid(self):
            self.busy_changed.emit(False)

    @property
    def busy(self) -> bool:
        return bool(self._running)

    def running_names(self) -> list[str]:
        return [job.name for job in self._running]

    def cancel_all(self) -> None:
        for job in list(self._running):
            job.cancel()

    def shutdown(self, timeout_ms: int | None = None) -> bool:
        """Cancel every job and wait for its thread (``None``: until it ends; work that cannot be
        cancelled, such as reading one file, always ends). True when all stopped. A thread still running
        after the timeout stays referenced, so Qt never destroys a running thread."""
        self.cancel_all()
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        ok = True
        for job, thread in list(self._running.items()):  # one deadline for all, not one per thread
            left = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            finished = thread.wait() if left is None else thread.wait(left)
            if finished:
                self._running.pop(job, None)
            ok &= finished
        return ok


class _Relay(QObject):
    """Calls a job's handlers on the GUI thread."""

    def __init__(self, parent: QObject, *handlers: Callable | None) -> None:
        super().__init__(parent)
        self._handlers = handlers

    def _call(self, index: int, *args: Any) -> None:
        handler = self._handlers[index]
        if handler is not None:
            handler(*args)

    @Slot(object)
    def finished(self, value: Any) -> None:
        self._call(0, value)

    @Slot(str)
    def failed(self, message: str) -> None:
        self._call(1, message)

    @Slot(int, int, str)
    def progress(self, done: int, total: int, message: str) -> None:
        self._call(2, done, total, message)

    @Slot(object)
    def item(self, value: Any) -> None:
        self._call(3, value)

    @Slot()
    def cancelled(self) -> None:
        self._call(4)

    @Slot()
    def done(self) -> None:
        self._call(5)
