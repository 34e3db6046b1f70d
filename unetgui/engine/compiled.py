"""``torch.compile`` of a model for inference, built on a background thread so that no segmentation waits.

Compilation takes tens of seconds and pays only on a GPU (issue 13: ~1.8x the eager bf16 U-Net on an
H200; on the CPU ONNX Runtime is faster than both). So a :class:`CompiledForward` compiles for one input
shape on a daemon thread and, until that is done, the eager model runs. The ``Predictor`` asks for it when
a segmentation has finished (the GPU is then idle while the user looks at the result, and the warm-up batch
does not compete with the segmentation's for memory): the first segmentation in the app runs eager, later
ones compiled. Compiled forwards are kept per model (the same
:class:`~engine.checkpoint.Checkpoint` object) and input shape, so a new ``Predictor`` for the same model
reuses them; the shapes of one model share one copy of it. A compilation that fails (no compiler, no Triton,
an inductor error) is noted and the eager model runs on; after such a failure nothing more is compiled on
that device in this process (the compiler will not work better for the next shape).

Dynamo keeps its graphs per code object, and all U-Nets share ``UNet.forward``: past ``recompile_limit``
graphs (8 by default) it would silently run the model uncompiled while we counted it as compiled. The
warm-up raises that limit to :data:`RECOMPILE_LIMIT` and makes hitting it an error (dynamo's settings are
per thread since torch 2.12: the warm-up's thread, the only one that compiles), so such a shape is
"failed" (eager, with a note), never falsely "ready". (Graphs are shared between models of one architecture:
a retrained model of the same size and shape compiles no new graph.)
"""

from __future__ import annotations

import copy
import threading
import weakref
from typing import Callable

import torch

#: compiled forwards by (id of the checkpoint, device, dtype, input shape); entries go with their checkpoint
_CACHE: dict[tuple, CompiledForward] = {}
#: the model copy the compiled forwards of one checkpoint on one device share
_COPIES: dict[tuple, torch.nn.Module] = {}
_LOCK = threading.Lock()
#: graphs dynamo may hold for ``UNet.forward`` (its default, 8, is a few models' shapes)
RECOMPILE_LIMIT = 64
_BUILD_LOCK = threading.Lock()
#: the first error of a compiler that failed, by (backend, device type): later compilations are not tried
_BROKEN: dict[tuple[str, str], str] = {}
_REPORTED: set[str | None] = set()


def _limit_settings() -> dict:
    """Dynamo's graph limit and "fail when it is hit", by the names of this torch (before 2.7:
    ``cache_size_limit`` and ``fail_on_cache_limit_hit``)."""
    config = torch._dynamo.config
    names = (("recompile_limit", "fail_on_recompile_limit_hit") if hasattr(config, "recompile_limit")
             else ("cache_size_limit", "fail_on_cache_limit_hit"))
    return {name: value for name, value in zip(names, (RECOMPILE_LIMIT, True)) if hasattr(config, name)}


class CompiledForward:
    """The eager model until the compiled one is ready for ``shape`` (then that one for exactly that shape)."""

    def __init__(self, model: torch.nn.Module, shape: tuple[int, ...], amp: torch.dtype | None,
                 backend: str = "inductor", wait: bool = False, own_copy: bool = True) -> None:
        """``own_copy``: compile a copy of ``model`` (tracing never races the eager forward passes); False
        when ``model`` already is such a copy (shared by the shapes of one checkpoint)."""
        self.shape, self.amp, self.backend = tuple(shape), amp, backend
        self.state = "compiling"  # then "ready" or "failed"
        self.error: str | None = None
        self._compiled: Callable | None = None
        self._model = copy.deepcopy(model) if own_copy else model
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._build, name="torch.compile", daemon=True)
        self._thread.start()
        if wait:
            self._done.wait()

    def _build(self) -> None:
        try:
            compiled = torch.compile(self._model, backend=self.backend, dynamic=False)
            device = next(self._model.parameters()).device
            # one warm-up at a time: before torch 2.12 dynamo's settings were global, not per thread, and two
            # patches overlapping could restore them in the wrong order (compilations are rare: no loss)
            with _BUILD_LOCK, torch._dynamo.config.patch(**_limit_settings()), torch.inference_mode(), \
                    torch.autocast(device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
                # an inference tensor in the layout of the real inputs: the graph's guards must match them
                compiled(channels_last(torch.zeros(self.shape, device=device)))  # compiles now, on this thread
            self._compiled, self.state = compiled, "ready"
        except Exception as exc:  # noqa: BLE001 - any compiler failure leaves the eager model in charge
            self.state, self.error = "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            if "LimitHit" not in type(exc).__name__:  # not this shape's lot: the compiler itself (no C++ compiler,
                _BROKEN.setdefault((self.backend, self._device_type()), self.error)  # no Triton): no more tries
        finally:
            self._done.set()

    def _device_type(self) -> str:
        return next(self._model.parameters()).device.type

    @classmethod
    def failed(cls, shape: tuple[int, ...], amp: torch.dtype | None, backend: str, error: str) -> CompiledForward:
        """A compilation not even tried: the compiler failed before on this device."""
        self = cls.__new__(cls)
        self.shape, self.amp, self.backend, self.state, self.error, self._compiled = tuple(shape), amp, backend, "failed", error, None
        self._done = threading.Event()
        self._done.set()
        return self

    def ready_for(self, shape: tuple[int, ...]) -> bool:
        return self.state == "ready" and tuple(shape) == self.shape

    def wait(self, timeout: float | None = None) -> bool:
        """Block until compilation has ended (ready or failed); True if it has."""
        return self._done.wait(timeout)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        assert self._compiled is not None
        return self._compiled(x)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` copied into channels_last strides. ``contiguous(memory_format=channels_last)`` keeps a
    one-channel tensor's strides as they come, and a compiled graph guards on strides: one layout for all."""
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    return out.copy_(x)


def _key(owner: object, model: torch.nn.Module, shape: tuple[int, ...], amp: torch.dtype | None, backend: str) -> tuple:
    return id(owner), str(next(model.parameters()).device), str(amp), tuple(shape), backend


def compiled_forward(owner: object, model: torch.nn.Module, shape: tuple[int, ...], amp: torch.dtype | None,
                     backend: str = "inductor") -> CompiledForward:
    """The compiled forward of ``owner``'s model (e.g. its Checkpoint) for ``shape``; started on first request."""
    key = _key(owner, model, shape, amp, backend)
    with _LOCK:
        found = _lookup(key, amp)
        if found is None:
            shared = key[:2]  # (owner, device)
            if shared not in _COPIES:
                _COPIES[shared] = copy.deepcopy(model)
                weakref.finalize(owner, _COPIES.pop, shared, None)
            found = _CACHE[key] = CompiledForward(_COPIES[shared], shape, amp, backend, own_copy=False)
            weakref.finalize(owner, _CACHE.pop, key, None)
        return found


def existing(owner: object, model: torch.nn.Module, shape: tuple[int, ...], amp: torch.dtype | None,
             backend: str = "inductor") -> CompiledForward | None:
    """The compiled forward for ``shape`` if one was started, else None (nothing is started)."""
    with _LOCK:
        return _lookup(_key(owner, model, shape, amp, backend), amp)


def _lookup(key: tuple, amp: torch.dtype | None) -> CompiledForward | None:
    """The cached compiled forward of ``key``; else, where the compiler failed before on that device, a failed
    one (not cached: nothing was tried); else None. Call under ``_LOCK``."""
    found = _CACHE.get(key)
    _, device, _, shape, backend = key
    broken = _BROKEN.get((backend, torch.device(device).type))
    if found is None and broken is not None:
        return CompiledForward.failed(shape, amp, backend, broken)
    return found


def first_report(forward: CompiledForward) -> bool:
    """True the first time ``forward``'s error is reported in this process (a compiler that cannot work is
    said once, not after every segmentation)."""
    with _LOCK:
        if forward.error in _REPORTED:
            return False
        _REPORTED.add(forward.error)
        return True
