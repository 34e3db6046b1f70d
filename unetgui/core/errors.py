"""The error hierarchy of unetgui.

Every error a user can cause with a file or an input derives from :class:`UnetguiError` and carries a
message written for that user (what went wrong, with which file, and what to do). Anything else that
escapes is a bug.
"""

from __future__ import annotations


class UnetguiError(Exception):
    """Base class of all expected, user-facing errors."""


class FormatError(UnetguiError):
    """A file or folder cannot be read or written: unsupported, corrupt or inconsistent content."""


class DicomError(FormatError):
    """A DICOM series cannot be loaded: unsupported or corrupt pixel data, or an unusable series.

    This is the one documented error type of :mod:`unetgui.formats.dicom`; every other failure of a
    DICOM file is reported as a warning on the volume or a skipped file in the scan result.
    """


class GeometryError(UnetguiError):
    """Two grids (image and labels) do not describe the same voxels; unetgui never resamples silently."""


class Cancelled(UnetguiError):
    """The user cancelled a long operation; nothing was changed."""
