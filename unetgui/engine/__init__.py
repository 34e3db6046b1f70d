"""The U-Net engine: model, preprocessing, augmentation, training, inference, metrics, checkpoints.

The only package that imports torch. No Qt: long operations are generators or take a progress callback
and a :class:`~unetgui.core.progress.CancelToken`.
"""
