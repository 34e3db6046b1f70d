"""Build the sample study in ``resources/sample/``: a synthetic abdominal CT, sparse liver labels, a small model.

Run from the repository root::

    python resources/build_sample.py            # everything (about two minutes on a 2-core CPU)
    python resources/build_sample.py --no-model  # DICOM and labels only

Nothing here comes from a patient: the phantom is drawn from smooth analytic shapes and a seeded random
generator, so :func:`phantom` regenerates the exact image and liver truth (the tests use it). Geometry:
32 axial slices of 160 x 160 pixels, 1.2 mm pixels, 3 mm slices; the axes follow DICOM LPS with the
default orientation (columns run to the patient's left, rows to posterior, slice index to superior), so
the liver lies at small column indices (image left, patient right) as on any radiological display.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np
from scipy import ndimage

SHAPE = (32, 160, 160)  # (z, y, x)
PIXEL_MM = 1.2
SLICE_MM = 3.0
ORIGIN = (-(SHAPE[2] - 1) / 2 * PIXEL_MM, -(SHAPE[1] - 1) / 2 * PIXEL_MM, -60.0)  # LPS mm of the first voxel
NOISE_HU = 15.0
SEED = 0
TRAIN_EPOCHS = 40  # fixed, so the model is the same on every run (about 90 s on 2 CPU cores)
TRAIN_STEPS = 20  # per epoch
ANNOTATED_FRACTIONS = (0.2, 0.4, 0.6, 0.8)  # of the liver's extent along z
LIVER_COLOR = (221, 130, 101)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "sample")

# tissue codes of the label-free drawing; the liver truth is LIVER + HEPATIC_VESSEL
AIR, FAT, MUSCLE, CAVITY, LIVER, HEPATIC_VESSEL, SPLEEN, KIDNEY, PELVIS, STOMACH, GAS = range(11)
AORTA, IVC, VESSEL, CORTEX, CANCELLOUS, DISC, CANAL = range(11, 18)
HU = {AIR: -1000, FAT: -100, MUSCLE: 45, CAVITY: 0, LIVER: 60, HEPATIC_VESSEL: 120, SPLEEN: 48, KIDNEY: 30,
      PELVIS: 5, STOMACH: 12, GAS: -900, AORTA: 160, IVC: 115, VESSEL: 140, CORTEX: 750, CANCELLOUS: 300,
      DISC: 80, CANAL: 15}


def _grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Physical coordinates (mm) of every voxel: x to the patient's left, y posterior, z superior."""
    z = np.arange(SHAPE[0]) * SLICE_MM
    y = (np.arange(SHAPE[1]) - (SHAPE[1] - 1) / 2) * PIXEL_MM
    x = (np.arange(SHAPE[2]) - (SHAPE[2] - 1) / 2) * PIXEL_MM
    return np.meshgrid(z, y, x, indexing="ij")


def _ellipse(x, y, cx, cy, a, b, angle=0.0) -> np.ndarray:
    """Normalised radius (< 1 inside) of an ellipse with semi-axes ``a``, ``b`` (mm) rotated by ``angle``."""
    c, s = np.cos(angle), np.sin(angle)
    u, v = (x - cx) * c + (y - cy) * s, -(x - cx) * s + (y - cy) * c
    return np.sqrt((u / np.maximum(a, 1e-6)) ** 2 + (v / np.maximum(b, 1e-6)) ** 2)


def _smooth_noise(rng: np.random.Generator, sigma_px: tuple[float, float, float]) -> np.ndarray:
    """A smooth random field, zero mean and unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(SHAPE), sigma_px, mode="wrap")
    return (field - field.mean()) / field.std()


def _body(z, y, x) -> tuple[np.ndarray, np.ndarray]:
    """Body mask and depth below the skin (mm); flatter at the back, as a patient lying supine."""
    a = 88 + 3 * np.sin(z / 40)
    b = np.where(y < 0, 70 + 2 * np.cos(z / 30), 60)
    body = _ellipse(x, y, 0, 2, a, b) < 1
    depth = np.stack([ndimage.distance_transform_edt(s, sampling=PIXEL_MM) for s in body])
    return body, depth


def _liver(z, y, x, rng) -> np.ndarray:
    """Implicit liver: > 0 inside. It spans z = 7..86 mm (tip to dome).

    A lobulated star shape around a centre that drifts with z, with harmonics whose amplitudes and phases
    change smoothly along z, joined smoothly with a left lobe that crosses the midline in upper slices.
    """
    z0, z1 = 7.0, 86.0
    t = np.clip((z - z0) / (z1 - z0), 0, 1)
    size = np.where((z >= z0) & (z <= z1), np.sin(np.pi * t ** 0.8) ** 0.7, 0.0)
    cx, cy = -40 + 12 * t, -4 - 8 * t
    theta = np.arctan2(y - cy, x - cx)
    radius = np.ones_like(x)
    for k in range(2, 6):
        amp = rng.uniform(0.05, 0.12) / (k - 1) ** 0.5
        phase, wobble, freq = rng.uniform(0, 2 * np.pi, 3)
        envelope = 1 + 0.6 * np.sin(2 * np.pi * (0.5 + freq / 4) * t + wobble)
        radius += amp * envelope * np.cos(k * theta - phase - 1.2 * t)
    base = 1 / _ellipse(x, y, cx, cy, 46 * size, 36 * size, 0.35)  # > 1 inside
    main = base * radius - 1
    lobe_size = np.clip((t - 0.35) / 0.3, 0, 1) * np.clip((1.0 - t) / 0.2, 0, 1)
    lobe = 1 / _ellipse(x, y, cx + 38 * lobe_size, cy - 22, 36 * lobe_size, 15 * lobe_size + 1e-3, -0.25) - 1
    k = 6.0  # smooth union: rounded where the lobes meet
    joined = np.logaddexp(k * main, k * np.maximum(lobe, -5)) / k
    return np.where(size > 0, joined, -1.0)


def _tubes(z, y, x, centres, radius) -> np.ndarray:
    """Mask of vessels running along z with centre (cx(z), cy(z)) and ``radius`` mm."""
    cx, cy = centres
    return (x - cx) ** 2 + (y - cy) ** 2 < radius ** 2


def _spine(z, y, x, tissue) -> float:
    """Vertebral bodies with discs, canal, posterior arch, paraspinal and psoas muscles; returns the
    vertebral body's centre y (mm)."""
    vy = 34.0
    disc = (z % 27.0) < 5.0
    r_body = _ellipse(x, y, 0, vy, 13, 11)
    tissue[(np.hypot(x - 17, y - 50) < 10) | (np.hypot(x + 17, y - 50) < 10)] = MUSCLE  # paraspinal
    psoas = np.clip((50 - z) / 50, 0, 1) * 10
    for side in (1, -1):
        tissue[_ellipse(x, y, side * 19, vy - 2, psoas, psoas * 0.8) < 1] = MUSCLE
    arch = (np.hypot(x, y - (vy + 18)) < 8.5) | ((np.abs(x) < 2.5) & (y > vy + 18) & (y < vy + 30))
    tissue[arch] = CORTEX
    tissue[np.hypot(x, y - (vy + 18)) < 5.5] = CANAL
    tissue[r_body < 1] = np.where(disc, DISC, CORTEX)[r_body < 1]
    tissue[(r_body < 0.85) & ~disc] = CANCELLOUS
    return vy


def _organs(z, y, x, tissue, vy, rng) -> None:
    """Kidneys (with hilum), spleen, stomach with an air-fluid level, aorta, IVC and mesenteric vessels."""
    for side, zc, half in ((-1, 24.0, 27.0), (1, 33.0, 27.0)):  # right kidney lower, under the liver
        s = np.sqrt(np.clip(1 - ((z - zc) / half) ** 2, 0, 1))
        shape = _ellipse(x, y, side * 44, vy - 2, 16 * s, 24 * s + 1e-3, side * 0.45)
        tissue[shape < 1] = KIDNEY
        tissue[(_ellipse(x, y, side * 33, vy - 8, 8 * s, 5 * s + 1e-3) < 1) & (shape < 1.15)] = PELVIS
    sp = np.sqrt(np.clip(1 - ((z - 72.0) / 24.0) ** 2, 0, 1))
    tissue[_ellipse(x, y, 52, 18, 14 * sp, 30 * sp + 1e-3, -0.5) < 1] = SPLEEN
    st = np.sqrt(np.clip(1 - ((z - 66.0) / 22.0) ** 2, 0, 1))
    stomach = _ellipse(x, y, 26, -24, 24 * st, 17 * st + 1e-3, 0.3)
    tissue[stomach < 1] = MUSCLE  # wall
    tissue[stomach < 0.8] = STOMACH
    tissue[(stomach < 0.8) & (y < -34)] = GAS  # gas rises to the front of a supine patient
    tissue[_tubes(z, y, x, (5 + 0 * z, vy - 24 + 0.05 * z), 9)] = AORTA
    tissue[_tubes(z, y, x, (-20 + 0.04 * z, vy - 22 + 0 * z), 8)] = IVC
    for i in range(3):
        ph, r = rng.uniform(0, 2 * np.pi), rng.uniform(2.5, 3.5)
        cx, cy = -10 + 20 * i + 8 * np.sin(z / 25 + ph), -30 + 10 * np.cos(z / 30 + ph)
        tissue[_tubes(z, y, x, (cx, cy), r) & (tissue == CAVITY)] = VESSEL


def _draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Tissue codes ``(z, y, x)`` and a smooth intensity texture (HU) to add to them."""
    z, y, x = _grid()
    tissue = np.full(SHAPE, AIR, np.uint8)
    body, depth = _body(z, y, x)
    fat_depth = 9 + 5 * np.clip(-y / 70, 0, 1)  # thicker fat at the front
    tissue[body] = FAT
    tissue[body & (depth > fat_depth)] = MUSCLE
    cavity = body & (depth > fat_depth + 7)
    tissue[cavity] = CAVITY
    # abdominal contents: a mix of fat and bowel, blobs of a few mm (the cavity value is set by the texture)
    bowel = _smooth_noise(rng, (0.7, 3.0, 3.0))
    gas = cavity & (_smooth_noise(rng, (0.7, 2.0, 2.0)) > 2.6) & (y < -10) & (x > -10)
    liver_f = _liver(z, y, x, rng)
    tissue[(liver_f > 0) & cavity] = LIVER
    parenchyma = 5 * _smooth_noise(rng, (1.0, 4.0, 4.0))
    for i in range(3):  # portal and hepatic vessel branches inside the liver (part of the liver label)
        ph, r = rng.uniform(0, 2 * np.pi), rng.uniform(2.0, 3.2)
        cx, cy = -52 + 14 * i + 6 * np.sin(z / 20 + ph), -12 + 8 * i + 6 * np.cos(z / 17 + ph)
        tissue[_tubes(z, y, x, (cx, cy), r) & (tissue == LIVER)] = HEPATIC_VESSEL
    vy = _spine(z, y, x, tissue)
    _organs(z, y, x, tissue, vy, rng)
    tissue[gas & (tissue == CAVITY)] = GAS
    texture = np.where(tissue == CAVITY, -90 + 115 / (1 + np.exp(-2.5 * bowel)), 0.0)  # the cavity's own value
    texture += np.where(tissue == LIVER, parenchyma, 0.0)
    return tissue, texture


def phantom(seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """The sample CT ``(z, y, x)`` int16 HU and its liver truth uint8 (1 liver, 0 elsewhere).

    Deterministic for a given ``seed``. The image is the tissue drawing blurred by a small point-spread
    function (partial volume), plus a mild smooth bias (cupping, +-10 HU) and Gaussian noise (15 HU).
    """
    rng = np.random.default_rng(seed)
    tissue, texture = _draw(rng)
    lut = np.zeros(256, np.float64)
    for code, value in HU.items():
        lut[code] = value
    image = lut[tissue] + texture
    image = ndimage.gaussian_filter(image, (0.35, 0.7, 0.7))
    z, y, x = _grid()
    image += -10 * np.exp(-(x ** 2 + y ** 2) / (2 * 45.0 ** 2)) + 4 * np.sin(z / 35 + 0.5)  # cupping, drift
    image += rng.normal(0.0, NOISE_HU, SHAPE)
    hu = np.clip(np.round(image), -1024, 3071).astype(np.int16)
    liver = np.isin(tissue, (LIVER, HEPATIC_VESSEL)).astype(np.uint8)
    return hu, liver


def annotated_slices(liver: np.ndarray) -> list[int]:
    """The slices shipped with labels: at 20, 40, 60 and 80 % of the liver's extent along z."""
    present = np.flatnonzero(liver.any(axis=(1, 2)))
    first, last = int(present[0]), int(present[-1])
    return [int(round(first + f * (last - first))) for f in ANNOTATED_FRACTIONS]


# -- writing -----------------------------------------------------------------------------------------
def write_dicom(hu: np.ndarray, folder: str) -> None:
    """The series via unetgui's writer, then fixed UIDs and dates so that rebuilding gives identical files."""
    import pydicom
    from pydicom.uid import generate_uid

    from unetgui.formats.dicom.writer import SeriesSpec, write_series

    if os.path.isdir(folder):
        shutil.rmtree(folder)
    spec = SeriesSpec(origin=ORIGIN, pixel_spacing=(PIXEL_MM, PIXEL_MM), slice_spacing=SLICE_MM, modality="CT",
                      patient_name="SAMPLE^PHANTOM", patient_id="UNETGUI-SAMPLE",
                      series_description="sample abdomen phantom")
    paths = write_series(hu, folder, spec)

    def uid(*parts: str) -> str:
        return generate_uid(entropy_srcs=["unetgui-sample", *parts])

    for k, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = uid("study"), uid("series")
        ds.FrameOfReferenceUID = uid("frame")
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid("image", str(k))
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20260101"
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
        ds.save_as(path, enforce_file_format=True)


def write_labels(liver: np.ndarray, dicom_folder: str, path: str) -> tuple[object, np.ndarray, list[int]]:
    """Liver labels on the annotated slices, 255 elsewhere, on the DICOM volume's grid; checked on read-back."""
    from unetgui.core.volume import UNANNOTATED, Label, LabelMap, LabelTable
    from unetgui.formats import nifti
    from unetgui.formats.inputs import open_image

    volume = open_image(dicom_folder).volume
    slices = annotated_slices(liver)
    sparse = np.full(liver.shape, UNANNOTATED, np.uint8)
    sparse[slices] = liver[slices]
    table = LabelTable((Label(1, "Liver", LIVER_COLOR),))
    nifti.write_labels(LabelMap(sparse, volume.affine.copy(), table), path)
    back = nifti.read_labels(path, volume, table)
    if not np.array_equal(back.labels, sparse):
        raise SystemExit(f"{path}: the labels do not read back unchanged")
    return volume, sparse, slices


def train_model(volume, sparse: np.ndarray, path: str) -> tuple[object, float]:
    """The ``small`` model trained on the annotated slices by the app's training task (tasks/train.py, the open
    image as its data source), for a fixed number of steps so that every run gives the same model."""
    from unetgui.core.progress import run_to_end
    from unetgui.core.volume import Label, LabelTable
    from unetgui.engine.events import EpochStats
    from unetgui.tasks.sources import ProjectSource
    from unetgui.tasks.train import TrainRequest, train

    table = LabelTable((Label(1, "Liver", LIVER_COLOR),))
    request = TrainRequest("cpu", None, {"preset": "small", "epochs": TRAIN_EPOCHS, "steps_per_epoch": TRAIN_STEPS,
                                         "threads": 2, "seed": SEED}, output=path)
    start = time.monotonic()

    def show(event) -> None:
        if isinstance(event, EpochStats):
            print(f"  epoch {event.epoch:3d} {event.elapsed:6.1f} s loss {event.train_loss:.3f} "
                  f"Dice {event.val_dice.get(1, float('nan')):.3f} ({event.dice_on})", flush=True)

    result = run_to_end(train(request, ProjectSource(volume, sparse, table)), show)
    return result.checkpoint, time.monotonic() - start


def dice_unannotated(checkpoint, volume, liver: np.ndarray, annotated: list[int]) -> tuple[float, dict]:
    """Dice of the model over all slices without labels, against the phantom's truth (and per slice), segmented
    and measured by the app's tasks."""
    from unetgui.tasks.evaluate import compare
    from unetgui.tasks.segment import SegmentRequest, collect

    others = [z for z in range(volume.shape[0]) if z not in annotated]
    predicted = collect(SegmentRequest("cpu", tuple(others), compile=False), checkpoint, volume).labels
    overall = compare(predicted, liver, volume.spacing, checkpoint.labels, others, labels=[1])[0].dice
    per_slice = {z: compare(predicted, liver, volume.spacing, checkpoint.labels, [z], labels=[1])[0].dice for z in others}
    return overall, per_slice


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-model", action="store_true", help="write the DICOM series and labels only")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.dirname(HERE))  # the repository, when unetgui is not installed
    os.makedirs(OUT, exist_ok=True)
    hu, liver = phantom(SEED)
    print(f"phantom {hu.shape}, HU {hu.min()}..{hu.max()}, liver on slices "
          f"{np.flatnonzero(liver.any(axis=(1, 2)))[[0, -1]].tolist()}")
    write_dicom(hu, os.path.join(OUT, "dicom"))
    volume, sparse, slices = write_labels(liver, os.path.join(OUT, "dicom"), os.path.join(OUT, "labels.nii.gz"))
    if not np.array_equal(volume.voxels, hu):
        raise SystemExit("the DICOM series does not read back as the phantom")
    print(f"labels on slices {slices}")
    if args.no_model:
        return 0
    checkpoint, seconds = train_model(volume, sparse, os.path.join(OUT, "model.unetgui"))
    overall, per_slice = dice_unannotated(checkpoint, volume, liver, slices)
    print(f"trained in {seconds:.0f} s (best epoch {checkpoint.info['training']['best_epoch']}); "
          f"Dice on the {len(per_slice)} unannotated slices: {overall:.3f}")
    print(json.dumps({str(z): round(d, 3) for z, d in per_slice.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
