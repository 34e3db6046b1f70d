"""File formats (DICOM, NIfTI, NRRD and 3D Slicer segmentations, PNG, DICOM-SEG, ITK-SNAP and Slicer label
tables, data set folders) and the export; no Qt, no torch."""
