"""The tasks tier (no Qt): the three data sources holding the same data give the same volumes, the same plan
and the same metrics; the evaluation conventions (sparse slice sets in 2-D, HD95 as MONAI's)."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest

from conftest import phantom_hu
from engine_fixtures import tiny_checkpoint
from unetgui.core.progress import run_to_end
from unetgui.core.volume import LabelTable, Volume
from unetgui.engine import metrics
from unetgui.engine.training_run import plan_run
from unetgui.tasks.evaluate import EvaluateRequest, compare, evaluate_model
from unetgui.tasks.sources import DatasetSource, FileSource, ProjectSource
from unetgui.tasks.train import TrainRequest, TrainResult, TrainStarted, train

ANNOTATED = [2, 5, 8, 10]
AFFINE = np.diag([0.8, 0.75, 2.5, 1.0])  # x, y, z mm: thick slices, non-square pixels


@pytest.fixture(scope="module")
def same_data(tmp_path_factory):
    """One phantom CT with sparse labels as files, as a data set manifest and as an open document."""
    root = tmp_path_factory.mktemp("sources")
    hu = phantom_hu((12, 64, 64))
    truth = (hu > 65).astype(np.uint8)
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[ANNOTATED] = truth[ANNOTATED]
    nib.save(nib.Nifti1Image(hu.transpose(2, 1, 0), AFFINE), str(root / "ct.nii.gz"))
    nib.save(nib.Nifti1Image(sparse.transpose(2, 1, 0), AFFINE), str(root / "sparse.nii.gz"))
    (root / "manifest.csv").write_text("image,label,id,split\nct.nii.gz,sparse.nii.gz,ct,train\n")
    table = LabelTable.from_names("Label 1")
    from unetgui.formats.inputs import open_image

    volume = open_image(str(root / "ct.nii.gz")).volume  # what the app shows after File > Open
    sources = {"files": FileSource((str(root / "ct.nii.gz"),), (str(root / "sparse.nii.gz"),)),
               "data set": DatasetSource(str(root / "manifest.csv"), test_fraction=0.0, cache=str(root / "cache")),
               "project": ProjectSource(volume, sparse, table)}
    return sources, volume, truth, sparse


def test_the_three_sources_hold_the_same_volumes_and_plan_alike(same_data):
    sources, volume, _, sparse = same_data
    loaded = {name: source.load() for name, source in sources.items()}
    plans = {}
    for name, data in loaded.items():
        (v,) = data.volumes
        assert np.array_equal(np.asarray(v.voxels), volume.voxels), name
        assert np.array_equal(np.asarray(v.labels), sparse), name
        assert v.spacing_yx == pytest.approx((0.75, 0.8)), name
        assert list(data.table.values) == [1], name
        plans[name] = plan_run(data.volumes, data.table, "cpu", 1.0, {"threads": 1})
    assert plans["files"] == plans["data set"] == plans["project"]
    assert isinstance(loaded["data set"].volumes[0].voxels, np.memmap)  # read once into the cache, memory-mapped
    assert loaded["data set"].val_cases == () and loaded["data set"].split["train"] == ["ct"]


def test_the_three_sources_give_the_same_metrics(same_data):
    sources, volume, truth, _ = same_data
    model = tiny_checkpoint()
    rows = {}
    for name, source in sources.items():
        (v,) = source.load().volumes
        grid = Volume(np.asarray(v.voxels), volume.affine, v.modality)
        rows[name] = evaluate_model(EvaluateRequest("cpu"), model, grid, truth, {"annotated": ANNOTATED})
    assert rows["files"] == rows["data set"] == rows["project"]
    assert rows["files"][0].set == "annotated" and rows["files"][0].slices == len(ANNOTATED)


def test_a_training_reads_its_source_through_the_task_and_reports_its_plan(same_data):
    sources, *_ = same_data
    request = TrainRequest("cpu", None, {"epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "threads": 1,
                                          "preset": "small"})
    events = []
    result = run_to_end(train(request, sources["project"]), events.append)
    assert isinstance(events[0], TrainStarted) and events[0].train_slices + events[0].val_slices == len(ANNOTATED)
    assert isinstance(result, TrainResult) and result.checkpoint is not None and result.how == "finished"
    assert sorted(z for _, z in result.training + result.validation) == ANNOTATED and result.epochs == 1
    summary = result.summary()  # what the app shows when a training ends
    assert summary[0] == "Training ended with its last epoch after 1 epoch(s)."
    assert "Kept: the final weights (epoch 1)" in summary[1] and "on the training slices" in summary[1]


def test_a_request_is_validated_once_when_it_is_made():
    from unetgui.core.errors import UnetguiError

    with pytest.raises(UnetguiError, match="unknown settings"):
        TrainRequest("cpu", 1.0, {"learning_rat": 1e-3})
    with pytest.raises(UnetguiError, match="unknown device"):
        TrainRequest("tpu", 1.0)
    with pytest.raises(UnetguiError, match="at least 1"):
        TrainRequest("cpu", None, {"epochs": 0})
    assert dict(TrainRequest("cpu", 1.0, {"epochs": None, "seed": 3}).overrides) == {"seed": 3}


def _two_discs(shape=(9, 40, 48)):
    """Prediction and truth on slices 1, 4 and 7: the truth a disc moving 6 px in x from one of these slices to
    the next, the prediction the same disc 4 px further on (so a stack of the three slices would put each
    prediction closer to the next slice's truth than to its own); nothing elsewhere."""
    yy, xx = np.mgrid[0:shape[1], 0:shape[2]]
    pred, truth = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    for k, z in enumerate((1, 4, 7)):
        truth[z] = (yy - 20) ** 2 + (xx - 14 - 6 * k) ** 2 < 36
        pred[z] = (yy - 20) ** 2 + (xx - 18 - 6 * k) ** 2 < 36
    return pred, truth


def test_a_slice_set_gets_per_slice_2d_hd95_the_whole_volume_3d():
    pred, truth = _two_discs()
    spacing = (0.5, 0.7, 0.9)
    sparse = [1, 4, 7]
    (row,) = compare(pred, truth, spacing, LabelTable.from_names("disc"), sparse)
    per_slice = [metrics.hd95(pred[z] == 1, truth[z] == 1, spacing[1:]) for z in sparse]
    assert row.hd95_mm == pytest.approx(np.mean(per_slice))
    stacked = metrics.hd95(pred[sparse] == 1, truth[sparse] == 1, spacing)  # what the app measured before
    assert stacked < row.hd95_mm - 0.5  # slices 3 apart stacked as neighbours: distances across them too short
    # Dice counts every voxel of the set
    p, t = pred[sparse] == 1, truth[sparse] == 1
    assert row.dice == pytest.approx(2 * (p & t).sum() / (p.sum() + t.sum()))
    # the whole volume: 3-D with the slice distance
    (whole,) = compare(pred, truth, spacing, LabelTable.from_names("disc"), range(0, 9))
    assert whole.hd95_mm == pytest.approx(metrics.hd95(pred == 1, truth == 1, spacing))
    # one slice, or two neighbours: in-plane too (in 3-D a lone slice would be all surface)
    (one,) = compare(pred, truth, spacing, LabelTable.from_names("disc"), [4])
    assert one.hd95_mm == pytest.approx(per_slice[1]) and one.hd95_mm > 2.0
    (pair,) = compare(pred, truth, spacing, LabelTable.from_names("disc"), [3, 4])  # slice 3 empty in both
    assert pair.hd95_mm == pytest.approx(per_slice[1])
    # a false blob on a slice without the structure is not averaged away: undefined, as with one side empty
    blob = pred.copy()
    blob[2, 5:8, 5:8] = 1
    (missed,) = compare(blob, truth, spacing, LabelTable.from_names("disc"), [1, 2, 4])
    assert math.isinf(missed.hd95_mm) and missed.to_json()["hd95_defined"] is False


def test_hd95_is_the_larger_directed_95th_percentile_and_is_exact_in_the_bounding_box():
    from scipy import ndimage

    a = np.zeros((60, 70), bool)
    b = np.zeros((60, 70), bool)
    a[10:20, 10:20] = True
    b[10:20, 10:40] = True  # b reaches far beyond a: b -> a distances are long, a -> b short
    spacing = (0.5, 1.5)

    def surface(m):
        return m & ~ndimage.binary_erosion(m, border_value=0)

    to_b = ndimage.distance_transform_edt(~surface(b), sampling=spacing)[surface(a)]
    to_a = ndimage.distance_transform_edt(~surface(a), sampling=spacing)[surface(b)]
    expected = max(np.percentile(to_b, 95), np.percentile(to_a, 95))  # MONAI's convention, on the whole array
    assert metrics.hd95(a, b, spacing) == pytest.approx(expected)
    assert metrics.hd95(b, a, spacing) == pytest.approx(expected)
    edge = np.zeros((30, 30), bool)
    edge[:5, :5] = True  # touching the array's edge: the crop must treat it like the full array
    assert metrics.hd95(edge, np.roll(edge, 3, axis=1), (1.0, 1.0)) == pytest.approx(3.0)
    assert math.isinf(metrics.hd95(a, np.zeros_like(a), spacing))
