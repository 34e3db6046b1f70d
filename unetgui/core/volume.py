"""Document data types, numpy only: :class:`Volume`, :class:`LabelMap` and the label table.

Axis order is ``(z, y, x)`` = (slice, row, column) for every array; ``affine`` follows
:mod:`unetgui.core.geometry` (index ``(x, y, z, 1)`` -> RAS mm).
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from unetgui.core.geometry import same_grid, spacing_from_affine
from unetgui.core.textsafe import one_line

#: Label value meaning "this voxel was not annotated": it carries no loss in training.
UNANNOTATED = 255
#: Largest label value a user can create (255 is reserved).
MAX_LABEL = 254

#: label colours: the first 8 lie at least 35 degrees apart in hue, in an order that puts consecutive labels
#: far apart (red, green, blue, amber, magenta, cyan, lime, violet); then darker extras, all saturated (the
#: uncertainty map is white: no label looks like it)
_PALETTE = (
    (230, 25, 45), (40, 200, 75), (30, 100, 255), (255, 185, 0), (235, 40, 200), (40, 220, 230), (150, 230, 20),
    (140, 70, 230), (245, 130, 48), (150, 0, 75), (0, 128, 128), (170, 110, 40),
)
#: two colours closer than this in hue (degrees) count as the same hue when a label is given a colour
_SAME_HUE = 30.0


def annotated_slices(labels: np.ndarray) -> np.ndarray:
    """The slices a label volume ``(z, y, x)`` annotates wholly: sparse annotation (some voxels 255) -> every
    slice without 255, a background-only slice included (the annotator said "nothing here"); a dense label
    volume -> the slices with any label. A sparse file's reviewed slices in the app and ``suggest --labels``
    (core.annotation.label_file_annotation, which reads a dense file as annotating every slice); the slices
    ``evaluate --model --image --truth`` measures."""
    unannotated = labels == UNANNOTATED
    if unannotated.any():
        return ~unannotated.any(axis=(1, 2))
    return (labels > 0).any(axis=(1, 2))


#: a slice annotated over at least this share of its voxels is a complete slice (a reviewed plane, a dense
#: label file's slice with an ignore region); less is a partial slice (strokes)
COMPLETE_SHARE = 0.5


def slice_coverage(labels: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(annotated, partial)``: the slices of ``labels`` ``(z, y, x)`` with any annotated voxel, and those of
    them annotated over less than :data:`COMPLETE_SHARE` of the slice."""
    counts = (np.asarray(labels) != UNANNOTATED).sum(axis=(1, 2))
    plane = labels.shape[1] * labels.shape[2]
    annotated = tuple(int(z) for z in np.flatnonzero(counts))
    return annotated, tuple(int(z) for z in np.flatnonzero((counts > 0) & (counts < COMPLETE_SHARE * plane)))


def without_unannotated(labels: np.ndarray) -> np.ndarray:
    """A uint8 copy of ``labels`` with 255 ("not annotated") written as 0: what every export writes."""
    return np.where(labels == UNANNOTATED, 0, labels).astype(np.uint8)


def default_color(value: int) -> tuple[int, int, int]:
    """A distinct RGB colour for label ``value`` (1-based)."""
    return _PALETTE[(value - 1) % len(_PALETTE)]


def hue_distance(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """Angle in degrees (0..180) between the hues of two RGB colours (0..255 each)."""
    ha, hb = (colorsys.rgb_to_hsv(*(c / 255 for c in rgb))[0] * 360 for rgb in (a, b))
    return min(abs(ha - hb), 360 - abs(ha - hb))


def distinct_color(taken: Iterable[tuple[int, int, int]]) -> tuple[int, int, int]:
    """The first palette colour whose hue lies at least 30 degrees from each of ``taken`` (the other labels'
    colours); when every hue is taken, the palette colour farthest in hue from all of them."""
    taken = [tuple(c) for c in taken]
    if not taken:
        return _PALETTE[0]
    nearest = [min(hue_distance(colour, other) for other in taken) for colour in _PALETTE]
    free = next((colour for colour, gap in zip(_PALETTE, nearest) if gap >= _SAME_HUE), None)
    return free or _PALETTE[nearest.index(max(nearest))]


#: roles of a label's codes: segmented property category and type, the type's modifier (laterality), the
#: anatomic region (where an abnormal structure lies) and its modifier; as in DICOM-SEG and Slicer's
#: terminology entries
CODE_ROLES = ("category", "type", "modifier", "region", "region_modifier")


@dataclass(frozen=True)
class Label:
    """One structure: its voxel value (1..254), a name and an RGB colour (0..255 each).

    ``codes``: what the structure is in a coding scheme, as a segmentation file from elsewhere said it, by
    role (:data:`CODE_ROLES`): ``(role, scheme designator, code value, code meaning)``, e.g. ``("type", "SCT",
    "10200004", "Liver")``. Empty for labels made here: exports then code the label by its name. Renaming
    a label drops them (the name is the user's new word for what it is)."""

    value: int
    name: str
    color: tuple[int, int, int]
    codes: tuple[tuple[str, str, str, str], ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.value <= MAX_LABEL:
            raise ValueError(f"label value must be 1..{MAX_LABEL}, got {self.value}")
        if not self.name.strip():
            raise ValueError("label name must not be empty")
        if len(self.color) != 3 or not all(0 <= int(c) <= 255 for c in self.color):
            raise ValueError(f"label colour must be three values 0..255, got {self.color!r}")
        codes = tuple(tuple(str(part) for part in code) for code in self.codes)
        roles = [code[0] for code in codes]
        if any(len(code) != 4 or code[0] not in CODE_ROLES or not code[2] for code in codes) or len(set(roles)) != len(roles):
            raise ValueError(f"label codes must be distinct (role, scheme, value, meaning) with roles from "
                             f"{CODE_ROLES}, got {self.codes!r}")
        if codes and not {"category", "type"} <= set(roles):
            raise ValueError("label codes need at least a category and a type")
        object.__setattr__(self, "codes", codes)

    def code(self, role: str) -> tuple[str, str, str] | None:
        """``(scheme designator, code value, code meaning)`` of ``role``, or None."""
        return next((code[1:] for code in self.codes if code[0] == role), None)

    def coded_as(self, numbers: bool = False) -> str:
        """What the codes say the structure is, e.g. "Left Mass, category Morphologically Altered Structure,
        in Kidney"; with ``numbers`` each meaning is followed by its scheme and value ("Artery (SCT 51114001)").
        Empty without codes."""
        def phrase(role: str) -> str:
            found = self.code(role)
            if found is None:
                return ""
            return (found[2] or found[1]) + (f" ({found[0]} {found[1]})" if numbers else "")

        if self.code("type") is None:
            return ""
        text = " ".join(p for p in (phrase("modifier"), phrase("type")) if p) + f", category {phrase('category')}"
        if self.code("region") is not None:
            text += ", in " + " ".join(p for p in (phrase("region_modifier"), phrase("region")) if p)
        return text

    def renamed(self, name: str) -> Label:
        """This label called ``name``; a new name drops the codes that described the old one."""
        return replace(self, name=name, codes=self.codes if name == self.name else ())


@dataclass(frozen=True)
class LabelTable:
    """The labels of a document, ordered by value; 0 is always background and not listed."""

    labels: tuple[Label, ...] = ()

    def __post_init__(self) -> None:
        values = [lab.value for lab in self.labels]
        if len(set(values)) != len(values):
            raise ValueError(f"duplicate label values in {values}")
        object.__setattr__(self, "labels", tuple(sorted(self.labels, key=lambda lab: lab.value)))

    @classmethod
    def from_names(cls, *names: str) -> LabelTable:
        """Labels 1..K named ``names``, with default colours."""
        return cls(tuple(Label(i, n, default_color(i)) for i, n in enumerate(names, start=1)))

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self):
        return iter(self.labels)

    @property
    def values(self) -> tuple[int, ...]:
        return tuple(lab.value for lab in self.labels)

    def get(self, value: int) -> Label | None:
        return next((lab for lab in self.labels if lab.value == value), None)

    def with_label(self, label: Label) -> LabelTable:
        """A copy in which ``label`` replaces the label of the same value, or is added."""
        return LabelTable(tuple(lab for lab in self.labels if lab.value != label.value) + (label,))

    def to_json(self) -> list[dict]:
        return [{"value": lab.value, "name": lab.name, "color": list(lab.color),
                 **({"codes": {c[0]: list(c[1:]) for c in lab.codes}} if lab.codes else {})} for lab in self.labels]

    @classmethod
    def from_json(cls, items: list[dict]) -> LabelTable:
        return cls(tuple(_label_from_json(d) for d in items))


def _label_from_json(d: dict) -> Label:
    """A label as saved; codes that do not read (written by hand, or by a later version) are left out rather
    than making the whole project or model unreadable (the label is then coded by its name)."""
    label = Label(int(d["value"]), one_line(d["name"]), tuple(int(c) for c in d["color"]))  # names one line
    try:
        return replace(label, codes=tuple((role, *map(str, code)) for role, code in dict(d.get("codes") or {}).items()))
    except (ValueError, TypeError, AttributeError):
        return label


@dataclass(frozen=True)
class SliceSource:
    """Where one slice of a DICOM volume came from (used to reference it from DICOM-SEG)."""

    path: str
    sop_instance_uid: str
    sop_class_uid: str
    frame: int | None = None  # 0-based frame in a multi-frame file, None for a single-frame file


@dataclass(frozen=True)
class SeriesInfo:
    """Descriptive metadata of the source series (may hold identifying data: never put it in file names)."""

    patient_name: str = ""
    patient_id: str = ""
    study_date: str = ""
    study_uid: str = ""
    series_uid: str = ""
    series_description: str = ""
    series_number: str = ""
    frame_of_reference_uid: str = ""


@dataclass(eq=False)
class Volume:
    """An image volume in physical units (HU for CT).

    ``voxels`` is ``(z, y, x)``, integer dtypes are kept as loaded (int16 CT stays int16).
    ``sources`` has one entry per slice for DICOM volumes (``None`` for a slice inserted to fill a gap),
    and is empty for other formats.
    """

    voxels: np.ndarray
    affine: np.ndarray
    modality: str = ""
    warnings: tuple[str, ...] = ()
    info: SeriesInfo = field(default_factory=SeriesInfo)
    sources: tuple[SliceSource | None, ...] = ()

    def __post_init__(self) -> None:
        if self.voxels.ndim != 3:
            raise ValueError(f"voxels must be 3-D (z, y, x), got shape {self.voxels.shape}")
        self.affine = np.asarray(self.affine, dtype=float)
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {self.affine.shape}")
        if self.sources and len(self.sources) != self.voxels.shape[0]:
            raise ValueError("sources must have one entry per slice")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.voxels.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm, ``(z, y, x)``."""
        return spacing_from_affine(self.affine)

    def with_warnings(self, *extra: str) -> Volume:
        return replace(self, warnings=self.warnings + tuple(extra))


@dataclass(eq=False)
class LabelMap:
    """Label values per voxel on an image grid: 0 background, 1..254 labels, 255 not annotated.

    ``labels`` is uint8 ``(z, y, x)``; ``affine`` is the grid's affine (the image's).
    """

    labels: np.ndarray
    affine: np.ndarray
    table: LabelTable = field(default_factory=LabelTable)

    def __post_init__(self) -> None:
        if self.labels.ndim != 3:
            raise ValueError(f"labels must be 3-D (z, y, x), got shape {self.labels.shape}")
        if self.labels.dtype != np.uint8:
            raise ValueError(f"labels must be uint8, got {self.labels.dtype}")
        self.affine = np.asarray(self.affine, dtype=float)

    @classmethod
    def empty_like(cls, volume: Volume, table: LabelTable | None = None) -> LabelMap:
        """All-background labels on ``volume``'s grid."""
        return cls(np.zeros(volume.shape, np.uint8), volume.affine.copy(), table or LabelTable())

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.labels.shape)  # type: ignore[return-value]

    def fits(self, volume: Volume, tolerance_mm: float = 1e-3) -> bool:
        """True when this label map lies on ``volume``'s grid (same shape and affine)."""
        return self.shape == volume.shape and same_grid(self.affine, volume.affine, tolerance_mm)

    def used_values(self) -> tuple[int, ...]:
        """Label values present (excluding background and the not-annotated value)."""
        present = np.flatnonzero(np.bincount(self.labels.ravel(), minlength=256))
        return tuple(int(v) for v in present if 0 < v < UNANNOTATED)
