"""Training batches from DataLoader worker processes, for cases memory-mapped from the data set cache.

On a GPU a training step takes milliseconds, and drawing the patches in the training process would keep the
GPU waiting. With ``TrainConfig.loader_workers`` > 0 (``unetgui train --workers N``) and every case
memory-mapped from the cache (engine/cache.py), each of N worker processes opens the cache's files itself,
draws whole batches with its own :class:`~unetgui.engine.data.PatchSampler` (its own seed) and hands them
over through the DataLoader's queue (pinned memory on CUDA, a few batches prefetched). What travels to a
worker is the files' paths, the label lookup table and the foreground index, never the volumes, so the
memory stays bounded also where workers are spawned rather than forked (macOS, Windows).
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from unetgui.engine import cache
from unetgui.engine.data import Case, LabelView, PatchSampler, SliceRef

PREFETCH = 4  # batches each worker keeps ready


def mapped(case: Case) -> bool:
    """True when ``case`` comes from the cache: its image and labels are memory maps of files."""
    labels = case.labels.labels if isinstance(case.labels, LabelView) else case.labels
    return bool(getattr(case.image, "filename", None) and getattr(labels, "filename", None))


class CachedBatches(IterableDataset):
    """An endless stream of ``PatchSampler.batch`` results, drawn in the worker processes."""

    def __init__(self, cases: list[Case], refs: list[SliceRef], patch: tuple[int, int], context: int,
                 foreground_fraction: float, seed: int, batch_size: int) -> None:
        super().__init__()
        self.described = []
        for case in cases:
            labels, lut = (case.labels.labels, case.labels.lut) if isinstance(case.labels, LabelView) else (case.labels, None)
            self.described.append((case.name, (str(case.image.filename), case.image.shape, case.image.dtype.str),
                                   (str(labels.filename), labels.shape, labels.dtype.str), lut, case.annotated,
                                   case.foreground, case.partial))
        self.refs, self.patch, self.context = list(refs), patch, context
        self.foreground_fraction, self.seed, self.batch_size = foreground_fraction, seed, batch_size

    def _cases(self) -> list[Case]:
        cases = []
        for name, image, labels, lut, annotated, foreground, partial in self.described:
            # reopened as the cache checked them: headers against the shapes and dtypes seen, never unpickled
            lab = cache.open_array(*labels)
            cases.append(Case(name, cache.open_array(*image), LabelView(lab, lut) if lut is not None else lab,
                              annotated, foreground, partial))
        return cases

    def __iter__(self):
        info = get_worker_info()
        worker = info.id if info is not None else 0
        sampler = PatchSampler(self._cases(), self.refs, self.patch, self.context, self.foreground_fraction,
                               self.seed + 7919 * (worker + 1))
        while True:
            yield sampler.batch(self.batch_size)


def batches(cases: list[Case], refs: list[SliceRef], patch: tuple[int, int], context: int, foreground_fraction: float,
            seed: int, batch_size: int, workers: int, device: torch.device):
    """An iterator of ``(images, labels)`` tensor batches from ``workers`` processes."""
    loader = DataLoader(CachedBatches(cases, refs, patch, context, foreground_fraction, seed, batch_size),
                        batch_size=None, num_workers=workers, pin_memory=device.type == "cuda",
                        prefetch_factor=PREFETCH, persistent_workers=True)
    return iter(loader)
