"""unetgui: U-Net segmentation of medical images on the desktop."""

__version__ = "0.1.0"
