"""The sample study shipped in resources/sample/ loads, fits its generator, and its model segments it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from unetgui.core.volume import UNANNOTATED
from unetgui.engine import checkpoint as model_file
from unetgui.engine.inference import Predictor
from unetgui.engine.metrics import label_metrics
from unetgui.formats import nifti
from unetgui.formats.inputs import open_image

RESOURCES = Path(__file__).resolve().parents[2] / "resources"
SAMPLE = RESOURCES / "sample"


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_sample", RESOURCES / "build_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


builder = _load_builder()


@pytest.fixture(scope="module")
def truth() -> tuple[np.ndarray, np.ndarray]:
    return builder.phantom()


@pytest.fixture(scope="module")
def volume():
    return open_image(str(SAMPLE / "dicom")).volume


def test_dicom_is_the_phantom_ct(volume, truth):
    hu, _ = truth
    assert volume.modality == "CT" and volume.shape == builder.SHAPE == (32, 160, 160)
    assert volume.spacing == pytest.approx((builder.SLICE_MM, builder.PIXEL_MM, builder.PIXEL_MM))
    assert -1024 <= volume.voxels.min() < -900 and 500 < volume.voxels.max() < 1200  # air .. bone, in HU
    assert np.abs(volume.voxels.astype(np.int32) - hu).max() <= 1  # the shipped files are what the script makes
    assert volume.info.patient_id == "UNETGUI-SAMPLE" and not volume.warnings


def test_labels_cover_four_slices_exactly_as_the_truth(volume, truth):
    _, liver = truth
    labels = nifti.read_labels(str(SAMPLE / "labels.nii.gz"), volume)
    annotated = [int(z) for z in np.flatnonzero((labels.labels != UNANNOTATED).any(axis=(1, 2)))]
    assert annotated == builder.annotated_slices(liver) and len(annotated) == 4
    assert set(np.unique(labels.labels[annotated]).tolist()) == {0, 1}
    assert (np.delete(labels.labels, annotated, axis=0) == UNANNOTATED).all()
    assert np.array_equal(labels.labels[annotated], liver[annotated])
    assert labels.used_values() == (1,)


def test_model_segments_unannotated_slices(volume, truth):
    _, liver = truth
    checkpoint = model_file.load(str(SAMPLE / "model.unetgui"))
    assert [lab.name for lab in checkpoint.labels] == ["Liver"]
    annotated = builder.annotated_slices(liver)
    between = [(a + b) // 2 for a, b in zip(annotated, annotated[1:])]  # never seen in training
    assert not set(between) & set(annotated)
    predicted = Predictor(checkpoint, device="cpu").predict(volume.voxels, between, keep_probabilities=False).labels
    for z in between:
        assert label_metrics(predicted[z], liver[z], 1, volume.spacing[1:]).dice > 0.6, z


def test_phantom_is_deterministic(truth):
    hu, liver = builder.phantom()
    assert hu.dtype == np.int16 and liver.dtype == np.uint8 and hu.shape == liver.shape == builder.SHAPE
    assert np.array_equal(hu, truth[0]) and np.array_equal(liver, truth[1])
