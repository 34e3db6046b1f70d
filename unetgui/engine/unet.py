"""A 2-D U-Net in the shape of Ronneberger et al. (2015), configurable, plus the CPU and GPU presets.

Each level: two k x k convolutions (k = ``kernel``, 3 by default or 5; padding k // 2, so the output has
the input's size), normalisation, ReLU;
max-pooling down; transposed convolution up, concatenation with the skip, two 3x3 convolutions; a 1x1
head gives logits for background + K labels. Inputs must be a multiple of ``2 ** depth`` in y and x
(the inference pipeline pads).
"""

from __future__ import annotations

import torch
from torch import nn

from unetgui.engine.config import NORMS, UNetConfig  # noqa: F401  (re-exported)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


class _DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int, norm: str, dropout: float = 0.0, kernel: int = 3) -> None:
        bias, pad = norm == "none", kernel // 2
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, padding=pad, bias=bias), _norm(norm, cout),
                                   nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout2d(dropout))
        layers += [nn.Conv2d(cout, cout, kernel, padding=pad, bias=bias), _norm(norm, cout), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class UNet(nn.Module):
    """Input ``(batch, in_channels, y, x)`` float32; output logits ``(batch, classes, y, x)``."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        widths = [config.base * 2**i for i in range(config.depth + 1)]
        self.down = nn.ModuleList()
        cin = config.in_channels
        for i, w in enumerate(widths):
            self.down.append(_DoubleConv(cin, w, config.norm, config.dropout if i == config.depth else 0.0, config.kernel))
            cin = w
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(config.depth))
        self.merge = nn.ModuleList(_DoubleConv(2 * widths[i], widths[i], config.norm, kernel=config.kernel)
                                   for i in range(config.depth))
        self.head = nn.Conv2d(widths[0], config.classes, 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < self.config.depth:
                skips.append(x)
                x = self.pool(x)
        for i in reversed(range(self.config.depth)):
            x = self.up[i](x)
            x = self.merge[i](torch.cat([skips[i], x], dim=1))
        return self.head(x)


def flops_per_pixel(config: UNetConfig) -> float:
    """Multiply-adds x 2 per input pixel (convolutions only), for GFLOP/s figures."""
    total = 0.0
    taps = config.kernel ** 2
    widths = [config.base * 2**i for i in range(config.depth + 1)]
    cin = config.in_channels
    for i, w in enumerate(widths):
        scale = 4.0**-i
        total += scale * taps * (cin * w + w * w)
        cin = w
    for i in range(config.depth):
        scale = 4.0**-i
        total += scale * widths[i + 1] * widths[i]  # transposed 2x2 conv, stride 2: one tap per output
        total += scale * taps * (2 * widths[i] * widths[i] + widths[i] * widths[i])
    total += widths[0] * config.classes
    return 2.0 * total
