"""`unetgui train -> predict -> evaluate` on a small DICOM series written in tmp_path, as scripts call it."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pydicom
import pytest

from conftest import phantom_hu
from unetgui import cli
from unetgui.formats.dicom import load_series, scan
from unetgui.formats.dicom.writer import SeriesSpec, write_series

FAST = ["--epochs", "8", "--steps-per-epoch", "10", "--device", "cpu", "--learning-rate", "0.01", "--patch", "64",
        "--batch-size", "4"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    hu = phantom_hu((12, 64, 64))
    write_series(hu, str(root / "ct"), SeriesSpec(slice_spacing=2.0))
    volume = load_series(scan(str(root / "ct")).series[0])
    truth = (volume.voxels > 65).astype(np.uint8)
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[[2, 5, 8, 10]] = truth[[2, 5, 8, 10]]
    nib.save(nib.Nifti1Image(sparse.transpose(2, 1, 0), volume.affine), str(root / "sparse.nii.gz"))
    nib.save(nib.Nifti1Image(truth.transpose(2, 1, 0), volume.affine), str(root / "truth.nii.gz"))
    model = root / "model.unetgui"
    run = subprocess.run([sys.executable, "-m", "unetgui", "train", "--images", str(root / "ct"), "--labels",
                          str(root / "sparse.nii.gz"), "--output", str(model), *FAST], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert "epoch   8" in run.stdout and f"wrote {model}" in run.stdout
    return root, volume, model


def test_train_predict_evaluate_round_trip(study, tmp_path):
    root, volume, model = study
    out = tmp_path / "pred.nii.gz"
    assert cli.main(["predict", "--model", str(model), "--input", str(root / "ct"), "--output", str(out), "--device", "cpu"]) == 0
    img = nib.load(out)
    assert np.allclose(img.affine, volume.affine, atol=1e-4) and img.shape == volume.shape[::-1]
    metrics = tmp_path / "m.json"
    assert cli.main(["evaluate", "--prediction", str(out), "--truth", str(root / "truth.nii.gz"), "--json", str(metrics)]) == 0
    (result,) = json.loads(metrics.read_text())["metrics"]
    assert result["label"] == 1 and result["dice"] > 0.85 and result["hd95_defined"]



def test_evaluate_reads_any_label_format_onto_the_image(tmp_path, capsys):
    """dcmqi's DICOM-SEG liver against the Slicer segmentation unetgui exports from it, and against dcmqi's
    NRRD labelmap of liver and spine: both read onto the CT's grid with --image."""
    from conftest import DATA

    root = DATA / "dcmqi-ct-3slice-liver-seg"
    ct, seg = str(root / "ct"), str(root / "seg" / "liver_seg.dcm")
    assert cli.main(["export", "--input", ct, "--labels", seg, "--output", str(tmp_path / "out"), "--seg-nrrd"]) == 0
    (slicer,) = (tmp_path / "out").glob("*.seg.nrrd")
    capsys.readouterr()
    assert cli.main(["evaluate", "--image", ct, "--truth", seg, "--prediction", str(slicer), "--json",
                     str(tmp_path / "m.json")]) == 0
    (liver,) = json.loads((tmp_path / "m.json").read_text())["metrics"]
    assert liver["dice"] == 1.0 and liver["volume_truth_ml"] > 50
    assert "note:" not in capsys.readouterr().err  # both call label 1 "Liver"
    assert cli.main(["evaluate", "--image", ct, "--truth", seg, "--prediction",
                     str(root / "labelmaps" / "liver_spine_seg.nrrd"), "--json", str(tmp_path / "m.json")]) == 0
    liver, spine = json.loads((tmp_path / "m.json").read_text())["metrics"]
    assert liver["dice"] == 1.0 and spine["dice"] == 0.0 and spine["volume_pred_ml"] > 1  # spine is not in the truth
    assert "note:" not in capsys.readouterr().err  # a plain label map names nothing: no doubt to raise
    # dcmqi's other SEG calls value 1 "GREEN" (coded Tissue): the user is told values are compared, not names
    assert cli.main(["evaluate", "--image", ct, "--truth", seg, "--prediction",
                     str(root / "seg" / "partial_overlaps_seg.dcm")]) == 0
    assert "label 1 is 'Liver' in the truth but 'GREEN' in the prediction" in capsys.readouterr().err
    assert cli.main(["evaluate", "--truth", seg, "--prediction", str(slicer), "--series", "1"]) == 1
    assert "give --image too" in capsys.readouterr().err
    assert cli.main(["evaluate", "--truth", seg, "--prediction", str(slicer)]) == 1  # which grid? it says so
    assert "give --image" in capsys.readouterr().err

def test_train_with_the_cli_defaults_plans_from_the_data(study, tmp_path):
    """Only the required arguments and an amount of training, as a user types it: the planner sets everything
    else. The amount is fixed in steps (4 epochs of 10), not minutes: under a time budget the Dice asserted
    below depended on how busy the machine was (0.83 < 0.85 once on a clean clone under load)."""
    from unetgui.engine import checkpoint

    root, volume, _ = study
    model = tmp_path / "planned.unetgui"
    run = subprocess.run([sys.executable, "-m", "unetgui", "train", "--images", str(root / "ct"), "--labels",
                          str(root / "sparse.nii.gz"), "--output", str(model), "--epochs", "4", "--steps-per-epoch", "10"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "4 training and 0 validation slices" in run.stdout  # 4 annotated slices: none held out
    assert "plan: U-Net width 16, depth 4; working size native; patch 64 x 64" in run.stdout
    assert "final weights" in run.stdout
    info = checkpoint.load(str(model)).info
    assert info["plan"]["train"]["patch"] == [64, 64]
    assert sorted(info["plan"]["overridden"]) == ["epochs", "steps_per_epoch"]  # the rest is planned
    assert info["dice_on"] == "annotated" and info["postprocessing"]["measured_on"] == "annotated slices"
    out = tmp_path / "pred.nii.gz"
    assert cli.main(["predict", "--model", str(model), "--input", str(root / "ct"), "--output", str(out)]) == 0
    predicted = np.asarray(nib.load(out).dataobj).transpose(2, 1, 0)
    truth = volume.voxels > 65
    others = [z for z in range(12) if z not in (2, 5, 8, 10)]
    p, t = predicted[others] == 1, truth[others]
    assert 2 * (p & t).sum() / (p.sum() + t.sum()) > 0.85


@pytest.mark.slow
def test_torchrun_with_two_cpu_processes_writes_one_model(study, tmp_path):
    """`unetgui train` unchanged under torchrun (gloo on CPUs): rank 0 alone prints and writes the model,
    which loads and predicts."""
    root, volume, _ = study
    model = tmp_path / "ddp.unetgui"
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "unetgui", "train", "--images", str(root / "ct"), "--labels", str(root / "sparse.nii.gz"),
                          "--output", str(model), *FAST[:4], "--device", "cpu", "--threads", "1", "--patch", "64",
                          "--batch-size", "4"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "x 2 processes (DDP)" in run.stdout
    assert run.stdout.count("epoch   8") == 1 and run.stdout.count("wrote ") == 1  # one rank prints
    out = tmp_path / "p.nii.gz"
    assert cli.main(["predict", "--model", str(model), "--input", str(root / "ct"), "--output", str(out)]) == 0
    from unetgui.engine import checkpoint

    assert "x 2 processes (DDP)" in checkpoint.load(str(model)).info["device"]


def test_predict_with_the_annotation_keeps_only_what_reaches_it(study, tmp_path, capsys):
    """--annotation: the model's annotated-object rule, as the app applies it to the volume it was trained on."""
    from unetgui.engine import checkpoint as model_file

    root, volume, model = study
    checkpoint = model_file.load(str(model))
    assert "annotated_object" in checkpoint.info["postprocessing"]  # decided by every training
    checkpoint.info["postprocessing"] = {"annotated_object": [1]}
    ruled = tmp_path / "ruled.unetgui"
    model_file.save(checkpoint, str(ruled))
    drawn = np.full(volume.shape, 255, np.uint8)
    drawn[2, 1:3, 1:3] = 1  # the user's structure: a corner far from anything the model segments
    nib.save(nib.Nifti1Image(drawn.transpose(2, 1, 0), volume.affine), str(tmp_path / "drawn.nii.gz"))
    plain, anchored = tmp_path / "plain.nii.gz", tmp_path / "anchored.nii.gz"
    base = ["predict", "--model", str(ruled), "--input", str(root / "ct"), "--device", "cpu"]
    assert cli.main([*base, "--output", str(plain)]) == 0
    assert cli.main([*base, "--output", str(anchored), "--annotation", str(tmp_path / "drawn.nii.gz")]) == 0
    assert np.asanyarray(nib.load(plain).dataobj).sum() > 100  # the phantom's liver
    assert not np.asanyarray(nib.load(anchored).dataobj).any()  # none of it reaches the drawn structure


def test_predict_to_dicom_seg_and_pngs(study, tmp_path):
    root, volume, model = study
    seg = tmp_path / "pred.dcm"
    assert cli.main(["predict", "--model", str(model), "--input", str(root / "ct"), "--output", str(seg)]) == 0
    ds = pydicom.dcmread(seg)
    assert ds.Modality == "SEG" and ds.ReferencedSeriesSequence[0].SeriesInstanceUID == volume.info.series_uid
    assert cli.main(["predict", "--model", str(model), "--input", str(root / "ct"), "--output", str(tmp_path / "png")]) == 0
    assert len(list((tmp_path / "png").glob("slice_*.png"))) == 12


def test_predict_refuses_image_names_that_would_write_one_png_twice(study, tmp_path, capsys):
    import cv2

    root, volume, model = study
    images = tmp_path / "images"
    images.mkdir()
    for name, z in (("case1.png", 3), ("case1.tif", 4), ("case2.png", 5)):
        cv2.imwrite(str(images / name), np.clip(volume.voxels[z] + 1024, 0, 65535).astype(np.uint16))
    out = tmp_path / "pred"
    assert cli.main(["predict", "--model", str(model), "--input", str(images), "--output", str(out)]) == 1
    assert "case1.png and case1.tif would both be written as case1.png" in capsys.readouterr().err
    assert not out.exists()
    (images / "case1.tif").rename(images / "case3.tif")
    assert cli.main(["predict", "--model", str(model), "--input", str(images), "--output", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["case1.png", "case2.png", "case3.png"]


def test_json_outputs_are_checked_before_the_work(study, tmp_path, capsys):
    root, _, model = study
    for bad in (str(tmp_path / "missing" / "r.json"), str(tmp_path)):
        assert cli.main(["suggest", "--model", str(model), "--input", str(root / "ct"), "--json", bad]) == 1
        err = capsys.readouterr().err
        assert err.startswith("unetgui: error: --json") and "segmenting" not in err and len(err.splitlines()) == 1
    assert cli.main(["evaluate", "--prediction", str(root / "truth.nii.gz"), "--truth", str(root / "truth.nii.gz"),
                     "--json", str(tmp_path / "nope" / "m.json")]) == 1
    assert "its folder does not exist" in capsys.readouterr().err


def test_an_unexpected_error_is_one_line_and_a_log_file(study, tmp_path, capsys, monkeypatch):
    """The last resort (core/crashlog.py): a bug gives exit code 3, one line naming the log, and the log
    holds the traceback; a full disk (OSError) gives exit code 1 and one line."""
    from unetgui.cli import formats_commands

    monkeypatch.setenv("UNETGUI_DATA", str(tmp_path / "data"))

    def bug(path):
        raise KeyError("series_uid")

    monkeypatch.setattr(formats_commands, "_info", bug)
    assert cli.main(["info", str(study[0])]) == 3
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "an unexpected error (a bug in unetgui): KeyError" in err
    (log,) = (tmp_path / "data" / "logs").iterdir()
    assert f"(details: {log})" in err and "Traceback" in log.read_text() and "def bug" not in err

    def disk_full(path):
        raise OSError(28, "No space left on device", str(tmp_path / "x.nii.gz"))

    monkeypatch.setattr(formats_commands, "_info", disk_full)
    assert cli.main(["info", str(study[0])]) == 1
    err = capsys.readouterr().err
    assert err.startswith("unetgui: error: No space left on device") and len(err.splitlines()) == 1


def test_fine_tune_from_a_model(study, tmp_path):
    root, _, model = study
    out = tmp_path / "tuned.unetgui"
    code = cli.main(["train", "--images", str(root / "ct"), "--labels", str(root / "sparse.nii.gz"), "--output", str(out),
                     "--init", str(model), "--epochs", "1", "--steps-per-epoch", "2", "--device", "cpu", "--patch", "64"])
    assert code == 0 and out.exists()


def test_train_with_the_border_weight_map(study, tmp_path, capsys):
    from unetgui.engine import checkpoint

    root, _, _ = study
    out = tmp_path / "border.unetgui"
    assert cli.main(["train", "--images", str(root / "ct"), "--labels", str(root / "sparse.nii.gz"), "--output", str(out),
                     "--border-weight", "10", "--epochs", "1", "--steps-per-epoch", "2", "--device", "cpu"]) == 0
    assert "set by you: epochs, steps per epoch, border weight" in capsys.readouterr().out
    plan = checkpoint.load(str(out)).info["plan"]
    assert plan["train"]["border_weight"] == 10 and any("border weight map" in r for r in plan["reasons"])


@pytest.mark.parametrize("args, message", [
    (["predict", "--model", "missing.unetgui", "--input", ".", "--output", "x.nii.gz"], "no such model file"),
    (["evaluate", "--prediction", "a.nii.gz", "--truth", "missing.nii.gz"], "no such file"),
])
def test_user_errors_are_one_line_without_traceback(args, message, capsys):
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_bad_model_file_and_grid_mismatch(study, tmp_path, capsys):
    root, volume, model = study
    bad = tmp_path / "bad.unetgui"
    bad.write_bytes(b"\x80\x04not a model")
    assert cli.main(["predict", "--model", str(bad), "--input", str(root / "ct"), "--output", str(tmp_path / "x.nii.gz")]) == 1
    assert "not a unetgui model file" in capsys.readouterr().err
    shifted = volume.affine.copy()
    shifted[:3, 3] += 3.0
    nib.save(nib.Nifti1Image(np.zeros(volume.shape[::-1], np.uint8), shifted), str(tmp_path / "other.nii.gz"))
    assert cli.main(["train", "--images", str(root / "ct"), "--labels", str(tmp_path / "other.nii.gz"), "--output",
                     str(tmp_path / "m.unetgui"), "--epochs", "1"]) == 1
    assert "does not match the image grid" in capsys.readouterr().err


def test_several_cases_and_2_5d_context(study, tmp_path, capsys):
    root, volume, _ = study
    hu = phantom_hu((10, 64, 64), seed=3)
    write_series(hu, str(tmp_path / "ct2"), SeriesSpec(slice_spacing=2.0))
    second = load_series(scan(str(tmp_path / "ct2")).series[0])
    labels = np.full(second.shape, 255, np.uint8)
    labels[[1, 4, 7]] = (second.voxels[[1, 4, 7]] > 65)
    nib.save(nib.Nifti1Image(labels.transpose(2, 1, 0), second.affine), str(tmp_path / "l2.nii.gz"))
    out = tmp_path / "two.unetgui"
    code = cli.main(["train", "--images", str(root / "ct"), "--labels", str(root / "sparse.nii.gz"), "--images",
                     str(tmp_path / "ct2"), "--labels", str(tmp_path / "l2.nii.gz"), "--output", str(out),
                     "--context", "1", "--epochs", "1", "--steps-per-epoch", "2", "--device", "cpu", "--patch", "64"])
    assert code == 0
    printed = capsys.readouterr().out
    # 7 annotated slices are fewer than the planner's FEW_SLICES: all of them train, none is held out
    assert "7 training and 0 validation slices" in printed and "plan: " in printed
    from unetgui.engine import checkpoint

    model = checkpoint.load(str(out))
    assert model.config.context == 1
    # no folder names or descriptions in a model file (they can name the patient): numbered cases
    assert [c["case"] for c in model.info["training"]["cases"]] == [1, 2]
    assert "ct2" not in json.dumps(model.info)
    assert cli.main(["predict", "--model", str(out), "--input", str(tmp_path / "ct2"), "--output",
                     str(tmp_path / "p.nii.gz")]) == 0


@pytest.mark.parametrize("extra, message", [
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--minutes", "nan"], "positive number of minutes"),
    (["--learning-rate", "-1", "--epochs", "1"], "learning rate"),
    (["--border-weight", "-1", "--epochs", "1"], "border weight must be a positive number"),
])
def test_bad_training_options_are_one_line_errors(study, tmp_path, capsys, extra, message):
    root, _, _ = study
    code = cli.main(["train", "--images", str(root / "ct"), "--labels", str(root / "sparse.nii.gz"), "--output",
                     str(tmp_path / "m.unetgui"), *extra])
    err = capsys.readouterr().err
    assert code == 1 and message in err and "Traceback" not in err


def test_fine_tuning_refuses_labels_the_model_does_not_know(study, tmp_path, capsys):
    root, volume, model = study
    other = np.full(volume.shape, 255, np.uint8)
    other[3] = (volume.voxels[3] > 65) * 3
    nib.save(nib.Nifti1Image(other.transpose(2, 1, 0), volume.affine), str(tmp_path / "three.nii.gz"))
    code = cli.main(["train", "--images", str(root / "ct"), "--labels", str(tmp_path / "three.nii.gz"), "--output",
                     str(tmp_path / "m.unetgui"), "--init", str(model), "--epochs", "1"])
    assert code == 1 and "values [3]" in capsys.readouterr().err


def test_info_describes_a_model_file(tmp_path, capsys):
    """``unetgui info model.unetgui`` prints the model card the app's panel shows."""
    from engine_fixtures import tiny_checkpoint
    from unetgui.engine import checkpoint

    path = tmp_path / "m.unetgui"
    checkpoint.save(tiny_checkpoint(), str(path))
    assert cli.main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Labels: liver" in out and "U-Net width 8, depth 3; working size native; axial planes" in out
    assert "Dice on the annotated (training) slices" in out or "Validation Dice" in out
