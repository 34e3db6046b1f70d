"""Model files: open, save, describe (the model card) and export as ONNX; the one place the app and the
command line reach them. torch is imported only when a model is read or written."""

from __future__ import annotations

from dataclasses import dataclass


def load(path: str):
    """The engine Checkpoint in ``path`` (a readable message when it is not a unetgui model)."""
    from unetgui.engine import checkpoint

    return checkpoint.load(path)


def save(model, path: str) -> None:
    from unetgui.engine import checkpoint

    checkpoint.save(model, path)


def describe(model) -> str:
    """The model card: labels, training data, validation metrics, fit, device, date."""
    from unetgui.engine.checkpoint import describe as card

    return card(model)


def postprocessing_summary(model) -> str:
    """What the model's post-processing does, in words ("" when nothing)."""
    from unetgui.engine import postprocess

    record = model.info.get("postprocessing")
    largest = postprocess.rule_values(record, postprocess.KEY)
    anchored = postprocess.rule_values(record, postprocess.ANCHORED)
    text = f"keeps the largest object of label(s) {largest}" if largest else ""
    if anchored:
        text += ("; " if text else "") + (f"in the annotated volume (the app, predict --annotation) only the objects "
                                          f"that reach the annotation of label(s) {anchored}")
    return text


@dataclass(frozen=True)
class OnnxExport:
    path: str
    size: int  # bytes
    opset: int
    in_channels: int
    classes: int
    multiple: int  # H and W must be multiples of this
    max_difference: float | None  # ONNX Runtime against torch on a test input (None: not checked)


def export_onnx(model, path: str) -> OnnxExport:
    """``model`` as ONNX with its preprocessing and labels in the metadata (engine/model_export.py), the one
    ONNX export (the app's export and ``unetgui export-model``)."""
    from unetgui.engine.model_export import OPSET
    from unetgui.engine.model_export import export_onnx as write

    written = write(model, path)
    config = model.config
    return OnnxExport(written.path, written.size, OPSET, config.in_channels, config.classes, config.multiple,
                      written.max_difference)
