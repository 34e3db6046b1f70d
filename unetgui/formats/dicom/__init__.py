"""DICOM reading without Qt: :func:`scan` a folder for series, :func:`load_series` one of them.

Errors: a series that cannot be loaded (unsupported or corrupt pixel data, no pixel data) raises
:class:`~unetgui.core.errors.DicomError` with a message naming the file; files that are not DICOM or
not images are listed in :attr:`ScanResult.skipped`; geometry problems (gaps, tilt, non-uniform
spacing, duplicate positions, 4-D splits) are warnings on the returned :class:`Volume`.
"""

from unetgui.formats.dicom.load import load_series
from unetgui.formats.dicom.scan import ScanResult, SegmentationRef, Series, scan, scan_files

__all__ = ["ScanResult", "SegmentationRef", "Series", "load_series", "scan", "scan_files"]
