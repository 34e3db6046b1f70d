"""Inference as a fixed pipeline: preprocess -> forward -> postprocess, batched over slices, every stage in
torch on the model's device (engine/stages.py); only uint8 results cross to the host.

* preprocess: the slices with their 2.5-D context gathered from the volume (on a GPU the whole volume is
  uploaded once when it fits, else each batch is uploaded on a side stream while the one before computes),
  normalised with the checkpoint's scheme, resized to the working size (area averaging when shrinking);
* forward: padded to a multiple of ``2 ** depth`` (mirrored); CUDA/MPS with torch (bf16/fp16 autocast and
  channels_last on CUDA, ``torch.compile`` built in the background, engine/compiled.py); on the CPU ONNX
  Runtime when installed (fastest here, see docs/engine.md), else torch channels_last; ``inference_mode``;
  optional flip test-time augmentation; slices larger than ``tile_limit`` go through a sliding window with
  Gaussian weighting; softmax;
* postprocess: probabilities resized back to the input grid (bilinear), argmax, class index -> label value,
  uint8 quantisation and the margin uncertainty (core.ranking); copied to pinned host memory without waiting,
  so the next batch is already computing when a batch is handed over. A whole volume also gets the model's
  post-processing (engine/postprocess.py).
Results stream per batch (:meth:`Predictor.run`) so a GUI can fill the overlay as they arrive. A model
trained on coronal or sagittal planes (``Preprocessing.axis``) segments every plane along its axis; the
axial slices asked for then come in one batch at the end (progress batches before it hold no slice).
:attr:`Predictor.timings` holds the seconds spent per stage (with ``profile=True`` the GPU is synchronised
after each stage, so that they are its own; otherwise they are the host's view of asynchronous work).
"""

from __future__ import annotations

import importlib.util
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

from unetgui.core.progress import CancelToken, ProgressFn, check, report
from unetgui.core import ranking
from unetgui.core.ranking import uncertainty as margin_uncertainty
from unetgui.engine import postprocess as component_rules
from unetgui.engine import stages
from unetgui.engine.checkpoint import Checkpoint
from unetgui.engine.compiled import channels_last, compiled_forward, existing, first_report
from unetgui.engine.device import amp_dtype, configure_cuda, configure_threads, describe, free_gpu_bytes, pick_device
from unetgui.engine.unet import UNetConfig

RUNTIMES = ("auto", "torch", "onnx")
STAGES = ("upload", "preprocess", "forward", "postprocess", "download")
#: slices per batch at most on a GPU (beyond this a bigger batch gains nothing measurable, docs/engine.md)
MAX_GPU_BATCH = 64
#: share of the free GPU memory a batch's activations may take (the rest: other processes, fragmentation)
GPU_MEMORY_SHARE = 0.5
#: share of the free GPU memory the whole volume may take to be uploaded at once
VOLUME_MEMORY_SHARE = 0.25
#: a run of at least this many slices has its batch shape compiled afterwards (a whole volume, not a few slices)
COMPILE_FROM = 32


@dataclass(frozen=True)
class SliceBatch:
    """One finished batch: label values and quantised probabilities (0..255 = 0..1) per class."""

    slices: tuple[int, ...]
    labels: np.ndarray  # (n, y, x) uint8 label values
    probabilities: np.ndarray  # (n, classes, y, x) uint8
    done: int
    total: int
    eta: float  # seconds
    uncertainty: np.ndarray | None = None  # (n, y, x) uint8: 1 - margin of the two top classes (core.ranking)
    scores: np.ndarray | None = None  # (n,) float32 per-slice scores (core.ranking.slice_scores), when asked for


@dataclass
class Prediction:
    labels: np.ndarray  # (z, y, x) uint8; slices not predicted are 0
    probabilities: np.ndarray | None  # (z, classes, y, x) uint8, or None when not kept
    seconds: float
    device: str
    uncertainty: np.ndarray | None = None  # (z, y, x) uint8 0..255 (see core.ranking.uncertainty)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage (Predictor.timings)
    segmented: int = 0  # slices segmented

    @property
    def slices_per_second(self) -> float:
        return self.segmented / self.seconds if self.seconds > 0 else 0.0


def gpu_batch_size(config: UNetConfig, shape_yx: tuple[int, int], free_bytes: int, tta: bool = False,
                   native_yx: tuple[int, int] | None = None) -> int:
    """Slices per GPU batch for a model of ``config`` on padded slices of ``shape_yx`` (the input grid
    ``native_yx``, default the same): what ``GPU_MEMORY_SHARE`` of ``free_bytes`` holds, between 1 and
    ``MAX_GPU_BATCH``. A slice's activations are estimated from the widest levels: each level keeps ~6 maps of
    its width (two convolutions, their norms and activations, the skip, the concatenation), 2 bytes a value
    under autocast, the float32 softmax on top; on the input grid the raw and normalised input, the resized
    float32 probabilities, the int64 argmax and the uint8 results."""
    pixels = shape_yx[0] * shape_yx[1]
    native = pixels if native_yx is None else native_yx[0] * native_yx[1]
    per_level = sum(6 * config.base * 2**i * pixels / 4**i for i in range(config.depth + 1))
    per_slice = 2 * per_level + 4 * 2 * config.classes * pixels + 4 * config.in_channels * pixels
    per_slice *= 2 if tta else 1  # the flipped pass's probabilities are added to the first's
    per_slice += (8 * config.in_channels + 5 * config.classes + 32) * native  # argmax: ~25 B a pixel at its peak
    return int(np.clip(free_bytes * GPU_MEMORY_SHARE // per_slice, 1, MAX_GPU_BATCH))


class _Feed:
    """The volume's slices on the model's device: gathered per batch (with the 2.5-D context) from the volume
    uploaded once, or uploaded per batch by a producer thread one batch ahead (on CUDA from pinned memory on
    a side stream). ``stream``: True or False forces the choice (True on the CPU runs the producer thread
    with plain copies, which is how the tests exercise it); None decides by the free GPU memory."""

    def __init__(self, voxels: np.ndarray, device: torch.device, context: int, stream: bool | None = None) -> None:
        self.voxels, self.device, self.context = voxels, device, context
        self.depth = voxels.shape[0]
        self._resident: torch.Tensor | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._stream: torch.cuda.Stream | None = None
        self._ahead: tuple[tuple[int, ...], object] | None = None
        if device.type == "cuda":
            fits = _host(voxels[:1]).nbytes * self.depth <= VOLUME_MEMORY_SHARE * free_gpu_bytes(device)
            if not stream and (stream is False or fits):
                try:
                    self._resident = _readonly_tensor(_host(voxels)).to(device)
                except torch.cuda.OutOfMemoryError:  # another process took the memory meanwhile: stream it
                    torch.cuda.empty_cache()
            if self._resident is None:
                self._stream = torch.cuda.Stream(device)
        elif device.type != "cpu":  # MPS: one upload (unified memory)
            self._resident = _readonly_tensor(_host(voxels)).to(device)
        if self._resident is None and (device.type == "cuda" or stream):
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="upload")

    def prefetch(self, slices: list[int]) -> None:
        """Start uploading ``slices`` (the next batch) while the current one computes."""
        if self._pool is not None and slices:
            self._ahead = (tuple(slices), self._pool.submit(self._upload, list(slices)))

    def take(self, slices: list[int]) -> torch.Tensor:
        """``(n, 1 + 2 * context, y, x)`` raw voxels of ``slices`` on the device (the volume's dtype)."""
        if self._resident is not None:
            return self._resident[stages.to_device(stages.context_indices(slices, self.context, self.depth), self.device)]
        if self._pool is None:  # the CPU, reading the volume's memory directly
            return self._upload(slices)[0]
        ahead, self._ahead = self._ahead, None
        # the prefetched batch, unless the batch changed since (out of memory halves it): then upload it now
        tensor, event, host = ahead[1].result() if ahead is not None and ahead[0] == tuple(slices) else self._upload(slices)
        if event is not None:
            stream = torch.cuda.current_stream(self.device)
            stream.wait_event(event)
            tensor.record_stream(stream)  # the caching allocator must not reuse it before this stream is done
        del host  # (torch's pinned-memory allocator keeps the block until the copy has completed)
        return tensor

    def _upload(self, slices: list[int]) -> tuple[torch.Tensor, torch.cuda.Event | None, torch.Tensor]:
        host = torch.from_numpy(_host(self.voxels[stages.context_indices(slices, self.context, self.depth).numpy()]))
        if self._stream is None:
            return host, None, host
        host = host.pin_memory()
        with torch.cuda.stream(self._stream):
            tensor = host.to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self._stream)
        return tensor, event, host

    @property
    def streaming(self) -> bool:
        return self._pool is not None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._resident = None


def _readonly_tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor view of ``array`` for reading only (the document's voxels are read-only arrays; torch warns
    about those, but nothing here writes to them: they are copied to the GPU)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)


def _host(voxels: np.ndarray) -> np.ndarray:
    """A contiguous array of a dtype torch computes with (uint16/uint32 widened, others float32)."""
    voxels = np.ascontiguousarray(voxels)
    if voxels.dtype in (np.int8, np.uint8, np.int16, np.int32, np.float16, np.float32, np.float64):
        return voxels
    if voxels.dtype == np.uint16:
        return voxels.astype(np.int32)
    return voxels.astype(np.float32)


@dataclass
class _Launched:
    """A batch whose work has been queued; its uint8 results land in (pinned) host memory."""

    slices: tuple[int, ...]
    labels: torch.Tensor
    probabilities: torch.Tensor
    uncertainty: torch.Tensor
    scores: torch.Tensor | None = None
    event: torch.cuda.Event | None = None


class Predictor:
    """Segment slices with a trained model (see the module docstring for the stages)."""

    def __init__(self, checkpoint: Checkpoint, device: str = "auto", runtime: str = "auto", tta: bool = False,
                 batch_size: int | None = None, threads: int | None = None, tile_limit: int = 1024,
                 compile: bool | None = None, profile: bool = False, scores: bool = False) -> None:
        """``compile``: use ``torch.compile`` (built in the background; default: on CUDA); ``profile``:
        synchronise the GPU after each stage so that :attr:`timings` are exact (slower); ``scores``: also the
        per-slice uncertainty scores of core.ranking, computed on the device (``SliceBatch.scores``)."""
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}")
        self.checkpoint = checkpoint
        self.config = checkpoint.config
        self.pre = checkpoint.preprocessing
        self.device = pick_device(device)
        if self.device.type == "cpu":
            configure_threads(threads)
        self.tta, self.tile_limit, self.profile, self.scores = tta, tile_limit, profile, scores
        self._fixed_batch = batch_size
        self._memory_cap: int | None = None  # the batch after running out of GPU memory: never more again
        self.batch_size = batch_size or (16 if self.device.type == "cuda" else 2)
        self._values = np.asarray([0, *checkpoint.labels.values], np.uint8)
        self.model = checkpoint.build(self.device)
        self._amp = amp_dtype(self.device)
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
            configure_cuda()
        if compile is None:  # on CUDA unless the user turned it off (UNETGUI_COMPILE=0: a compiler problem)
            compile = (self.device.type == "cuda" and os.environ.get("UNETGUI_COMPILE", "1") != "0"
                       and importlib.util.find_spec("triton") is not None)  # inductor's GPU kernels need Triton
            # (not installed with torch on Windows: no attempt, and no note about a compiler the user never asked for)
        self._compile = compile
        self._session = None
        if self.device.type == "cpu" and runtime in ("auto", "onnx"):
            self._session = self._onnx_session(threads, required=runtime == "onnx")
        if self._session is None and self.device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.runtime = "onnxruntime" if self._session is not None else "torch"
        self.device_name = describe(self.device) + f", {self.runtime}"
        self.notes: list[str] = []  # what had to change on the way (out-of-memory fallbacks)
        self.timings: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.compiled_runs = 0  # batches that ran through the compiled model
        self._lut_tensor: torch.Tensor | None = None
        self._compile_shape: tuple[int, ...] | None = None  # the full batches' input shape, compiled after a run

    def _onnx_session(self, threads: int | None, required: bool):
        try:
            import onnxruntime as ort
        except ImportError:
            if required:
                raise
            return None
        from unetgui.engine import model_export  # the one ONNX export (the same graph a user exports)

        try:
            graph = model_export.to_onnx(self.checkpoint).SerializeToString()
            self._onnx_input = model_export.INPUT
        except Exception:
            if required:
                raise
            return None  # an exporter problem must not stop segmentation: torch runs instead
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    @contextmanager
    def _stage(self, name: str):
        start = time.perf_counter()
        yield
        if self.profile and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.timings[name] += time.perf_counter() - start

    # -- stages ----------------------------------------------------------------------------------
    def preprocess(self, raw: torch.Tensor, stats: tuple) -> torch.Tensor:
        """Raw voxels ``(n, channels, y, x)`` -> float32 at the working size (not yet padded), same device."""
        x = stages.normalize(raw, stats)
        return stages.resize(x, self.pre.working_shape(tuple(raw.shape[-2:])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities ``(n, classes, h, w)`` float32 for unpadded working-size input."""
        if max(x.shape[-2:]) > self.tile_limit:
            return self._forward_tiled(x)
        return self._forward_whole(x)

    def _forward_whole(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = stages.pad(x, self.config.multiple)
        probs = self._probabilities(padded)
        if self.tta:
            for dims in ((3,), (2,), (2, 3)):
                probs += self._probabilities(padded.flip(dims)).flip(dims)
            probs /= 4
        return probs[:, :, :h, :w]

    def _probabilities(self, x: torch.Tensor) -> torch.Tensor:
        if self._session is not None:
            logits = self._session.run(None, {self._onnx_input: np.ascontiguousarray(x.numpy(), np.float32)})[0]
            return torch.softmax(torch.from_numpy(logits), dim=1)
        with torch.inference_mode():
            n = x.shape[0]
            compiled = self._compiled_for((self.batch_size, *x.shape[1:]))
            if compiled is not None and 2 * n < self.batch_size:
                compiled = None  # a last batch under half full: eager, rather than computing padding
            if compiled is not None:
                self.compiled_runs += 1
            if compiled is not None and n < self.batch_size:  # a short last batch, padded to the compiled shape
                x = torch.cat([x, x[-1:].expand(self.batch_size - n, *x.shape[1:])])
            if compiled is not None:
                x = channels_last(x)  # the layout the graph was compiled for, whatever x's strides
            elif self.device.type != "mps":
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=self._amp or torch.float32, enabled=self._amp is not None):
                logits = (compiled or self.model)(x)
            return torch.softmax(logits[:n].float(), dim=1)

    def _compiled_for(self, shape: tuple[int, ...]):
        """The compiled model once it is ready for ``shape`` (one batch shape per model and slice size), else
        None: the eager model runs (and the shape is compiled in the background after this run)."""
        if not self._compile:
            return None
        self._compile_shape = shape
        compiled = existing(self.checkpoint, self.model, shape, self._amp)
        if compiled is not None and compiled.ready_for(shape):
            return compiled
        if compiled is not None and compiled.state == "failed" and first_report(compiled):
            self.notes.append(f"torch.compile failed, the model runs uncompiled ({compiled.error})")
        return None

    def _compile_later(self, count: int) -> None:
        """After a run of ``count`` slices: start compiling the shape it used, on a background thread
        (engine/compiled.py); not after a few slices (a slice or a range in the app: eager is quick there, and
        each compiled shape costs memory and one of the compiler's graphs)."""
        if self._compile and self._compile_shape is not None and count >= COMPILE_FROM:
            compiled_forward(self.checkpoint, self.model, self._compile_shape, self._amp)

    def _lut(self, device: torch.device) -> torch.Tensor:
        """Class index -> label value, kept on ``device`` (no copy, and so no wait, per batch)."""
        if self._lut_tensor is None or self._lut_tensor.device != device:
            self._lut_tensor = torch.from_numpy(self._values).to(device)
        return self._lut_tensor

    @property
    def _tile(self) -> int:
        """The sliding window's tile side: ``tile_limit // 2`` rounded down to a multiple of ``2 ** depth``."""
        return max(self.config.multiple, (self.tile_limit // 2) // self.config.multiple * self.config.multiple)

    def _forward_tiled(self, x: torch.Tensor) -> torch.Tensor:
        """Sliding window (tiles of ``tile_limit // 2``, half overlap), Gaussian-weighted blending."""
        n, _, h, w = x.shape
        tile = self._tile
        weight = stages.gaussian_weight(tile, x.device)
        out = torch.zeros((n, self.config.classes, h, w), dtype=torch.float32, device=x.device)
        norm = torch.zeros((h, w), dtype=torch.float32, device=x.device)
        for y0 in stages.window_starts(h, tile, tile // 2):
            for x0 in stages.window_starts(w, tile, tile // 2):
                probs = self._forward_whole(x[:, :, y0:y0 + tile, x0:x0 + tile])
                th, tw = probs.shape[-2:]
                out[:, :, y0:y0 + th, x0:x0 + tw] += probs * weight[:th, :tw]
                norm[y0:y0 + th, x0:x0 + tw] += weight[:th, :tw]
        return out / norm

    def postprocess(self, probs: torch.Tensor, shape_yx: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Label values ``(n, y, x)``, probabilities ``(n, classes, y, x)`` and uncertainty ``(n, y, x)``, all
        uint8 on the input grid, on the model's device."""
        probs = stages.resize(probs, tuple(shape_yx))
        labels = self._lut(probs.device)[stages.argmax_classes(probs)]
        quantised = stages.quantize(probs)
        return labels, quantised, stages.margin_uncertainty(quantised)

    # -- driving ---------------------------------------------------------------------------------
    def run(self, voxels: np.ndarray, slices: list[int] | None = None,
            cancel: CancelToken | None = None) -> Iterator[SliceBatch]:
        """Segment axial ``slices`` (default all) of ``voxels`` ``(z, y, x)``; yields each finished batch."""
        self.timings = dict.fromkeys(STAGES, 0.0)  # this run's
        if self.pre.axis:
            yield from self._run_across(voxels, slices, cancel)
        else:
            yield from self._run_planes(voxels, slices, cancel)

    def _run_across(self, voxels: np.ndarray, slices: list[int] | None, cancel: CancelToken | None) -> Iterator[SliceBatch]:
        """A model of coronal or sagittal planes: all its planes, then the axial ``slices`` in one batch."""
        axis = self.pre.axis
        planes = np.moveaxis(voxels, axis, 0)
        labels = np.zeros(planes.shape, np.uint8)
        probs = np.zeros((planes.shape[0], self.config.classes, *planes.shape[1:]), np.uint8)
        empty = np.zeros((0, *voxels.shape[1:]), np.uint8)
        asked, self.scores = self.scores, False  # scores rank axial slices: none for the planes (see below)
        try:
            for batch in self._run_planes(planes, None, cancel):
                labels[list(batch.slices)] = batch.labels
                probs[list(batch.slices)] = batch.probabilities
                if batch.done < batch.total:
                    yield SliceBatch((), empty, np.zeros((0, self.config.classes, *voxels.shape[1:]), np.uint8),
                                     batch.done, batch.total, batch.eta, empty)
        finally:
            self.scores = asked
        order = list(range(voxels.shape[0])) if slices is None else list(slices)
        labels = np.moveaxis(labels, 0, axis)[order]
        # (plane, class, rows, columns) -> (z, class, y, x)
        probs = np.moveaxis(np.moveaxis(np.moveaxis(probs, 1, -1), 0, axis), -1, 1)[order]
        total = planes.shape[0]
        yield SliceBatch(tuple(order), np.ascontiguousarray(labels), np.ascontiguousarray(probs), total, total, 0.0,
                         margin_uncertainty(probs))

    def _run_planes(self, voxels: np.ndarray, slices: list[int] | None,
                    cancel: CancelToken | None) -> Iterator[SliceBatch]:
        """Segment ``slices`` (default all) along the first axis of ``voxels``; yields each finished batch, one
        batch behind the GPU: batch i is handed over while batch i + 1 computes."""
        order = list(range(voxels.shape[0])) if slices is None else list(slices)
        stats = self.pre.volume_stats(voxels)
        start = time.monotonic()
        self._plan_batch(voxels.shape[1:], len(order))
        with self._stage("upload"):
            feed = _Feed(voxels, self.device, self.config.context)
        done, queued = 0, 0
        pending: _Launched | None = None
        try:
            while queued < len(order):
                check(cancel)
                batch = order[queued:queued + self.batch_size]
                try:
                    launched = self._launch(feed, batch, order[queued + len(batch):queued + 2 * len(batch)],
                                            stats, voxels.shape[1:])
                except torch.cuda.OutOfMemoryError:
                    self._out_of_memory()
                    if feed.device != self.device:
                        feed.close()
                        feed = _Feed(voxels, self.device, self.config.context)
                    continue  # the same slices again, with a smaller batch or on the CPU
                queued += len(batch)
                if pending is not None:
                    done += len(pending.slices)
                    yield self._hand_over(pending, done, len(order), start)
                pending = launched
            if pending is not None:
                yield self._hand_over(pending, len(order), len(order), start)
        finally:
            feed.close()
        self._compile_later(len(order))

    def _plan_batch(self, shape_yx: tuple[int, int], count: int) -> None:
        """On CUDA without a batch size given: as many slices as the free memory holds (``gpu_batch_size``),
        but no more than the ``count`` slices asked for need (rounded up to a power of two)."""
        if self.device.type != "cuda" or self._fixed_batch:
            return
        h, w = self.pre.working_shape(tuple(shape_yx))
        m = self.config.multiple
        padded = (self._tile, self._tile) if max(h, w) > self.tile_limit else (h + -h % m, w + -w % m)
        planned = gpu_batch_size(self.config, padded, free_gpu_bytes(self.device), self.tta, tuple(shape_yx))
        planned = 2 ** int(np.log2(planned))  # powers of two: few distinct shapes for the compiled graphs
        planned = min(planned, 1 << max(count - 1, 0).bit_length())  # one slice asked: a batch of one
        self.batch_size = min(self._memory_cap or MAX_GPU_BATCH, planned)

    @torch.inference_mode()
    def _launch(self, feed: _Feed, batch: list[int], following: list[int], stats: tuple,
                shape_yx: tuple[int, int]) -> _Launched:
        """Queue all of one batch's work on the device; its results are copied to the host without waiting."""
        with self._stage("upload"):
            raw = feed.take(batch)
            feed.prefetch(following)
        with self._stage("preprocess"):
            x = self.preprocess(raw, stats)
        with self._stage("forward"):
            probs = self.forward(x)
        with self._stage("postprocess"):
            labels, quantised, uncert = self.postprocess(probs, tuple(shape_yx))
            results = [labels, quantised, uncert]
            if self.scores:
                results.append(stages.slice_scores(uncert, labels, ranking.BAND_PX, ranking.UNCERTAIN))
        with self._stage("download"):
            if self.device.type != "cuda":
                return _Launched(tuple(batch), *(t.cpu() for t in results))
            host = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in results]
            for target, source in zip(host, results):
                target.copy_(source, non_blocking=True)
            event = torch.cuda.Event()
            event.record(torch.cuda.current_stream(self.device))
            return _Launched(tuple(batch), *host, event=event)

    def _hand_over(self, launched: _Launched, done: int, total: int, start: float) -> SliceBatch:
        with self._stage("download"):
            if launched.event is not None:
                launched.event.synchronize()
        elapsed = time.monotonic() - start
        return SliceBatch(launched.slices, launched.labels.numpy(), launched.probabilities.numpy(), done, total,
                          elapsed / done * (total - done), launched.uncertainty.numpy(),
                          None if launched.scores is None else launched.scores.numpy())

    def _out_of_memory(self) -> None:
        """GPU out of memory: halve the batch; at one slice, continue on the CPU (noted in ``notes``)."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if self.batch_size > 1:
            self.batch_size //= 2
            self._memory_cap = self.batch_size
            self._compile = False  # a graph for the new shape would need memory the GPU does not have
            self.notes.append(f"GPU out of memory: batch size reduced to {self.batch_size}")
            return
        if self.device.type == "cpu":
            raise MemoryError("out of memory while segmenting one slice on the CPU")
        self.device = torch.device("cpu")
        self.model = self.model.cpu().to(memory_format=torch.channels_last)
        self._amp = None
        self._compile = False
        self.batch_size = 2
        self.runtime = "torch"
        self.device_name = describe(self.device) + ", torch (GPU out of memory)"
        self.notes.append("GPU out of memory even for one slice: segmenting on the CPU")

    def predict(self, voxels: np.ndarray, slices: list[int] | None = None, cancel: CancelToken | None = None,
                progress: ProgressFn | None = None, keep_probabilities: bool = True, postprocess: bool = True,
                spacing: tuple[float, float, float] | None = None, annotation: np.ndarray | None = None) -> Prediction:
        """Segment and collect the whole result; a whole volume gets the model's post-processing unless
        ``postprocess`` is False. ``spacing`` ``(z, y, x)`` mm of ``voxels`` links objects across thick slices;
        ``annotation`` (label values, 255 = not annotated) is what the user drew on this volume (see
        engine/postprocess.py)."""
        start = time.monotonic()
        labels = np.zeros(voxels.shape, np.uint8)
        probs = np.zeros((voxels.shape[0], self.config.classes, *voxels.shape[1:]), np.uint8) if keep_probabilities else None
        uncert = np.zeros(voxels.shape, np.uint8)
        for batch in self.run(voxels, slices, cancel):
            labels[list(batch.slices)] = batch.labels
            uncert[list(batch.slices)] = batch.uncertainty
            if probs is not None:
                probs[list(batch.slices)] = batch.probabilities
            report(progress, batch.done, batch.total, f"segmenting: ETA {batch.eta:.0f} s")
        if postprocess and (slices is None or len(set(slices)) == voxels.shape[0]):  # a whole volume
            labels = component_rules.apply(labels, self.checkpoint.info.get("postprocessing"), spacing, annotation)
        count = voxels.shape[0] if slices is None else len(slices)
        return Prediction(labels, probs, time.monotonic() - start, self.device_name, uncert, dict(self.timings), count)
