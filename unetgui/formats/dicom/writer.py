"""Write a volume as a DICOM CT/MR image series (used for sample data, tests and benchmarks).

The files are real, standard-conformant single-frame CT/MR Image Storage objects (explicit VR little
endian), so everything that reads them goes through the same code path as scanner data.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

_SOP_CLASS = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4"}


@dataclass(frozen=True)
class SeriesSpec:
    """How to place the slices: LPS orientation cosines, first position (mm), spacing (mm)."""

    orientation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    origin: tuple[float, float, float] = (-100.0, -100.0, 0.0)
    pixel_spacing: tuple[float, float] = (0.8, 0.8)  # (row spacing, column spacing)
    slice_spacing: float = 2.0
    slice_thickness: float | None = None  # defaults to slice_spacing; may differ, as on real scanners
    modality: str = "CT"
    patient_name: str = "PHANTOM^UNETGUI"
    patient_id: str = "UNETGUI-0001"
    series_description: str = "synthetic phantom"


def write_series(voxels: np.ndarray, folder: str, spec: SeriesSpec = SeriesSpec(), prefix: str = "IM") -> list[str]:
    """Write ``voxels`` ``(z, y, x)`` (HU for CT; integer values) as one file per slice under ``folder``.

    Slice ``k`` lies at ``origin + k * slice_spacing * normal``. Returns the paths in slice order.
    Stored values are int16 with RescaleIntercept -1024 for CT (as scanners write them).
    """
    os.makedirs(folder, exist_ok=True)
    intercept = -1024 if spec.modality == "CT" else 0
    stored = np.asarray(voxels).astype(np.int32) - intercept
    if stored.min() < -32768 or stored.max() > 32767:
        raise ValueError("values do not fit 16-bit storage")
    stored = stored.astype(np.int16)
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    o = np.asarray(spec.orientation, float)
    normal = np.cross(o[:3], o[3:])
    now = datetime.datetime.now()
    paths = []
    for k in range(stored.shape[0]):
        position = np.asarray(spec.origin, float) + k * spec.slice_spacing * normal
        ds = _slice_dataset(stored[k], spec, position, k)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
        ds.RescaleIntercept, ds.RescaleSlope = intercept, 1
        path = os.path.join(folder, f"{prefix}{k + 1:04d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _slice_dataset(pixels: np.ndarray, spec: SeriesSpec, position: np.ndarray, k: int) -> pydicom.Dataset:
    sop_class, sop_uid = _SOP_CLASS[spec.modality], generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    ds.Modality = spec.modality
    ds.PatientName, ds.PatientID = spec.patient_name, spec.patient_id
    ds.PatientBirthDate, ds.PatientSex = "", "O"
    ds.AccessionNumber, ds.ReferringPhysicianName, ds.StudyID = "", "", "1"
    ds.SeriesNumber, ds.InstanceNumber = 1, k + 1
    ds.SeriesDescription = spec.series_description
    ds.Manufacturer = "unetgui"
    ds.PositionReferenceIndicator = ""
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.ImagePositionPatient = [float(f"{v:.6f}") for v in position]
    ds.ImageOrientationPatient = [float(f"{v:.8f}") for v in spec.orientation]
    ds.PixelSpacing = [float(v) for v in spec.pixel_spacing]
    ds.SliceThickness = spec.slice_thickness if spec.slice_thickness is not None else spec.slice_spacing
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    if spec.modality == "CT":
        ds.KVP = 120
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    return ds
