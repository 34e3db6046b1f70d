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
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter
from dataclasses import dataclass

from unetgui.core.errors import FormatError
from unetgui.core.volume import Label, LabelTable, default_color

SPLITS = ("train", "val", "test")
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
    table: LabelTable | None = None  # label names when the data set has them
    modality: str = ""

    def find(self, case_id: str) -> DatasetCase:
        for case in self.cases:
            if case.id == case_id:
                return case
        raise FormatError(f"{self.root}: no case {case_id!r} in the data set")


def read_dataset(path: str) -> Dataset:
    """The data set at ``path`` (a folder, or a CSV manifest); :class:`FormatError` with the case and file."""
    if os.path.isfile(path) and path.lower().endswith(".csv"):
        return _manifest(path)
    if not os.path.isdir(path):
        raise FormatError(f"{path}: no such data set folder")
    if os.path.isfile(os.path.join(path, "dataset.json")):
        return _nnunet(path)
    if os.path.isfile(os.path.join(path, "manifest.csv")):
        return _manifest(os.path.join(path, "manifest.csv"))
    names = os.listdir(path)
    if any(_LITS.match(n) for n in names):
        return _lits(path, names)
    raise FormatError(f"{path}: not a data set folder: expected dataset.json with imagesTr/ and labelsTr/ "
                      "(nnU-Net, Decathlon), volume-N.nii.gz with segmentation-N.nii.gz (LiTS), or a manifest.csv "
                      "with image and label columns")


def _nnunet(root: str) -> Dataset:
    meta_path = os.path.join(root, "dataset.json")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
        table = _table(meta.get("labels", {}))
        channels = meta.get("channel_names") or meta.get("modality") or {}
        if not isinstance(channels, dict):
            raise ValueError("channel_names / modality is not an object")
    except (OSError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise FormatError(f"{meta_path}: not a readable dataset.json ({exc})") from exc
    if len(channels) > 1:
        raise FormatError(f"{meta_path}: {len(channels)} input channels ({', '.join(map(str, channels.values()))}); "
                          "unetgui trains on single-channel images")
    modality = str(next(iter(channels.values()), "")).upper()
    modality = "CT" if modality == "CT" else ("MR" if modality.startswith(("MR", "T1", "T2", "FLAIR")) else modality)
    images_dir, labels_dir = os.path.join(root, "imagesTr"), os.path.join(root, "labelsTr")
    for folder in (images_dir, labels_dir):
        if not os.path.isdir(folder):
            raise FormatError(f"{root}: {os.path.basename(folder)}/ is missing (dataset.json needs imagesTr/ and labelsTr/)")
    listed = meta.get("training")
    if isinstance(listed, list) and listed:
        cases = []
        for i, item in enumerate(listed):
            if not isinstance(item, dict) or "image" not in item or "label" not in item:
                raise FormatError(f"{meta_path}: training entry {i + 1} has no image and label")
            image, label = (os.path.normpath(os.path.join(root, str(item[k]))) for k in ("image", "label"))
            cases.append(DatasetCase(_stem(label), image, label))
    else:
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
                raise FormatError(f"{root}: case {stem}: labelsTr/{name} has no image in imagesTr/ "
                                  f"({stem}_0000.nii.gz or {stem}.nii.gz)")
            cases.append(DatasetCase(stem, images[stem], os.path.join(labels_dir, name)))
        unused = sorted(set(images.values()) - {c.image for c in cases})
        if unused:
            case = re.sub(r"_\d{4}$", "", _stem(unused[0]))
            raise FormatError(f"{root}: case {case}: imagesTr/{os.path.basename(unused[0])} has no labels in labelsTr/")
    return _checked(Dataset(root, "nnunet", tuple(cases), table, modality))


def _lits(root: str, names: list[str]) -> Dataset:
    found: dict[str, dict[str, str]] = {}
    for name in names:
        m = _LITS.match(name)
        if m:
            found.setdefault(m.group("n"), {})[m.group("kind")] = os.path.join(root, name)
    cases = []
    for n in sorted(found, key=int):
        pair = found[n]
        if "volume" not in pair or "segmentation" not in pair:
            have, lack = ("volume", "segmentation") if "volume" in pair else ("segmentation", "volume")
            raise FormatError(f"{root}: case {n}: {os.path.basename(pair[have])} has no {lack}-{n}.nii.gz")
        cases.append(DatasetCase(f"volume-{n}", pair["volume"], pair["segmentation"]))
    table = LabelTable((Label(1, "liver", default_color(1)), Label(2, "tumour", default_color(2))))
    return _checked(Dataset(root, "lits", tuple(cases), table, "CT"))


def _manifest(path: str) -> Dataset:
    root = os.path.dirname(os.path.abspath(path))
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FormatError(f"{path}: not a readable CSV file ({exc})") from exc
    if not rows or not {"image", "label"} <= set(rows[0]):
        raise FormatError(f"{path}: a manifest needs a header row with image and label columns (and optionally id, split)")
    cases = []
    for i, row in enumerate(rows, start=2):  # line numbers as a spreadsheet shows them
        image, label = (row.get("image") or "").strip(), (row.get("label") or "").strip()
        if not image or not label:
            raise FormatError(f"{path}, line {i}: the image or the label is empty")
        split = (row.get("split") or "").strip().lower()
        if split not in ("", *SPLITS):
            raise FormatError(f"{path}, line {i}: split {split!r} is not one of {', '.join(SPLITS)}")
        case_id = (row.get("id") or "").strip() or _stem(image)
        cases.append(DatasetCase(case_id, os.path.normpath(os.path.join(root, image)),
                                 os.path.normpath(os.path.join(root, label)), split))
    return _checked(Dataset(path, "manifest", tuple(cases)))


def _checked(dataset: Dataset) -> Dataset:
    if not dataset.cases:
        raise FormatError(f"{dataset.root}: the data set has no cases")
    ids = Counter(c.id for c in dataset.cases)
    twice = sorted(i for i, n in ids.items() if n > 1)
    if twice:
        raise FormatError(f"{dataset.root}: case id {twice[0]!r} appears twice")
    for case in dataset.cases:
        for what, file in (("image", case.image), ("labels", case.label)):
            if not os.path.exists(file):
                raise FormatError(f"{dataset.root}: case {case.id}: its {what} {file} does not exist")
    return dataset


def _table(labels) -> LabelTable | None:
    """nnU-Net v2 ``{"name": value}`` or the Decathlon's ``{"value": "name"}``; background left out."""
    if not isinstance(labels, dict) or not labels:
        return None
    pairs = []
    for key, value in labels.items():
        if isinstance(value, int) and not isinstance(value, bool):
            name, number = str(key), value
        elif str(key).isdigit():
            name, number = str(value), int(key)
        else:
            raise ValueError(f"label {key!r}: {value!r} is neither 'name: value' nor 'value: name'")
        if number == 0:
            continue
        if not 1 <= number <= 254:
            raise ValueError(f"label {name!r} has value {number}; unetgui takes 1..254")
        pairs.append((number, name))
    return LabelTable(tuple(Label(v, n, default_color(v)) for v, n in sorted(pairs)))


def _is_nifti(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith((".nii", ".nii.gz"))


def _stem(path: str) -> str:
    name = os.path.basename(os.path.normpath(path))
    for suffix in (".nii.gz", ".nii", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name
