"""A project folder: the series it annotates, their labels and reviewed flags, the label table, the
models with their training history, and the app state. No Qt; every file is written atomically.

Layout::

    project.json                 series (source path + SeriesInstanceUID), label table, models, state
    labels/<series id>.npz       labels (uint8, 255 = not annotated), reviewed, test flags, the annotation mask
                                 (the voxels the user's strokes annotated), snapshot token
    labels/<series id>.journal   autosave journal of the edits since that snapshot (see journal.py)
    models/<name>.unetgui        model files (safetensors + JSON metadata)
    .lock                        present while the project is open; left behind by a crash
    cache/                       the series' images as memory maps for training (engine/cache.py); rebuilt when missing

Source paths inside the project folder are stored relative to it (the folder can be moved); others
absolute. The images themselves are never copied: a DICOM folder stays where the user keeps it.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import re
import shutil
import uuid
import zipfile
import zlib
from dataclasses import asdict, dataclass, field

import numpy as np

from unetgui.core import atomic, limits
from unetgui.core.annotation import annotation_labels
from unetgui.core.errors import FormatError
from unetgui.core.progress import CancelToken, ProgressFn
from unetgui.core.textsafe import one_line
from unetgui.core.volume import LabelTable, Volume
from unetgui.net.nodes import add_user, read_origin
from unetgui.project import journal as _journal
from unetgui.project import lock as _lock

PROJECT_FILE = "project.json"


#: the names this module gives: a project.json is untrusted input, so nothing else is used as a file name
SERIES_ID = re.compile(r"s[1-9][0-9]{0,8}")
MODEL_FILE = re.compile(r"models/[A-Za-z0-9_-]{1,120}\.unetgui")


def inside(folder: str, path: str) -> bool:
    """``path`` lies in ``folder`` (False across Windows drives, case-insensitive where the OS is)."""
    folder, path = (os.path.normcase(os.path.abspath(p)) for p in (folder, path))
    try:
        return os.path.commonpath([folder, path]) == folder
    except ValueError:  # different drives
        return False


def _checked_id(series_id: str) -> str:
    if not SERIES_ID.fullmatch(series_id):
        raise FormatError(f"{series_id[:80]!r} is not a series id of a unetgui project")
    return series_id


FORMAT = "unetgui-project"
FORMAT_VERSION = 1


@dataclass
class SeriesEntry:
    id: str  # "s1", "s2", ...: names the label files
    source: str  # as stored: relative to the project folder when inside it
    kind: str  # "dicom", "nifti" or "images"
    series_uid: str = ""  # DICOM SeriesInstanceUID: finds the series again in its folder
    description: str = ""
    modality: str = ""
    shape: tuple[int, int, int] = (0, 0, 0)
    state: dict = field(default_factory=dict)  # view state: slice, plane
    origin: str = ""  # the archive a retrieved series came from (net/nodes.read_origin), "" for a local one

    def to_json(self) -> dict:
        return {**asdict(self), "shape": list(self.shape)}

    @classmethod
    def from_json(cls, d: dict) -> SeriesEntry:
        return cls(str(d["id"]), str(d["source"]), str(d["kind"]), str(d.get("series_uid", "")),
                   str(d.get("description", "")), str(d.get("modality", "")), tuple(int(n) for n in d.get("shape", (0, 0, 0))),
                   dict(d.get("state", {})), one_line(d.get("origin", ""))[:300])


@dataclass
class ModelEntry:
    file: str  # relative to the project folder
    name: str
    created: str
    summary: dict = field(default_factory=dict)  # labels, slices, best epoch, validation Dice, device
    history: list[dict] = field(default_factory=list)  # one dict per epoch


@dataclass
class SeriesLabels:
    labels: np.ndarray  # (z, y, x) uint8
    reviewed: np.ndarray
    test: np.ndarray
    recovered_edits: int = 0  # journal records replayed on top of the snapshot
    token: str = ""  # of the snapshot
    note: str = ""  # for the user when the journal was damaged (what was kept)
    planes: tuple[np.ndarray, np.ndarray] | None = None  # reviewed coronal (y) and sagittal (x) planes
    predicted: np.ndarray | None = None  # axial slices a segmentation wrote; None: not known (older files)
    annotated: np.ndarray | None = None  # (z, y, x) bool: the voxels the user's strokes annotated

    def annotation(self) -> np.ndarray:
        """Everything the user annotated, 255 elsewhere (core.annotation.annotation_labels): what an export's
        or a retired project's annotation NIfTI holds."""
        y, x = self.labels.shape[1:]
        planes = self.planes or (np.zeros(y, bool), np.zeros(x, bool))
        return annotation_labels(self.labels, self.reviewed, *planes, self.annotated)


class Project:
    """A project folder (see the module docstring). Create with :meth:`create`, open with :meth:`open`."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.series: list[SeriesEntry] = []
        self.table = LabelTable()
        self.models: list[ModelEntry] = []
        self.current_model: str | None = None
        self.state: dict = {}
        self.created = datetime.datetime.now().isoformat(timespec="seconds")
        self._journals: dict[str, _journal.Journal] = {}
        self._tokens: dict[str, str] = {}

    # -- files -----------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return os.path.basename(self.root)

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def labels_path(self, series_id: str) -> str:
        return self.path("labels", f"{_checked_id(series_id)}.npz")

    def journal_path(self, series_id: str) -> str:
        return self.path("labels", f"{_checked_id(series_id)}.journal")

    @classmethod
    def create(cls, root: str, table: LabelTable | None = None) -> Project:
        """A new, empty project in ``root`` (which must be empty or not exist)."""
        if os.path.exists(os.path.join(root, PROJECT_FILE)):
            raise FormatError(f"{root} already holds a project: open it instead")
        if os.path.isdir(root) and os.listdir(root):
            raise FormatError(f"{root} is not empty: choose an empty or new folder for the project")
        project = cls(root)
        if table is not None:
            project.table = table
        for sub in ("labels", "models"):
            os.makedirs(project.path(sub), exist_ok=True)
        project.save()
        return project

    @classmethod
    def open(cls, root: str) -> Project:
        file = os.path.join(root, PROJECT_FILE)
        if not os.path.isfile(file):
            raise FormatError(f"{root}: not a unetgui project (no {PROJECT_FILE})")
        try:
            with open(file, encoding="utf-8") as f:
                d = json.load(f)
            if d.get("format") != FORMAT:
                raise FormatError(f"{file}: not a unetgui project file")
            if int(d.get("version", 0)) > FORMAT_VERSION:
                raise FormatError(f"{file} was written by a newer unetgui (project version {d['version']}); update unetgui")
            project = cls(root)
            project.series = [SeriesEntry.from_json(s) for s in d.get("series", [])]
            project.table = LabelTable.from_json(d.get("labels", []))
            project.models = [ModelEntry(**m) for m in d.get("models", [])]
            project.current_model = d.get("current_model")
            project.state = dict(d.get("state", {}))
            project.created = d.get("created", project.created)
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError) as exc:
            raise FormatError(f"{file} is damaged: {type(exc).__name__}: {str(exc)[:200]}") from exc
        project._check_names(file)
        return project

    def _check_names(self, file: str) -> None:
        """Series ids and model files name files inside the project: only the names unetgui makes pass (a crafted
        ``"id": "/elsewhere/x"`` would otherwise read and write outside the folder)."""
        ids = [entry.id for entry in self.series]
        for series_id in ids:
            if not SERIES_ID.fullmatch(series_id):
                raise FormatError(f"{file} is damaged: {series_id[:80]!r} is not a series id unetgui makes (s1, s2, ...)")
        if len(set(ids)) != len(ids):
            raise FormatError(f"{file} is damaged: a series id appears twice")
        for model in [m.file for m in self.models] + ([self.current_model] if self.current_model is not None else []):
            if not isinstance(model, str) or not MODEL_FILE.fullmatch(model):
                raise FormatError(f"{file} is damaged: {str(model)[:80]!r} is not a model file inside its models folder")
        if self.current_model is not None and self.current_model not in {m.file for m in self.models}:
            raise FormatError(f"{file} is damaged: its current model {self.current_model!r} is not among its models")

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": FORMAT_VERSION, "created": self.created,
                "series": [s.to_json() for s in self.series], "labels": self.table.to_json(),
                "models": [asdict(m) for m in self.models], "current_model": self.current_model, "state": self.state}

    def save(self) -> None:
        """Write project.json atomically (the labels are saved per series, see :meth:`save_labels`)."""
        os.makedirs(self.root, exist_ok=True)
        atomic.write_bytes(self.path(PROJECT_FILE), json.dumps(self.to_json(), indent=1).encode("utf-8"))

    # -- series ----------------------------------------------------------------------------------
    def source_path(self, entry: SeriesEntry) -> str:
        return os.path.normpath(os.path.join(self.root, entry.source))

    def find_series(self, series_id: str) -> SeriesEntry:
        for entry in self.series:
            if entry.id == series_id:
                return entry
        raise FormatError(f"the project has no series {series_id!r}")

    def add_series(self, source: str, volume: Volume, kind: str) -> SeriesEntry:
        """The entry of ``source``'s series (the existing one if the project has it already)."""
        source = os.path.abspath(source)
        uid = volume.info.series_uid if kind == "dicom" else ""
        for entry in self.series:
            if os.path.samefile(self.source_path(entry), source) if os.path.exists(self.source_path(entry)) else False:
                if entry.series_uid == uid and tuple(entry.shape) == tuple(volume.shape):
                    return entry
        used = {e.id for e in self.series}
        series_id = next(f"s{k}" for k in range(1, len(used) + 2) if f"s{k}" not in used)
        entry = SeriesEntry(series_id, os.path.relpath(source, self.root) if inside(self.root, source) else source, kind, uid,
                            volume.info.series_description, volume.modality, tuple(volume.shape),
                            origin=read_origin(source) if kind == "dicom" and os.path.isdir(source) else "")
        self.series.append(entry)
        self.save()
        if entry.origin:  # a series retrieved into the archive cache: the cache keeps it for this project
            add_user(source, self.root)
        return entry

    def load_image(self, entry: SeriesEntry, progress: ProgressFn | None = None) -> Volume:
        """Read the series' image from its source; it must still have the grid it was annotated on."""
        from unetgui.formats.inputs import open_image

        path = self.source_path(entry)
        if not os.path.exists(path):
            raise FormatError(f"the image of series {entry.id} ({entry.description or entry.kind}) is not at {path} any more: "
                              "put it back there, or remove the series from the project")
        volume = open_image(path, entry.series_uid or None, progress).volume
        if tuple(volume.shape) != tuple(entry.shape):
            raise FormatError(f"{path} now has shape {volume.shape}, the project annotated {tuple(entry.shape)}: "
                              "the source series changed")
        if entry.origin:  # (a project from before the record, or saved elsewhere: recorded once it opens the series)
            add_user(path, self.root)
        return volume

    # -- labels ----------------------------------------------------------------------------------
    def save_labels(self, series_id: str, labels: np.ndarray, reviewed: np.ndarray, test: np.ndarray,
                    planes: tuple[np.ndarray, np.ndarray] | None = None, predicted: np.ndarray | None = None,
                    annotated: np.ndarray | None = None) -> None:
        """Snapshot the labels of a series atomically (with the reviewed axial slices, test slices, reviewed
        coronal and sagittal ``planes``, the ``predicted`` slices, when known, and the voxels ``annotated`` by
        strokes) and start an empty journal."""
        token = uuid.uuid4().hex
        buffer = io.BytesIO()
        _, y, x = labels.shape
        coronal, sagittal = planes if planes is not None else (np.zeros(y, bool), np.zeros(x, bool))
        extra = {} if predicted is None else {"predicted": np.asarray(predicted, bool)}
        if annotated is not None:
            if np.shape(annotated) != labels.shape:
                raise ValueError("the annotation mask does not fit the labels")
            extra["annotated"] = np.asarray(annotated, bool)
        np.savez_compressed(buffer, labels=labels, reviewed=np.asarray(reviewed, bool), test=np.asarray(test, bool),
                            reviewed_coronal=np.asarray(coronal, bool), reviewed_sagittal=np.asarray(sagittal, bool),
                            token=np.array(token), **extra)
        os.makedirs(self.path("labels"), exist_ok=True)
        atomic.write_bytes(self.labels_path(series_id), buffer.getvalue())
        self._tokens[series_id] = token
        self.start_journal(series_id, labels.shape)

    def read_labels(self, series_id: str) -> SeriesLabels | None:
        """The saved labels of a series with its journal replayed (None if never saved). Only reads."""
        path = self.labels_path(series_id)
        if not os.path.isfile(path):
            return None
        try:
            self._check_snapshot(series_id, path)
            with np.load(path, allow_pickle=False) as data:
                labels, reviewed, test = data["labels"].copy(), data["reviewed"].copy(), data["test"].copy()
                token = str(data["token"])
                _, y, x = labels.shape  # snapshots from before planes had review flags have none
                coronal = data["reviewed_coronal"].copy() if "reviewed_coronal" in data.files else np.zeros(y, bool)
                sagittal = data["reviewed_sagittal"].copy() if "reviewed_sagittal" in data.files else np.zeros(x, bool)
                predicted = data["predicted"].copy() if "predicted" in data.files else None
                annotated = data["annotated"].copy() if "annotated" in data.files else np.zeros(labels.shape, bool)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as exc:
            raise FormatError(f"{path} is damaged: {exc}") from exc
        found = _journal.scan(self.journal_path(series_id), token, labels.shape)
        for record in found.records:
            record.apply(labels, annotated)
            reviewed, test = record.reviewed.copy(), record.test.copy()
            if record.coronal is not None:
                coronal, sagittal = record.coronal.copy(), record.sagittal.copy()
            if record.predicted is not None:
                predicted = record.predicted.copy()
        return SeriesLabels(labels, reviewed, test, len(found.records), token, found.note, (coronal, sagittal), predicted,
                            annotated)

    def _check_snapshot(self, series_id: str, path: str) -> None:
        """The array headers of a labels snapshot match its series' shape, before any array is read (a
        crafted header can claim terabytes in a few bytes)."""
        entry = next((e for e in self.series if e.id == series_id), None)
        z, y, x = entry.shape if entry is not None and all(entry.shape) else (0, 0, 0)
        expected = {"labels": ((z, y, x), np.uint8), "reviewed": ((z,), np.bool_), "test": ((z,), np.bool_),
                    "reviewed_coronal": ((y,), np.bool_), "reviewed_sagittal": ((x,), np.bool_),
                    "predicted": ((z,), np.bool_), "annotated": ((z, y, x), np.bool_)}
        # absent from snapshots written before them
        optional = {"reviewed_coronal", "reviewed_sagittal", "predicted", "annotated"}
        with zipfile.ZipFile(path) as archive:
            members = set(archive.namelist())
            for name, (shape, dtype) in expected.items():
                if name in optional and f"{name}.npy" not in members:
                    continue
                with archive.open(f"{name}.npy") as member:
                    version = np.lib.format.read_magic(member)
                    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                    found, _, found_dtype = read_header(member)
                limits.check_shape(found, f"{os.path.basename(path)} ({name})")
                if (z and found != shape) or found_dtype != dtype or len(found) != len(shape):
                    raise FormatError(f"{path} is damaged: {name} is {found_dtype} {found}, the series needs "
                                      f"{np.dtype(dtype)} {shape if z else len(shape) * ('n',)}")

    def load_labels(self, series_id: str) -> SeriesLabels | None:
        """:meth:`read_labels`, for the series about to be edited (its journal continues this snapshot)."""
        saved = self.read_labels(series_id)
        if saved is not None:
            self._tokens[series_id] = saved.token
        return saved

    def _snapshot_token(self, series_id: str) -> str:
        """The token of a series' snapshot (reads only that member of the npz, not the labels)."""
        try:
            with np.load(self.labels_path(series_id), allow_pickle=False) as data:
                return str(data["token"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as exc:
            raise FormatError(f"{self.labels_path(series_id)} is damaged: {exc}") from exc

    def pending_edits(self, series_id: str) -> int:
        """Journal records not yet in the snapshot (what a crash left to recover)."""
        if not os.path.isfile(self.labels_path(series_id)):
            return 0
        try:
            token = self._snapshot_token(series_id)
        except FormatError:
            return 0
        return len(_journal.scan(self.journal_path(series_id), token, None).records)

    def start_journal(self, series_id: str, shape, resume: bool = False) -> _journal.Journal:
        """Journal the edits of a series after its snapshot: a fresh journal, or (``resume``) continue
        the one on disk, so that showing a series again needs no new snapshot."""
        old = self._journals.pop(series_id, None)
        if old is not None:
            old.close()
        if series_id not in self._tokens:
            self._tokens[series_id] = self._snapshot_token(series_id)
        journal = _journal.Journal(self.journal_path(series_id), series_id, tuple(shape), self._tokens[series_id], resume)
        self._journals[series_id] = journal
        return journal

    def journal(self, series_id: str) -> _journal.Journal | None:
        return self._journals.get(series_id)

    def close_journal(self, series_id: str) -> None:
        journal = self._journals.pop(series_id, None)
        if journal is not None:
            journal.close()

    def compact(self, series_id: str) -> None:
        """Fold a series' journal into a new snapshot (not the series on screen: its Autosaver does that)."""
        if self.pending_edits(series_id):
            saved = self.load_labels(series_id)
            if saved.note:  # a damaged journal is not overwritten without a copy
                _journal.keep_aside(self.journal_path(series_id), "damaged")
            self.save_labels(series_id, saved.labels, saved.reviewed, saved.test, saved.planes, saved.predicted,
                             saved.annotated)
            self.close_journal(series_id)

    def discard_journal(self, series_id: str) -> None:
        """Keep a crash's unrecovered edits aside (never deleted) and continue from the snapshot."""
        path = self.journal_path(series_id)
        if os.path.isfile(path):
            _journal.keep_aside(path, "discarded", move=True)

    # -- models ----------------------------------------------------------------------------------
    def add_model(self, checkpoint, name: str | None = None) -> ModelEntry:
        """Save an engine Checkpoint into models/ (atomically) and make it the current model."""
        from unetgui.engine import checkpoint as model_file

        info = checkpoint.info
        stamp = datetime.datetime.now()
        base = re.sub(r"[^A-Za-z0-9_-]+", "-", name or f"model-{stamp:%Y%m%d-%H%M%S}").strip("-") or "model"
        file, k = f"models/{base}.unetgui", 1
        while os.path.exists(self.path(file)):
            k += 1
            file = f"models/{base}-{k}.unetgui"
        os.makedirs(self.path("models"), exist_ok=True)
        model_file.save(checkpoint, self.path(file))
        training = info.get("training", {})
        summary = {"labels": [lab.name for lab in checkpoint.labels], "device": info.get("device", ""),
                   "train_slices": training.get("train_slices"), "val_slices": training.get("val_slices"),
                   "best_epoch": training.get("best_epoch"), "val_dice": info.get("metrics", {}).get("val_dice", {})}
        entry = ModelEntry(file, os.path.basename(file)[:-len(".unetgui")], stamp.isoformat(timespec="seconds"),
                           summary, list(info.get("history", [])))
        self.models.append(entry)
        self.current_model = file
        self.save()
        return entry

    def load_model(self, file: str | None = None):
        """The engine Checkpoint of ``file`` (default: the current model), or None."""
        file = file or self.current_model
        if not file:
            return None
        from unetgui.engine import checkpoint as model_file

        return model_file.load(self.model_path(file))

    def model_path(self, file: str) -> str:
        """The path of one of the project's model files, which must lie in its models folder (links included)."""
        path = self.path(file) if MODEL_FILE.fullmatch(file) else ""
        if not path or not inside(os.path.realpath(self.path("models")), os.path.realpath(path)):
            raise FormatError(f"{file[:80]!r} is not a model file inside the project's models folder")
        return path

    # -- lock: tells the next start whether the app closed cleanly -----------------------------------
    def lock(self) -> None:
        _lock.write(self.path(".lock"))

    def unlock(self) -> None:
        for journal in self._journals.values():
            journal.close()
        self._journals.clear()
        if os.path.exists(self.path(".lock")):
            os.remove(self.path(".lock"))

    def lock_owner(self) -> _lock.LockOwner:
        """Who has the project open (project/lock.py)."""
        return _lock.owner(self.path(".lock"))

    def copy_to(self, root: str, cancel: CancelToken | None = None) -> Project:
        """Save as: a copy of this project in ``root`` (labels, journals, models, and sources kept inside the folder)."""
        if os.path.exists(root) and os.listdir(root):
            raise FormatError(f"{root} is not empty: choose an empty or new folder")
        if inside(self.root, root):
            raise FormatError(f"{root} lies inside the project itself: choose a folder elsewhere")
        def skipped(folder: str, names: list[str]) -> list[str]:  # the lock, temporary files, the top-level cache
            top = os.path.abspath(folder) == os.path.abspath(self.root)
            return [n for n in names if n == ".lock" or n.startswith(atomic.TEMP_PREFIX) or (top and n == "cache")]

        shutil.copytree(self.root, root, dirs_exist_ok=True, ignore=skipped)
        return Project.open(root)  # sources inside the folder were copied along; others are absolute
