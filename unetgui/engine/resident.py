"""Training data kept on the training device: patches drawn there, so a GPU step never waits for the host.

:class:`ResidentSampler` holds the cases' normalised images and class labels as tensors on the device (on
the CPU they share the numpy arrays' memory) with an index of every foreground voxel of the training slices.
A batch follows :class:`~engine.data.PatchSampler`'s rule (a share of the patches centred near a voxel of a
randomly chosen label of the slice, jittered by up to a quarter patch; the others anywhere; patches that
stick out of small images get image 0 and label 255 outside), but the few random numbers per patch are drawn
on the host and everything else (the voxel lookup, the patch origins, the gather of the 2.5-D context) runs
on the device: nothing is read back. :meth:`ResidentSampler.slices` gives whole slices for validation.
"""

from __future__ import annotations

import numpy as np
import torch

from unetgui.core.volume import UNANNOTATED
from unetgui.engine.data import Case, SliceRef
from unetgui.engine.device import free_gpu_bytes
from unetgui.engine.stages import context_indices, to_device

#: share of the free GPU memory the training data may take to be kept on the GPU
GPU_DATA_SHARE = 0.4


def resident_bytes(cases: list[Case]) -> int:
    """Bytes the cases take on the device: float32 images, uint8 labels, the foreground index (at most)."""
    return sum(int(np.prod(c.shape)) * (4 + 1) for c in cases) + sum(8 * len(c.annotated) * c.shape[1] * c.shape[2] // 4
                                                                       for c in cases)


def can_reside(cases: list[Case], device: torch.device) -> bool:
    """True when the cases are in memory (not memory-mapped views of the cache) and fit on ``device``."""
    if not all(type(c.image) is np.ndarray and type(c.labels) is np.ndarray for c in cases):
        return False
    if device.type == "cuda":
        return resident_bytes(cases) <= GPU_DATA_SHARE * free_gpu_bytes(device)
    return True


class ResidentSampler:
    """Random training patches ``(py, px)`` drawn on ``device`` (see the module docstring)."""

    def __init__(self, cases: list[Case], refs: list[SliceRef], patch: tuple[int, int], context: int,
                 foreground_fraction: float, seed: int, device: torch.device) -> None:
        self.patch, self.context, self.foreground_fraction, self.device = tuple(patch), context, foreground_fraction, device
        self.rng = np.random.default_rng(seed)
        self.refs = list(refs)
        self.images = [_on(c.image, device) for c in cases]
        self.labels = [_on(c.labels, device) for c in cases]
        self._case = np.asarray([c for c, _ in self.refs], np.int64)
        self._z = np.asarray([z for _, z in self.refs], np.int64)
        self._hw = np.asarray([cases[c].shape[1:] for c, _ in self.refs], np.int64).reshape(-1, 2)
        self._depth = np.asarray([cases[c].shape[0] for c, _ in self.refs], np.int64)
        # foreground index: per training slice its labels' voxels (flat y * w + x), one run per (slice, label)
        # and per partial slice (strokes, engine/data.py) one more run: its annotated voxels, where its other
        # patches are centred (a patch placed anywhere on a mostly unannotated slice would carry no loss)
        first, count, starts, sizes, flats, strokes = [], [], [], [], [], []
        total = 0
        for c, z in self.refs:
            plane = cases[c].labels[z]
            values = [v for v in np.unique(plane) if v not in (0, UNANNOTATED)]
            first.append(len(starts))
            count.append(len(values))
            runs = [plane == v for v in values]
            # a partial slice's strokes (found on the native grid) may vanish at the working size: no empty run
            stroked = z in cases[c].partial and bool((plane != UNANNOTATED).any())
            strokes.append(len(starts) + len(values) if stroked else -1)
            if stroked:
                runs.append(plane != UNANNOTATED)
            for run in runs:
                flat = np.flatnonzero(run)
                starts.append(total)
                sizes.append(flat.size)
                flats.append(flat)
                total += flat.size
        self._first, self._count = np.asarray(first, np.int64), np.asarray(count, np.int64)
        self._strokes = np.asarray(strokes, np.int64)
        self._starts, self._sizes = np.asarray(starts, np.int64), np.asarray(sizes, np.int64)
        self._voxels = torch.from_numpy(np.concatenate(flats) if flats else np.zeros(1, np.int64)).to(device)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(size, channels, py, px)`` float32 images and ``(size, py, px)`` int64 class labels (255 outside the
        image and where not annotated), on the device. The patches come grouped by case."""
        py, px = self.patch
        rng = self.rng
        r = rng.integers(len(self.refs), size=size)
        r = r[np.argsort(self._case[r], kind="stable")]  # one contiguous run per case: slices, not index lists
        h, w = self._hw[r, 0], self._hw[r, 1]
        centred = (self._count[r] > 0) & (rng.random(size) < self.foreground_fraction)
        place = np.zeros(size, np.int64)
        if len(self._starts):
            slot = np.where(centred, self._first[r] + (rng.random(size) * np.maximum(self._count[r], 1)).astype(np.int64), 0)
            place = np.where(centred, self._starts[slot] + (rng.random(size) * self._sizes[slot]).astype(np.int64), 0)
            stroke = ~centred & (self._strokes[r] >= 0)
            if stroke.any():  # (no draw without strokes: the random stream of complete slices stays as it was)
                slot = np.maximum(self._strokes[r], 0)
                place = np.where(stroke, self._starts[slot] + (rng.random(size) * self._sizes[slot]).astype(np.int64),
                                 place)
                centred = centred | stroke
        lo_y, hi_y = np.minimum(0, h - py), np.maximum(0, h - py)
        lo_x, hi_x = np.minimum(0, w - px), np.maximum(0, w - px)
        jitter_y, jitter_x = rng.integers(-(py // 4), py // 4 + 1, size), rng.integers(-(px // 4), px // 4 + 1, size)
        any_y = lo_y + (rng.random(size) * (hi_y - lo_y + 1)).astype(np.int64)
        any_x = lo_x + (rng.random(size) * (hi_x - lo_x + 1)).astype(np.int64)
        zs = np.clip(self._z[r, None] + np.arange(-self.context, self.context + 1), 0, self._depth[r, None] - 1)
        # every per-patch number in one transfer that does not wait for the device
        host = np.concatenate([np.stack([place, w, h, centred, jitter_y, jitter_x, lo_y, hi_y, lo_x, hi_x, any_y,
                                         any_x]).astype(np.int64), zs.T])
        d = to_device(torch.from_numpy(host), self.device)
        flat = self._voxels[d[0]]
        cy, cx = flat // d[1], flat % d[1]
        y0 = torch.where(d[3] > 0, torch.clamp(cy - py // 2 + d[4], d[6], d[7]), d[10])
        x0 = torch.where(d[3] > 0, torch.clamp(cx - px // 2 + d[5], d[8], d[9]), d[11])
        rows = y0[:, None] + torch.arange(py, device=self.device)
        cols = x0[:, None] + torch.arange(px, device=self.device)
        inside = ((rows >= 0) & (rows < d[2, :, None]))[:, :, None] & ((cols >= 0) & (cols < d[1, :, None]))[:, None, :]
        rows = torch.minimum(rows.clamp(min=0), d[2, :, None] - 1)
        cols = torch.minimum(cols.clamp(min=0), d[1, :, None] - 1)
        z = d[12:].T  # (size, channels)
        channels = 1 + 2 * self.context
        images = torch.empty((size, channels, py, px), dtype=torch.float32, device=self.device)
        labels = torch.empty((size, py, px), dtype=torch.int64, device=self.device)
        cases, first = np.unique(self._case[r], return_index=True)
        for c, a, b in zip(cases, first, [*first[1:], size]):  # grouped on the host: no synchronisation
            zz, rr, cc = z[a:b], rows[a:b], cols[a:b]
            images[a:b] = self.images[c][zz[:, :, None, None], rr[:, None, :, None], cc[:, None, None, :]]
            labels[a:b] = self.labels[c][zz[:, self.context, None, None], rr[:, :, None], cc[:, None, :]].long()
        images = torch.where(inside[:, None], images, 0.0)
        labels = torch.where(inside, labels, UNANNOTATED)
        return images, labels

    def slices(self, refs: list[SliceRef], context: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole slices ``refs`` of one shape: ``(n, 1 + 2 * context, y, x)`` images and ``(n, y, x)`` int64 labels."""
        images, labels = [], []
        for c, z in refs:
            index = to_device(context_indices([z], context, self.images[c].shape[0])[0], self.device)
            images.append(self.images[c][index])
            labels.append(self.labels[c][z])
        return torch.stack(images), torch.stack(labels).long()


def _on(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """``array`` as a tensor on ``device`` (on the CPU the same memory, no copy)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor if device.type == "cpu" else tensor.to(device)
