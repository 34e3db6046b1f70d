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

        return cli.main(["export", "--project", str(folder / "project"), "--output", "out", "--nifti"])

    for i in range(n(40)):
        kind = ("flip", "truncate")[i % 2]
        data_j = files[journal_key]
        blob = _flip(data_j, rng, rng.randint(1, 6)) if kind == "flip" else _truncate(data_j, rng)
        emit(run.case(f"journal {kind}", {**files, journal_key: blob}, open_project, allowed=("out", "project")))
    for i in range(n(40)):
        text = files["project/project.json"].decode()
        emit(run.case("project.json", {**files, "project/project.json": _mutate_json(text, rng).encode()},
                      open_project, allowed=("out", "project")))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]) if len(sys.argv) > 4 else 1.0)
