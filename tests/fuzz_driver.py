"""Fuzz driver for tests/formats/test_fuzz.py (issue 12): mutated DICOM files, NIfTI headers, model files, journals and
project.json files through ``info``, ``convert``, ``predict``, ``export --project`` and project open.

    python tests/fuzz_driver.py WORK DATA_DIR SEED [SCALE]

Runs every case in-process, one at a time, each in its own folder (cwd) with its input in ``in/`` and its
output in ``out/``; prints one JSON line per case: {"case", "ok", "seconds", "why"}. A case is ok when the
command exits 0 or 1 (a one-line reason) or the API raises a UnetguiError, nothing is printed as a
traceback, and no file appears outside ``out/`` (and the project folder, for project cases). Run as its own
process so that the test can put a time limit on the whole run (a hang fails the test instead of blocking).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import struct
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

DICOM_BASES = ("pydicom-test-files/test_files/CT_small.dcm", "pydicom-test-files/test_files/MR_small_RLE.dcm",
               "pydicom-test-files/test_files/MR_small_jpeg_ls_lossless.dcm",
               "pydicom-test-files/test_files/image_dfl.dcm", "pydicom-test-files/test_files/SC_rgb_rle_2frame.dcm")


def _flip(data: bytes, rng: random.Random, n: int, region: int | None = None) -> bytes:
    out = bytearray(data)
    for _ in range(n):
        i = rng.randrange(min(len(out), region) if region else len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[:rng.randrange(len(data))]


def _huge_dicom(path: str, rng: random.Random) -> bytes:
    import pydicom

    ds = pydicom.dcmread(path)
    field = rng.choice(["Rows", "Columns", "NumberOfFrames", "BitsAllocated", "SamplesPerPixel"])
    value = rng.choice([0, 1, 3, 65535, 3_000_000, 2**31 - 1])
    if field in ("Rows", "Columns", "BitsAllocated", "SamplesPerPixel"):
        value = min(value, 65535)
    setattr(ds, field, value)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=False)
    return buffer.getvalue()


def _nifti_base() -> bytes:
    import nibabel as nib
    import numpy as np

    img = nib.Nifti1Image(np.arange(4 * 32 * 32, dtype=np.int16).reshape(32, 32, 4) - 1000, np.diag([0.8, 0.8, 2.0, 1.0]))
    img.header.set_sform(img.affine, code=1)
    return img.to_bytes()


def _huge_nifti(base: bytes, rng: random.Random) -> bytes:
    out = bytearray(base)
    dims = [rng.choice([0, 1, 4, 32, 16384, 32767, -1]) for _ in range(3)]
    struct.pack_into("<8h", out, 40, rng.choice([0, 3, 4, 7, 8, -1]), *dims, rng.choice([1, 0, 2000]), 1, 1, 1)
    if rng.random() < 0.5:
        struct.pack_into("<h", out, 70, rng.choice([0, 2, 4, 16, 64, 128, 1024, 2304, 32767]))  # datatype
    if rng.random() < 0.3:
        struct.pack_into("<f", out, 108, rng.choice([0.0, -1.0, 1e30, float("nan")]))  # vox_offset
    return bytes(out)


def _mutate_json(text: str, rng: random.Random) -> str:
    """A structure-aware mutation of a JSON document: a value replaced by another type, a key dropped, or
    a list entry duplicated; else raw bit flips."""
    if rng.random() < 0.25:
        return _flip(text.encode(), rng, rng.randint(1, 4)).decode("utf-8", "replace")
    doc = json.loads(text)
    nodes = []

    def walk(node, parent, key):
        nodes.append((parent, key))
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, node, k)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, node, i)

    walk(doc, None, None)
    parent, key = rng.choice(nodes[1:]) if len(nodes) > 1 else (None, None)
    if parent is None:
        return json.dumps(rng.choice([[], 0, "x", None]))
    choice = rng.random()
    if choice < 0.3 and isinstance(parent, dict):
        del parent[key]
    elif choice < 0.4 and isinstance(parent, list):
        parent.append(parent[key])
    else:
        parent[key] = rng.choice([None, -1, 0, 2**40, 1e308, "", "../../outside", "s1", [], {}, [1, 2], True,
                                  "/etc/passwd", "models/../../x.unetgui"])
    return json.dumps(doc)


class Runner:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.count = 0

    def case(self, name: str, files: dict[str, bytes], action, allowed: tuple[str, ...] = ("out",)) -> dict:
        """Write ``files`` under a fresh case folder, run ``action(folder)`` there, check the outcome."""
        from unetgui.core.errors import UnetguiError

        self.count += 1
        folder = self.work / f"c{self.count:04d}"
        (folder / "out").mkdir(parents=True)
        for rel, data in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data)
        before = {p for p in folder.rglob("*") if p.is_file()}
        outside_before = {p for p in self.work.iterdir() if p != folder}
        err = io.StringIO()
        start = time.monotonic()
        why = ""
        cwd = os.getcwd()
        try:
            os.chdir(folder)
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                code = action(folder)
            if code not in (0, 1, None):
                why = f"exit code {code}: {err.getvalue().strip()[-300:]}"
        except UnetguiError:
            pass
        except Exception as exc:  # noqa: BLE001 - this is what the fuzz test looks for
            why = f"{type(exc).__name__}: {exc}"[:300]
        finally:
            os.chdir(cwd)
        seconds = time.monotonic() - start
        text = err.getvalue()
        if "out of memory" in text:  # an allocation the limits should have prevented (the address space is capped)
            why = why or f"ran out of memory: {text.strip()[-200:]}"
        if "Traceback" in text:
            why = why or "a traceback on stderr"
        errors = [line for line in text.splitlines() if line.startswith("unetgui: error")]
        if any("a bug in unetgui" in line for line in errors):
            why = why or errors[0][:300]
        new = {p for p in folder.rglob("*") if p.is_file()} - before
        stray = [str(p.relative_to(folder)) for p in new if not any(p.relative_to(folder).parts[0] == a for a in allowed)]
        if stray:
            why = why or f"wrote outside the output: {stray[:3]}"
        if {p for p in self.work.iterdir() if p != folder} != outside_before:
            why = why or "wrote next to the case folder"
        shutil.rmtree(folder, ignore_errors=True)
        return {"case": name, "ok": not why, "seconds": round(seconds, 3), "why": why}


def _cli(argv: list[str]):
    from unetgui import cli

    return lambda folder: cli.main(argv)


def main(work: Path, data: Path, seed: int, scale: float = 1.0) -> None:
    import numpy as np

    from unetgui.core.volume import Volume
    from unetgui.formats import nifti
    from unetgui.project.store import Project

    rng = random.Random(seed)
    try:  # an allocation a limit should have refused fails here as MemoryError instead of swapping
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
    except (ImportError, ValueError, OSError):
        pass
    work.mkdir(parents=True, exist_ok=True)
    os.environ["UNETGUI_DATA"] = str(work / "data")
    run = Runner(work / "cases")
    (work / "cases").mkdir()
    n = lambda k: max(1, int(k * scale))  # noqa: E731

    model_bytes = (REPO / "resources" / "sample" / "model.unetgui").read_bytes()
    model = work / "model.unetgui"
    model.write_bytes(model_bytes)
    small = work / "small.nii.gz"
    nifti.write_image(Volume((np.random.default_rng(0).normal(40, 20, (3, 48, 48))).astype(np.int16), np.eye(4), "CT"), str(small))

    def emit(result: dict) -> None:
        print(json.dumps(result), flush=True)

    # DICOM: bit flips (header and pixels), truncation, huge or odd sizes; info, convert and (some) predict
    bases = [(data / b) for b in DICOM_BASES if (data / b).is_file()]
    for i in range(n(120)):
        base = bases[i % len(bases)]
        raw = base.read_bytes()
        kind = ("flip", "flip-header", "truncate", "huge")[i % 4]
        blob = (_flip(raw, rng, rng.randint(1, 8)) if kind == "flip" else
                _flip(raw, rng, rng.randint(1, 6), region=1200) if kind == "flip-header" else
                _truncate(raw, rng) if kind == "truncate" else _huge_dicom(str(base), rng))
        command = ("info", "convert", "predict")[i % 3]
        argv = {"info": ["info", "in"], "convert": ["convert", "--input", "in", "--output", "out/x.nii.gz"],
                "predict": ["predict", "--model", str(model), "--input", "in", "--output", "out/p.nii.gz"]}[command]
        emit(run.case(f"dicom {kind} {base.name} {command}", {"in/x.dcm": blob}, _cli(argv)))

    # NIfTI: header fields (dims, datatype, offset), bit flips, truncation; info and predict
    nii = _nifti_base()
    for i in range(n(60)):
        kind = ("huge", "flip-header", "truncate")[i % 3]
        blob = (_huge_nifti(nii, rng) if kind == "huge" else _flip(nii, rng, rng.randint(1, 6), region=352) if
                kind == "flip-header" else _truncate(nii, rng))
        argv = (["info", "in/x.nii"] if i % 2 else
                ["predict", "--model", str(model), "--input", "in/x.nii", "--output", "out/p.nii.gz"])
        emit(run.case(f"nifti {kind} {argv[0]}", {"in/x.nii": blob}, _cli(argv)))

    # model files: the JSON header (its length and content), truncation; predict on a small valid image
    header_len = struct.unpack("<Q", model_bytes[:8])[0]
    for i in range(n(40)):
        kind = ("flip-header", "truncate", "json")[i % 3]
        if kind == "json":
            meta_doc = json.loads(model_bytes[8:8 + header_len])
            meta_doc["__metadata__"]["unetgui"] = _mutate_json(meta_doc["__metadata__"]["unetgui"], rng)
            head = json.dumps(meta_doc).encode()
            head += b" " * (-len(head) % 8)
            blob = struct.pack("<Q", len(head)) + head + model_bytes[8 + header_len:]
        else:
            blob = _flip(model_bytes, rng, rng.randint(1, 6), region=8 + header_len) if kind == "flip-header" else \
                _truncate(model_bytes, rng)
        argv = ["predict", "--model", "in/m.unetgui", "--input", str(small), "--output", "out/p.nii.gz"]
        emit(run.case(f"model {kind}", {"in/m.unetgui": blob}, _cli(argv)))

    # a project with two edits in its journal: journals and project.json mutated; open, read, export
    from project_fixtures import project_with_edits

    template = work / "template"
    _, entry = project_with_edits(template, work / "ct.nii.gz", (4, 16, 16), 3)
    files = {str(Path("project") / p.relative_to(template)): p.read_bytes() for p in template.rglob("*") if p.is_file()}
    journal_key = f"project/labels/{entry.id}.journal"

    def open_project(folder: Path):
        opened = Project.open(str(folder / "project"))
        for e in opened.series:
            saved = opened.load_labels(e.id)
            if saved is not None:
                opened.start_journal(e.id, saved.labels.shape, resume=True)
        opened.unlock()
        from unetgui import cli

        return cli.main(["export", "--project", str(folder / "project"), "--output", "out", "--nifti", "--annotation"])

    for i in range(n(40)):
        kind = ("flip", "truncate")[i % 2]
        data_j = files[journal_key]
        blob = _flip(data_j, rng, rng.randint(1, 6)) if kind == "flip" else _truncate(data_j, rng)
        emit(run.case(f"journal {kind}", {**files, journal_key: blob}, open_project, allowed=("out", "project")))
    snapshot_key = f"project/labels/{entry.id}.npz"  # labels, flags and the annotation mask (issue 26)
    for i in range(n(20)):
        kind = ("flip", "truncate")[i % 2]
        data_s = files[snapshot_key]
        blob = _flip(data_s, rng, rng.randint(1, 6)) if kind == "flip" else _truncate(data_s, rng)
        emit(run.case(f"snapshot {kind}", {**files, snapshot_key: blob}, open_project, allowed=("out", "project")))
    for i in range(n(40)):
        text = files["project/project.json"].decode()
        emit(run.case("project.json", {**files, "project/project.json": _mutate_json(text, rng).encode()},
                      open_project, allowed=("out", "project")))

    new_formats(run, work, data, rng, n, model_bytes)


# -- the formats of issue 24: NRRD, .nhdr, .seg.nrrd, label tables, data sets, cache, DICOM-SEG, storage, ONNX --

HOSTILE_VALUES = ["9" * 5000, str(2**63), "-1", "0", "1e308", "nan", "", "65535 65535 65535", "16 16 4 4", "x",
                  "\x1b[2J", "a\nb"]
HOSTILE_LINES = ["line skip: 1000000000", "byte skip: 4294967296", "byte skip: -1", "data file: /etc/passwd",
                 "data file: ../outside.raw", "data file: LIST", "encoding: bzip2", "type: double", "dimension: 9999",
                 "sizes: 4096 4096 4096", "space directions: none none none", "lineskip: 99999999999999999999"]


def _nrrd_lines(encoding: str = "gzip") -> list[str]:
    return ["NRRD0004", "type: short", "dimension: 3", "space: left-posterior-superior", "sizes: 16 16 4",
            "space directions: (0.8,0,0) (0,0.8,0) (0,0,2)", "kinds: domain domain domain", "endian: little",
            f"encoding: {encoding}", "space origin: (0,0,0)"]


def _nrrd_body(encoding: str = "gzip") -> bytes:
    import gzip

    import numpy as np

    raw = (np.arange(16 * 16 * 4, dtype=np.int16) - 500).tobytes()
    return gzip.compress(raw) if encoding == "gzip" else raw


def _mutate_lines(lines: list[str], rng: random.Random, keys: list[str] | None = None) -> list[str]:
    """A header's lines with one hostile change: a field's value, an added line, a repeated line."""
    out = list(lines)
    choice = rng.random()
    if choice < 0.45:
        i = rng.randrange(1, len(out))
        key = out[i].split(":", 1)[0].split(":=", 1)[0]
        sep = ":=" if ":=" in out[i] else ": "
        out[i] = key + sep + rng.choice(HOSTILE_VALUES)
    elif choice < 0.8:
        out.insert(rng.randrange(1, len(out) + 1), rng.choice(HOSTILE_LINES + [f"{k}:={v}" for k in (keys or [])
                                                                               for v in HOSTILE_VALUES[:3]]))
    else:
        i = rng.randrange(1, len(out))
        out[i:i] = [out[i]] * rng.choice([2, 1000, 100_000])
    return out


def _image_file(path: Path, shape=(4, 16, 16)) -> None:
    import numpy as np

    from unetgui.core.volume import Volume
    from unetgui.formats import nifti

    nifti.write_image(Volume((np.random.default_rng(0).normal(40, 20, shape)).astype(np.int16),
                             np.diag([0.8, 0.8, 2.0, 1.0]), "CT"), str(path))


def _labels_file(path: Path, shape=(4, 16, 16), names=("liver", "spleen")) -> None:
    import numpy as np

    from unetgui.core.volume import Label, LabelMap, LabelTable, default_color
    from unetgui.formats import nifti

    labels = np.zeros(shape, np.uint8)
    labels[:, 4:8, 4:8] = 1
    labels[:, 9:12, 9:12] = 2
    table = LabelTable(tuple(Label(v, n, default_color(v)) for v, n in enumerate(names, start=1)))
    nifti.write_labels(LabelMap(labels, np.diag([0.8, 0.8, 2.0, 1.0]), table), str(path))


def _api(fn):
    """An action that runs ``fn(folder)`` and returns 0 (a UnetguiError is an ok outcome: the runner catches it)."""
    def action(folder: Path):
        fn(folder)
        return 0
    return action


def new_formats(run: Runner, work: Path, data: Path, rng: random.Random, n, model_bytes: bytes) -> None:
    from unetgui.formats.inputs import open_image, open_labels

    def emit(result: dict) -> None:
        print(json.dumps(result), flush=True)

    # NRRD (attached, gzip or raw) through info and convert
    for i in range(n(40)):
        encoding = ("gzip", "raw")[i % 2]
        kind = ("header", "header", "flip", "truncate")[i % 4]
        head = "\n".join(_nrrd_lines(encoding) if kind != "header" else _mutate_lines(_nrrd_lines(encoding), rng))
        blob = head.encode() + b"\n\n" + _nrrd_body(encoding)
        blob = _flip(blob, rng, rng.randint(1, 6)) if kind == "flip" else _truncate(blob, rng) if kind == "truncate" else blob
        argv = (["info", "in/x.nrrd"] if i % 3 == 0 else ["convert", "--input", "in/x.nrrd", "--output", "out/x.nii.gz"])
        emit(run.case(f"nrrd {kind} {encoding} {argv[0]}", {"in/x.nrrd": blob}, _cli(argv)))

    # detached headers (.nhdr + data file)
    for i in range(n(20)):
        lines = _nrrd_lines("raw") + ["data file: x.raw"]
        head = "\n".join(_mutate_lines(lines, rng) if i % 3 else lines[:-1] + [rng.choice(
            ["data file: /etc/passwd", "data file: ../../x.raw", "data file: sub/../../x.raw", "data file: LIST 0",
             "data file: x%d.raw 0 99999999999 1"])])
        emit(run.case(f"nhdr {i % 3 and 'header' or 'points elsewhere'}",
                      {"in/x.nhdr": head.encode() + b"\n", "in/x.raw": _nrrd_body("raw")},
                      _cli(["convert", "--input", "in/x.nhdr", "--output", "out/x.nii.gz"])))

    # Slicer .seg.nrrd: segment keys mutated; read on the image's grid, written back, read again
    template = work / "segtemplate"
    template.mkdir(exist_ok=True)
    _image_file(template / "image.nii.gz")
    _labels_file(template / "labels.nii.gz")
    image_bytes = (template / "image.nii.gz").read_bytes()
    from unetgui.formats import nrrd as nrrd_format

    base_image = open_image(str(template / "image.nii.gz"))
    lm, _ = open_labels(str(template / "labels.nii.gz"), base_image)
    nrrd_format.write_segmentation(lm, str(template / "x.seg.nrrd"))
    seg = (template / "x.seg.nrrd").read_bytes()
    seg_head, seg_body = seg.split(b"\n\n", 1)
    seg_lines = seg_head.decode().split("\n")
    seg_keys = sorted({line.split(":=")[0] for line in seg_lines if ":=" in line})

    def seg_roundtrip(folder: Path) -> None:
        image = open_image(str(folder / "in/image.nii.gz"))
        labels, _ = open_labels(str(folder / "in/x.seg.nrrd"), image)
        nrrd_format.write_segmentation(labels, str(folder / "out/back.seg.nrrd"))
        head = (folder / "out/back.seg.nrrd").read_bytes().split(b"\n\n", 1)[0].decode("latin-1")
        if any(line.lower().startswith(("data file", "datafile", "line skip", "byte skip")) for line in head.split("\n")):
            raise AssertionError("a name from the input wrote a header line of its own")
        open_labels(str(folder / "out/back.seg.nrrd"), image)

    for i in range(n(30)):
        kind = ("keys", "keys", "flip", "truncate")[i % 4]
        blob = ("\n".join(_mutate_lines(seg_lines, rng, seg_keys)).encode() + b"\n\n" + seg_body if kind == "keys" else
                _flip(seg, rng, rng.randint(1, 6)) if kind == "flip" else _truncate(seg, rng))
        emit(run.case(f"seg.nrrd {kind}", {"in/x.seg.nrrd": blob, "in/image.nii.gz": image_bytes},
                      _api(seg_roundtrip)))

    # label tables beside a label volume (ITK-SNAP text, Slicer colour table): a broken table must not stop reading
    label_bytes = (template / "labels.nii.gz").read_bytes()
    itk = ["################################################", "# ITK-SnAP Label Description File",
           '    0     0    0    0        0  0  0    "Clear Label"', '    1   255    0    0        1  1  1    "liver"',
           '    2     0  255    0        1  1  1    "spleen"']
    ctbl = ["# Color table", "0 Background 0 0 0 0", "1 liver 230 25 45 255", "2 spleen 40 200 75 255"]

    def read_with_table(folder: Path) -> None:
        image = open_image(str(folder / "in/image.nii.gz"))
        open_labels(str(folder / "in/labels.nii.gz"), image)

    for i in range(n(30)):
        name, lines = (("labels.itksnap.txt", itk), ("labels.ctbl", ctbl))[i % 2]
        if i % 5 == 4:
            blob = _flip("\n".join(lines).encode(), rng, rng.randint(1, 8))
        else:
            out = list(lines)
            j = rng.randrange(len(out))
            fields = out[j].split()
            if fields:
                fields[rng.randrange(len(fields))] = rng.choice(HOSTILE_VALUES).replace("\\n", "\n")
            out[j] = " ".join(fields)
            blob = "\n".join(out).encode()
        emit(run.case(f"label table {name.split('.')[-1]}", {f"in/{name}": blob, "in/labels.nii.gz": label_bytes,
                                                               "in/image.nii.gz": image_bytes}, _api(read_with_table)))

    # data sets: an nnU-Net folder (dataset.json mutated) and a CSV manifest, read and cached into out/
    from unetgui.tasks.sources import DatasetSource

    ds_template = work / "dstemplate"
    for k in range(3):
        (ds_template / "imagesTr").mkdir(parents=True, exist_ok=True)
        (ds_template / "labelsTr").mkdir(parents=True, exist_ok=True)
        _image_file(ds_template / "imagesTr" / f"case_{k:03d}_0000.nii.gz", (2, 16, 16))
        _labels_file(ds_template / "labelsTr" / f"case_{k:03d}.nii.gz", (2, 16, 16))
    dataset_json = {"name": "fuzz", "channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "spleen": 2},
                    "numTraining": 3, "file_ending": ".nii.gz"}
    ds_files = {str(Path("in/ds") / p.relative_to(ds_template)): p.read_bytes() for p in ds_template.rglob("*") if p.is_file()}

    def load_dataset(path: str):
        return lambda folder: DatasetSource(str(folder / path), cache=str(folder / "out" / "cache")).load()

    for i in range(n(30)):
        text = _mutate_json(json.dumps(dataset_json), rng)
        emit(run.case("dataset.json", {**ds_files, "in/ds/dataset.json": text.encode()}, _api(load_dataset("in/ds"))))
    manifest = "id,image,label,split\n" + "".join(
        f"case_{k},ds/imagesTr/case_{k:03d}_0000.nii.gz,ds/labelsTr/case_{k:03d}.nii.gz,\n" for k in range(3))
    for i in range(n(20)):
        lines = manifest.split("\n")
        j = rng.randrange(len(lines))
        cells = lines[j].split(",")
        cells[rng.randrange(len(cells))] = rng.choice(HOSTILE_VALUES + ["/etc/passwd", "../../x.nii.gz", "test",
                                                                         "ds/imagesTr"])
        lines[j] = ",".join(cells)
        emit(run.case("csv manifest", {**ds_files, "in/ds/dataset.json": json.dumps(dataset_json).encode(),
                                       "in/cases.csv": "\n".join(lines).encode()}, _api(load_dataset("in/cases.csv"))))

    # cache entries: a good cache, one of its files damaged, read again (rebuilt or refused, never trusted)
    cache_work = work / "cachetemplate"
    for rel, blob in {**ds_files, "in/ds/dataset.json": json.dumps(dataset_json).encode()}.items():
        (cache_work / rel).parent.mkdir(parents=True, exist_ok=True)
        (cache_work / rel).write_bytes(blob)
    (cache_work / "out").mkdir(exist_ok=True)
    DatasetSource(str(cache_work / "in/ds"), cache=str(cache_work / "out" / "cache")).load()
    cache_files = {str(p.relative_to(cache_work)): p.read_bytes() for p in cache_work.rglob("*") if p.is_file()}
    entries = sorted(k for k in cache_files if k.startswith("out/cache"))
    for i in range(n(20)):
        victim = rng.choice(entries)
        damaged = _flip(cache_files[victim], rng, rng.randint(1, 6), region=160) if i % 2 else _truncate(cache_files[victim], rng)
        emit(run.case(f"cache entry {Path(victim).name}", {**cache_files, victim: damaged}, _api(load_dataset("in/ds"))))

    # DICOM-SEG import: the dcmqi liver on its CT (header bit flips, truncation, edited fields)
    seg_path = data / "dcmqi-ct-3slice-liver-seg" / "seg" / "liver_seg.dcm"
    ct_folder = data / "dcmqi-ct-3slice-liver-seg" / "ct"
    if seg_path.is_file() and ct_folder.is_dir():
        import pydicom

        ct = open_image(str(ct_folder))
        seg_raw = seg_path.read_bytes()

        def edited_seg() -> bytes:
            ds = pydicom.dcmread(str(seg_path))
            what = rng.choice(["segment", "frames", "rows", "label", "reference"])
            if what == "segment":
                ds.SegmentSequence[0].SegmentNumber = rng.choice([0, 2, 255, 65535])
            elif what == "frames":
                ds.NumberOfFrames = rng.choice([0, 1, 2, 99999, 2**31 - 1])
            elif what == "rows":
                ds.Rows = rng.choice([0, 1, 65535])
            elif what == "label":
                ds.SegmentSequence[0].SegmentLabel = "liver\x1b[31m\nevil"
            else:
                frame = ds.PerFrameFunctionalGroupsSequence[0]
                frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber = rng.choice([0, 7, 65535])
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=False)
            return buffer.getvalue()

        def read_seg(folder: Path) -> None:
            open_labels(str(folder / "in/seg.dcm"), ct)

        for i in range(n(40)):
            kind = ("edit", "flip-header", "truncate", "flip")[i % 4]
            blob = (edited_seg() if kind == "edit" else _flip(seg_raw, rng, rng.randint(1, 6), region=3000) if
                    kind == "flip-header" else _truncate(seg_raw, rng) if kind == "truncate" else
                    _flip(seg_raw, rng, rng.randint(1, 8)))
            emit(run.case(f"dicom-seg {kind}", {"in/seg.dcm": blob}, _api(read_seg)))

    # tune --storage: URLs that are not a database, and a file that is not one
    small = work / "tune_image.nii.gz"
    small_labels = work / "tune_labels.nii.gz"
    _image_file(small, (3, 48, 48))
    _labels_file(small_labels, (3, 48, 48))
    storages = ["nonsense://x", "sqlite:////nonexistent/dir/x.db", "sqlite:///in/notadb.db", "postgresql://u@127.0.0.1:1/x",
                "sqlite:///in/notadb.db?mode=ro", "redis://127.0.0.1:1/0", "file:///etc/passwd", "sqlite:///" + "x" * 5000]
    for i, url in enumerate(storages[:n(8)]):
        argv = ["tune", "--images", str(small), "--labels", str(small_labels), "--output", "out/best.unetgui",
                "--trials", "1", "--trial-minutes", "0.05", "--storage", url]
        emit(run.case(f"tune storage {i}", {"in/notadb.db": b"SQLite format 2\0" + bytes(200)}, _cli(argv)))

    # PNG folders (images, and masks compared by evaluate): bit flips, truncation, huge IHDR sizes
    import cv2
    import numpy as np

    png_images = [cv2.imencode(".png", (np.random.default_rng(k).integers(0, 255, (24, 24))).astype(np.uint8))[1].tobytes()
                  for k in range(2)]
    png_masks = [cv2.imencode(".png", np.where(np.arange(576).reshape(24, 24) % 7 == 0, 255, 0).astype(np.uint8))[1].tobytes()
                 for _ in range(2)]

    def huge_ihdr(blob: bytes) -> bytes:
        import zlib as _zlib

        out = bytearray(blob)
        struct.pack_into(">II", out, 16, rng.choice([0, 1, 65535, 2**31 - 1]), rng.choice([0, 1, 100_000, 2**31 - 1]))
        struct.pack_into(">I", out, 29, _zlib.crc32(bytes(out[12:29])))  # a valid CRC: the size is what is tested
        return bytes(out)

    for i in range(n(30)):
        kind = ("flip", "truncate", "huge")[i % 3]
        victim = rng.randrange(2)
        blobs = list(png_images if i % 2 == 0 else png_masks)
        blobs[victim] = (_flip(blobs[victim], rng, rng.randint(1, 6)) if kind == "flip" else
                         _truncate(blobs[victim], rng) if kind == "truncate" else huge_ihdr(blobs[victim]))
        if i % 2 == 0:
            files = {f"in/img/s{k}.png": b for k, b in enumerate(blobs)}
            argv = ["convert", "--input", "in/img", "--output", "out/x.nii.gz"]
        else:
            files = {**{f"in/t/s{k}.png": b for k, b in enumerate(blobs)},
                     **{f"in/p/s{k}.png": b for k, b in enumerate(png_masks)}}
            argv = ["evaluate", "--truth", "in/t", "--prediction", "in/p"]
        emit(run.case(f"png {kind} {argv[0]}", files, _cli(argv)))

    # ONNX export of mutated model files
    header_len = struct.unpack("<Q", model_bytes[:8])[0]
    for i in range(n(10)):
        blob = _flip(model_bytes, rng, rng.randint(1, 6), region=8 + header_len) if i % 2 else _truncate(model_bytes, rng)
        emit(run.case("onnx export", {"in/m.unetgui": blob},
                      _cli(["export-model", "--model", "in/m.unetgui", "--onnx", "out/m.onnx"])))

    # archive nodes (the data root's archive_nodes.json), a retrieved series' origin.json and used_by.json: mutated
    # JSON through the readers the app and ``unetgui archive --node`` use (no network: the nodes are read, never
    # contacted)
    from unetgui.net.nodes import Node, find_node, load_nodes, read_origin, read_users

    nodes_text = json.dumps({"nodes": [Node("PACS", host="pacs.example.org", port=104, called_aet="PACS").to_json(),
                                       Node("Web", url="http://localhost:8042/dicom-web", username="u").to_json()]})
    origin_text = json.dumps({"archive": "PACS (PACS@pacs.example.org:104)", "node": "PACS", "study_uid": "1.2.3",
                              "series_uid": "1.2.3.4", "via": "get", "instances": 3, "retrieved": "2026-12-07T10:00:00"})

    def read_nodes(folder: Path) -> None:
        nodes = load_nodes(str(folder / "in/archive_nodes.json"))
        if nodes:
            find_node(nodes[0].name, nodes)
            [n.describe() for n in nodes]

    users_text = json.dumps({"projects": ["/home/u/projects/liver", "/data/study 2/project"]})

    def read_users_file(folder: Path) -> None:
        users = read_users(str(folder / "in"))
        if not all(isinstance(u, str) and "\x00" not in u for u in users):
            raise AssertionError("the projects using a cached series are paths")

    def read_origin_file(folder: Path) -> None:
        text = read_origin(str(folder / "in"))
        if "\n" in text or len(text) > 300:
            raise AssertionError("an origin is one bounded line")

    for i in range(n(20)):
        emit(run.case("archive nodes", {"in/archive_nodes.json": _mutate_json(nodes_text, rng).encode("utf-8", "replace")},
                      _api(read_nodes)))
        emit(run.case("archive origin", {"in/origin.json": _mutate_json(origin_text, rng).encode("utf-8", "replace")},
                      _api(read_origin_file)))
        users = _mutate_json(users_text, rng).encode("utf-8", "replace")
        emit(run.case("archive cache users", {"in/used_by.json": users}, _api(read_users_file)))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]) if len(sys.argv) > 4 else 1.0)
