"""Data sources: where a task's annotated volumes come from. One interface, three kinds:

* :class:`FileSource`: image files with their label files (``--images/--labels``);
* :class:`DatasetSource`: a data set folder or manifest (``--dataset``), split by case, read once into the
  cache on disk and memory-mapped from there;
* :class:`ProjectSource`: the app's open image with its reviewed planes, and the project's other series with
  reviewed slices, their images memory-mapped from the project's cache.

A task asks a source for :class:`TrainingData` (on its worker: reading may take minutes) and never knows which
kind it got, so the CLI, the app and the benchmarks train, search and evaluate on the same path. MONAI Label's
``Datastore`` is the model; unlike it, a source hands over typed volumes, not a dict of paths.

Reading is lazy: the engine (and torch) is imported only when :meth:`DataSource.load` runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from unetgui.core.errors import UnetguiError
from unetgui.core.progress import CancelToken, ProgressFn, check
from unetgui.core.annotation import label_file_training_labels
from unetgui.core.volume import Label, LabelMap, LabelTable, Volume, default_color

if TYPE_CHECKING:
    from unetgui.engine.training_run import AnnotatedVolume
    from unetgui.project.workspace import TrainingSources


@dataclass(frozen=True)
class TrainingData:
    """What a source holds for training: the volumes (training ones first), the label table, and how the run
    must treat them. ``val_cases``: indices of the volumes that only validate (a data set's split by case;
    None: the run splits by slice). ``split``: the split by case to store in the model. ``notes``: warnings
    of the readers; ``summary``: one line on what was read."""

    volumes: list[AnnotatedVolume]
    table: LabelTable
    cache_root: str | None = None
    val_cases: tuple[int, ...] | None = None
    split: dict | None = None
    notes: tuple[str, ...] = ()
    summary: str = ""


class DataSource(Protocol):
    """Anything a training, a search or an evaluation reads annotated volumes from."""

    description: str

    def load(self, progress: ProgressFn | None = None, cancel: CancelToken | None = None,
             known: LabelTable | None = None) -> TrainingData:
        """The volumes. ``known``: the label table of a starting model (fine-tuning), which every label
        value must be in; None: the source's own table."""
        ...


def label_table(maps: list[LabelMap]) -> LabelTable:
    """The union of the label tables and of the values actually present, in value order."""
    table = LabelTable()
    for lm in maps:
        for value in sorted(set(lm.table.values) | set(lm.used_values())):
            if table.get(value) is None:
                table = table.with_label(lm.table.get(value) or Label(value, f"Label {value}", default_color(value)))
    return table


def check_table(table: LabelTable, used: set[int], known: LabelTable | None) -> None:
    """Every value in the labels must be in ``table`` (a starting model's labels cannot grow), and there must be
    a structure to learn."""
    unknown = sorted(used - set(table.values))
    if unknown:
        what = "the starting model does not segment" if known is not None else "the data set's label names do not list"
        raise UnetguiError(f"the labels contain values {unknown} that {what} (it knows {list(table.values)})"
                           + ("; train from scratch to add labels" if known is not None else ""))
    if not len(table):
        raise UnetguiError("the labels contain no structure (only background / not annotated)")


def _check_noted(table: LabelTable, used: set[int], known: LabelTable | None, notes: list[str]) -> None:
    """:func:`check_table`, its message followed by the readers' warnings, which may explain it."""
    try:
        check_table(table, used, known)
    except UnetguiError as exc:
        raise UnetguiError("; ".join([str(exc), *(f"warning: {n}" for n in notes)])) from exc


@dataclass(frozen=True)
class FileSource:
    """Image files (DICOM folder, NIfTI, NRRD, a folder of 2-D images) with one label file each, each read as
    the app reads it opened (:func:`~unetgui.core.annotation.label_file_training_labels`)."""

    images: tuple[str, ...]
    labels: tuple[str, ...]
    series: str | None = None  # the series of a DICOM folder holding several (key, UID or number)

    def __post_init__(self) -> None:
        if not self.images or len(self.images) != len(self.labels):
            raise UnetguiError(f"give one label file per image ({len(self.images)} image(s), {len(self.labels)} "
                               "label file(s))")

    @property
    def description(self) -> str:
        return ", ".join(os.path.basename(os.path.normpath(p)) for p in self.images)

    def load(self, progress: ProgressFn | None = None, cancel: CancelToken | None = None,
             known: LabelTable | None = None) -> TrainingData:
        from unetgui.engine.training_run import AnnotatedVolume
        from unetgui.formats.inputs import open_image, open_labels

        volumes, maps, notes = [], [], []
        for k, (image_path, label_path) in enumerate(zip(self.images, self.labels)):
            check(cancel)
            name = os.path.basename(os.path.normpath(image_path))
            if progress is not None:
                progress(k, len(self.images), f"loading {name}")
            image = open_image(image_path, self.series, progress=progress)
            lm, warnings = open_labels(label_path, image, known)
            notes += [f"{name}: {w}" for w in warnings]
            maps.append(lm)
            v = image.volume
            # read as the app reads an opened label file: a sparse file's voxels that are not 255, every voxel of
            # a dense file (core.annotation.label_file_annotation)
            volumes.append(AnnotatedVolume(name, v.voxels, label_file_training_labels(lm.labels), v.modality,
                                           tuple(v.spacing[1:]), float(v.spacing[0])))
        table = known if known is not None else label_table(maps)
        _check_noted(table, {v for lm in maps for v in lm.used_values()}, known, notes)
        return TrainingData(volumes, table, notes=tuple(notes))


@dataclass(frozen=True)
class DatasetSource:
    """A data set folder or manifest (formats/dataset.py), split by case with ``seed``; its training and
    validation cases go through the cache on disk (engine/cache.py) one at a time and are memory-mapped.

    The default cache, ``.unetgui-cache`` in the data set folder, must be a real folder there: a data set that
    brings it as a symbolic link (or links inside it) is refused with one line, so training never writes where a
    data set points (:func:`~unetgui.engine.cache.check_root`); ``cache`` (``--cache``), named by the user, may
    be a link. The case files themselves may be links anywhere: they are only read. nnU-Net's ignore label is
    read as 255 (not annotated: no loss) and is not in the label table. Damaged cache entries are rebuilt, and
    the stray files the reader skipped are noted (``TrainingData.notes``)."""

    path: str
    seed: int = 0
    test_fraction: float = 0.2
    cache: str | None = None  # default: .unetgui-cache in the data set folder

    def __post_init__(self) -> None:
        if not 0 <= self.test_fraction < 1:
            raise UnetguiError("the test fraction must be at least 0 and below 1")

    @property
    def description(self) -> str:
        return self.path

    def split(self):
        """(the data set, its split by case: {"train", "val", "test"} -> case indices)."""
        from unetgui.engine.data import split_cases
        from unetgui.formats.dataset import read_dataset

        dataset = read_dataset(self.path)
        return dataset, split_cases(len(dataset.cases), self.seed, [c.split for c in dataset.cases], self.test_fraction)

    def cache_root(self, dataset) -> str:
        """The cache folder of ``dataset``: ``cache`` as given, or ``.unetgui-cache`` in the data set folder
        (checked: a real folder of the data set, not a link out of it)."""
        from unetgui.engine import cache

        if self.cache:
            return self.cache
        folder = dataset.root if os.path.isdir(dataset.root) else os.path.dirname(os.path.abspath(dataset.root))
        root = os.path.join(folder, ".unetgui-cache")
        cache.check_root(root, folder)
        return root

    def load(self, progress: ProgressFn | None = None, cancel: CancelToken | None = None,
             known: LabelTable | None = None) -> TrainingData:
        from unetgui.engine import cache, distributed
        from unetgui.engine.training_run import AnnotatedVolume
        from unetgui.formats.inputs import open_image, open_labels

        dataset, splits = self.split()
        table = known if known is not None else dataset.table
        root = self.cache_root(dataset)
        recipe = f"ignore={dataset.ignore}" if dataset.ignore is not None else ""  # its voxels are stored as 255
        used = splits["train"] + splits["val"]
        volumes, values, read, notes = [], set(), 0, list(dataset.notes)
        for k, index in enumerate(used):
            check(cancel)
            case = dataset.cases[index]
            if progress is not None:
                progress(k, len(used), case.id)

            def load(case=case):
                image = open_image(case.image)
                lm, warnings = open_labels(case.label, image, table)
                notes.extend(f"{case.id}: {w}" for w in warnings)
                return (image.volume.voxels, dataset.unannotate(lm.labels), image.volume.modality,
                        tuple(image.volume.spacing[1:]))

            try:  # under torchrun rank 0 writes the entry, the others then read it
                entry, written = distributed.rank_zero_first(lambda case=case, load=load: cache.native(
                    root, case.id, [case.image, case.label], load, recipe, notes))
            except OSError as exc:
                raise self._unwritable(root, exc) from exc
            read += written
            values |= set(entry.values)
            volumes.append(AnnotatedVolume(case.id, entry.voxels, entry.labels, entry.modality or dataset.modality,
                                           entry.spacing_yx))
        if distributed.world()[0] == 0:  # the preprocessed entries: damaged ones removed (rebuilt when used), noted
            try:
                notes += cache.check_prepared(root, [f for v in volumes if (f := cache.native_folder(v.voxels))])
            except OSError as exc:
                raise self._unwritable(root, exc) from exc
        if progress is not None:
            progress(len(used), len(used), "")
        if table is None:
            table = LabelTable(tuple(Label(v, f"Label {v}", default_color(v)) for v in sorted(values)))
        _check_noted(table, values, known, notes)
        split = {"layout": dataset.layout, "cases": len(dataset.cases),
                 **{name: [dataset.cases[i].id for i in splits[name]] for name in ("train", "val", "test")}}
        summary = (f"data set {dataset.root}: {len(dataset.cases)} cases ({dataset.layout}); cache {root}: {read} "
                   f"case(s) read now, {len(used) - read} reused; split by case: {len(splits['train'])} training, "
                   f"{len(splits['val'])} validation, {len(splits['test'])} test case(s) (stored in the model)")
        return TrainingData(volumes, table, root, tuple(range(len(splits["train"]), len(volumes))), split,
                            tuple(notes), summary)

    @staticmethod
    def _unwritable(root: str, exc: OSError) -> UnetguiError:
        from unetgui.core.textsafe import printable

        return UnetguiError(f"the cache {printable(root)} cannot be written ({printable(exc.strerror or exc)}): "
                            "choose another folder for it (--cache)")


@dataclass(frozen=True)
class ProjectSource:
    """The app's document: the open image with its training labels (reviewed planes of every axis, 255
    elsewhere; core/session.py) and, with a project, its other series with reviewed slices
    (project/workspace.py), their images memory-mapped from the project's cache. ``table``: the document's
    labels."""

    volume: Volume = field(repr=False)
    labels: np.ndarray = field(repr=False)
    table: LabelTable
    project: TrainingSources | None = None
    description: str = "open image"

    @classmethod
    def of_session(cls, session, project: TrainingSources | None = None) -> ProjectSource:
        """The source of the app's open document (a copy of its training labels: the user keeps editing)."""
        if not session.is_open:
            raise UnetguiError("open an image first")
        if not session.has_training_data:
            raise UnetguiError("nothing annotated yet: paint the structure (B) and the background (Shift+B) where the "
                               "model is wrong, or mark whole slices reviewed (R)")
        return cls(session.volume, session.training_labels(), session.table, project)

    def load(self, progress: ProgressFn | None = None, cancel: CancelToken | None = None,
             known: LabelTable | None = None) -> TrainingData:
        from unetgui.engine.training_run import AnnotatedVolume

        v = self.volume
        if self.project is None:  # no project: the open image alone, in memory
            voxels, modality, spacing, others, root = v.voxels, v.modality, tuple(v.spacing[1:]), [], None
        else:  # the shown image through the project's cache, and the other series
            voxels, modality, spacing = self.project.shown_image(v)
            others, root = [AnnotatedVolume(*case) for case in self.project.others(progress, cancel)], self.project.cache_root
        volumes = [AnnotatedVolume(self.description, voxels, self.labels, modality, spacing, float(v.spacing[0])), *others]
        if known is not None:  # fine-tuning: the document's labels (names, colours as the user set them), no new values
            check_table(known, {int(x) for x in np.unique(self.labels)} - {0, 255}, known)
        return TrainingData(volumes, self.table, root)
