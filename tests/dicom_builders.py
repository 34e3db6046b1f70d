"""Small pydicom writers for edge cases the shared data lacks (Enhanced CT with chosen frames, odd UIDs)."""

from __future__ import annotations

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"


def _item(**values) -> Dataset:
    ds = Dataset()
    for k, v in values.items():
        setattr(ds, k, v)
    return ds


def write_enhanced_ct(path: str, frames: list[np.ndarray], positions: list[tuple], orientation=(1, 0, 0, 0, 1, 0),
                      spacing=(1.0, 1.0), slope: float = 1.0, intercept: float = -1024.0, temporal: list[int] | None = None) -> Dataset:
    """An Enhanced CT file: per-frame positions (and temporal indices), shared orientation/spacing/rescale."""
    meta = FileMetaDataset()
    sop = generate_uid()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ENHANCED_CT, sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = ENHANCED_CT, sop
    ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "CT", generate_uid(), generate_uid()
    ds.FrameOfReferenceUID, ds.InstanceNumber, ds.SeriesNumber = generate_uid(), 1, 1
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "EDGE^CASE", "E1", "", "O"
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "20200101", "120000", "1", "", ""
    ds.NumberOfFrames = len(frames)
    ds.Rows, ds.Columns = frames[0].shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SharedFunctionalGroupsSequence = [_item(
        PlaneOrientationSequence=[_item(ImageOrientationPatient=list(map(float, orientation)))],
        PixelMeasuresSequence=[_item(PixelSpacing=list(map(float, spacing)), SliceThickness=1.0)],
        PixelValueTransformationSequence=[_item(RescaleSlope=slope, RescaleIntercept=intercept, RescaleType="HU")],
    )]
    per_frame = []
    for i, p in enumerate(positions):
        content = _item(TemporalPositionIndex=temporal[i]) if temporal else _item(FrameAcquisitionNumber=i + 1)
        per_frame.append(_item(PlanePositionSequence=[_item(ImagePositionPatient=list(map(float, p)))],
                               FrameContentSequence=[content]))
    ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.PixelData = np.stack(frames).astype(np.int16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return ds
