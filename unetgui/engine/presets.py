"""Fixed model presets for benchmarks and the sample builder; training runs are planned by engine/planner.py,
where the user may pick one of these model sizes instead of the planned one.

* ``cpu``: base width 16, depth 4, slices resized to 256 px on their longer side. ONNX Runtime runs it at
  ~60 ms per slice on 2 Zen 3 cores, so a 200-slice CT segments in ~15 s (goal: 30 s); base 16 at the
  full 512 px takes ~250 ms per slice (50 s), base 32 at 256 px ~190 ms.
* ``gpu``: base width 32, depth 5, full resolution.
* ``small``: base width 8, depth 3, 128 px: a quick first model on a laptop CPU (a few seconds an epoch),
  for large structures only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from unetgui.core.errors import UnetguiError
from unetgui.engine.planner import PRESETS as MODEL_SIZES
from unetgui.engine.training import TrainConfig
from unetgui.engine.unet import UNetConfig


@dataclass(frozen=True)
class Preset:
    name: str
    model: UNetConfig
    working_size: int | None
    train: TrainConfig


_TRAIN = {"cpu": TrainConfig(batch_size=4, patch=256), "gpu": TrainConfig(batch_size=16, patch=384),
          "small": TrainConfig(batch_size=4, patch=128, steps_per_epoch=20)}
# the model sizes are the planner's (one place); the fixed training settings serve benchmarks and the sample
PRESETS = {name: Preset(name, UNetConfig(base=size["base"], depth=size["depth"]), size["working_size"] or None, _TRAIN[name])
           for name, size in MODEL_SIZES.items()}


def preset(name: str, classes: int, device: torch.device | None = None) -> Preset:
    """The preset ``name`` ('cpu', 'gpu', or 'auto' = by ``device``) for ``classes`` (background + K)."""
    if name == "auto":
        name = "gpu" if device is not None and device.type in ("cuda", "mps") else "cpu"
    if name not in PRESETS:
        raise UnetguiError(f"unknown preset {name!r}; use one of auto, {', '.join(PRESETS)}")
    p = PRESETS[name]
    return replace(p, model=replace(p.model, classes=classes))
