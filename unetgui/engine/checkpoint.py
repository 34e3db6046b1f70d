"""Model files: weights in safetensors plus JSON metadata in its header. Loading never runs code.

A model file holds the architecture, the preprocessing, the label table, a summary of the training
data, metrics and the versions that made it. Files are written atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass, field

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from unetgui import __version__
from unetgui.core import atomic
from unetgui.core.errors import FormatError, UnetguiError
from unetgui.core.volume import LabelTable
from unetgui.engine import postprocess
from unetgui.engine.config import FIT_DICE
from unetgui.engine.preprocessing import Preprocessing
from unetgui.engine.unet import UNet, UNetConfig

FORMAT = "unetgui-model"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """Everything needed to rebuild and run a trained model."""

    config: UNetConfig
    preprocessing: Preprocessing
    labels: LabelTable
    weights: dict[str, torch.Tensor]
    info: dict = field(default_factory=dict)  # training summary, metrics, history, created, versions

    @classmethod
    def from_model(cls, model: UNet, preprocessing: Preprocessing, labels: LabelTable, info: dict | None = None) -> Checkpoint:
        weights = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
        return cls(model.config, preprocessing, labels, weights, dict(info or {}))

    def build(self, device: torch.device | str = "cpu") -> UNet:
        """The model with these weights, in eval mode, on ``device``."""
        self.check_weights()
        model = UNet(self.config)
        try:
            model.load_state_dict(self.weights, strict=True)
        except RuntimeError as exc:
            raise FormatError(f"the model file's weights do not fit its architecture: {str(exc)[:300]}") from exc
        return model.to(device).eval()

    def check_weights(self) -> None:
        """Raise :class:`FormatError` unless the weights have exactly the architecture's names and shapes.
        The architecture is built on the meta device (no memory), so a crafted file that claims a huge
        model is refused before anything is allocated."""
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in UNet(self.config).state_dict().items()}
        given = {k: tuple(v.shape) for k, v in self.weights.items()}
        if shapes != given:
            wrong = sorted(set(shapes.items()) ^ set(given.items()))[:2]
            raise FormatError(f"the model file's weights do not fit its architecture (e.g. {wrong})")

    def metadata(self) -> dict:
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "architecture": self.config.to_json(), "preprocessing": self.preprocessing.to_json(),
            "labels": self.labels.to_json(), "info": self.info,
            "versions": {"unetgui": __version__, "torch": torch.__version__, "numpy": np.__version__},
        }


def describe(checkpoint: Checkpoint) -> str:
    """The model card, a few lines (the app's training panel and ``unetgui info model.unetgui``): labels,
    architecture and working size, training data, validation metrics, selection, plan, post-processing,
    device and date."""
    info = checkpoint.info
    training = info.get("training", {})
    dice = info.get("metrics", {}).get("val_dice", {})
    names = {str(lab.value): lab.name for lab in checkpoint.labels}
    scores = ", ".join(f"{names.get(k, k)} {v:.3f}" for k, v in dice.items()) or "n/a"
    c, pre = checkpoint.config, checkpoint.preprocessing
    on_annotated = info.get("dice_on") == "annotated"
    plan = info.get("plan") or {}
    post = postprocess.rule_values(info.get("postprocessing"), postprocess.KEY)
    planes = ("axial", "coronal", "sagittal")[pre.axis]
    context = f", {c.in_channels} neighbouring slices as input" if c.context else ""
    lines = [f"Labels: {', '.join(lab.name for lab in checkpoint.labels)}",
             f"U-Net width {c.base}, depth {c.depth}; working size {pre.working_size or 'native'}; "
             f"{planes} planes{context}",
             f"Trained on {training.get('train_slices', '?')} slices, validated on {training.get('val_slices', '?')}",
             f"{'Dice on the annotated (training) slices' if on_annotated else 'Validation Dice'}: {scores}"]
    if info.get("selection"):
        lines.append(f"Model: {info['selection']}")
    if plan.get("overridden"):
        lines.append(f"Planned; set by you: {', '.join(plan['overridden'])}")
    elif plan:
        lines.append("Settings: planned from the data")
    if post:
        lines.append("Post-processing: the largest object of " + ", ".join(names.get(str(v), str(v)) for v in post))
    anchored = postprocess.rule_values(info.get("postprocessing"), postprocess.ANCHORED)
    if anchored:
        lines.append("Post-processing in the annotated volume: only what reaches your annotation of "
                     + ", ".join(names.get(str(v), str(v)) for v in anchored))
    lines.extend(_fit_line(info.get("fit"), names))
    lines.append(f"Device: {info.get('device', '?')}; {info.get('created', '')}")
    return "\n".join(lines)


def _fit_line(fit, names: dict[str, str]) -> list[str]:
    """The fit check's verdict for the model card (engine/training.py, ``Trainer._check_fit``); a value that is
    not what a training wrote (a file edited by hand) shows nothing."""
    try:
        dice = {str(k): float(v) for k, v in fit["dice"].items()}
        threshold = float(fit.get("threshold", FIT_DICE))
    except (TypeError, KeyError, AttributeError, ValueError):
        return []
    low = [f"{names.get(k, k)} {v:.2f}" for k, v in dice.items() if v < threshold]
    if not low:
        return [f"Fit: it reproduces its annotated slices (Dice >= {threshold:g})"]
    return [f"Fit: NOT learned yet, Dice on its annotated slices {', '.join(low)}: train longer, or annotate one more slice"]


def save(checkpoint: Checkpoint, path: str) -> None:
    """Write ``checkpoint`` to ``path`` atomically (a reader never sees a half-written model)."""
    meta = checkpoint.metadata()
    meta["info"] = {**meta["info"], "saved": datetime.datetime.now().isoformat(timespec="seconds")}
    try:
        atomic.write_with(path, lambda tmp: save_file(checkpoint.weights, tmp, metadata={"unetgui": json.dumps(meta)}))
    except OSError as exc:
        raise FormatError(f"cannot write the model file {path}: {exc}") from exc


def load(path: str) -> Checkpoint:
    """Read a model file; raises :class:`FormatError` for a missing, corrupt, truncated or foreign file."""
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise FormatError(f"{path}: no such model file")
    try:
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            header = f.metadata() or {}
        weights = load_file(path)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise FormatError(f"{name}: not a unetgui model file, or it is damaged ({exc})") from exc
    if "unetgui" not in header:
        raise FormatError(f"{name}: a safetensors file, but not a unetgui model (no unetgui metadata)")
    try:
        meta = json.loads(header["unetgui"])
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise FormatError(f"{name}: not a unetgui model file")
        if int(meta.get("format_version", 0)) > FORMAT_VERSION:
            raise FormatError(f"{name}: made by a newer unetgui (model format {meta['format_version']}); update unetgui")
        checkpoint = Checkpoint(
            config=UNetConfig.from_json(meta["architecture"]),
            preprocessing=Preprocessing.from_json(meta["preprocessing"]),
            labels=LabelTable.from_json(meta["labels"]),
            weights=weights,
            info={**meta.get("info", {}), "versions": meta.get("versions", {})},
        )
        if checkpoint.config.classes != len(checkpoint.labels) + 1:
            raise FormatError(f"{name}: the model has {checkpoint.config.classes} classes but "
                              f"{len(checkpoint.labels)} labels")
        checkpoint.check_weights()  # the weights must fit the architecture exactly
        return checkpoint
    except FormatError:
        raise
    except (UnetguiError, KeyError, TypeError, ValueError, AttributeError, OverflowError, RecursionError) as exc:
        raise FormatError(f"{name}: the model's metadata is invalid ({type(exc).__name__}: {exc})") from exc
