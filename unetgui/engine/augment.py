"""Batched augmentation on the training device (torch), one random draw per sample.

Spatial (the original U-Net's): rotation, scaling, flips and, optionally, elastic deformation (a smooth
random displacement interpolated from a coarse grid of Gaussian offsets, Ronneberger et al.'s "key"
augmentation for few training images), applied as one resampling (bilinear for images, nearest for
labels; regions that come from outside the patch are "not annotated"). Cropping is
the patch sampling itself. Intensity (nnU-Net's list): multiplicative brightness, contrast, gamma and
Gaussian noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from unetgui.core.volume import UNANNOTATED
from unetgui.engine.stages import to_device


@dataclass(frozen=True)
class AugmentConfig:
    rotation_degrees: float = 30.0
    scale: tuple[float, float] = (0.8, 1.25)
    flip: bool = True
    spatial_probability: float = 0.8
    brightness: tuple[float, float] = (0.75, 1.25)
    contrast: tuple[float, float] = (0.75, 1.25)
    gamma: tuple[float, float] = (0.7, 1.5)
    noise_std: float = 0.1
    intensity_probability: float = 0.3  # per transform and sample
    elastic_probability: float = 0.0  # per sample (the planner turns it on)
    elastic_grid: int = 3  # control points per side (the U-Net paper: 3 x 3)
    elastic_std: float = 0.04  # offset std in grid units (-1..1 across the patch): ~10 px on 512 px, as the paper

    def scaled(self, strength: float) -> AugmentConfig:
        """The magnitudes (rotation, scaling, intensity ranges, noise, elastic offsets) times ``strength``
        around "no change"; 1 is this configuration, 0 leaves only the flips. Probabilities stay."""
        def around_one(r: tuple[float, float]) -> tuple[float, float]:
            return 1 + (r[0] - 1) * strength, 1 + (r[1] - 1) * strength

        return replace(self, rotation_degrees=self.rotation_degrees * strength, scale=around_one(self.scale),
                       brightness=around_one(self.brightness), contrast=around_one(self.contrast),
                       gamma=around_one(self.gamma), noise_std=self.noise_std * strength,
                       elastic_std=self.elastic_std * strength)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return to_device(torch.rand(n, generator=g, device="cpu"), device) * (hi - lo) + lo


def _noise(shape: torch.Size, g: torch.Generator, device: torch.device) -> torch.Tensor:
    """Gaussian noise: on the CPU from ``g``; on a GPU drawn there (from a generator seeded by ``g``) rather than
    drawn on the host and copied up every step."""
    if device.type == "cpu":
        return torch.randn(shape, generator=g)
    there = torch.Generator(device=device)
    there.manual_seed(int(torch.randint(0, 2**62, (1,), generator=g)))
    return torch.randn(shape, generator=there, device=device)


def augment(images: torch.Tensor, labels: torch.Tensor, cfg: AugmentConfig, g: torch.Generator,
            weights: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """``images`` (B, C, H, W) float, ``labels`` (B, H, W) int64 -> augmented copies (same shapes); with
    ``weights`` (B, H, W) float (a loss weight map), it is moved with the labels and returned third."""
    b, dev = images.shape[0], images.device
    channels = images.shape[1]
    if weights is not None:  # resampled (bilinear) as one more image channel, untouched by the intensity changes
        images = torch.cat([images, weights.unsqueeze(1).to(images.dtype)], 1)
    images, labels = _spatial(images, labels, cfg, g)
    if weights is not None:
        images, weights = images[:, :channels], images[:, channels]
    p = cfg.intensity_probability

    def chosen() -> torch.Tensor:
        return to_device(torch.rand(b, generator=g) < p, dev).view(b, 1, 1, 1)

    images = torch.where(chosen(), images * _uniform(b, *cfg.brightness, g, dev).view(b, 1, 1, 1), images)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = torch.where(chosen(), (images - mean) * _uniform(b, *cfg.contrast, g, dev).view(b, 1, 1, 1) + mean, images)
    lo = images.amin(dim=(1, 2, 3), keepdim=True)
    span = images.amax(dim=(1, 2, 3), keepdim=True) - lo + 1e-6
    gamma = _uniform(b, *cfg.gamma, g, dev).view(b, 1, 1, 1)
    images = torch.where(chosen(), ((images - lo) / span).clamp(0, 1) ** gamma * span + lo, images)
    noise = _noise(images.shape, g, dev) * _uniform(b, 0.0, cfg.noise_std, g, dev).view(b, 1, 1, 1)
    images = torch.where(chosen(), images + noise, images)
    return (images, labels) if weights is None else (images, labels, weights)


def _spatial(images: torch.Tensor, labels: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    b, dev = images.shape[0], images.device
    apply = torch.rand(b, generator=g) < cfg.spatial_probability
    angle = (torch.rand(b, generator=g) * 2 - 1) * math.radians(cfg.rotation_degrees)
    lo, hi = math.log(cfg.scale[0]), math.log(cfg.scale[1])
    scale = torch.exp(torch.rand(b, generator=g) * (hi - lo) + lo)
    flip_x = torch.where((torch.rand(b, generator=g) < 0.5) & torch.tensor(cfg.flip), -1.0, 1.0)
    flip_y = torch.where((torch.rand(b, generator=g) < 0.5) & torch.tensor(cfg.flip), -1.0, 1.0)
    angle, scale = torch.where(apply, angle, 0.0), torch.where(apply, scale, 1.0)
    flip_x, flip_y = torch.where(apply, flip_x, 1.0), torch.where(apply, flip_y, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip_x, -sin * flip_y
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip_x, cos * flip_y
    elastic = torch.rand(b, generator=g) < cfg.elastic_probability
    if not (apply.any() or elastic.any()):
        return images, labels
    grid = F.affine_grid(to_device(theta, dev).to(images.dtype), list(images.shape), align_corners=False)
    if elastic.any():
        k = cfg.elastic_grid
        offsets = torch.randn(b, 2, k, k, generator=g) * cfg.elastic_std * elastic.view(b, 1, 1, 1)
        field = F.interpolate(to_device(offsets, dev).to(images.dtype), size=images.shape[-2:], mode="bicubic",
                              align_corners=True)
        grid = grid + field.permute(0, 2, 3, 1)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    # labels + 1 so that 0 marks "came from outside" after zero padding; that becomes "not annotated"
    shifted = (labels + 1).unsqueeze(1).to(images.dtype)
    warped = F.grid_sample(shifted, grid, mode="nearest", padding_mode="zeros", align_corners=False).squeeze(1).round().long()
    labels = torch.where(warped == 0, UNANNOTATED, warped - 1)
    return images, labels
