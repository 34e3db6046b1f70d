"""Find DICOM image series in a folder, reading headers only.

Files are grouped by SeriesInstanceUID and, inside a series, by orientation, image size and pixel
spacing, so that mixed stacks (localisers, several orientations) split into clean stacks. Each stack is
sorted along its slice normal; a stack with several images per position (4-D: fMRI, DTI, perfusion) is
split into one series per time point. Non-DICOM and unreadable files are counted, never fatal.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import numpy as np

from unetgui.core import limits
from unetgui.core.errors import DicomError, FormatError
from unetgui.core.progress import CancelToken, ProgressFn, check, report
from unetgui.core.volume import SeriesInfo
from unetgui.formats.dicom.headers import (
    DICOMDIR_SOP_CLASS, SEG_SOP_CLASS, FileHeader, FrameRef, check_pixel_claim, file_header, frames_of, read_dataset,
)

#: positions closer than this (mm) are the same slice position
POSITION_TOLERANCE_MM = 0.01
_ORIENTATION_TOLERANCE = 1e-3
_SPACING_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Series:
    """One loadable stack of 2-D images, sorted along the slice normal (see :func:`load_series`)."""

    key: str  # unique in a scan result: the SeriesInstanceUID, plus '#n' when one UID gave several stacks
    frames: tuple[FrameRef, ...]
    notes: tuple[str, ...] = ()  # what scanning found out about this stack (splits, duplicates)

    @property
    def first(self) -> FileHeader:
        return self.frames[0].file

    @property
    def uid(self) -> str:
        return self.first.series_uid

    @property
    def modality(self) -> str:
        return self.first.modality

    @property
    def slice_count(self) -> int:
        return len(self.frames)

    @property
    def size(self) -> tuple[int, int]:
        """(rows, columns)."""
        return self.first.rows, self.first.columns

    @property
    def pixel_spacing(self) -> tuple[float, float] | None:
        return self.frames[0].pixel_spacing

    @property
    def slice_spacing(self) -> float | None:
        """Median distance in mm between neighbouring slice positions (None for one slice or no geometry)."""
        positions = [f.position for f in self.frames]
        if len(positions) < 2 or any(p is None for p in positions):
            return None
        return float(np.median(np.linalg.norm(np.diff(np.asarray(positions), axis=0), axis=1)))

    @property
    def info(self) -> SeriesInfo:
        h = self.first
        return SeriesInfo(
            patient_name=h.patient_name, patient_id=h.patient_id, study_date=h.study_date,
            study_uid=h.study_uid, series_uid=h.series_uid, series_description=h.series_description,
            series_number=h.series_number, frame_of_reference_uid=h.frame_of_reference_uid,
        )

    def summary(self) -> dict[str, str]:
        """One row of the series picker, as display strings."""
        ps = self.pixel_spacing
        spacing = f"{ps[1]:.3g} x {ps[0]:.3g}" if ps else "?"
        if self.slice_spacing is not None:
            spacing += f" x {self.slice_spacing:.3g}"
        h = self.first
        return {
            "patient": h.patient_name, "date": h.study_date, "modality": h.modality,
            "description": h.series_description, "number": h.series_number,
            "slices": str(self.slice_count), "size": f"{h.rows} x {h.columns}", "spacing_mm": spacing,
            "key": self.key,
        }


@dataclass(frozen=True)
class SegmentationRef:
    """A DICOM-SEG object found while scanning."""

    path: str
    referenced_series_uid: str
    description: str


@dataclass
class ScanResult:
    series: list[Series] = field(default_factory=list)
    segmentations: list[SegmentationRef] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    files_seen: int = 0

    def find(self, key: str) -> Series:
        """The series whose key, UID or 1-based index in the list is ``key``."""
        matches = [s for s in self.series if key in (s.key, s.uid)]
        if not matches and key.isdigit() and 1 <= int(key) <= len(self.series):
            matches = [self.series[int(key) - 1]]
        if len(matches) != 1:
            known = ", ".join(s.key for s in self.series) or "none"
            what = "several series match" if matches else "no series matches"
            raise DicomError(f"{what} '{key}'; series found: {known}")
        return matches[0]

    def skipped_summary(self) -> str:
        """E.g. '3 files skipped: 2 not DICOM, 1 no image data (SOP class ...)'."""
        if not self.skipped:
            return ""
        counts: dict[str, int] = {}
        for _, reason in self.skipped:
            kind = reason.split(":")[0]
            counts[kind] = counts.get(kind, 0) + 1
        parts = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        return f"{len(self.skipped)} file(s) skipped: {parts}"


def list_files(folder: str) -> list[str]:
    """All files under ``folder`` (recursively, sorted); a DICOMDIR file stands for its folder."""
    if os.path.isfile(folder):
        if os.path.basename(folder).upper() == "DICOMDIR":
            folder = os.path.dirname(os.path.abspath(folder))
        else:
            return [folder]
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found.extend(os.path.join(root, name) for name in sorted(files) if not name.startswith("."))
    return found


def scan(folder: str, progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> ScanResult:
    """Find the image series under ``folder`` (a folder, a single file or a DICOMDIR), headers only."""
    return scan_files(list_files(folder), progress, cancel)


def scan_files(paths: list[str], progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> ScanResult:
    result = ScanResult(files_seen=len(paths))
    frames: list[FrameRef] = []
    for i, path in enumerate(paths):
        check(cancel)
        if i % 16 == 0:
            report(progress, i, len(paths), f"reading headers {i}/{len(paths)}")
        frames.extend(_read_one(path, result))
    report(progress, len(paths), len(paths), "grouping series")
    result.series = _group(frames)
    return result


def _read_one(path: str, result: ScanResult) -> list[FrameRef]:
    if not limits.is_regular_file(path):  # a FIFO or a link to /dev/zero would block or never end
        result.skipped.append((path, "not a regular file: a pipe, device or socket"))
        return []
    try:
        ds = read_dataset(path)
    except Exception as exc:  # a DICOM file broken beyond parsing: report, go on
        result.skipped.append((path, f"unreadable: {type(exc).__name__}: {exc}"[:300]))
        return []
    if ds is None:
        result.skipped.append((path, "not DICOM"))
        return []
    try:
        header = file_header(ds, path)
        if header.sop_class_uid == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
            result.skipped.append((path, "DICOMDIR: index file, its images are scanned directly"))
            return []
        if header.sop_class_uid == SEG_SOP_CLASS:
            ref = ds.get("ReferencedSeriesSequence")
            ref_uid = str(ref[0].get("SeriesInstanceUID", "")) if ref else ""
            result.segmentations.append(SegmentationRef(path, ref_uid, header.series_description))
            result.skipped.append((path, "segmentation: DICOM-SEG, open it as labels"))
            return []
        if header.rows <= 0 or header.columns <= 0:
            result.skipped.append((path, f"no image data: SOP class {header.sop_class_uid or 'unknown'}"))
            return []
        check_pixel_claim(header, os.path.getsize(path))
        return frames_of(ds, header)
    except FormatError as exc:
        result.skipped.append((path, f"implausible size: {exc}"[:300]))
        return []
    except Exception as exc:
        result.skipped.append((path, f"unreadable: {type(exc).__name__}: {exc}"[:300]))
        return []


def _cluster(values: list[tuple[float, ...] | None], tolerance: float) -> list[int]:
    """Index of the cluster of each value; values within ``tolerance`` (max abs) share a cluster."""
    centres: list[tuple[float, ...] | None] = []
    out = []
    for v in values:
        for j, c in enumerate(centres):
            if (v is None and c is None) or (
                v is not None and c is not None and np.abs(np.subtract(v, c)).max() <= tolerance
            ):
                out.append(j)
                break
        else:
            centres.append(v)
            out.append(len(centres) - 1)
    return out


def _series_key(frame: FrameRef) -> tuple[str, ...]:
    h = frame.file
    if h.series_uid:
        return (h.series_uid,)
    # blank SeriesInstanceUID (anonymised data): fall back to what else identifies a series; not the
    # folder, since one series may be spread over several folders
    return ("", h.study_uid, h.series_number, h.modality, h.series_description)


def _group(frames: list[FrameRef]) -> list[Series]:
    by_series: dict[tuple[str, ...], list[FrameRef]] = {}
    for f in frames:
        by_series.setdefault(_series_key(f), []).append(f)
    out: list[Series] = []
    for key, members in by_series.items():
        orient = _cluster([f.orientation for f in members], _ORIENTATION_TOLERANCE)
        spacing = _cluster([f.pixel_spacing for f in members], _SPACING_TOLERANCE)
        parts: dict[tuple, list[FrameRef]] = {}
        for f, o, s in zip(members, orient, spacing):
            parts.setdefault((o, s, f.file.rows, f.file.columns, f.file.samples_per_pixel), []).append(f)
        split_note = (
            (f"the series held {len(parts)} stacks of different orientation, size or pixel spacing; "
             "they are listed as separate series",) if len(parts) > 1 else ()
        )
        stacks = []
        for part in parts.values():
            for stack, notes in _stack(part):
                stacks.append((stack, split_note + notes))
        base = key[0] or "nouid-" + hashlib.sha1("|".join(key).encode()).hexdigest()[:12]
        for n, (stack, notes) in enumerate(stacks, start=1):
            out.append(Series(base if len(stacks) == 1 else f"{base}#{n}", tuple(stack), tuple(notes)))
    out.sort(key=lambda s: (s.first.patient_name, s.first.study_date, _int_or(s.first.series_number), s.key))
    return out


def _int_or(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 1 << 30


def _stack(frames: list[FrameRef]) -> list[tuple[list[FrameRef], tuple[str, ...]]]:
    """Sort one homogeneous group along its normal; split it when it is 4-D."""
    notes: list[str] = []
    unique: dict[tuple, FrameRef] = {}
    for f in frames:  # the position is part of the key: some anonymisers give every file one UID
        unique.setdefault((f.file.sop_instance_uid or f.path, f.frame, f.position), f)
    if len(unique) < len(frames):
        notes.append(f"{len(frames) - len(unique)} duplicate file(s) of the same image were ignored")
    frames = list(unique.values())
    if any(f.position is None or f.orientation is None for f in frames):
        frames.sort(key=lambda f: (f.instance_number, f.path, f.frame or 0))
        return [(frames, tuple(notes))]
    o = frames[0].orientation
    normal = np.cross(o[:3], o[3:])
    frames.sort(key=lambda f: (float(np.dot(f.position, normal)), f.temporal_key, f.path))
    # group images at the same position along the normal (in-plane shifts do not make another slice)
    slots: list[list[FrameRef]] = []
    for f in frames:
        if slots and abs(float(np.dot(np.subtract(f.position, slots[-1][0].position), normal))) <= POSITION_TOLERANCE_MM:
            slots[-1].append(f)
        else:
            slots.append([f])
    counts = {len(s) for s in slots}
    if counts == {1}:
        return [(frames, tuple(notes))]
    if len(counts) == 1:
        n = counts.pop()
        for s in slots:
            s.sort(key=lambda f: f.temporal_key)
        note = (f"4-D series: {n} images at each of {len(slots)} positions (time points or diffusion "
                f"directions); split into {n} volumes")
        if len(slots) == 1:
            note = f"not a volume: all {n} images lie at the same position; split into {n} single-slice images"
        return [([s[t] for s in slots], tuple(notes) + (f"{note}, this is volume {t + 1} of {n}",)) for t in range(n)]
    extra = sum(len(s) - 1 for s in slots)
    notes.append(f"duplicate positions: {extra} image(s) at an already occupied slice position were ignored "
                 "(the first by acquisition/instance number was kept)")
    return [([min(s, key=lambda f: f.temporal_key) for s in slots], tuple(notes))]
