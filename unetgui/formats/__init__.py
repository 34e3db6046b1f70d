"""File formats (DICOM, NIfTI, PNG, DICOM-SEG); no Qt, no torch."""
