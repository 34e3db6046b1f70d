"""Intensity normalisation and in-plane resampling, stored in the checkpoint so inference repeats them.

* CT (``mode="ct"``): clip to a wide HU window taken from the training foreground (its 0.5-99.5
  percentiles, at least 400 HU wide), then z-score with the foreground's mean/std: one global
  normalisation for all CTs, as nnU-Net does.
* Everything else (``mode="per_volume"``: MR, microscopy, photos): clip each volume to its own
  0.5-99.5 percentiles, then z-score with that volume's mean/std (MR intensities have no absolute scale).
* ``working_size``: when set, slices are resized so that their longer side has this many pixels
  (images bilinear, labels nearest); predictions are resized back to the original grid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import cv2
import numpy as np

from unetgui.core import limits
from unetgui.core.errors import UnetguiError
from unetgui.core.memory import release

MODES = ("ct", "per_volume")
#: narrowest CT window (HU) the training foreground may set; keeps some context around the structure
MIN_CT_WINDOW = 400.0


@dataclass(frozen=True)
class Preprocessing:
    mode: str = "per_volume"
    window: tuple[float, float] = (-1000.0, 1000.0)  # CT clip window, HU
    mean: float = 0.0  # CT statistics, set by fit_statistics
    std: float = 1.0
    percentiles: tuple[float, float] = (0.5, 99.5)  # per-volume clip
    working_size: int | None = None
    axis: int = 0  # the planes the model works on: 0 axial, 1 coronal (z, x), 2 sagittal (z, y)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UnetguiError(f"preprocessing mode must be one of {MODES}, got {self.mode!r}")
        if not (np.isfinite(self.std) and self.std > 0 and np.isfinite(self.mean)):
            raise UnetguiError("preprocessing mean/std must be finite and std positive")
        if not (self.window[0] < self.window[1]) or not all(np.isfinite(self.window)):
            raise UnetguiError(f"preprocessing window must be finite with low < high, got {self.window}")
        if not 0 <= self.percentiles[0] < self.percentiles[1] <= 100:
            raise UnetguiError(f"preprocessing percentiles must satisfy 0 <= low < high <= 100, got {self.percentiles}")
        if self.axis not in (0, 1, 2):
            raise UnetguiError(f"preprocessing axis must be 0, 1 or 2, got {self.axis!r}")
        if self.working_size is not None and not 16 <= self.working_size <= limits.MAX_SIDE:
            raise UnetguiError(f"working size must be 16..{limits.MAX_SIDE} pixels, got {self.working_size}")

    @classmethod
    def for_modality(cls, modality: str, working_size: int | None = None) -> Preprocessing:
        return cls(mode="ct" if modality.upper() == "CT" else "per_volume", working_size=working_size)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Preprocessing:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise UnetguiError(f"unknown preprocessing settings in the model file: {sorted(unknown)}")
        data = dict(data)

        def number(v) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool)

        for key in ("window", "percentiles"):  # a model file is untrusted input: each field's type checked first
            if key in data:
                value = data[key]
                if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(number(v) for v in value)):
                    raise UnetguiError(f"preprocessing {key} in the model file must be two numbers")
                data[key] = tuple(float(v) for v in value)
        for key in ("mean", "std"):
            if key in data and not number(data[key]):
                raise UnetguiError(f"preprocessing {key} in the model file must be a number")
        for key in ("working_size", "axis"):
            if key in data and not (isinstance(data[key], int) and not isinstance(data[key], bool) or
                                    (key == "working_size" and data[key] is None)):
                raise UnetguiError(f"preprocessing {key} in the model file must be a whole number")
        if "mode" in data and not isinstance(data["mode"], str):
            raise UnetguiError("preprocessing mode in the model file must be text")
        return cls(**data)

    def fit_statistics(self, volumes: list[np.ndarray], labels: list[np.ndarray] | None = None) -> Preprocessing:
        """CT: window and z-score statistics from the training foreground (nnU-Net's CT scheme).

        The window is the 0.5-99.5 percentile range of the labelled voxels (labels 1..254), widened to at
        least ``MIN_CT_WINDOW`` HU around its centre; mean/std are those of the clipped foreground. Without
        foreground the default wide window and all voxels are used. Other modes are unchanged.
        """
        if self.mode != "ct" or not volumes:
            return self
        rng = np.random.default_rng(0)
        fg, everything = [], []
        for i, v in enumerate(volumes):
            flat = v.reshape(-1)
            everything.append(flat[rng.integers(0, flat.size, min(flat.size, 200_000))].astype(np.float32))
            if labels is not None:
                lab = labels[i].reshape(-1)
                idx = np.flatnonzero((lab > 0) & (lab < 255))
                if idx.size:
                    fg.append(flat[idx[rng.integers(0, idx.size, min(idx.size, 200_000))]].astype(np.float32))
                release(labels[i])
            release(v)  # a memory-mapped volume (the data set cache): read, not kept resident
        if fg:
            values = np.concatenate(fg)
            lo, hi = (float(p) for p in np.percentile(values, self.percentiles))
            if hi - lo < MIN_CT_WINDOW:
                centre = (lo + hi) / 2
                lo, hi = centre - MIN_CT_WINDOW / 2, centre + MIN_CT_WINDOW / 2
        else:
            values = np.concatenate(everything)
            lo, hi = self.window
        clipped = np.clip(values, lo, hi)
        return replace(self, window=(lo, hi), mean=float(clipped.mean()), std=float(max(clipped.std(), 1e-3)))

    def volume_stats(self, voxels: np.ndarray) -> tuple[float, float, float, float]:
        """(clip low, clip high, mean, std) for normalising ``voxels`` (one volume, any dtype)."""
        if self.mode == "ct":
            return self.window[0], self.window[1], self.mean, self.std
        rng = np.random.default_rng(0)
        flat = voxels.reshape(-1)
        sample = flat[rng.integers(0, flat.size, min(flat.size, 1_000_000))].astype(np.float32)
        lo, hi = np.percentile(sample, self.percentiles)
        clipped = np.clip(sample, lo, hi)
        return float(lo), float(hi), float(clipped.mean()), float(max(clipped.std(), 1e-6))

    def normalize(self, slices: np.ndarray, stats: tuple[float, float, float, float]) -> np.ndarray:
        """Slices ``(..., y, x)`` of one volume -> float32 normalised (no float64 on the way)."""
        lo, hi, mean, std = stats
        out = np.clip(slices.astype(np.float32), lo, hi)
        out -= np.float32(mean)
        out *= np.float32(1.0 / std)
        return out

    def working_shape(self, shape_yx: tuple[int, int]) -> tuple[int, int]:
        """In-plane size the model sees for slices of ``shape_yx``."""
        if self.working_size is None:
            return shape_yx
        f = self.working_size / max(shape_yx)
        return max(1, round(shape_yx[0] * f)), max(1, round(shape_yx[1] * f))


def resize_slices(slices: np.ndarray, shape_yx: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize ``(n, y, x)`` (or ``(y, x)``) to ``shape_yx``: area/linear for images; labels
    (``nearest=True``) take the value covering most of each output pixel, so they stay centred on the
    image (cv2's nearest picks a corner pixel and shifts labels by half an output pixel)."""
    if slices.shape[-2:] == tuple(shape_yx):
        return slices
    if slices.ndim == 2:
        return resize_slices(slices[None], shape_yx, nearest)[0]
    if nearest:
        return _resize_labels(slices, shape_yx)
    shrinking = shape_yx[0] < slices.shape[-2]
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    out = np.empty((slices.shape[0], *shape_yx), slices.dtype)
    for i, s in enumerate(slices):
        out[i] = cv2.resize(s, (shape_yx[1], shape_yx[0]), interpolation=interp)
    return out


def _resize_labels(labels: np.ndarray, shape_yx: tuple[int, int]) -> np.ndarray:
    out = np.empty((labels.shape[0], *shape_yx), labels.dtype)
    size = (shape_yx[1], shape_yx[0])
    shrinking = shape_yx[0] < labels.shape[-2]
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    for i, plane in enumerate(labels):
        values = np.unique(plane)
        if values.size == 1:
            out[i] = values[0]
            continue
        cover = np.stack([cv2.resize((plane == v).astype(np.float32), size, interpolation=interp) for v in values])
        out[i] = values[cover.argmax(axis=0)]
    return out
