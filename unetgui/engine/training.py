"""Training: :class:`Trainer` runs as a generator of per-batch and per-epoch statistics.

Recipe (nnU-Net's, scaled to a desktop): foreground-aware patches, batched augmentation on the device,
masked Dice + cross-entropy, AdamW with linear warm-up then poly decay (chosen over cosine by the
measurement in docs/engine.md), validation Dice per label each epoch, early stopping, the best epoch's
weights kept, a wall-clock budget as well as an epoch limit, fine-tuning from a checkpoint. CUDA: AMP
(bf16 where supported, else fp16 with a gradient scaler) and channels_last; CPU: fp32.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from dataclasses import asdict, dataclass, fields
from typing import Iterator

import numpy as np
import torch

from unetgui.core.errors import UnetguiError
from unetgui.core.progress import CancelToken, check
from unetgui.core.volume import LabelTable
from unetgui.engine.augment import AugmentConfig, augment
from unetgui.engine.checkpoint import Checkpoint
from unetgui.engine.data import Case, PatchSampler, SliceRef, context_stack, split
from unetgui.engine.device import amp_dtype, configure_threads, describe, pick_device
from unetgui.engine.loss import dice_ce_loss, hard_dice_counts
from unetgui.engine.preprocessing import Preprocessing
from unetgui.engine.unet import UNet, UNetConfig

SCHEDULES = ("poly", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 300
    minutes: float | None = None  # wall-clock budget; training stops at whichever limit comes first
    steps_per_epoch: int = 50
    batch_size: int = 4
    patch: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 30
    schedule: str = "poly"
    patience: int = 25  # epochs without a better validation Dice before stopping
    augment: bool = True
    foreground_fraction: float = 0.5
    val_fraction: float = 1 / 6
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    amp: bool = True

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise UnetguiError(f"schedule must be one of {SCHEDULES}")
        if self.epochs < 1 or self.steps_per_epoch < 1 or self.batch_size < 1:
            raise UnetguiError("epochs, steps per epoch and batch size must be at least 1")
        if self.minutes is not None and not (math.isfinite(self.minutes) and self.minutes > 0):
            raise UnetguiError("the time budget must be a positive number of minutes")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise UnetguiError("the learning rate must be a positive number")
        if self.threads is not None and self.threads < 1:
            raise UnetguiError("threads must be at least 1")
        if self.patch < 16:
            raise UnetguiError("patch must be at least 16 pixels")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> TrainConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise UnetguiError(f"unknown training settings: {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class BatchStats:
    epoch: int
    step: int  # within the epoch, 1-based
    steps: int
    loss: float
    learning_rate: float
    elapsed: float  # seconds since training started
    eta: float  # seconds left (by the epoch limit or the time budget, whichever is nearer)


@dataclass(frozen=True)
class EpochStats:
    epoch: int  # 1-based
    train_loss: float
    val_loss: float | None
    val_dice: dict[int, float]  # label value -> Dice on the validation slices (empty if no validation)
    val_pixel_error: float | None  # 1 - pixel accuracy on the annotated validation pixels
    learning_rate: float
    elapsed: float
    best_epoch: int
    is_best: bool
    train_slices: int
    val_slices: int
    stop_reason: str | None = None  # set on the last epoch: "epochs", "time budget", "early stopping"

    @property
    def mean_dice(self) -> float | None:
        return float(np.mean(list(self.val_dice.values()))) if self.val_dice else None


@dataclass
class _Pending:
    cases: list[Case]
    train: list[SliceRef]
    val: list[SliceRef]


class Trainer:
    """Train a U-Net on annotated cases. Iterate :meth:`run`; then take :meth:`best_checkpoint`."""

    def __init__(self, cases: list[Case], labels: LabelTable, preprocessing: Preprocessing, config: TrainConfig,
                 model_config: UNetConfig | None = None, init: Checkpoint | None = None,
                 split_refs: tuple[list[SliceRef], list[SliceRef]] | None = None) -> None:
        self.config, self.labels, self.preprocessing = config, labels, preprocessing
        self.device = pick_device(config.device)
        if self.device.type == "cpu":
            configure_threads(config.threads)
        torch.manual_seed(config.seed)
        self._generator = torch.Generator().manual_seed(config.seed)
        classes = len(labels) + 1
        self._values = [0, *labels.values]  # class index -> label value
        if init is not None:
            if init.labels.values != labels.values:
                raise UnetguiError(f"the starting model segments label values {list(init.labels.values)}, the data "
                                   f"has {list(labels.values)}; start from scratch or use a model with the same labels")
            self.model = init.build(self.device)
            self.model_config = init.config
        else:
            self.model_config = model_config or UNetConfig(classes=classes)
            if self.model_config.classes != classes:
                raise UnetguiError("model classes must be 1 + the number of labels")
            self.model = UNet(self.model_config).to(self.device)
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self._amp = amp_dtype(self.device) if config.amp else None
        self._scaler = torch.amp.GradScaler("cuda", enabled=self._amp == torch.float16)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.learning_rate,
                                           weight_decay=config.weight_decay)
        self._set_data(cases, *(split_refs or split(cases, config.val_fraction, config.seed)))
        self._pending: _Pending | None = None
        self._lock = threading.Lock()
        self.history: list[EpochStats] = []
        self._best_state: dict[str, torch.Tensor] | None = None
        self._best_score = -math.inf
        self.best_epoch = 0
        self.device_name = describe(self.device)
        self.batch_size = config.batch_size  # may shrink after a GPU out-of-memory error
        self.notes: list[str] = []

    # -- data ------------------------------------------------------------------------------------
    def _set_data(self, cases: list[Case], train: list[SliceRef], val: list[SliceRef]) -> None:
        lut = np.full(256, 255, np.uint8)
        for index, value in enumerate(self._values):
            lut[value] = index
        # label values -> class indices; values outside the table count as not annotated
        self.cases = [Case(c.name, c.image, lut[c.labels], c.annotated) for c in cases]
        if not train:
            raise UnetguiError("no training slices")
        self.train_refs, self.val_refs = list(train), list(val)
        self.sampler = PatchSampler(self.cases, self.train_refs, self.config.patch, self.model_config.context,
                                    self.config.foreground_fraction, self.config.seed)

    def update_data(self, cases: list[Case], train: list[SliceRef], val: list[SliceRef]) -> None:
        """New annotated data, taken at the next epoch (safe to call from another thread)."""
        with self._lock:
            self._pending = _Pending(cases, train, val)

    # -- schedule --------------------------------------------------------------------------------
    def _learning_rate(self, step: int, progress: float) -> float:
        base = self.config.learning_rate
        if step < self.config.warmup_steps:
            return base * (step + 1) / self.config.warmup_steps
        progress = min(1.0, progress)
        if self.config.schedule == "cosine":
            return base * 0.5 * (1 + math.cos(math.pi * progress))
        return base * (1 - progress) ** 0.9

    def _progress(self, step: int, elapsed: float) -> float:
        total = self.config.epochs * self.config.steps_per_epoch
        by_time = elapsed / (self.config.minutes * 60) if self.config.minutes else 0.0
        return max(step / total, by_time)

    # -- loop ------------------------------------------------------------------------------------
    def run(self, cancel: CancelToken | None = None) -> Iterator[BatchStats | EpochStats]:
        """Train; yields :class:`BatchStats` after every step and :class:`EpochStats` after every epoch.

        Raises :class:`~unetgui.core.errors.Cancelled` within one batch of ``cancel`` being set (the best
        epoch so far stays available through :meth:`best_checkpoint`).
        """
        cfg = self.config
        start = time.monotonic()
        step = 0
        aug = AugmentConfig()
        for epoch in range(1, cfg.epochs + 1):
            self._take_pending()
            self.model.train()
            losses = []
            stop = None
            for s in range(1, cfg.steps_per_epoch + 1):
                check(cancel)
                elapsed = time.monotonic() - start
                lr = self._learning_rate(step, self._progress(step, elapsed))
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                losses.append(self._step(aug))
                step += 1
                elapsed = time.monotonic() - start
                yield BatchStats(epoch, s, cfg.steps_per_epoch, losses[-1], lr, elapsed, self._eta(step, elapsed))
                if cfg.minutes and elapsed >= cfg.minutes * 60:
                    stop = "time budget"
                    break
            check(cancel)
            val_loss, dice, pixel_error = self._validate()
            score = float(np.mean(list(dice.values()))) if dice else -float(np.mean(losses))
            is_best = score > self._best_score + 1e-6
            if is_best:
                self._best_score, self.best_epoch = score, epoch
                self._best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            if stop is None and epoch == cfg.epochs:
                stop = "epochs"
            if stop is None and epoch - self.best_epoch >= cfg.patience:
                stop = "early stopping"
            stats = EpochStats(epoch, float(np.mean(losses)), val_loss, dice, pixel_error, lr, time.monotonic() - start,
                               self.best_epoch, is_best, len(self.train_refs), len(self.val_refs), stop)
            self.history.append(stats)
            yield stats
            if stop:
                return

    def _eta(self, step: int, elapsed: float) -> float:
        total = self.config.epochs * self.config.steps_per_epoch
        by_steps = elapsed / max(step, 1) * (total - step)
        if self.config.minutes:
            return max(0.0, min(by_steps, self.config.minutes * 60 - elapsed))
        return by_steps

    def _take_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self._set_data(pending.cases, pending.train, pending.val)
            # scores on another validation set are not comparable: the next epoch sets a new best
            self._best_score = -math.inf

    def _step(self, aug: AugmentConfig) -> float:
        while True:
            try:
                return self._try_step(aug)
            except torch.cuda.OutOfMemoryError:
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if self.batch_size > 1:
                    self.batch_size //= 2
                    self.notes.append(f"GPU out of memory: batch size reduced to {self.batch_size}")
                elif self.device.type != "cpu":
                    self._move_to_cpu()
                    self.notes.append("GPU out of memory even for one patch: training continues on the CPU")
                else:
                    raise UnetguiError("out of memory even for a batch of one patch: use a smaller model or patch") from None

    def _move_to_cpu(self) -> None:
        self.device = torch.device("cpu")
        configure_threads(self.config.threads)
        self.model = self.model.to(self.device, memory_format=torch.contiguous_format)
        for state in self.optimizer.state.values():
            for key, value in state.items():
                if torch.is_tensor(value):
                    state[key] = value.cpu()
        self._amp = None
        self._scaler = torch.amp.GradScaler("cuda", enabled=False)
        self.device_name = describe(self.device) + " (after GPU out of memory)"

    def _try_step(self, aug: AugmentConfig) -> float:
        images, labels = self.sampler.batch(self.batch_size)
        x = torch.from_numpy(images).to(self.device, non_blocking=True)
        y = torch.from_numpy(labels).to(self.device, non_blocking=True).long()
        if self.config.augment:
            x, y = augment(x, y, aug, self._generator)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self._amp or torch.float32, enabled=self._amp is not None):
            logits = self.model(x)
        loss = dice_ce_loss(logits, y)
        if not torch.isfinite(loss):
            raise UnetguiError("training diverged (the loss is not finite); try a lower learning rate")
        self._scaler.scale(loss).backward()
        self._scaler.step(self.optimizer)
        self._scaler.update()
        return float(loss.detach())

    @torch.no_grad()
    def _validate(self) -> tuple[float | None, dict[int, float], float | None]:
        if not self.val_refs:
            return None, {}, None
        self.model.eval()
        counts = torch.zeros(self.model_config.classes, 3, dtype=torch.int64)
        losses = []
        m = self.model_config.multiple
        for i in range(0, len(self.val_refs), self.config.batch_size):
            refs = self.val_refs[i:i + self.config.batch_size]
            images = np.stack([context_stack(self.cases[c].image, z, self.model_config.context) for c, z in refs])
            labels = np.stack([self.cases[c].labels[z] for c, z in refs])
            h, w = labels.shape[1:]
            ph, pw = -h % m, -w % m
            x = torch.from_numpy(np.pad(images, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect" if min(h, w) > max(ph, pw) else "edge"))
            y = torch.from_numpy(np.pad(labels, ((0, 0), (0, ph), (0, pw)), constant_values=255)).long()
            x, y = x.to(self.device), y.to(self.device)
            with torch.autocast(self.device.type, dtype=self._amp or torch.float32, enabled=self._amp is not None):
                logits = self.model(x)
            losses.append(float(dice_ce_loss(logits, y)) * len(refs))
            counts += hard_dice_counts(logits.float().cpu(), y.cpu())
        dice = {}
        for index, value in enumerate(self._values[1:], start=1):
            tp, fp, fn = counts[index].tolist()
            dice[value] = 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
        valid = int((counts[:, 0] + counts[:, 2]).sum())
        pixel_error = 1.0 - int(counts[:, 0].sum()) / valid if valid else None
        return sum(losses) / len(self.val_refs), dice, pixel_error

    # -- result ----------------------------------------------------------------------------------
    def best_checkpoint(self) -> Checkpoint:
        """The weights of the best epoch with metadata; the current weights if no epoch finished."""
        model = copy.deepcopy(self.model).cpu()
        if self._best_state is not None:
            model.load_state_dict(self._best_state)
        model = model.to(memory_format=torch.contiguous_format)
        best = next((h for h in self.history if h.epoch == self.best_epoch), None)
        info = {
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "device": self.device_name,
            "training": {
                "config": self.config.to_json(),
                "cases": [c.name for c in self.cases],
                "train_slices": len(self.train_refs), "val_slices": len(self.val_refs),
                "epochs_run": len(self.history), "best_epoch": self.best_epoch,
                "seconds": self.history[-1].elapsed if self.history else 0.0,
            },
            "metrics": {"val_dice": {str(k): v for k, v in (best.val_dice if best else {}).items()},
                        "val_loss": best.val_loss if best else None,
                        "val_pixel_error": best.val_pixel_error if best else None},
            "history": [{"epoch": h.epoch, "seconds": h.elapsed, "train_loss": h.train_loss, "val_loss": h.val_loss,
                         "val_pixel_error": h.val_pixel_error,
                         "val_dice": {str(k): v for k, v in h.val_dice.items()}} for h in self.history],
        }
        return Checkpoint.from_model(model, self.preprocessing, self.labels, info)

