"""Hostile data set folders and caches (issue 24), each built from crafted files in tmp_path and tried through
the API and through ``unetgui train --dataset``: exit 0 or a one-line error (exit 1), never exit 3.

Classes: numbers without bounds (dataset.json, LiTS names, CSV), text from files reaching the terminal, links
out of the data set (the cache folder, case files), damaged cache entries (rebuilt with a note), a stray
dataset.json, and nnU-Net's ignore label (not a class: read as 255, not annotated)."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest

from unetgui import cli
from unetgui.core.errors import FormatError, UnetguiError
from unetgui.core.volume import UNANNOTATED
from unetgui.formats.dataset import read_dataset
from unetgui.tasks.sources import DatasetSource

SHAPE = (4, 16, 16)  # (z, y, x): the smallest volumes that train


def _labels(seed: int, tumour: int = 2) -> np.ndarray:
    lab = np.zeros(SHAPE, np.uint8)
    lab[:, 4:12, 3 + seed % 3:11 + seed % 3] = 1
    lab[:, 6:8, 6:8] = tumour
    return lab


def _save(array: np.ndarray, path) -> None:
    nib.save(nib.Nifti1Image(array.transpose(2, 1, 0), np.eye(4)), str(path))


def _case(image_path, label_path, seed: int, labels: np.ndarray | None = None) -> None:
    lab = _labels(seed) if labels is None else labels
    rng = np.random.default_rng(seed)
    _save((rng.normal(0, 10, SHAPE) + (lab == 1) * 60).astype(np.int16), image_path)
    _save(lab, label_path)


def _lits(folder, cases: int = 3):
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(cases):
        _case(folder / f"volume-{n}.nii.gz", folder / f"segmentation-{n}.nii.gz", n)
    return folder


def _nnunet(folder, labels: dict, cases: int = 3, label_maps: list | None = None):
    (folder / "imagesTr").mkdir(parents=True, exist_ok=True)
    (folder / "labelsTr").mkdir(exist_ok=True)
    for n in range(cases):
        _case(folder / "imagesTr" / f"c_{n:03d}_0000.nii.gz", folder / "labelsTr" / f"c_{n:03d}.nii.gz", n,
              None if label_maps is None else label_maps[n])
    (folder / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": labels,
                                                     "numTraining": cases, "file_ending": ".nii.gz"}))
    return folder


def _train(dataset, out, *extra) -> int:
    return cli.main(["train", "--dataset", str(dataset), "--output", str(out), "--epochs", "1", "--steps-per-epoch",
                     "1", "--batch-size", "2", "--device", "cpu", "--threads", "1", "--test-fraction", "0", *extra])


def _one_line_error(capsys, *words) -> str:
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # progress lines come before it on stderr
    assert last.startswith("unetgui: error: ") and "a bug in unetgui" not in err, err
    assert "\x1b" not in err and len(last) < 600, last
    for word in words:
        assert word in last, last
    return last


# 1. Numbers from files, parsed with bounds ----------------------------------------------------------------------

HUGE = "9" * 5000


@pytest.mark.parametrize("text", [
    '{"labels": {"background": 0, "liver": %s}}' % HUGE,  # a label value of 5,000 digits (a JSON number)
    '{"labels": {"background": 0, "liver": "%s"}}' % HUGE,  # ... as a string
    '{"labels": {"0": "background", "%s": "liver"}}' % HUGE,  # the Decathlon's value -> name
    '{"labels": {"background": 0, "liver": 1}, "numTraining": %s}' % HUGE,
    '{"labels": {"background": 0, "liver": 1}, "numTraining": "many"}',
    '{"labels": {"background": 0, "liver": 1}, "numTraining": -3}',
    '{"labels": {"background": 0, "liver": 300}}',
])
def test_numbers_in_dataset_json_are_bounded(tmp_path, capsys, text):
    folder = _nnunet(tmp_path / "d", {"background": 0, "liver": 1, "tumour": 2})
    (folder / "dataset.json").write_text(text)
    with pytest.raises(FormatError, match="dataset.json: not a readable dataset.json") as err:
        read_dataset(str(folder))
    assert "\n" not in str(err.value) and len(str(err.value)) < 400
    assert _train(folder, tmp_path / "m.unetgui") == 1
    _one_line_error(capsys, "dataset.json")


def test_a_numtraining_that_disagrees_is_a_note(tmp_path):
    folder = _nnunet(tmp_path / "d", {"background": 0, "liver": 1, "tumour": 2})
    meta = json.loads((folder / "dataset.json").read_text())
    (folder / "dataset.json").write_text(json.dumps({**meta, "numTraining": 7}))
    assert "numTraining is 7, but 3 case(s) are there" in read_dataset(str(folder)).notes[0]


def test_case_numbers_of_lits_names_and_manifests_are_bounded(tmp_path, capsys, monkeypatch):
    folder = _lits(tmp_path / "lits", 2)
    digits = "9" * 40
    os.rename(folder / "volume-1.nii.gz", folder / f"volume-{digits}.nii.gz")
    os.rename(folder / "segmentation-1.nii.gz", folder / f"segmentation-{digits}.nii.gz")
    with pytest.raises(FormatError, match="the case number"):
        read_dataset(str(folder))
    assert _train(folder, tmp_path / "m.unetgui") == 1
    _one_line_error(capsys, "the case number")
    # a manifest: a cell beyond the csv module's limit, and more rows than a data set holds
    (tmp_path / "big.csv").write_text("image,label\n" + "x" * 200_000 + ",y\n")
    with pytest.raises(FormatError, match="big.csv: not a readable CSV file"):
        read_dataset(str(tmp_path / "big.csv"))
    from unetgui.formats import dataset

    monkeypatch.setattr(dataset, "MAX_CASES", 2)
    (tmp_path / "many.csv").write_text("image,label\n" + "a,b\n" * 3)
    with pytest.raises(FormatError, match="many.csv: more than 2 cases"):
        read_dataset(str(tmp_path / "many.csv"))


# 2. Text from files reaches the terminal escaped ------------------------------------------------------------------

def test_names_from_dataset_json_and_manifests_are_printed_escaped(tmp_path, capsys):
    evil = "liv\x1b[2J\x1b]0;owned\x07er\nfake line\u202e"
    folder = _nnunet(tmp_path / "d", {"background": 0, evil: 1, "tumour": 2})
    table = read_dataset(str(folder)).table
    # stored one line (control characters made spaces: label_tables.dataset_json_labels), escaped when printed
    assert [lab.name for lab in table] == ["liv [2J ]0;owned er fake line", "tumour"]
    assert _train(folder, tmp_path / "m.unetgui") == 0
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err and "\x07" not in out + err and "liv [2J ]0;owned er fake line" in out
    # a manifest's case ids and paths: kept escaped, in the split, the progress and the errors
    _lits(tmp_path / "lits", 3)
    rows = [f"case\x1b[31m{n},lits/volume-{n}.nii.gz,lits/segmentation-{n}.nii.gz" for n in range(3)]
    (tmp_path / "cases.csv").write_text("id,image,label\n" + "\n".join(rows) + "\n")
    assert [c.id for c in read_dataset(str(tmp_path / "cases.csv")).cases] == [f"case\\x1b[31m{n}" for n in range(3)]
    assert _train(tmp_path / "cases.csv", tmp_path / "c.unetgui") == 0
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err
    (tmp_path / "bad.csv").write_text("image,label\nnot\x1b[2Jthere.nii.gz,y.nii.gz\n")
    assert _train(tmp_path / "bad.csv", tmp_path / "b.unetgui") == 1
    _one_line_error(capsys, "not\\x1b[2Jthere.nii.gz does not exist")


# 3. Links out of the data set: never followed for writing ------------------------------------------------------

def test_a_cache_folder_that_links_out_of_the_data_set_is_refused(tmp_path, capsys):
    folder = _lits(tmp_path / "lits")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, folder / ".unetgui-cache")
    with pytest.raises(UnetguiError, match=r"\.unetgui-cache is a symbolic link"):
        DatasetSource(str(folder), test_fraction=0).load()
    assert _train(folder, tmp_path / "m.unetgui") == 1
    _one_line_error(capsys, "symbolic link", "--cache")
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / "m.unetgui").exists()
    # a real cache folder whose native/ (or prep-*/) is a link: refused as well, nothing written there
    os.unlink(folder / ".unetgui-cache")
    (folder / ".unetgui-cache").mkdir()
    os.symlink(elsewhere, folder / ".unetgui-cache" / "native")
    assert _train(folder, tmp_path / "m.unetgui") == 1
    _one_line_error(capsys, "native is a symbolic link")
    assert list(elsewhere.iterdir()) == []


def test_a_cache_named_by_the_user_may_be_a_link_and_case_files_may_link_anywhere(tmp_path, capsys):
    """The user's own --cache link is followed (the user chose it); case files that are links out of the data set
    are read (reading is allowed, writing through a link never); a FIFO as a case file is refused (it would
    block the reading)."""
    store = _lits(tmp_path / "store")
    folder = tmp_path / "lits"
    folder.mkdir()
    for name in os.listdir(store):
        os.symlink(store / name, folder / name)
    (tmp_path / "scratch").mkdir()
    os.symlink(tmp_path / "scratch", tmp_path / "mycache")
    assert _train(folder, tmp_path / "m.unetgui", "--cache", str(tmp_path / "mycache")) == 0
    assert (tmp_path / "scratch" / "native").is_dir() and not (folder / ".unetgui-cache").exists()
    assert sorted(os.listdir(store)) == sorted(p for p in os.listdir(store) if p.endswith(".nii.gz"))
    capsys.readouterr()
    os.unlink(folder / "segmentation-2.nii.gz")
    os.mkfifo(folder / "segmentation-2.nii.gz")
    with pytest.raises(FormatError, match="segmentation-2.nii.gz is neither a file nor a folder"):
        read_dataset(str(folder))


# 4. Cache entries: checked on reuse, rebuilt with a note ---------------------------------------------------------

def _npy_header_claiming(path, shape) -> None:
    """Rewrite the header of the .npy at ``path`` to claim ``shape``, the data left as it is."""
    with open(path, "rb") as f:
        assert np.lib.format.read_magic(f) == (1, 0)
        _, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        data = f.read()
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"shape": shape, "fortran_order": fortran, "descr": dtype.str})
        f.write(data)


TAMPER = {
    "wrong shape": lambda folder: np.save(os.path.join(folder, "labels.npy"), np.zeros((2, 16, 16), np.uint8)),
    "object dtype": lambda folder: np.save(os.path.join(folder, "image.npy"), np.array([[[None]]], object),
                                           allow_pickle=True),
    "short file": lambda folder: os.truncate(os.path.join(folder, "labels.npy"), 200),
    "huge header": lambda folder: _npy_header_claiming(os.path.join(folder, "image.npy"), (20_000, 16_384, 16_384)),
    "bad meta": lambda folder: open(os.path.join(folder, "meta.json"), "w").write('{"format": 2, "modality": [}'),
    "no meta": lambda folder: os.remove(os.path.join(folder, "meta.json")),
}


@pytest.mark.parametrize("kind", sorted(TAMPER))
def test_a_damaged_native_entry_is_detected_rebuilt_and_noted(tmp_path, kind):
    from unetgui.engine import cache

    labels = _labels(0)
    image = np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE)
    calls = []

    def load():
        calls.append(1)
        return image, labels, "CT", (0.8, 0.8)

    entry, written = cache.native(str(tmp_path), "c1", [], load)
    assert written
    meta = json.loads(open(os.path.join(entry.folder, "meta.json")).read())
    assert meta["arrays"]["labels"] == {"shape": list(SHAPE), "dtype": "|u1", "bytes": 128 + labels.size}
    assert meta["key"] == os.path.basename(entry.folder).rsplit("-", 1)[1]
    del entry
    folder = os.path.join(tmp_path, "native", os.listdir(tmp_path / "native")[0])
    TAMPER[kind](folder)
    notes: list[str] = []
    again, written = cache.native(str(tmp_path), "c1", [], load, notes=notes)
    assert written and calls == [1, 1] and len(notes) == 1
    assert notes[0].startswith(f"cache entry native/{os.path.basename(folder)} was damaged (")
    assert notes[0].endswith("): rebuilt")
    assert np.array_equal(np.asarray(again.voxels), image) and np.array_equal(np.asarray(again.labels), labels)
    assert cache.native(str(tmp_path), "c1", [], load, notes=notes)[1] is False and len(notes) == 1


def test_an_entry_that_is_a_link_is_replaced_by_a_real_one_and_its_target_kept(tmp_path):
    from unetgui.engine import cache

    load = lambda: (np.zeros(SHAPE, np.int16), _labels(1), "CT", (1.0, 1.0))  # noqa: E731
    entry, _ = cache.native(str(tmp_path / "c"), "c1", [], load)
    elsewhere = tmp_path / "elsewhere"
    os.rename(entry.folder, elsewhere)
    os.symlink(elsewhere, entry.folder)
    notes: list[str] = []
    again, written = cache.native(str(tmp_path / "c"), "c1", [], load, notes=notes)
    assert written and "it is a link" in notes[0] and not os.path.islink(again.folder)
    assert sorted(os.listdir(elsewhere)) == ["image.npy", "labels.npy", "meta.json"]  # never removed through a link


def test_a_damaged_preprocessed_entry_is_detected_rebuilt_and_noted(tmp_path):
    from unetgui.engine import cache
    from unetgui.engine.preprocessing import Preprocessing

    pre = Preprocessing.for_modality("CT")
    labels = _labels(0)
    entry, _ = cache.native(str(tmp_path), "c1", [], lambda: (np.zeros(SHAPE, np.int16), labels, "CT", (1.0, 1.0)))
    case, written = cache.preprocessed(str(tmp_path), entry, pre)
    prep = os.path.dirname(os.path.dirname(case.image.filename))
    folder = os.path.dirname(case.image.filename)
    del case
    # the foreground index: locations outside the labels (the sampler would index out of range)
    np.savez(os.path.join(folder, "foreground.npz"), v1=np.full((5, 3), 999, np.int32))
    size = os.path.getsize(os.path.join(folder, "foreground.npz"))
    meta = json.loads(open(os.path.join(folder, "meta.json")).read())
    meta["foreground"]["bytes"] = size  # even a consistent meta does not make the locations valid
    open(os.path.join(folder, "meta.json"), "w").write(json.dumps(meta))
    notes = cache.check_prepared(str(tmp_path), [entry.folder])
    assert len(notes) == 1 and "foreground.npz: v1.npy has locations outside the labels" in notes[0]
    assert not os.path.exists(folder)  # removed; rebuilt when used
    case, written = cache.preprocessed(str(tmp_path), entry, pre)
    assert written and all(case.labels[z, y, x] == 1 for z, y, x in case.foreground[1][:20])
    del case
    TAMPER["huge header"](folder)
    notes = []
    case, written = cache.preprocessed(str(tmp_path), entry, pre, notes)
    assert written and "(image.npy claims 20000 x 16384 x 16384 values of 4 byte(s), beyond the limits)" in notes[0]
    assert cache.check_prepared(str(tmp_path), [entry.folder]) == [] and os.path.basename(prep).startswith("prep-")


def test_a_loader_worker_reopens_only_what_was_checked(tmp_path):
    from unetgui.engine import cache

    path = str(tmp_path / "a.npy")
    np.save(path, np.zeros(SHAPE, np.uint8))
    assert cache.open_array(path, SHAPE, "|u1").shape == SHAPE
    with pytest.raises(UnetguiError, match="a.npy changed since it was checked"):
        cache.open_array(path, (2, 16, 16), "|u1")
    np.save(path, np.array([[[None]]], object), allow_pickle=True)
    with pytest.raises(UnetguiError, match="holds object data"):
        cache.open_array(path)


def test_training_rebuilds_damaged_entries_with_a_note(tmp_path, capsys):
    folder = _lits(tmp_path / "lits", 3)
    assert _train(folder, tmp_path / "m.unetgui") == 0
    capsys.readouterr()
    native = sorted((folder / ".unetgui-cache" / "native").iterdir())
    TAMPER["short file"](native[0])
    TAMPER["huge header"](native[1])
    (prep,) = [p for p in (folder / ".unetgui-cache").iterdir() if p.name.startswith("prep-")]
    TAMPER["object dtype"](prep / native[2].name)
    assert _train(folder, tmp_path / "m.unetgui") == 0
    out, err = capsys.readouterr()
    assert "2 case(s) read now, 1 reused" in out and "a bug in unetgui" not in err
    damaged = [line for line in err.splitlines() if "was damaged" in line]
    assert len(damaged) == 3 and all(line.endswith(": rebuilt") for line in damaged), err
    assert f"cache entry native/{native[0].name} was damaged (labels.npy is 200 bytes" in err
    assert f"cache entry {prep.name}/{native[2].name} was damaged (image.npy holds object data" in err
    assert _train(folder, tmp_path / "m.unetgui") == 0
    assert "0 case(s) read now, 3 reused" in capsys.readouterr().out


# 5. A stray dataset.json ---------------------------------------------------------------------------------------

def test_a_stray_dataset_json_beside_or_above_a_data_set_is_ignored_with_a_note(tmp_path, capsys):
    folder = _lits(tmp_path / "up" / "lits")
    (folder / "dataset.json").write_text('{"labels": {"liver": %s' % HUGE)  # beside: malformed
    (tmp_path / "up" / "dataset.json").write_text('{"labels": {"background": 0, "liver": %s}}' % HUGE)  # one up
    dataset = read_dataset(str(folder))
    assert dataset.layout == "lits" and "dataset.json ignored: no imagesTr/ and labelsTr/" in dataset.notes[0]
    assert _train(folder, tmp_path / "m.unetgui") == 0
    err = capsys.readouterr().err
    assert "dataset.json ignored" in err and "a bug in unetgui" not in err
    # a manifest beside one: the same
    (folder / "manifest.csv").write_text("image,label\n" + "".join(
        f"volume-{n}.nii.gz,segmentation-{n}.nii.gz\n" for n in range(3)))
    assert read_dataset(str(folder)).layout == "manifest"


def test_a_malformed_dataset_json_of_the_data_set_itself_is_one_line(tmp_path, capsys):
    folder = _nnunet(tmp_path / "d", {"background": 0, "liver": 1})
    for text in ("[not json", '{"labels": {"liver": [1, 2, [3]]}}', "\0" * 10, '{"labels": ' * 100_000):
        (folder / "dataset.json").write_text(text)
        assert _train(folder, tmp_path / "m.unetgui") == 1
        _one_line_error(capsys, "dataset.json")
    os.remove(folder / "dataset.json")
    os.symlink("/dev/zero", folder / "dataset.json")  # not a regular file: never read
    with pytest.raises(FormatError, match="not a regular file"):
        read_dataset(str(folder))


# 6. nnU-Net's ignore label ---------------------------------------------------------------------------------------

def test_the_ignore_label_is_not_a_class_its_voxels_are_unannotated(tmp_path, capsys):
    maps = []
    for n in range(3):
        lab = _labels(n, tumour=1)
        lab[:, :2, :] = 2  # the ignore label's voxels
        maps.append(lab)
    folder = _nnunet(tmp_path / "d", {"background": 0, "liver": 1, "ignore": 2}, label_maps=maps)
    dataset = read_dataset(str(folder))
    assert dataset.ignore == 2 and [(lab.value, lab.name) for lab in dataset.table] == [(1, "liver")]
    data = DatasetSource(str(folder), test_fraction=0).load()
    assert [lab.name for lab in data.table] == ["liver"]
    for volume, lab in zip(data.volumes, maps):
        got = np.asarray(volume.labels)
        assert 2 not in got and np.array_equal(got == UNANNOTATED, lab == 2) and np.array_equal(got == 1, lab == 1)
    assert _train(folder, tmp_path / "m.unetgui") == 0
    assert "1 label(s)" in capsys.readouterr().out
    from unetgui.engine import checkpoint

    assert [lab.name for lab in checkpoint.load(str(tmp_path / "m.unetgui")).labels] == ["liver"]
    # the Decathlon's form; and the ignore label must be the highest value, as in nnU-Net
    meta = json.loads((folder / "dataset.json").read_text())
    for labels in ({"0": "background", "1": "ignore", "2": "liver"}, {"0": "background", "1": "liver", "2": "ignore"}):
        (folder / "dataset.json").write_text(json.dumps({**meta, "labels": labels}))
        if labels["1"] == "ignore":
            with pytest.raises(FormatError, match=r"the ignore label \(1\) must have the highest value"):
                read_dataset(str(folder))
        else:
            assert read_dataset(str(folder)).ignore == 2


def test_adding_an_ignore_label_makes_new_cache_entries(tmp_path):
    folder = _nnunet(tmp_path / "d", {"background": 0, "liver": 1, "tumour": 2})
    first = DatasetSource(str(folder), test_fraction=0).load()
    assert 2 in np.asarray(first.volumes[0].labels)
    meta = json.loads((folder / "dataset.json").read_text())
    (folder / "dataset.json").write_text(json.dumps({**meta, "labels": {"background": 0, "liver": 1, "ignore": 2}}))
    second = DatasetSource(str(folder), test_fraction=0).load()
    assert "3 case(s) read now" in second.summary
    assert 2 not in np.asarray(second.volumes[0].labels) and UNANNOTATED in np.asarray(second.volumes[0].labels)


def test_a_sidecar_dataset_json_reads_the_ignore_label_as_the_data_set_does(tmp_path):
    """One reading of dataset.json labels (found in review: the sidecar path kept "ignore" as a class)."""
    import json

    from unetgui.formats.label_tables import dataset_json_table, find_table

    (tmp_path / "labelsTr").mkdir()
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "liver": 1, "ignore": 2}}))
    table, notes = find_table(str(tmp_path / "labelsTr" / "case_000.nii.gz"))
    assert [(lab.value, lab.name) for lab in table] == [(1, "liver")] and not notes
    assert [lab.name for lab in dataset_json_table(str(tmp_path / "dataset.json"))] == ["liver"]
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "ignore": 1, "liver": 2}}))
    with pytest.raises(FormatError, match="must have the highest value"):
        dataset_json_table(str(tmp_path / "dataset.json"))
