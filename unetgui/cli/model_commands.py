"""``unetgui export-model``: a trained model as ONNX with its preprocessing and label table in the file's
metadata, for tools that do not run unetgui (docs/models.md). torch is imported only when it runs."""

from __future__ import annotations

import argparse
import os

from unetgui.cli.common import command
from unetgui.cli.outputs import check_writable
from unetgui.core.errors import UnetguiError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    cmd = command(sub, "export-model", "write a model as ONNX (opset 17) with its preprocessing and labels in the "
                  "metadata (docs/models.md)", ["unetgui export-model --model liver.unetgui --onnx liver.onnx"])
    cmd.add_argument("--model", required=True, help="model file (.unetgui)")
    cmd.add_argument("--onnx", required=True, help="ONNX file to write (.onnx)")
    cmd.set_defaults(run=_export_model)


def _export_model(args: argparse.Namespace) -> int:
    if os.path.splitext(args.onnx)[1].lower() != ".onnx":
        raise UnetguiError(f"--onnx {args.onnx}: give a file name ending in .onnx")
    check_writable(args.onnx, "--onnx")
    from unetgui.tasks import models

    written = models.export_onnx(models.load(args.model), args.onnx)
    difference = written.max_difference
    check = "" if difference is None else f"; ONNX Runtime differs from torch by {difference:.1e}"
    size = f"{written.size / 1e6:.1f} MB" if written.size >= 1e6 else f"{written.size / 1e3:.0f} kB"
    print(f"wrote {written.path}: {size}, opset {written.opset}, input 'image' (batch, {written.in_channels}, "
          f"H, W) with H and W multiples of {written.multiple}, output 'logits' (batch, {written.classes}, H, W){check}")
    return 0
