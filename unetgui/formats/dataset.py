"""Data set folders: the cases of a whole data set, with their label names and (when given) their split.

Three layouts, recognised in this order:

* **nnU-Net / Medical Segmentation Decathlon**: ``dataset.json`` + ``imagesTr/`` + ``labelsTr/`` (NIfTI).
  Labels as nnU-Net v2 writes them (``{"background": 0, "liver": 1}``) or as the Decathlon does
  (``{"0": "background", "1": "liver"}``); images named like their labels, with nnU-Net's channel suffix
  (``liver_001_0000.nii.gz``) or without (``liver_001.nii.gz``); a Decathlon ``training`` list is followed
  when present. Only single-channel data sets are supported.
* **LiTS**: ``volume-N.nii[.gz]`` + ``segmentation-N.nii[.gz]`` in one folder.
* **A CSV manifest** (``manifest.csv`` in the folder, or the CSV file itself) with ``image`` and ``label``
  columns (paths relative to the CSV; DICOM folders, NIfTI files or image folders) and optional ``id`` and
  ``split`` (``train``, ``val`` or ``test``) columns.

Every error names the case and the file. Nothing is read but names and small JSON/CSV files: the images
are opened one at a time by whoever trains or evaluates.

Untrusted content (issue 24):

* **Numbers** in ``dataset.json`` (label values, ``numTraining``) and the case numbers of LiTS file names are
  parsed with :func:`~unetgui.core.textsafe.parse_int` (a length cap, bounds): a value of 5,000 digits is a
  one-line :class:`FormatError`, never Python's integer-conversion limit. ``dataset.json`` is read up to
  ``label_tables.MAX_DATASET_JSON_BYTES``, a manifest up to :data:`MAX_CSV_BYTES`, at most :data:`MAX_CASES` cases.
* **Text**: label names, case ids and paths from the files are kept escaped
  (:func:`~unetgui.core.textsafe.printable`), so that printing them cannot drive the terminal.
* **Links and paths**: the cases may lie anywhere, links and ``..`` included (a manifest or a Decathlon
  ``training`` list pointing at shared storage is common); unetgui only *reads* them, and refuses anything that
  is neither a regular file nor a folder (a FIFO, a device: reading them can hang). Nothing is ever written
  through them; the cache's own rule for writing is in :mod:`unetgui.engine.cache`.
* **A stray dataset.json**: only a ``dataset.json`` with ``imagesTr/`` and ``labelsTr/`` beside it makes an
  nnU-Net data set; one without them, in a LiTS folder or beside a ``manifest.csv``, is ignored with a note
  (:attr:`Dataset.notes`). A malformed ``dataset.json`` of an nnU-Net data set is a one-line error.
* **nnU-Net's ignore label** (a label named ``"ignore"``, the highest value): not a class. It is left out of
  the label table and kept in :attr:`Dataset.ignore`; :meth:`Dataset.unannotate` maps its voxels to 255
  (:data:`~unetgui.core.volume.UNANNOTATED`, no loss), as nnU-Net leaves them out of its loss.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from dataclasses import dataclass, replace

import numpy as np

from unetgui.core import limits
from unetgui.core.errors import FormatError
from unetgui.core.textsafe import parse_int, printable
from unetgui.core.volume import UNANNOTATED, Label, LabelTable, default_color
from unetgui.formats.label_tables import dataset_json_labels, read_dataset_json

SPLITS = ("train", "val", "test")
#: the most cases of one data set (LiTS: 131; the largest public sets: a few thousand)
MAX_CASES = 100_000
#: the largest dataset.json read (as formats/label_tables.py)
#: the largest CSV manifest read
MAX_CSV_BYTES = 64 << 20
_LITS = re.compile(r"^(?P<kind>volume|segmentation)-(?P<n>\d+)\.nii(?:\.gz)?$")


@dataclass(frozen=True)
class DatasetCase:
    id: str
    image: str
    label: str
    split: str = ""  # "train", "val", "test", or "" (the run splits it)


@dataclass(frozen=True)
class Dataset:
    root: str
    layout: str  # "nnunet", "lits" or "manifest"
    cases: tuple[DatasetCase, ...]
    table: LabelTable | None = None  # label names when the data set has them (the ignore label left out)
    modality: str = ""
    ignore: int | None = None  # nnU-Net's "ignore" label value: its voxels are not annotated
    notes: tuple[str, ...] = ()  # what the reader skipped (a stray dataset.json), for the user

    def find(self, case_id: str) -> DatasetCase:
        for case in self.cases:
            if case.id == case_id:
                return case
        raise FormatError(f"{printable(self.root)}: no case {printable(case_id)!r} in the data set")

    def unannotate(self, labels: np.ndarray) -> np.ndarray:
        """``labels`` (any shape, uint8) with the ignore label's voxels set to 255 (not annotated: no loss, no
        metric), as nnU-Net treats them; ``labels`` itself when the data set has no ignore label."""
        if self.ignore is None or self.ignore == UNANNOTATED:
            return labels
        return np.where(labels == self.ignore, np.uint8(UNANNOTATED), labels).astype(np.uint8, copy=False)


def read_dataset(path: str) -> Dataset:
    """The data set at ``path`` (a folder, or a CSV manifest); :class:`FormatError` with the case and file."""
    if os.path.isfile(path) and path.lower().endswith(".csv"):
        return _manifest(path)
    if not os.path.isdir(path):
        raise FormatError(f"{printable(path)}: no such data set folder")
    meta = os.path.join(path, "dataset.json")
    nnunet = all(os.path.isdir(os.path.join(path, d)) for d in ("imagesTr", "labelsTr"))
    names = os.listdir(path)
    other = os.path.isfile(os.path.join(path, "manifest.csv")) or any(_LITS.match(n) for n in names)
    notes: tuple[str, ...] = ()
    if os.path.lexists(meta) and not nnunet and other:  # a stray dataset.json: this data set does not need it
        notes = (f"{printable(meta)} ignored: no imagesTr/ and labelsTr/ beside it, so it describes no data set here",)
    elif os.path.lexists(meta):
        return _nnunet(path)
    if os.path.isfile(os.path.join(path, "manifest.csv")):
        return replace(_manifest(os.path.join(path, "manifest.csv")), notes=notes)
    if any(_LITS.match(n) for n in names):
        return replace(_lits(path, names), notes=notes)
    raise FormatError(f"{printable(path)}: not a data set folder: expected dataset.json with imagesTr/ and labelsTr/ "
                      "(nnU-Net, Decathlon), volume-N.nii.gz with segmentation-N.nii.gz (LiTS), or a manifest.csv "
                      "with image and label columns")


def _nnunet(root: str) -> Dataset:
    meta_path = os.path.join(root, "dataset.json")
    shown = printable(meta_path)
    try:
        meta = _read_json(meta_path)
        table, ignore = _table(meta, "labels")
        channels = meta.get("channel_names") or meta.get("modality") or {}
        if not isinstance(channels, dict):
            raise ValueError("channel_names / modality is not an object")
        count = meta.get("numTraining")
        if count is not None:
            if isinstance(count, bool) or not isinstance(count, (int, str)):
                raise ValueError(f"numTraining: {printable(count, 40)} is not an integer")
            count = parse_int(count, "numTraining", 0, MAX_CASES)
        listed = meta.get("training")
        if isinstance(listed, list) and len(listed) > MAX_CASES:
            raise ValueError(f"{len(listed):,} training entries, more than unetgui reads ({MAX_CASES:,})")
    except (OSError, ValueError, TypeError, AttributeError, RecursionError, FormatError) as exc:
        raise FormatError(f"{shown}: not a readable dataset.json ({printable(exc)})") from exc
    if len(channels) > 1:
        names = printable(", ".join(map(str, channels.values())))
        raise FormatError(f"{shown}: {len(channels)} input channels ({names}); unetgui trains on single-channel images")
    modality = printable(next(iter(channels.values()), ""), 40).upper()
    modality = "CT" if modality == "CT" else ("MR" if modality.startswith(("MR", "T1", "T2", "FLAIR")) else modality)
    images_dir, labels_dir = os.path.join(root, "imagesTr"), os.path.join(root, "labelsTr")
    for folder in (images_dir, labels_dir):
        if not os.path.isdir(folder):
            raise FormatError(f"{printable(root)}: {os.path.basename(folder)}/ is missing (dataset.json needs imagesTr/ "
                              "and labelsTr/)")
    if isinstance(listed, list) and listed:
        cases = []
        for i, item in enumerate(listed):
            if not isinstance(item, dict) or not all(isinstance(item.get(k), str) and item[k] for k in ("image", "label")):
                raise FormatError(f"{shown}: training entry {i + 1} has no image and label")
            image, label = (os.path.normpath(os.path.join(root, item[k])) for k in ("image", "label"))
            cases.append(DatasetCase(printable(_stem(label)), image, label))
    else:
        cases = _nnunet_listing(root, images_dir, labels_dir)
    notes = ()
    if count is not None and count != len(cases):
        notes = (f"{shown}: numTraining is {count}, but {len(cases)} case(s) are there; all of them are used",)
    return _checked(Dataset(root, "nnunet", tuple(cases), table, modality, ignore, notes))


def _nnunet_listing(root: str, images_dir: str, labels_dir: str) -> list[DatasetCase]:
    """The cases of ``labelsTr/`` with their images in ``imagesTr/`` (with or without the channel suffix)."""
    images: dict[str, str] = {}  # a case id -> its image, with and without nnU-Net's channel suffix
    for name in sorted(os.listdir(images_dir)):
        if _is_nifti(name):
            base = _stem(name)
            images.setdefault(base, os.path.join(images_dir, name))
            if re.search(r"_\d{4}$", base):
                images.setdefault(base[:-5], os.path.join(images_dir, name))
    cases = []
    for name in sorted(os.listdir(labels_dir)):
        if not _is_nifti(name):
            continue
        stem = _stem(name)
        if stem not in images:
            raise FormatError(f"{printable(root)}: case {printable(stem)}: labelsTr/{printable(name)} has no image in "
                              f"imagesTr/ ({printable(stem)}_0000.nii.gz or {printable(stem)}.nii.gz)")
        cases.append(DatasetCase(printable(stem), images[stem], os.path.join(labels_dir, name)))
    unused = sorted(set(images.values()) - {c.image for c in cases})
    if unused:
        case = re.sub(r"_\d{4}$", "", _stem(unused[0]))
        raise FormatError(f"{printable(root)}: case {printable(case)}: imagesTr/{printable(os.path.basename(unused[0]))} "
                          "has no labels in labelsTr/")
    return cases


def _read_json(path: str) -> dict:
    """The JSON object in ``path``, read as every dataset.json is (label_tables.read_dataset_json: a regular file
    of at most 16 MiB, integers of at most 100 characters)."""
    meta = read_dataset_json(path)
    if not isinstance(meta, dict):
        raise ValueError("not a JSON object")
    return meta


def _lits(root: str, names: list[str]) -> Dataset:
    found: dict[str, dict[str, str]] = {}
    numbers: dict[str, int] = {}
    for name in names:
        m = _LITS.match(name)
        if m:
            n = m.group("n")
            numbers[n] = parse_int(n, f"{printable(root)}: {printable(name)}: the case number", 0, 10**9)
            found.setdefault(n, {})[m.group("kind")] = os.path.join(root, name)
    if len(found) > MAX_CASES:
        raise FormatError(f"{printable(root)}: {len(found):,} cases, more than unetgui reads ({MAX_CASES:,})")
    cases = []
    for n in sorted(found, key=lambda n: (numbers[n], n)):
        pair = found[n]
        if "volume" not in pair or "segmentation" not in pair:
            have, lack = ("volume", "segmentation") if "volume" in pair else ("segmentation", "volume")
            raise FormatError(f"{printable(root)}: case {n}: {os.path.basename(pair[have])} has no {lack}-{n}.nii.gz")
        cases.append(DatasetCase(f"volume-{n}", pair["volume"], pair["segmentation"]))
    table = LabelTable((Label(1, "liver", default_color(1)), Label(2, "tumour", default_color(2))))
    return _checked(Dataset(root, "lits", tuple(cases), table, "CT"))


def _manifest(path: str) -> Dataset:
    root = os.path.dirname(os.path.abspath(path))
    shown = printable(path)
    try:
        if os.path.getsize(path) > MAX_CSV_BYTES:
            raise FormatError(f"{shown}: larger than {MAX_CSV_BYTES >> 20} MiB; not a manifest")
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = []
            for row in csv.DictReader(f):
                rows.append(row)
                if len(rows) > MAX_CASES:
                    raise FormatError(f"{shown}: more than {MAX_CASES:,} cases; unetgui reads at most that many")
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FormatError(f"{shown}: not a readable CSV file ({printable(exc)})") from exc
    if not rows or not {"image", "label"} <= set(rows[0]):
        raise FormatError(f"{shown}: a manifest needs a header row with image and label columns (and optionally id, split)")
    cases = []
    for i, row in enumerate(rows, start=2):  # line numbers as a spreadsheet shows them
        image, label = (_cell(row, "image"), _cell(row, "label"))
        if not image or not label:
            raise FormatError(f"{shown}, line {i}: the image or the label is empty")
        split = _cell(row, "split").lower()
        if split not in ("", *SPLITS):
            raise FormatError(f"{shown}, line {i}: split {printable(split, 40)!r} is not one of {', '.join(SPLITS)}")
        case_id = printable(_cell(row, "id") or _stem(image))
        cases.append(DatasetCase(case_id, os.path.normpath(os.path.join(root, image)),
                                 os.path.normpath(os.path.join(root, label)), split))
    return _checked(Dataset(path, "manifest", tuple(cases)))


def _cell(row: dict, column: str) -> str:
    value = row.get(column)
    return value.strip() if isinstance(value, str) else ""  # a short row gives None; extra cells a list


def _checked(dataset: Dataset) -> Dataset:
    root = printable(dataset.root)
    if not dataset.cases:
        raise FormatError(f"{root}: the data set has no cases")
    if len(dataset.cases) > MAX_CASES:
        raise FormatError(f"{root}: {len(dataset.cases):,} cases, more than unetgui reads ({MAX_CASES:,})")
    ids = Counter(c.id for c in dataset.cases)
    twice = sorted(i for i, n in ids.items() if n > 1)
    if twice:
        raise FormatError(f"{root}: case id {twice[0]!r} appears twice")
    for case in dataset.cases:
        for what, file in (("image", case.image), ("labels", case.label)):
            if not os.path.exists(file):
                raise FormatError(f"{root}: case {case.id}: its {what} {printable(file)} does not exist")
            if not (os.path.isdir(file) or limits.is_regular_file(file)):  # a FIFO or a device can block forever
                raise FormatError(f"{root}: case {case.id}: its {what} {printable(file)} is neither a file nor a folder "
                                  "(a pipe, device or socket); unetgui reads only files")
    return dataset


def _table(meta: dict, name: str) -> tuple[LabelTable | None, int | None]:
    """The labels of a data set's ``dataset.json`` and its ignore label: the same reading as a sidecar
    ``dataset.json`` beside a label file (label_tables.dataset_json_labels); none listed: (None, None)."""
    if not meta.get("labels"):
        return None, None
    if isinstance(meta["labels"], dict) and any(isinstance(v, list) for v in meta["labels"].values()):
        raise FormatError(f"{name}: region-based labels (lists of values) are not supported: unetgui trains on "
                          "label values")
    return dataset_json_labels(meta, name)


def _is_nifti(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith((".nii", ".nii.gz"))


def _stem(path: str) -> str:
    name = os.path.basename(os.path.normpath(path))
    for suffix in (".nii.gz", ".nii", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name
