"""Development cases for the few-shot benchmark (benchmarks/fewshot.py): what a user brings to "annotate a
few slices, press Train", in the problem class's range of slice sizes, contrasts and structure sizes.

Synthetic (a new volume per seed, so three seeds are three different images):
* ``mr_small``: MR-like T1 of the neck, slices of ~40 x 80 px (sizes drawn in 40..46 x 70..82), 50-70 slices,
  a compact structure (a spinal cord of ~7 x 9 px drifting along z, in dark CSF, beside bright vertebrae),
  bias field and Rician-like noise; 3 annotated slices;
* ``tiny``: a 320 x 320 T2*-like slab of 11 slices where the structure is a butterfly of grey matter inside
  the cord, ~50-70 px = under 0.1 % of the slice, among bright vessel-like distractors; 2 annotated slices.
Real or from the repository:
* ``phantom``: the sample study's synthetic abdominal CT (resources/build_sample.py, 32 x 160 x 160), liver,
  3 annotated slices;
* ``isbi_k2`` / ``isbi_k3`` / ``isbi_k5``: the ISBI 2012 EM stack (25 x 512 x 512, membranes) with 2, 3, 5
  annotated sections;
* ``dcmqi``: the real 3-slice CT (512 x 512) with its DICOM-SEG liver, slices 1 and 3 annotated.

``prepare(folder)`` writes every case as .npz (image, truth, annotated slices, modality, spacing) so the runs
need only numpy and the engine (the GPU machine has no pydicom); the synthetic ones are rebuilt per seed.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


@dataclass
class DevCase:
    name: str
    image: np.ndarray  # (z, y, x)
    truth: np.ndarray  # (z, y, x) uint8 label values (dense)
    annotated: list[int]
    modality: str = ""
    spacing_yx: tuple[float, float] = (1.0, 1.0)
    spacing_z: float = 1.0  # slice distance, mm

    @property
    def sparse(self) -> np.ndarray:
        out = np.full(self.truth.shape, 255, np.uint8)
        out[self.annotated] = self.truth[self.annotated]
        return out

    @property
    def unannotated(self) -> list[int]:
        return [z for z in range(self.truth.shape[0]) if z not in self.annotated]


def _spread(n: int, k: int) -> list[int]:
    """``k`` slices evenly inside ``0..n-1`` (not at the ends)."""
    return [int(round(v)) for v in np.linspace(0, n - 1, k + 2)[1:-1]]


def _smooth(rng, shape, sigma) -> np.ndarray:
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return (f - f.mean()) / (f.std() + 1e-9)


def mr_small(seed: int) -> DevCase:
    rng = np.random.default_rng(100 + seed)
    z, h, w = int(rng.integers(50, 71)), int(rng.integers(40, 47)), int(rng.integers(70, 83))
    zz, yy, xx = np.mgrid[0:z, 0:h, 0:w].astype(np.float32)
    t = zz / z * 2 * np.pi
    cy = h * 0.45 + 2.5 * np.sin(t * rng.uniform(0.5, 1.2) + rng.uniform(0, 6))
    cx = w * rng.uniform(0.45, 0.55) + 3.0 * np.sin(t * rng.uniform(0.3, 0.9))
    ry, rx = rng.uniform(3.0, 4.0), rng.uniform(4.0, 5.2)
    r = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    cord = r < 1
    csf = (r < 1.7) & ~cord
    body = (((yy - h / 2) / (h * 0.48)) ** 2 + ((xx - w / 2) / (w * 0.49)) ** 2) < 1
    vert = (np.sqrt(((yy - cy - ry * 2.6) / (ry * 1.3)) ** 2 + ((xx - cx) / (rx * 1.4)) ** 2) < 1)
    disc = (np.sin(zz / rng.uniform(4, 6) * np.pi) > 0.6) & vert
    contrast = rng.uniform(0.7, 1.3)
    img = np.where(body, 420 + 60 * _smooth(rng, (z, h, w), (2, 4, 4)), 15.0)
    img = np.where(vert, 620.0, img)
    img = np.where(disc, 330.0, img)
    img = np.where(csf, 150.0, img)
    img = np.where(cord, 150 + 260 * contrast, img)
    img = ndimage.gaussian_filter(img, (0, 0.6, 0.6))  # partial volume at the borders
    bias = np.exp(0.25 * _smooth(rng, (z, h, w), (20, 15, 15)))
    img = img * bias
    noise = rng.uniform(12, 25)
    img = np.hypot(img + rng.normal(0, noise, img.shape), rng.normal(0, noise, img.shape))
    return DevCase(f"mr_small/{seed}", img.astype(np.int16), cord.astype(np.uint8), _spread(z, 3), "MR", (1.0, 1.0))


def tiny(seed: int) -> DevCase:
    rng = np.random.default_rng(200 + seed)
    z, n = 11, 320
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    img = np.zeros((z, n, n), np.float32)
    truth = np.zeros((z, n, n), np.uint8)
    base = _smooth(rng, (z, n, n), (1, 12, 12))
    vessels = [(rng.uniform(60, 260), rng.uniform(60, 260), rng.uniform(1.5, 3.0)) for _ in range(12)]
    c0 = np.array([n * rng.uniform(0.4, 0.6), n * rng.uniform(0.4, 0.6)])
    angle = rng.uniform(-0.5, 0.5)
    for k in range(z):
        cy, cx = c0 + np.array([0.8, 0.5]) * (k - z / 2)
        ca, sa = np.cos(angle), np.sin(angle)
        u, v = (xx - cx) * ca + (yy - cy) * sa, -(xx - cx) * sa + (yy - cy) * ca
        cord = (u / 9.5) ** 2 + (v / 6.5) ** 2 < 1
        csf = ((u / 13) ** 2 + (v / 10) ** 2 < 1) & ~cord
        # butterfly: four horns and a bar, about 50-70 px in all
        horns = [((u - sx * 3.2) / 1.6) ** 2 + ((v - sy * 2.6) / 2.3) ** 2 < 1 for sx in (-1, 1) for sy in (-1, 1)]
        bar = (np.abs(u) < 3.4) & (np.abs(v) < 0.9)
        gm = (np.any(horns, axis=0) | bar) & cord
        neck = (((yy - n / 2) / 130) ** 2 + ((xx - n / 2) / 120) ** 2) < 1
        s = np.where(neck, 300 + 50 * base[k], 10.0)
        s = np.where(csf, 720.0, s)
        s = np.where(cord, 360.0, s)
        s = np.where(gm, 480.0, s)
        for vy, vx, vr in vessels:
            s = np.where(np.hypot(yy - vy - k * 0.3, xx - vx) < vr, 500.0, s)
        img[k] = ndimage.gaussian_filter(s, 0.7)
        truth[k] = gm
    img = np.abs(img + rng.normal(0, rng.uniform(15, 30), img.shape))
    return DevCase(f"tiny/{seed}", img.astype(np.int16), truth, _spread(z, 2), "MR", (0.5, 0.5), 2.5)


def phantom(seed: int) -> DevCase:
    sys.path.insert(0, str(ROOT / "resources"))
    import build_sample

    hu, liver = build_sample.phantom()
    zs = np.flatnonzero(liver.any(axis=(1, 2)))
    first, last = int(zs[0]), int(zs[-1])
    annotated = [int(round(first + f * (last - first))) for f in (0.25, 0.5, 0.75)]
    return DevCase("phantom", hu, liver.astype(np.uint8), annotated, "CT", (build_sample.PIXEL_MM,) * 2, build_sample.SLICE_MM)


def _isbi() -> tuple[np.ndarray, np.ndarray]:
    import cv2

    folder = DATA / "isbi2012-membrane" / "train"
    n = len(list((folder / "image").glob("*.png")))
    image = np.stack([cv2.imread(str(folder / "image" / f"{i}.png"), cv2.IMREAD_GRAYSCALE) for i in range(n)])
    label = np.stack([cv2.imread(str(folder / "label" / f"{i}.png"), cv2.IMREAD_GRAYSCALE) for i in range(n)])
    return image, (label < 128).astype(np.uint8)  # 0 = membrane in the source; label 1 = membrane here


def isbi(k: int) -> DevCase:
    image, membrane = _isbi()
    return DevCase(f"isbi_k{k}", image, membrane, _spread(image.shape[0], k), "", (1.0, 1.0), 12.5)  # 4 nm pixels, 50 nm sections


def dcmqi() -> DevCase:
    sys.path.insert(0, str(ROOT))
    from unetgui.formats.dicom import load_series, scan
    from unetgui.formats.dicom_seg import read_dicom_seg

    folder = DATA / "dcmqi-ct-3slice-liver-seg"
    volume = load_series(scan(str(folder / "ct")).series[0])
    labels, _ = read_dicom_seg(str(folder / "seg" / "liver_seg.dcm"), volume)
    truth = (labels.labels > 0).astype(np.uint8)
    return DevCase("dcmqi", volume.voxels, truth, [0, 2], "CT", tuple(volume.spacing[1:]), float(volume.spacing[0]))


def _partial(rng, inside, nz: int, sub: int = 5):
    """Slab averages of ``inside(zc)`` (a boolean (y, x) mask at a continuous slice position): the partial
    volume of a thick slice (``sub`` samples across its thickness). Returns (z, y, x) float32 in 0..1."""
    out = []
    for k in range(nz):
        out.append(np.mean([inside(k - 0.5 + (j + 0.5) / sub) for j in range(sub)], axis=0))
    return np.asarray(out, np.float32)


def lesion(seed: int) -> DevCase:
    """A FLAIR-like brain MR with thick slices (5-7.5 mm) and one bright lesion of 0.08-0.5 % of a slice on a
    few of its 20-28 slices; slices of 256-512 px. The slices at both ends look unlike the annotated ones
    (vertex: little brain, much scalp; skull base: orbits and bright flow artefacts, lesion-like), and
    periventricular caps are bright as the lesion is: what a model trained on two lesion slices has never seen."""
    rng = np.random.default_rng(300 + seed)
    n = int(rng.choice([256, 320, 384, 448, 512]))
    nz = int(rng.integers(20, 29))
    sxy, sz = 230.0 / n, float(rng.uniform(5.0, 7.5))
    yy, xx = (np.mgrid[0:n, 0:n].astype(np.float32) - n / 2) * sxy  # mm from the centre
    texture = _smooth(rng, (nz, n, n), (0.5, 6 / sxy, 6 / sxy))
    fine = _smooth(rng, (nz, n, n), (0.3, 1.5 / sxy, 1.5 / sxy))
    frac = float(np.exp(rng.uniform(np.log(0.0008), np.log(0.005))))
    r_mm = np.sqrt(frac * (n * sxy) ** 2 / np.pi)
    rz_mm = sz * rng.uniform(2.2, 4.0)  # across 4-8 thick slices
    zc_mm = sz * nz * rng.uniform(0.4, 0.6)
    ang = rng.uniform(0, 2 * np.pi)
    ly, lx = np.sin(ang) * rng.uniform(20, 45), np.cos(ang) * rng.uniform(25, 55)
    wobble = [(rng.uniform(0, 0.25), int(rng.integers(2, 5)), rng.uniform(0, 2 * np.pi)) for _ in range(2)]
    theta = np.arctan2(yy - ly, xx - lx)
    rmod = 1 + sum(a * np.sin(k * theta + p) for a, k, p in wobble)

    def lesion_at(zc: float) -> np.ndarray:
        dz = (zc * sz - zc_mm) / rz_mm
        if abs(dz) >= 1:
            return np.zeros((n, n), bool)
        return np.hypot(yy - ly, xx - lx) < r_mm * np.sqrt(1 - dz * dz) * rmod

    def head_at(zc: float) -> tuple[float, float]:
        t = (zc + 0.5) / nz  # 0 skull base .. 1 vertex
        s = np.sqrt(max(0.05, 1 - ((t - 0.42) / 0.66) ** 2))
        return 92 * s, 75 * s

    pv = _partial(rng, lesion_at, nz)
    truth = (pv >= 0.5).astype(np.uint8)
    contrast = rng.uniform(0.25, 0.45)
    img = np.zeros((nz, n, n), np.float32)
    for k in range(nz):
        a, b = head_at(k)
        t = (k + 0.5) / nz
        r = np.hypot(yy / a, xx / b)
        scalp, skull, brain = (r < 1) & (r > 0.93), (r <= 0.93) & (r > 0.86), r <= 0.86
        edge = (0.86 - r) * min(a, b)  # mm inside the brain's edge
        gm = brain & (edge + 3 * texture[k] < 5)
        s = np.where(scalp, 0.85 + 0.1 * fine[k], 0.02)
        s = np.where(skull, 0.08, s)
        s = np.where(brain, 0.50 + 0.03 * texture[k], s)
        s = np.where(gm, 0.60 + 0.03 * texture[k], s)
        if 0.3 < t < 0.72:  # lateral ventricles (dark CSF) with bright caps around their horns
            for side in (-1, 1):
                v = np.hypot((yy + 8) / 22, (xx - side * 9) / 5)
                s = np.where(v < 1, 0.12, s)
                s = np.where((v >= 1) & (v < 1.25) & (np.abs(yy + 8) > 14), 0.62 + contrast * 0.6, s)
        if t < 0.22:  # skull base: orbits (bright fat around a dark globe) and bright flow artefacts
            for side in (-1, 1):
                o = np.hypot((yy + 62 * a / 92) / 12, (xx - side * 28) / 12)
                s = np.where(o < 1, 0.9, s)
                s = np.where(o < 0.6, 0.15, s)
            for _ in range(int(rng.integers(1, 4))):
                fy, fx = rng.uniform(-20, 30), rng.uniform(-35, 35)
                s = np.where(np.hypot(yy - fy, xx - fx) < rng.uniform(2, 5), 0.6 + contrast + rng.uniform(0, 0.1), s)
        s = s + (pv[k] * (contrast + 0.1 * fine[k]))
        img[k] = ndimage.gaussian_filter(s, 0.6)
    bias = np.exp(0.2 * _smooth(rng, (nz, n, n), (3, 40 / sxy, 40 / sxy)))
    noise = rng.uniform(0.02, 0.04)
    img = np.hypot(img * bias + rng.normal(0, noise, img.shape), rng.normal(0, noise, img.shape)) * 800
    zs = np.flatnonzero(truth.any(axis=(1, 2)))
    picks = [int(zs[int(round(f * (len(zs) - 1)))]) for f in (1 / 3, 2 / 3)] if len(zs) > 2 else [int(z) for z in zs]
    return DevCase(f"lesion/{seed}", img.astype(np.int16), truth, sorted(set(picks)), "MR", (sxy, sxy), sz)


def ct_lesion(seed: int) -> DevCase:
    """A real CT (TotalSegmentator's 20-slice upper abdomen, 512 x 512, 2 mm) with a liver lesion inserted into
    its own texture and noise: hypo- or hyperdense by 25-60 HU, 0.05-0.3 % of a slice, irregular, with partial
    volume at its border; 2 annotated slices."""
    from unetgui.formats.dicom import load_series, scan

    rng = np.random.default_rng(400 + seed)
    volume = load_series(scan(str(DATA / "totalsegmentator-example-ct-dicom")).series[0])
    hu = volume.voxels.astype(np.float32)
    nz, n = hu.shape[0], hu.shape[1]
    sz, sxy = float(volume.spacing[0]), float(volume.spacing[1])
    frac = float(np.exp(rng.uniform(np.log(0.0005), np.log(0.003))))
    r_mm = np.sqrt(frac * (n * sxy) ** 2 / np.pi)
    mid = nz // 2
    smooth = ndimage.uniform_filter(hu[mid], int(2 * r_mm / sxy) + 9)
    spread = np.sqrt(np.maximum(ndimage.uniform_filter(hu[mid] ** 2, int(2 * r_mm / sxy) + 9) - smooth**2, 0))
    liver = (smooth > 70) & (smooth < 150) & (spread < 25)
    liver[:, n // 2:] = False  # the patient's right: the liver
    cand = np.argwhere(liver)
    cy, cx = cand[rng.integers(len(cand))]
    zc = mid + rng.uniform(-2, 2)
    delta = float(rng.choice([-1, 1]) * rng.uniform(25, 60))
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    theta = np.arctan2(yy - cy, xx - cx)
    rmod = 1 + rng.uniform(0, 0.2) * np.sin(3 * theta + rng.uniform(0, 6))
    rz = r_mm * rng.uniform(0.8, 1.3)

    def inside(z: float) -> np.ndarray:
        dz = (z - zc) * sz / rz
        if abs(dz) >= 1:
            return np.zeros((n, n), bool)
        return np.hypot(yy - cy, xx - cx) * sxy < r_mm * np.sqrt(1 - dz * dz) * rmod

    pv = _partial(rng, inside, nz)
    pv = ndimage.gaussian_filter(pv, (0, 0.8, 0.8))
    inner = 1 + 0.15 * _smooth(rng, hu.shape, (1, 3, 3))
    hu = hu + delta * pv * inner
    truth = (pv >= 0.5).astype(np.uint8)
    zs = np.flatnonzero(truth.any(axis=(1, 2)))
    picks = sorted({int(zs[int(round(f * (len(zs) - 1)))]) for f in (1 / 3, 2 / 3)})
    return DevCase(f"ct_lesion/{seed}", np.round(hu).astype(np.int16), truth, picks, "CT", (sxy, sxy), sz)


SYNTHETIC = {"mr_small": mr_small, "tiny": tiny, "lesion": lesion, "ct_lesion": ct_lesion}
FIXED = {"phantom": lambda: phantom(0), "isbi_k2": lambda: isbi(2), "isbi_k3": lambda: isbi(3),
         "isbi_k5": lambda: isbi(5), "dcmqi": dcmqi}
CASES = [*SYNTHETIC, *FIXED]


def prepare(folder: Path) -> None:
    """Write every fixed case (and seeds 0-2 of the synthetic ones) to ``folder`` as .npz."""
    folder.mkdir(parents=True, exist_ok=True)
    made = [FIXED[name]() for name in FIXED] + [SYNTHETIC[name](s) for name in SYNTHETIC for s in range(3)]
    for case in made:
        np.savez_compressed(folder / (case.name.replace("/", "_") + ".npz"), image=case.image, truth=case.truth,
                            annotated=np.asarray(case.annotated), modality=case.modality,
                            spacing=np.asarray(case.spacing_yx), spacing_z=case.spacing_z)


def load(folder: Path, name: str, seed: int) -> DevCase:
    key = f"{name}_{seed}" if name in SYNTHETIC else name
    with np.load(folder / f"{key}.npz") as f:
        return DevCase(key, f["image"], f["truth"], [int(v) for v in f["annotated"]], str(f["modality"]),
                       tuple(float(v) for v in f["spacing"]), float(f["spacing_z"]) if "spacing_z" in f else 1.0)


if __name__ == "__main__":
    prepare(Path(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "benchmarks", ".cases")))
