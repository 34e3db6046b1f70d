"""Label tables of other tools: ITK-SNAP label descriptions, 3D Slicer colour tables, nnU-Net ``dataset.json``.

* **ITK-SNAP** label description (``Export label descriptions``): ``#`` comments, then one line per label
  ``IDX -R- -G- -B- -A-- VIS MSH "LABEL"``, e.g. ``    1   255    0    0        1  1  1    "Liver"``;
  colours 0..255, alpha 0..1, visibility and mesh visibility 0 or 1. ITK-SNAP lists index 0
  ("Clear Label"): it is written, and skipped on reading.
* **3D Slicer** colour table (``.ctbl``, ``.txt``): ``#`` comments, then ``index name R G B A`` with colours
  and alpha 0..255. Names hold no whitespace in Slicer's files: whitespace is written as ``_`` (and read
  back as ``_``, as Slicer does). Index 0 is written (``Background``, transparent) and skipped on reading.
* **nnU-Net** ``dataset.json``: v2 ``"labels": {"background": 0, "liver": 1}`` (region-based data sets
  give lists of values: see :func:`dataset_json_table`), v1 / Decathlon ``"labels": {"0": "background"}``.

The format of a table file is told from its content, not its name. A table holds at most 256 lines
(index 0..255); unetgui's labels are 1..254 (0 is background, 255 "not annotated"), so a table that names
another value is refused. Every failure is a :class:`~unetgui.core.errors.FormatError` of one line; numbers are
parsed with length caps (:mod:`unetgui.core.textsafe`), names are read and written as one line without control
characters, so a name cannot add a line to a table unetgui writes.

:func:`find_table` looks next to a label volume for a table (the list is :func:`sidecar_paths`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from unetgui.core import atomic, limits
from unetgui.core.errors import FormatError
from unetgui.core.textsafe import one_name, parse_float, parse_int, printable
from unetgui.core.volume import MAX_LABEL, UNANNOTATED, Label, LabelTable, default_color

#: a table file is small: 256 lines of a long name are far below this
MAX_TABLE_BYTES = 1 << 20
#: a dataset.json may list thousands of training cases (v1)
MAX_DATASET_JSON_BYTES = 16 << 20
#: lines 0..255
MAX_ENTRIES = 256
#: label volume suffixes whose stem names the table next to it
LABEL_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr")

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_DIGITS = re.compile(r"\s*[0-9]+\s*")
_ITKSNAP_LINE = re.compile(rf"^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+({_NUMBER})\s+(\d+)\s+(\d+)\s+\"(.*)\"\s*$")
_SLICER_LINE = re.compile(rf"^\s*(\d+)\s+(\S+)\s+({_NUMBER})\s+({_NUMBER})\s+({_NUMBER})(?:\s+({_NUMBER}))?(?:\s+.*)?$")


@dataclass(frozen=True)
class TableEntry:
    """One line of a table file: value, name, RGB 0..255, alpha 0..1 and ITK-SNAP's two visibility flags."""

    value: int
    name: str
    color: tuple[int, int, int]
    alpha: float = 1.0
    visible: bool = True
    mesh_visible: bool = True

    def label(self) -> Label:
        return Label(self.value, self.name, self.color)


def entries_of(table: LabelTable) -> list[TableEntry]:
    """The entries of a unetgui table (opaque, visible)."""
    return [TableEntry(lab.value, lab.name, tuple(int(c) for c in lab.color)) for lab in table]


def table_of(entries: list[TableEntry]) -> LabelTable:
    """The unetgui table of ``entries`` (index 0 left out)."""
    return LabelTable(tuple(e.label() for e in entries if e.value != 0))


# -- reading ---------------------------------------------------------------------------------------------

def read_table(path: str) -> LabelTable:
    """An ITK-SNAP label description or a Slicer colour table (told apart by content) as a :class:`LabelTable`."""
    return table_of(read_entries(path))


def read_entries(path: str) -> list[TableEntry]:
    """The lines of an ITK-SNAP or Slicer table file, index 0 included when the file has it."""
    return parse_table(_read_text(path, MAX_TABLE_BYTES), os.path.basename(path))


def parse_table(text: str, name: str = "table") -> list[TableEntry]:
    """Parse the text of a table file; ``name`` is used in error messages."""
    name = printable(name)
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise FormatError(f"{name}: no label lines (an ITK-SNAP label description or a Slicer colour table)")
    if len(lines) > MAX_ENTRIES:
        raise FormatError(f"{name}: {len(lines)} label lines, more than a table of values 0..255 can hold")
    itksnap = bool(_ITKSNAP_LINE.match(lines[0][1]))
    parse = _itksnap_entry if itksnap else _slicer_entry
    entries = [parse(line, f"{name}, line {n}") for n, line in lines]
    entries = [e for e in entries if e is not None]
    seen: set[int] = set()
    for entry in entries:
        if entry.value in seen:
            raise FormatError(f"{name}: label value {entry.value} is listed twice")
        seen.add(entry.value)
    return entries


def _itksnap_entry(line: str, where: str) -> TableEntry:
    m = _ITKSNAP_LINE.match(line)
    if not m:
        raise FormatError(f"{where}: not an ITK-SNAP label line (IDX R G B A VIS MSH \"LABEL\"): "
                          f"'{printable(line.strip(), 60)}'")
    value = parse_int(m.group(1), f"{where}: label value", 0)
    r, g, b = (parse_int(m.group(k), f"{where}: colour", 0) for k in range(2, 5))
    alpha = parse_float(m.group(5), f"{where}: alpha")
    name = m.group(8)
    if not 0 <= alpha <= 1:
        raise FormatError(f"{where}: alpha {alpha} is outside 0..1")
    return _entry(value, name, (r, g, b), alpha, m.group(6) != "0", m.group(7) != "0", where)


def _slicer_entry(line: str, where: str) -> TableEntry | None:
    m = _SLICER_LINE.match(line)
    if not m:
        raise FormatError(f"{where}: not a label line (Slicer: index name R G B A; ITK-SNAP: IDX R G B A VIS MSH "
                          f"\"LABEL\"): '{printable(line.strip(), 60)}'")
    value = parse_int(m.group(1), f"{where}: label value", 0)
    name = m.group(2).strip("'")  # Slicer trims ticks copied from a MRML file
    if name in ("(none)", ""):  # older Slicer writes every index, unnamed ones as (none)
        return None
    rgb = [parse_float(m.group(k), f"{where}: colour") for k in (3, 4, 5)]
    alpha = parse_float(m.group(6), f"{where}: alpha") if m.group(6) is not None else 255.0
    if not all(0 <= c <= 255 for c in [*rgb, alpha]):
        raise FormatError(f"{where}: colour or alpha outside 0..255")
    color = (round(rgb[0]), round(rgb[1]), round(rgb[2]))
    return _entry(value, name, color, alpha / 255.0, True, True, where)


def _entry(value: int, name: str, color: tuple[int, int, int], alpha: float, visible: bool, mesh: bool,
           where: str) -> TableEntry:
    if value > MAX_LABEL:
        raise FormatError(f"{where}: label value {value}; unetgui's labels are 1..{MAX_LABEL} (255 means "
                          "'not annotated')")
    if not all(0 <= c <= 255 for c in color):
        raise FormatError(f"{where}: colour {color} is outside 0..255")
    return TableEntry(value, one_name(name) or f"Label {value}", color, alpha, visible, mesh)


#: nnU-Net's ignore label: its voxels are not annotated (no loss, no metric), as unetgui's 255
IGNORE = "ignore"


def dataset_json_table(path: str) -> LabelTable:
    """The label names of an nnU-Net / Decathlon ``dataset.json`` (default colours; background and nnU-Net's
    ignore label left out): :func:`dataset_json_labels` of the file."""
    name = printable(os.path.basename(path))
    meta = read_dataset_json(path)
    if not isinstance(meta, dict):
        raise FormatError(f"{name}: no \"labels\" object (nnU-Net dataset.json)")
    return dataset_json_labels(meta, name)[0]


def read_dataset_json(path: str):
    """The JSON document of a ``dataset.json`` (a data set's or a sidecar's: the one reading of both): a regular
    file of at most :data:`MAX_DATASET_JSON_BYTES`, integers of at most 100 characters (a 5,000-digit label value is
    a format error, not Python's int-conversion limit; a long one that parses is then refused by its bounds)."""
    name = printable(os.path.basename(path))
    text = _read_text(path, MAX_DATASET_JSON_BYTES, "dataset.json")
    try:
        return json.loads(text, parse_int=lambda s: parse_int(s, f"{name}: an integer", max_chars=100))
    except (ValueError, RecursionError) as exc:
        raise FormatError(f"{name}: not valid JSON ({exc})") from exc


def dataset_json_labels(meta: dict, name: str) -> tuple[LabelTable, int | None]:
    """The one reading of a ``dataset.json``'s labels (a sidecar table here, a data set in formats/dataset.py):
    the table (background and the ignore label left out, names one line) and the ignore label's value or None.

    v2: ``{"name": value}``; v1: ``{"value": "name"}``. Region-based v2 data sets give a list of values per
    region; with ``regions_class_order`` the i-th region names voxel value ``regions_class_order[i]`` (how
    nnU-Net writes its predictions), without it only single values (``3`` or ``[3]``) name a value. A label
    called "ignore" must have the highest value, as nnU-Net requires.
    """
    labels = meta.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise FormatError(f"{name}: no \"labels\" object (nnU-Net dataset.json)")
    if len(labels) > MAX_ENTRIES:
        raise FormatError(f"{name}: {len(labels)} labels, more than values 0..255 can hold")
    regions = [(str(k), v) for k, v in labels.items() if isinstance(v, list)]
    order = meta.get("regions_class_order")
    pairs: list[tuple[int, str]] = []
    for key, value in labels.items():
        if isinstance(value, list):
            if len(value) == 1 and _is_int(value[0]):
                pairs.append((value[0], str(key)))
        elif _is_int(value):
            pairs.append((value, str(key)))
        elif _DIGITS.fullmatch(str(key)) and isinstance(value, str):
            pairs.append((parse_int(key, f"{name}: label value"), value))
        else:
            raise FormatError(f"{name}: label '{printable(key, 40)}': '{printable(value, 40)}' is neither \"name\": "
                              "value nor \"value\": \"name\"")
    if regions and isinstance(order, list) and all(_is_int(v) for v in order):
        named = [(k, v) for k, v in labels.items() if not (_is_int(v) and v == 0)]  # background is no region
        if len(order) == len(named):
            pairs = [(v, str(k)) for v, (k, _) in zip(order, named)]
    by_value: dict[int, str] = {}
    ignore: int | None = None
    for value, label in pairs:
        if value == 0:
            continue
        if label.strip() == IGNORE:
            if not 1 <= value <= UNANNOTATED or ignore is not None:
                raise FormatError(f"{name}: the ignore label has value {printable(value, 40)}"
                                  + (" and another" if ignore is not None else ""))
            ignore = value
            continue
        if not 1 <= value <= MAX_LABEL:
            raise FormatError(f"{name}: label '{printable(label, 40)}' has value {printable(value, 40)}; unetgui's "
                              f"labels are 1..{MAX_LABEL}")
        by_value.setdefault(value, one_name(label) or f"Label {value}")
    if ignore is not None and any(v > ignore for v in by_value):
        raise FormatError(f"{name}: the ignore label ({ignore}) must have the highest value, as nnU-Net requires")
    return LabelTable(tuple(Label(v, n, default_color(v)) for v, n in sorted(by_value.items()))), ignore


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_text(path: str, limit: int, what: str = "label table") -> str:
    limits.check_regular_file(path)
    name = printable(os.path.basename(path))
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise FormatError(f"{printable(path)}: cannot be read ({printable(exc.strerror or exc)})") from exc
    if len(data) > limit:
        raise FormatError(f"{name}: larger than {limit // 1024} KiB; not a {what}")
    if b"\0" in data:
        raise FormatError(f"{name}: binary data, not a text {what}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if what != "label table":  # JSON is UTF-8 (RFC 8259)
            raise FormatError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
        return data.decode("latin-1")  # ITK-SNAP on Windows writes the local code page


# -- writing ---------------------------------------------------------------------------------------------

_ITKSNAP_HEADER = """\
################################################
# ITK-SnAP Label Description File
# File format:
# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL
# Fields:
#    IDX:   Zero-based index
#    -R-:   Red color component (0..255)
#    -G-:   Green color component (0..255)
#    -B-:   Blue color component (0..255)
#    -A-:   Label transparency (0.00 .. 1.00)
#    VIS:   Label visibility (0 or 1)
#    MSH:   Label mesh visibility (0 or 1)
#  LABEL:   Label description
# Written by unetgui
################################################
"""


def itksnap_text(entries: list[TableEntry] | LabelTable) -> str:
    """ITK-SNAP label description text, with the "Clear Label" line 0 that ITK-SNAP writes. Each name is written
    on its one line (control characters and line breaks as spaces, ``"`` as ``'``)."""
    items = entries_of(entries) if isinstance(entries, LabelTable) else list(entries)
    lines = [_ITKSNAP_HEADER.rstrip("\n")]
    if not any(e.value == 0 for e in items):
        items.insert(0, TableEntry(0, "Clear Label", (0, 0, 0), 0.0, False, False))
    for e in sorted(items, key=lambda e: e.value):
        name = one_name(e.name.replace('"', "'")) or f"Label {e.value}"
        lines.append(f"{e.value:5d} {e.color[0]:5d} {e.color[1]:4d} {e.color[2]:4d} {format(e.alpha, '.2g'):>8} "
                     f"{int(e.visible):2d} {int(e.mesh_visible):2d}    \"{name}\"")
    return "\n".join(lines) + "\n"


def slicer_text(entries: list[TableEntry] | LabelTable, title: str = "unetgui labels") -> str:
    """Slicer colour table text (``index name R G B A``, whitespace and control characters in names written as
    ``_``)."""
    items = entries_of(entries) if isinstance(entries, LabelTable) else list(entries)
    if not any(e.value == 0 for e in items):
        items.insert(0, TableEntry(0, "Background", (0, 0, 0), 0.0))
    top = max(e.value for e in items)
    lines = [f"# Color table file {one_name(title)}", f"# {top + 1} values"]
    for e in sorted(items, key=lambda e: e.value):
        name = "_".join(one_name(e.name).split()) or f"Label_{e.value}"
        lines.append(f"{e.value} {name} {e.color[0]} {e.color[1]} {e.color[2]} {round(e.alpha * 255)}")
    return "\n".join(lines) + "\n"


def write_itksnap(entries: list[TableEntry] | LabelTable, path: str) -> None:
    """Write an ITK-SNAP label description atomically."""
    _write(path, itksnap_text(entries))


def write_slicer(entries: list[TableEntry] | LabelTable, path: str) -> None:
    """Write a Slicer colour table (``.ctbl``) atomically."""
    _write(path, slicer_text(entries, os.path.basename(path)))


def _write(path: str, text: str) -> None:
    try:
        atomic.write_bytes(path, text.encode("utf-8"))
    except OSError as exc:
        raise FormatError(f"cannot write {path}: {exc}") from exc


# -- finding the table of a label volume ---------------------------------------------------------------------

def label_stem(path: str) -> str | None:
    """``X`` of ``X.nii.gz``, ``X.nii``, ``X.nrrd`` or ``X.nhdr`` (with its folder), else ``None``."""
    lower = path.lower()
    return next((path[: -len(s)] for s in LABEL_SUFFIXES if lower.endswith(s)), None)


def table_paths(label_path: str) -> tuple[str, str]:
    """Where unetgui writes the tables of label volume ``X.nii.gz``: ``X.itksnap.txt`` (ITK-SNAP) and ``X.ctbl``
    (Slicer); both are the first names :func:`sidecar_paths` looks for."""
    stem = label_stem(label_path) or label_path
    return stem + ".itksnap.txt", stem + ".ctbl"


def write_tables_next_to(label_path: str, table: LabelTable) -> list[str]:
    """Write both tables of :func:`table_paths` (atomically each); return their paths."""
    itk, ctbl = table_paths(label_path)
    write_itksnap(table, itk)
    write_slicer(table, ctbl)
    return [itk, ctbl]


def sidecar_paths(label_path: str) -> list[str]:
    """Where a table of ``X.nii.gz`` (``.nii``, ``.nrrd``, ``.nhdr``) is looked for, in this order:
    ``X.itksnap.txt``, ``X.ctbl`` (what unetgui's export writes), ``X.label.txt``, ``X_labels.txt``,
    ``X.txt``, then ``dataset.json`` in the file's folder and in its parent (nnU-Net keeps labels in
    ``labelsTr/`` and ``dataset.json`` one level up)."""
    stem = label_stem(label_path)
    found = [stem + s for s in (".itksnap.txt", ".ctbl", ".label.txt", "_labels.txt", ".txt")] if stem else []
    folder = os.path.dirname(os.path.abspath(label_path))
    return found + [os.path.join(folder, "dataset.json"), os.path.join(os.path.dirname(folder), "dataset.json")]


def find_table(label_path: str) -> tuple[LabelTable | None, tuple[str, ...]]:
    """The names and colours found next to ``label_path`` (all files of :func:`sidecar_paths` that exist,
    an earlier file winning per value) and notes about files that could not be used.

    A file found there is a guess, not what the user asked for: one that is not a usable table (damaged,
    unreadable, another tool's) is skipped with a note and never stops the label volume from opening."""
    table: LabelTable | None = None
    notes: list[str] = []
    for path in dict.fromkeys(sidecar_paths(label_path)):
        if not limits.is_regular_file(path):
            continue
        try:
            found = dataset_json_table(path) if os.path.basename(path) == "dataset.json" else read_table(path)
        except (FormatError, OSError, ValueError) as exc:  # a stray file: a note, never the end of the command
            if os.path.basename(path) == "dataset.json" and "no \"labels\"" in str(exc):
                continue  # another tool's dataset.json: nothing to say
            notes.append(f"label names from {printable(os.path.basename(path))} not used: {printable(exc, 300)}")
            continue
        table = found if table is None else merge(table, found)
    return table, tuple(notes)


def merge(first: LabelTable, second: LabelTable) -> LabelTable:
    """``first`` with the labels of ``second`` whose values ``first`` does not define."""
    return LabelTable(tuple(first) + tuple(lab for lab in second if first.get(lab.value) is None))
