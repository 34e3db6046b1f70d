"""A LiTS-like synthetic data set for tests and benchmarks: abdominal CT volumes in HU with a liver (label 1)
and 0-3 tumours inside it (label 2), written in the LiTS layout (``volume-N.nii.gz`` +
``segmentation-N.nii.gz``) or the nnU-Net / Medical Segmentation Decathlon layout (``dataset.json`` +
``imagesTr/`` + ``labelsTr/``).

Realistic where it matters to the pipeline: the HU ranges (air -1000, fat -100, soft tissue 40, liver 60,
tumours 20-40 and hypodense, bone 400-1000), a body that fills most of the slice, a liver of a few percent of
the body, tumours of 5-40 mm, the spacing (0.6-0.9 mm in plane, 1-5 mm between slices) and LiTS sizes when
asked (512 x 512 x 75-987). Not realistic: textures and the shapes of organs (ellipsoids).

    python tests/lits_synth.py OUT --layout lits|msd --cases 8 [--size 512] [--slices 100 400]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np


def synth_case(seed: int, size: int = 512, slices: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hu int16 (z, y, x), labels uint8 (z, y, x), affine 4x4 RAS) of one synthetic abdomen."""
    rng = np.random.default_rng(seed)
    z, y, x = slices, size, size
    spacing = (float(rng.uniform(1.0, 5.0)), float(rng.uniform(0.6, 0.9)), float(rng.uniform(0.6, 0.9)))  # z, y, x mm
    zz = (np.arange(z, dtype=np.float32)[:, None, None] - z / 2) * spacing[0]
    yy = (np.arange(y, dtype=np.float32)[None, :, None] - y / 2) * spacing[1]
    xx = (np.arange(x, dtype=np.float32)[None, None, :] - x / 2) * spacing[2]
    hu = np.full((z, y, x), -1000.0, np.float32)
    ry, rx = rng.uniform(0.30, 0.38) * y * spacing[1], rng.uniform(0.40, 0.46) * x * spacing[2]
    body = (yy / ry) ** 2 + (xx / rx) ** 2 < 1.0
    hu[np.broadcast_to(body, hu.shape)] = -100.0  # fat
    inner = (yy / (ry * 0.85)) ** 2 + (xx / (rx * 0.88)) ** 2 < 1.0
    hu[np.broadcast_to(inner, hu.shape)] = 40.0  # soft tissue
    f = size / 512  # organs scale with the field of view, so small test volumes keep the proportions
    spine = ((yy - ry * 0.6) / (18.0 * f)) ** 2 + (xx / (16.0 * f)) ** 2 < 1.0
    hu[np.broadcast_to(spine, hu.shape)] = float(rng.uniform(400, 1000))
    # the liver: an ellipsoid in the patient's right upper abdomen (image left), ~1500 mL
    cz, cy, cx = rng.uniform(-0.15, 0.15) * z * spacing[0], -ry * 0.15, -rx * 0.35
    az, ay, ax = (rng.uniform(70, 95) * min(1.0, z * spacing[0] / 300), rng.uniform(70, 95) * f, rng.uniform(60, 85) * f)
    liver = ((zz - cz) / az) ** 2 + ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2 < 1.0
    hu[liver] = float(rng.uniform(50, 70))
    labels = liver.astype(np.uint8)
    for _ in range(int(rng.integers(0, 4))):  # 0-3 tumours, 5-40 mm, inside the liver
        r = float(rng.uniform(2.5, 20.0)) * max(f, 0.3)
        t = (cz + rng.uniform(-0.5, 0.5) * az, cy + rng.uniform(-0.5, 0.5) * ay, cx + rng.uniform(-0.5, 0.5) * ax)
        tumour = liver & (((zz - t[0]) ** 2 + (yy - t[1]) ** 2 + (xx - t[2]) ** 2) < r * r)
        hu[tumour] = float(rng.uniform(20, 40))
        labels[tumour] = 2
    hu += rng.normal(0, 12, hu.shape).astype(np.float32)
    affine = np.diag([-spacing[2], -spacing[1], spacing[0], 1.0])  # LPS-stored like most CT, RAS affine
    return np.clip(hu, -1024, 3071).astype(np.int16), labels, affine


def _save(data_zyx: np.ndarray, affine: np.ndarray, path: Path) -> None:
    img = nib.Nifti1Image(data_zyx.transpose(2, 1, 0), affine)
    img.header.set_sform(affine, code=1)
    img.header.set_qform(affine, code=1)
    nib.save(img, str(path))


def write_lits(folder: str | Path, cases: int, size: int = 512, slices: tuple[int, int] = (100, 400), seed: int = 0) -> list[str]:
    """``volume-N.nii.gz`` + ``segmentation-N.nii.gz`` for N = 0..cases-1; returns the case ids."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for n in range(cases):
        hu, labels, affine = synth_case(seed * 1000 + n, size, int(rng.integers(slices[0], slices[1] + 1)))
        _save(hu, affine, folder / f"volume-{n}.nii.gz")
        _save(labels, affine, folder / f"segmentation-{n}.nii.gz")
    return [f"volume-{n}" for n in range(cases)]


def write_msd(folder: str | Path, cases: int, size: int = 512, slices: tuple[int, int] = (100, 400), seed: int = 0,
              nnunet_v2: bool = True) -> list[str]:
    """``dataset.json`` + ``imagesTr/`` + ``labelsTr/``: nnU-Net v2 naming (``liver_000_0000.nii.gz``, labels
    as name -> value) or the Decathlon's (``liver_0.nii.gz``, labels as value -> name, a ``training`` list)."""
    folder = Path(folder)
    (folder / "imagesTr").mkdir(parents=True, exist_ok=True)
    (folder / "labelsTr").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = []
    for n in range(cases):
        case = f"liver_{n:03d}" if nnunet_v2 else f"liver_{n}"
        hu, labels, affine = synth_case(seed * 1000 + n, size, int(rng.integers(slices[0], slices[1] + 1)))
        _save(hu, affine, folder / "imagesTr" / (f"{case}_0000.nii.gz" if nnunet_v2 else f"{case}.nii.gz"))
        _save(labels, affine, folder / "labelsTr" / f"{case}.nii.gz")
        ids.append(case)
    if nnunet_v2:
        meta = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "tumour": 2},
                "numTraining": cases, "file_ending": ".nii.gz", "name": "SyntheticLiTS"}
    else:
        meta = {"name": "SyntheticLiTS", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "liver", "2": "cancer"},
                "numTraining": cases, "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in ids],
                "test": []}
    with open(folder / "dataset.json", "w") as f:
        json.dump(meta, f, indent=1)
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--layout", choices=["lits", "msd", "decathlon"], default="lits")
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--slices", type=int, nargs=2, default=[100, 400])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    writer = write_lits if args.layout == "lits" else write_msd
    extra = {"nnunet_v2": args.layout == "msd"} if args.layout != "lits" else {}
    ids = writer(args.out, args.cases, args.size, tuple(args.slices), args.seed, **extra)
    print(f"wrote {len(ids)} cases into {os.path.abspath(args.out)}")


if __name__ == "__main__":
    main()
