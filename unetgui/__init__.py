"""unetgui: U-Net segmentation of medical images on the desktop."""

import os as _os

__version__ = "0.1.0"

# OpenCV checks decoded image sizes against this when cv2 is imported (its default is 2^30 pixels): the
# app's own limit (core/limits.py), for the image formats whose headers unetgui does not read itself
_os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(16_384 * 16_384))
