"""Data set folders (issue 14): the nnU-Net / Decathlon and LiTS layouts and a CSV manifest are read with their
label names; the split is by case, seeded, stored in the model and honoured by `evaluate --dataset`; bad
folders give one-line errors naming the case and the file. Data: the LiTS-like generator, small sizes."""

from __future__ import annotations

import csv
import json
import os
import shutil

import numpy as np
import pytest

from lits_synth import synth_case, write_lits, write_msd
from unetgui import cli
from unetgui.core.errors import FormatError, UnetguiError
from unetgui.engine.data import split_cases
from unetgui.formats.dataset import read_dataset
from unetgui.formats.dicom.writer import SeriesSpec, write_series

SMALL = {"size": 64, "slices": (10, 14)}


def test_the_generator_makes_lits_like_ct():
    hu, labels, affine = synth_case(3, size=128, slices=40)
    assert hu.dtype == np.int16 and hu.min() <= -1000 and 400 <= hu.max() <= 3071
    liver = labels == 1
    assert 0.002 < (labels > 0).mean() < 0.2 and 30 < np.median(hu[liver]) < 90
    assert np.all(np.abs(np.diag(affine)[:3]) > 0.5)


@pytest.mark.parametrize("layout", ["lits", "nnunet_v2", "decathlon"])
def test_both_layouts_are_read_with_their_label_names(tmp_path, layout):
    if layout == "lits":
        ids = write_lits(tmp_path, 3, **SMALL)
    else:
        ids = write_msd(tmp_path, 3, **SMALL, nnunet_v2=layout == "nnunet_v2")
    dataset = read_dataset(str(tmp_path))
    assert [c.id for c in dataset.cases] == ids and dataset.modality == "CT"
    assert [(lab.value, lab.name) for lab in dataset.table] == [(1, "liver"), (2, "tumour" if layout != "decathlon" else "cancer")]
    assert all(os.path.isfile(c.image) and os.path.isfile(c.label) for c in dataset.cases)
    assert all(c.image != c.label for c in dataset.cases)


def test_a_manifest_takes_dicom_folders_and_nifti_with_splits(tmp_path, phantom):
    write_series(phantom, str(tmp_path / "ct_a"), SeriesSpec(slice_spacing=2.0))
    write_lits(tmp_path / "lits", 2, **SMALL)
    from unetgui.formats import nifti
    from unetgui.formats.dicom import load_series, scan

    volume = load_series(scan(str(tmp_path / "ct_a")).series[0])
    from unetgui.core.volume import LabelMap, LabelTable

    lm = LabelMap.empty_like(volume, LabelTable())
    lm.labels[volume.voxels > 60] = 1
    nifti.write_labels(lm, str(tmp_path / "ct_a_labels.nii.gz"))
    with open(tmp_path / "cases.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "image", "label", "split"])
        w.writerow(["a", "ct_a", "ct_a_labels.nii.gz", "test"])
        w.writerow(["b", "lits/volume-0.nii.gz", "lits/segmentation-0.nii.gz", ""])
        w.writerow(["", "lits/volume-1.nii.gz", "lits/segmentation-1.nii.gz", "Train"])
    dataset = read_dataset(str(tmp_path / "cases.csv"))
    assert [(c.id, c.split) for c in dataset.cases] == [("a", "test"), ("b", ""), ("volume-1", "train")]
    assert dataset.cases[0].image == str(tmp_path / "ct_a")


def test_bad_data_set_folders_give_one_line_errors_naming_the_case(tmp_path):
    write_lits(tmp_path / "lits", 2, **SMALL)
    os.remove(tmp_path / "lits" / "segmentation-1.nii.gz")
    with pytest.raises(FormatError, match=r"case 1: volume-1.nii.gz has no segmentation-1.nii.gz"):
        read_dataset(str(tmp_path / "lits"))
    write_msd(tmp_path / "msd", 2, **SMALL)
    os.remove(tmp_path / "msd" / "labelsTr" / "liver_001.nii.gz")
    with pytest.raises(FormatError, match=r"case liver_001: imagesTr/liver_001_0000.nii.gz has no labels"):
        read_dataset(str(tmp_path / "msd"))
    (tmp_path / "msd" / "dataset.json").write_text('{"labels": {"liver": 1}, "channel_names": {"0": "T1", "1": "T2"}}')
    with pytest.raises(FormatError, match="2 input channels"):
        read_dataset(str(tmp_path / "msd"))
    (tmp_path / "msd" / "dataset.json").write_text("[not json")
    with pytest.raises(FormatError, match="not a readable dataset.json"):
        read_dataset(str(tmp_path / "msd"))
    (tmp_path / "m.csv").write_text("image,split\nx.nii.gz,test\n")
    with pytest.raises(FormatError, match="needs a header row with image and label"):
        read_dataset(str(tmp_path / "m.csv"))
    (tmp_path / "m.csv").write_text("image,label,split\nx.nii.gz,y.nii.gz,later\n")
    with pytest.raises(FormatError, match="line 2: split 'later'"):
        read_dataset(str(tmp_path / "m.csv"))
    (tmp_path / "m.csv").write_text("image,label\nx.nii.gz,y.nii.gz\n")
    with pytest.raises(FormatError, match="case x: its image .*x.nii.gz does not exist"):
        read_dataset(str(tmp_path / "m.csv"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="not a data set folder"):
        read_dataset(str(tmp_path / "empty"))


def test_the_split_is_by_case_seeded_and_keeps_what_was_given():
    a = split_cases(20, seed=1)
    assert a == split_cases(20, seed=1) and a != split_cases(20, seed=2)
    assert sorted(a["train"] + a["val"] + a["test"]) == list(range(20))
    assert len(a["test"]) == 4 and len(a["val"]) == round(16 / 6)
    given = ["test", "val", ""] + [""] * 7
    b = split_cases(10, seed=0, given=given)
    assert 0 in b["test"] and 1 in b["val"] and len(b["test"]) == 2
    two = split_cases(2, seed=0)  # too few to test on; one validates
    assert two["test"] == [] and len(two["train"]) == len(two["val"]) == 1
    assert split_cases(1)["train"] == [0]
    with pytest.raises(UnetguiError, match="no case left to train on"):
        split_cases(2, given=["test", "val"])


def test_train_and_evaluate_a_data_set_by_case(tmp_path, capsys):
    ids = write_lits(tmp_path / "lits", 6, **SMALL)
    model = tmp_path / "m.unetgui"
    assert cli.main(["train", "--dataset", str(tmp_path / "lits"), "--output", str(model), "--epochs", "2",
                     "--steps-per-epoch", "3", "--device", "cpu", "--seed", "4"]) == 0
    out = capsys.readouterr().out
    assert "split by case: 4 training, 1 validation, 1 test case(s)" in out
    from unetgui.engine import checkpoint

    saved = checkpoint.load(str(model))
    split = saved.info["dataset"]
    assert sorted(split["train"] + split["val"] + split["test"]) == sorted(ids) and len(split["test"]) == 1
    assert [lab.name for lab in saved.labels] == ["liver", "tumour"]
    table = tmp_path / "test.csv"
    assert cli.main(["evaluate", "--model", str(model), "--dataset", str(tmp_path / "lits"), "--csv", str(table)]) == 0
    out = capsys.readouterr().out
    (test_case,) = split["test"]
    assert f"{test_case}" in out and "1 case(s) of the test split" in out and "mean" in out and "median" in out
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["case"] for r in rows} == {test_case, "mean", "median"} and {r["name"] for r in rows} >= {"liver"}
    assert all(0 <= float(r["dice"]) <= 1 for r in rows if r["dice"])
    # a model trained without a data set has no stored split
    other = tmp_path / "other.unetgui"
    shutil.copy(model, other)
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(other), framework="pt") as f:
        meta = json.loads(f.metadata()["unetgui"])
    del meta["info"]["dataset"]
    save_file(load_file(str(other)), str(other), metadata={"unetgui": json.dumps(meta)})
    assert cli.main(["evaluate", "--model", str(other), "--dataset", str(tmp_path / "lits")]) == 1
    assert "has no test split: use --split all" in capsys.readouterr().err


def _files_with_times(folder) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_the_cache_is_reused_and_rebuilt_when_the_data_or_the_preprocessing_change(tmp_path, capsys):
    write_lits(tmp_path / "lits", 4, **SMALL)
    cache = tmp_path / "lits" / ".unetgui-cache"
    base = ["train", "--dataset", str(tmp_path / "lits"), "--output", str(tmp_path / "m.unetgui"), "--epochs", "1",
            "--steps-per-epoch", "2", "--device", "cpu", "--test-fraction", "0"]
    assert cli.main(base) == 0
    assert "cache " + str(cache) + ": 4 case(s) read now, 0 reused" in capsys.readouterr().out
    first = _files_with_times(cache)
    assert len([k for k in first if k.endswith("foreground.npz")]) == 4
    assert cli.main(base) == 0  # same data, same preprocessing: nothing rewritten
    assert ": 0 case(s) read now, 4 reused" in capsys.readouterr().out
    assert _files_with_times(cache) == first
    os.utime(tmp_path / "lits" / "segmentation-2.nii.gz", ns=(1, 1))  # a changed file is read again
    assert cli.main(base + ["--working-size", "32"]) == 0  # and another working size is another entry
    assert ": 1 case(s) read now, 3 reused" in capsys.readouterr().out
    prep = sorted(p.name for p in cache.iterdir() if p.name.startswith("prep-"))
    assert len(prep) == 2
    from unetgui.engine import checkpoint

    assert checkpoint.load(str(tmp_path / "m.unetgui")).preprocessing.working_size == 32


def test_cached_cases_train_from_memory_maps_with_their_foreground_index(tmp_path):
    """What the trainer gets from the cache: memory-mapped images and labels, foreground locations per label
    inside the labels, patches centred on them."""
    from unetgui.engine import cache
    from unetgui.engine.data import PatchSampler
    from unetgui.engine.preprocessing import Preprocessing

    hu, labels, _ = synth_case(5, size=64, slices=12)
    entry, written = cache.native(str(tmp_path), "c1", [], lambda: (hu, labels, "CT", (0.8, 0.8)))
    assert written and isinstance(entry.voxels, np.memmap) and entry.values == tuple(sorted(set(np.unique(labels)) - {0}))
    case, written = cache.preprocessed(str(tmp_path), entry, Preprocessing.for_modality("CT"))
    assert written and isinstance(case.image, np.memmap) and case.image.dtype == np.float32
    for value, places in case.foreground.items():
        assert len(places) and all(case.labels[z, y, x] == value for z, y, x in places[:50])
    sampler = PatchSampler([case], [(0, z) for z in case.annotated], 32, 0, foreground_fraction=1.0, seed=0)
    images, patches = sampler.batch(16)
    assert images.dtype == np.float32 and (patches > 0).any(axis=(1, 2)).all()  # every patch holds foreground


def test_loader_workers_draw_batches_from_the_cache_without_copying_the_volumes(tmp_path, capsys):
    import pickle

    import torch

    from unetgui.engine import cache, loader
    from unetgui.engine.preprocessing import Preprocessing

    hu, labels, _ = synth_case(6, size=64, slices=40)
    entry, _ = cache.native(str(tmp_path), "c1", [], lambda: (hu, labels, "CT", (0.8, 0.8)))
    case, _ = cache.preprocessed(str(tmp_path), entry, Preprocessing.for_modality("CT"))
    assert loader.mapped(case)
    refs = [(0, z) for z in case.annotated]
    source = loader.CachedBatches([case], refs, (32, 32), 0, 1.0, 0, 8)
    assert len(pickle.dumps(source)) < case.image.nbytes / 4  # what a spawned worker receives: paths, not volumes
    stream = loader.batches([case], refs, (32, 32), 0, 1.0, 0, 8, 2, torch.device("cpu"))
    images, patches = next(stream)
    assert images.shape == (8, 1, 32, 32) and images.dtype == torch.float32 and (patches > 0).any()
    del stream
    from unetgui.core.volume import LabelTable
    from unetgui.engine.training import TrainConfig, Trainer
    from unetgui.engine.unet import UNetConfig

    config = TrainConfig(epochs=1, steps_per_epoch=2, batch_size=4, patch=(32, 32), device="cpu", loader_workers=2)
    trainer = Trainer([case], LabelTable.from_names("liver", "tumour"), Preprocessing.for_modality("CT"), config,
                      UNetConfig(classes=3, depth=2, base=4), split_refs=(refs, []))
    assert trainer._batches is not None  # the batches come from the workers
    assert [type(e).__name__ for e in trainer.run()][-1] == "EpochStats" and trainer._batches is None
    # and as a user starts it: train --dataset --workers 2
    write_lits(tmp_path / "lits", 3, **SMALL)
    assert cli.main(["train", "--dataset", str(tmp_path / "lits"), "--output", str(tmp_path / "w.unetgui"),
                     "--epochs", "1", "--steps-per-epoch", "3", "--device", "cpu", "--workers", "2"]) == 0
    assert "set by you: epochs, steps per epoch, workers" in capsys.readouterr().out


def test_an_entry_without_its_meta_is_rebuilt_and_a_finished_one_is_never_half_visible(tmp_path):
    """A run killed while writing leaves a folder without meta.json: it is built again. Entries are built in a
    temporary folder and renamed into place, so a reader never sees one half-written."""
    from unetgui.engine import cache

    hu, labels, _ = synth_case(7, size=32, slices=6)
    calls = []

    def load():
        calls.append(1)
        return hu, labels, "CT", (0.8, 0.8)

    entry, written = cache.native(str(tmp_path), "c1", [], load)
    assert written and calls == [1]
    os.remove(os.path.join(entry.folder, "meta.json"))  # as if killed before the meta
    again, written = cache.native(str(tmp_path), "c1", [], load)
    assert written and calls == [1, 1] and np.array_equal(np.asarray(again.voxels), hu)
    assert cache.native(str(tmp_path), "c1", [], load)[1] is False and calls == [1, 1]
    assert not [p for p in (tmp_path / "native").iterdir() if ".tmp-" in p.name]
