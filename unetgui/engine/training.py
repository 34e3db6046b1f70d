"""Training: :class:`Trainer` runs as a generator of per-batch and per-epoch statistics.

Recipe (nnU-Net's, scaled to a desktop; the settings come from engine/planner.py): foreground-aware
patches, batched augmentation on the device (elastic deformation optional), masked Dice + cross-entropy,
AdamW with linear warm-up then poly decay (chosen over cosine by the measurement in docs/engine.md), an
optional exponential moving average (EMA) of the weights, a wall-clock budget as well as an epoch limit,
fine-tuning from a checkpoint. Model selection: with validation slices, the Dice on them each epoch,
early stopping and the best epoch's weights; without (few annotations), the Dice on the annotated slices is
reported and the final (EMA) weights are the model. After training, keeping only the largest 3-D connected
component per label is tested on the annotated slices and recorded when it does not hurt (nnU-Net's rule).
CUDA: AMP (bf16 where supported, else fp16 with a gradient scaler) and channels_last; CPU: fp32.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from unetgui.core.errors import UnetguiError
from unetgui.core.memory import release
from unetgui.core.progress import CancelToken, check
from unetgui.core.volume import UNANNOTATED, LabelTable
from unetgui.engine import distributed, loader, metrics, postprocess, stages
from unetgui.engine.augment import AugmentConfig, augment
from unetgui.engine.checkpoint import Checkpoint
from unetgui.engine.config import FIT_DICE, SCHEDULES, TrainConfig, selection  # noqa: F401  (SCHEDULES, TrainConfig re-exported)
from unetgui.engine.events import BatchStats, EpochStats  # noqa: F401  (re-exported)
from unetgui.engine.data import Case, LabelView, PatchSampler, SliceRef, context_stack, pad_to_multiple, split
from unetgui.engine.device import amp_dtype, configure_cuda, configure_threads, describe, pick_device
from unetgui.engine.loss import dice_ce_loss, hard_dice_counts
from unetgui.engine.preprocessing import Preprocessing
from unetgui.engine.resident import ResidentSampler, can_reside
from unetgui.engine.unet import UNet, UNetConfig
from unetgui.engine.weightmap import border_weights

#: validation slices per epoch at most (evenly spread over the held-out ones)
VAL_SLICES = 400
#: steps between two loss reports on a GPU (on the CPU every step reports: a step takes ~0.5 s there)
REPORT_STEPS = 16
#: validation slices per batch at most
MAX_VAL_BATCH = 64


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
        self.rank, self.world = distributed.world()
        torch.manual_seed(config.seed)  # the same initial weights on every rank (DDP also broadcasts them)
        self._generator = torch.Generator().manual_seed(config.seed + self.rank)  # each rank its own augmentation
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
            configure_cuda()
        self._trained = distributed.wrap(self.model, self.device)  # DDP under torchrun, else the model
        self._amp = amp_dtype(self.device) if config.amp else None
        self._scaler = torch.amp.GradScaler("cuda", enabled=self._amp == torch.float16)
        self._val_share = 1.0  # halved when validation runs out of GPU memory
        self.optimizer = adamw(self.model.parameters(), config.learning_rate, config.weight_decay, self.device)
        self._ema = copy.deepcopy(self.model).eval() if config.ema else None
        for p in (self._ema.parameters() if self._ema is not None else ()):
            p.requires_grad_(False)
        self._ema_updates = 0
        self._set_data(cases, *(split_refs or split(cases, config.val_fraction, config.seed, config.holdout_min)))
        self._pending: _Pending | None = None
        self._lock = threading.Lock()
        self.history: list[EpochStats] = []
        self._best_state: dict[str, torch.Tensor] | None = None
        self._best_score = -math.inf
        self.best_epoch = 0
        self.device_name = describe(self.device) + (f" x {self.world} processes (DDP)" if self.world > 1 else "")
        self.batch_size = config.batch_size  # may shrink after a GPU out-of-memory error
        self.notes: list[str] = []
        self.fit: dict | None = None  # the fit check of the kept model (see _check_fit, by best_checkpoint())
        self.postprocessing: dict | None = None  # decided by best_checkpoint()
        self.plan = None  # the TrainingPlan this run came from, when it did (recorded in the model file)
        # (z, y, x) mm of each case's working grid (build_trainer sets them): post-processing links objects across
        # thick slices by them (engine/postprocess.py); None: unknown
        self.spacings: list[tuple[float, float, float] | None] | None = None
        # steps between reports (BatchStats): each report reads the loss back, i.e. waits for the device
        self._report_every = 1 if self.device.type == "cpu" else REPORT_STEPS
        self._agreed_elapsed = 0.0
        self._best_elapsed = 0.0  # seconds into the run when the best epoch ended
        self._ema_pairs: tuple[list[torch.Tensor], list[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]] | None = None

    # -- data ------------------------------------------------------------------------------------
    def _set_data(self, cases: list[Case], train: list[SliceRef], val: list[SliceRef]) -> None:
        lut = np.full(256, 255, np.uint8)
        for index, value in enumerate(self._values):
            lut[value] = index
        self.source_cases = list(cases)  # label values, as given (update_data takes the same)
        # label values -> class indices; values outside the table count as not annotated
        self.cases = [Case(c.name, c.image, lut[c.labels] if type(c.labels) is np.ndarray else LabelView(c.labels, lut),
                           c.annotated, c.foreground, c.partial) for c in cases]
        if not train:
            raise UnetguiError("no training slices")
        self.train_refs, self.val_refs = list(train), list(val)
        cfg = self.config
        self._batches = None  # batches from DataLoader workers, for cases memory-mapped from the cache
        self._resident = None  # the cases on the training device, patches drawn there (engine/resident.py)
        self.sampler = None  # or patches drawn on the host
        if not cfg.border_weight and can_reside(self.cases, self.device):
            self._resident = ResidentSampler(self.cases, self.train_refs, cfg.patch, self.model_config.context,
                                             cfg.foreground_fraction, cfg.seed + self.rank, self.device)
            return
        self.sampler = PatchSampler(self.cases, self.train_refs, cfg.patch, self.model_config.context,
                                    cfg.foreground_fraction, cfg.seed + self.rank)
        if cfg.loader_workers and not cfg.border_weight and all(loader.mapped(c) for c in self.cases):
            self._batches = loader.batches(self.cases, self.train_refs, cfg.patch, self.model_config.context,
                                           cfg.foreground_fraction, cfg.seed + 1000 * self.rank, cfg.batch_size,
                                           cfg.loader_workers, self.device)
        if cfg.border_weight:
            self.sampler.weights = {(c, z): border_weights(self.cases[c].labels[z], cfg.border_weight)
                                    for c, z in self.train_refs}

    def update_data(self, cases: list[Case], train: list[SliceRef] | None = None, val: list[SliceRef] | None = None) -> None:
        """New annotated data, taken at the next epoch (safe to call from another thread); without ``train``
        and ``val``, split by the run's own rule."""
        if train is None:
            train, val = split(cases, self.config.val_fraction, self.config.seed, self.config.holdout_min)
        with self._lock:
            self._pending = _Pending(cases, train, val or [])

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
        aug = AugmentConfig(elastic_probability=0.5 if cfg.elastic else 0.0).scaled(cfg.augment_strength)
        for epoch in range(1, cfg.epochs + 1):
            self._take_pending()
            self.model.train()
            losses: list[torch.Tensor] = []  # on the device: read back every few steps, not every step
            stop = None
            elapsed = self._elapsed(start, agree=True)
            since = 0  # steps since the last report
            for s in range(1, cfg.steps_per_epoch + 1):
                check(cancel)
                lr = self._learning_rate(step, self._progress(step, elapsed))
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                losses.append(self._step(aug))
                step, since = step + 1, since + 1
                report = step % self._report_every == 0 or s == cfg.steps_per_epoch
                elapsed = self._elapsed(start, agree=report)
                if not report:
                    continue
                loss, since = self._read_loss(losses[-since:]), 0
                yield BatchStats(epoch, s, cfg.steps_per_epoch, loss, lr, elapsed, self._eta(step, elapsed))
                if cfg.minutes and elapsed >= cfg.minutes * 60:
                    stop = "time budget"
                    break
            check(cancel)
            held_out = bool(self.val_refs)
            val_loss, dice, pixel_error = self._validate(self._val_sample() if held_out else self._curve_refs())
            train_loss = self._read_loss(losses)
            score = float(np.mean(list(dice.values()))) if dice else -train_loss
            # without held-out slices the final weights are the model: every epoch replaces the last
            is_best = score > self._best_score + 1e-6 or not held_out
            elapsed = self._elapsed(start, agree=True)  # every rank: the same clock for the patience
            if is_best:
                self._best_score, self.best_epoch, self._best_elapsed = score, epoch, elapsed
                # kept on the device (no wait for it); best_checkpoint() moves it to the CPU
                self._best_state = {k: v.detach().clone() for k, v in self._eval_model().state_dict().items()}
            if stop is None and epoch == cfg.epochs:
                stop = "epochs"
            if stop is None and held_out and self._patience_over(epoch, elapsed):
                stop = "early stopping"
            for case in self.cases:  # memory-mapped cases: what this epoch read need not stay resident
                release(case.image, case.labels)
            stats = EpochStats(epoch, train_loss, val_loss, dice, pixel_error, lr, time.monotonic() - start,
                               self.best_epoch, is_best, len(self.train_refs), len(self.val_refs), stop,
                               "validation" if held_out else "annotated", len({c for c, _ in self.train_refs}),
                               len({c for c, _ in self.val_refs}))
            self.history.append(stats)
            yield stats
            if stop:
                self._batches = None  # the loader's worker processes end with their iterator
                return

    def _elapsed(self, start: float, agree: bool) -> float:
        """Seconds since ``start``; under torchrun the largest over the ranks, so that every rank takes the same
        learning rate and stops at the same step. The ranks agree only when ``agree`` (at the steps that
        report, the same on every rank); in between each rank keeps the last agreed value."""
        if self.world == 1:
            return time.monotonic() - start
        if agree:
            self._agreed_elapsed = distributed.agree_max([time.monotonic() - start])[0]
        return self._agreed_elapsed

    def _read_loss(self, losses: list[torch.Tensor]) -> float:
        """Mean of the steps' losses (device tensors), read back here (the one wait for the device)."""
        here = losses[-1].device  # (after a fall-back to the CPU the list holds both)
        value = float(torch.stack([loss.to(here) for loss in losses]).float().mean())
        if not math.isfinite(value):
            raise UnetguiError("training diverged (the loss is not finite); try a lower learning rate")
        return value

    def _patience_over(self, epoch: int, elapsed: float) -> bool:
        """No better validation Dice for ``patience`` epochs and, when set, for ``patience_minutes``: on a GPU
        an epoch takes seconds, and epochs alone would end a run after a small part of its budget."""
        if epoch - self.best_epoch < self.config.patience:
            return False
        minutes = self.config.patience_minutes
        return not minutes or elapsed - self._best_elapsed >= minutes * 60

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

    def _step(self, aug: AugmentConfig) -> torch.Tensor:
        while True:
            try:
                return self._try_step(aug)
            except torch.cuda.OutOfMemoryError:
                if self.world > 1:  # the ranks' collectives must match: no rank may change its batch alone
                    raise UnetguiError("GPU out of memory under torchrun: lower --batch-size or --patch") from None
            # (out of the except block: its traceback no longer holds the failed step's tensors)
            self._forget_failed_step()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            if self.batch_size > 1:
                self.batch_size //= 2
                self.notes.append(f"GPU out of memory: batch size reduced to {self.batch_size}")
            elif self.device.type != "cpu":
                self._move_to_cpu()
                self.notes.append("GPU out of memory even for one patch: training continues on the CPU")
            else:
                raise UnetguiError("out of memory even for a batch of one patch: use a smaller model or patch")

    def _forget_failed_step(self) -> None:
        """After a step ran out of memory: no gradients kept; optimizer state that the failed step began to
        create (AdamW makes its moments one by one on the first step) is dropped, to be made again; and the
        fp16 loss scaler, left in the middle of a step, starts afresh at its current scale."""
        self.optimizer.zero_grad(set_to_none=True)
        for param, state in list(self.optimizer.state.items()):
            if state and not {"step", "exp_avg", "exp_avg_sq"} <= state.keys():
                del self.optimizer.state[param]
        if self._scaler.is_enabled():
            self._scaler = torch.amp.GradScaler("cuda", init_scale=self._scaler.get_scale())

    def _move_to_cpu(self) -> None:
        self.device = torch.device("cpu")
        configure_threads(self.config.threads)
        self.model = self.model.to(self.device, memory_format=torch.contiguous_format)
        self._trained = self.model  # (one process: DDP runs on GPUs of its own and never falls back)
        if self._ema is not None:
            self._ema = self._ema.to(self.device, memory_format=torch.contiguous_format)
        for state in self.optimizer.state.values():
            for key, value in state.items():
                if torch.is_tensor(value):
                    state[key] = value.cpu()
        self._amp = None
        self._scaler = torch.amp.GradScaler("cuda", enabled=False)
        self._ema_pairs = None
        self._best_state = None if self._best_state is None else {k: v.cpu() for k, v in self._best_state.items()}
        self._report_every = 1
        self._set_data(self.source_cases, self.train_refs, self.val_refs)  # the resident data moves to the CPU
        self.device_name = describe(self.device) + " (after GPU out of memory)"

    def _try_step(self, aug: AugmentConfig) -> torch.Tensor:
        weighted = bool(self.config.border_weight)
        w = None
        if self._resident is not None:  # drawn on the device
            x, y = self._resident.batch(self.batch_size)
        else:
            if self._batches is not None:  # drawn by the workers at the configured size (smaller after an OOM)
                images, labels = (t[:self.batch_size] for t in next(self._batches))
            else:
                images, labels, *weights = self.sampler.batch(self.batch_size, with_weights=weighted)
                w = torch.from_numpy(weights[0]).to(self.device, non_blocking=True) if weighted else None
            x = torch.as_tensor(images).to(self.device, non_blocking=True)
            y = torch.as_tensor(labels).to(self.device, non_blocking=True).long()
        if self.config.augment:
            x, y, *rest = augment(x, y, aug, self._generator, w)
            w = rest[0] if weighted else None
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self._amp or torch.float32, enabled=self._amp is not None):
            logits = self._trained(x)
        loss = dice_ce_loss(logits, y, weights=w, dice_weight=self.config.dice_weight,
                            foreground_weight=self.config.foreground_weight)
        self._scaler.scale(loss).backward()
        self._scaler.step(self.optimizer)
        self._scaler.update()
        self._update_ema()
        return loss.detach()  # not read here: a GPU step does not wait for its own result (see _read_loss)

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self._ema is None:
            return
        self._ema_updates += 1
        decay = min(self.config.ema, (1 + self._ema_updates) / (10 + self._ema_updates))  # short memory at first
        if self._ema_pairs is None:
            pairs = list(zip(self._ema.state_dict().values(), self.model.state_dict().values()))
            self._ema_pairs = ([a for a, _ in pairs if a.dtype.is_floating_point],
                               [n for a, n in pairs if a.dtype.is_floating_point],
                               [(a, n) for a, n in pairs if not a.dtype.is_floating_point])
        averages, current, counters = self._ema_pairs
        torch._foreach_lerp_(averages, current, 1 - decay)  # one fused update, not one kernel per tensor
        for avg, now in counters:
            avg.copy_(now)

    def _eval_model(self) -> torch.nn.Module:
        """The model that is validated and kept: the moving average when there is one."""
        return self._ema if self._ema is not None else self.model

    def _val_sample(self) -> list[SliceRef]:
        """The validation slices, at most ``VAL_SLICES`` of them evenly spread (a data set's validation cases
        hold thousands of slices: every epoch cannot pass over all of them)."""
        if len(self.val_refs) <= VAL_SLICES:
            return self.val_refs
        return [self.val_refs[int(i)] for i in np.linspace(0, len(self.val_refs) - 1, VAL_SLICES).round()]

    def _curve_refs(self, most: int = 4) -> list[SliceRef]:
        """Without held-out slices the curves show the Dice on (up to ``most``, evenly spread) annotated
        slices: it informs, it selects nothing, so it need not cost a pass over every slice."""
        if len(self.train_refs) <= most:
            return self.train_refs
        return [self.train_refs[int(i)] for i in np.linspace(0, len(self.train_refs) - 1, most).round()]

    def _validate(self, slices: list[SliceRef]) -> tuple[float | None, dict[int, float], float | None]:
        """Loss, Dice per label and pixel error of the kept model on ``slices`` (whole slices, no augmentation).
        Out of GPU memory: again with half the slices per batch; at one slice a batch, on the CPU (as a
        training step that runs out of memory at one patch)."""
        while True:
            try:
                return self._try_validate(slices)
            except torch.cuda.OutOfMemoryError:
                pass
            if self.device.type == "cuda":
                torch.cuda.empty_cache()  # (out of the except block: the failed batch's tensors are gone)
            if self._val_size_at_most(slices) > 1:
                self._val_share /= 2
                self.notes.append("GPU out of memory in validation: fewer slices per validation batch")
            elif self.device.type == "cpu":
                raise UnetguiError("out of memory validating one slice: use a smaller model or working size")
            elif self.world > 1:
                raise UnetguiError("GPU out of memory validating one slice under torchrun: lower --patch or the "
                                   "working size")
            else:
                self._move_to_cpu()
                self.notes.append("GPU out of memory validating one slice: training continues on the CPU")

    def _val_size_at_most(self, slices: list[SliceRef]) -> int:
        return max((len(batch) for batch in self._val_batches(slices)), default=1)

    @torch.no_grad()
    def _try_validate(self, slices: list[SliceRef]) -> tuple[float | None, dict[int, float], float | None]:
        """Batched on the device (slices of one shape together); the sums are read back once at the end."""
        if not slices:
            return None, {}, None
        model = self._eval_model()
        model.eval()
        counts = torch.zeros(self.model_config.classes, 3, dtype=torch.int64, device=self.device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        m = self.model_config.multiple
        mine = slices[self.rank::self.world]  # under torchrun each rank validates its share; counts are summed
        for refs in self._val_batches(mine):
            if self._resident is not None:
                x, y = self._resident.slices(refs, self.model_config.context)
            else:
                images = np.stack([context_stack(self.cases[c].image, z, self.model_config.context) for c, z in refs])
                labels = np.stack([self.cases[c].labels[z] for c, z in refs])
                x = torch.from_numpy(images).to(self.device, non_blocking=True)
                y = torch.from_numpy(labels).to(self.device, non_blocking=True).long()
            h, w = y.shape[1:]
            x = stages.pad(x, m)
            y = F.pad(y, (0, -w % m, 0, -h % m), value=UNANNOTATED)
            if self.device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=self._amp or torch.float32, enabled=self._amp is not None):
                logits = model(x)
            loss_sum += dice_ce_loss(logits, y, dice_weight=self.config.dice_weight).double() * len(refs)
            counts += hard_dice_counts(logits, y)
        counts, loss_sum = counts.cpu(), loss_sum.cpu().view(1)
        if self.world > 1:
            counts = distributed.sum_over_ranks(counts)
            loss_sum = distributed.sum_over_ranks(loss_sum)
        dice = {}
        for index, value in enumerate(self._values[1:], start=1):
            tp, fp, fn = counts[index].tolist()
            dice[value] = 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
        valid = int((counts[:, 0] + counts[:, 2]).sum())
        pixel_error = 1.0 - int(counts[:, 0].sum()) / valid if valid else None
        return float(loss_sum[0]) / len(slices), dice, pixel_error

    def _val_batches(self, refs: list[SliceRef]) -> Iterator[list[SliceRef]]:
        """``refs`` in batches of one slice shape, as many slices as hold about twice the pixels of a training
        batch (no gradients are kept), at least one, at most ``MAX_VAL_BATCH``."""
        by_shape: dict[tuple[int, int], list[SliceRef]] = {}
        for ref in refs:
            by_shape.setdefault(tuple(self.cases[ref[0]].shape[1:]), []).append(ref)
        for (h, w), group in by_shape.items():
            pixels = 2 * self.batch_size * self.config.patch[0] * self.config.patch[1] * self._val_share
            size = int(np.clip(pixels // (h * w), 1, MAX_VAL_BATCH))
            for i in range(0, len(group), size):
                yield group[i:i + size]

    # -- result ----------------------------------------------------------------------------------
    def best_checkpoint(self) -> Checkpoint:
        """The kept weights (best validation epoch, or the final ones without validation) with metadata and
        the post-processing decision; the current weights if no epoch finished."""
        model = copy.deepcopy(self._eval_model()).cpu()
        if self._best_state is not None:
            model.load_state_dict(self._best_state)
        model = model.to(memory_format=torch.contiguous_format).eval()
        if self.postprocessing is None or self.postprocessing.get("epoch") != self.best_epoch:
            try:  # on the training device: on the CPU a 200-slice volume of the gpu preset takes minutes
                self.postprocessing = self._decide_postprocessing(copy.deepcopy(model).to(self.device))
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                self.postprocessing = self._decide_postprocessing(model)
        if self.fit is None or self.fit.get("epoch") != self.best_epoch:
            self._check_fit(model)
        best = next((h for h in self.history if h.epoch == self.best_epoch), None)
        info = {
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "device": self.device_name,
            "training": {
                "config": self.config.to_json(),
                # anonymous: a folder name or series description can name the patient
                "cases": [{"case": i, "shape": list(c.shape), "annotated_slices": len(c.annotated)}
                          for i, c in enumerate(self.cases, start=1)],
                "train_slices": len(self.train_refs), "val_slices": len(self.val_refs),
                "epochs_run": len(self.history), "best_epoch": self.best_epoch,
                "seconds": self.history[-1].elapsed if self.history else 0.0,
            },
            "metrics": {"val_dice": {str(k): v for k, v in (best.val_dice if best else {}).items()},
                        "val_loss": best.val_loss if best else None,
                        "val_pixel_error": best.val_pixel_error if best else None},
            "plan": self.plan.to_json() if self.plan is not None else None,
            "selection": selection(bool(self.val_refs), self._ema is not None),
            "dice_on": "validation" if self.val_refs else "annotated",
            "postprocessing": self.postprocessing,
            "fit": {**self.fit, "dice": {str(k): v for k, v in self.fit["dice"].items()}},
            "history": [{"epoch": h.epoch, "seconds": h.elapsed, "train_loss": h.train_loss, "val_loss": h.val_loss,
                         "val_pixel_error": h.val_pixel_error,
                         "val_dice": {str(k): v for k, v in h.val_dice.items()}} for h in self.history],
        }
        return Checkpoint.from_model(model, self.preprocessing, self.labels, info)

    @torch.no_grad()
    def _check_fit(self, model: torch.nn.Module) -> None:
        """The fit check on the kept model: its Dice per label on the annotated slices (from the post-processing
        decision, which predicted them all; else on up to 4 training slices), kept in :attr:`fit`; a label
        below ``FIT_DICE`` gets a note in words a user acts on (the CLI prints it, the app shows it)."""
        scores = (self.postprocessing or {}).get("scores") or {}
        if scores and all("dice" in v for v in scores.values()):
            dice = {int(k): float(v["dice"]) for k, v in scores.items()}
        else:  # slices of several shapes: compared flattened (metrics.dice skips the unannotated voxels)
            refs = self._curve_refs()
            pred = np.concatenate([self._predict_slices(model, self.cases[c], [z]).ravel() for c, z in refs])
            truth = np.concatenate([np.asarray(self.cases[c].labels[z]).ravel() for c, z in refs])
            dice = {self._values[k]: metrics.dice(pred, truth, k) for k in range(1, self.model_config.classes)}
        self.fit = {"dice": {k: round(v, 4) for k, v in dice.items()}, "threshold": FIT_DICE, "epoch": self.best_epoch}
        low = {v: d for v, d in dice.items() if d < FIT_DICE}
        if low:
            names = ", ".join(f"{self.labels.get(v).name if self.labels.get(v) else v} {d:.2f}" for v, d in low.items())
            note = (f"The model has not learned your annotation yet: on the annotated slices it reaches a Dice of only "
                    f"{names} (1 = it reproduces them). Train longer, or annotate one more slice where the structure "
                    f"is, before relying on it.")
            self.notes = [n for n in self.notes if not n.startswith("The model has not learned")] + [note]

    @torch.no_grad()
    def _decide_postprocessing(self, model: torch.nn.Module, max_slices: int = 600) -> dict:
        """Largest-component post-processing per label, decided on the annotated slices (whole volumes are
        predicted at the working size: components run through the unannotated slices)."""
        if sum(c.shape[0] for c in self.cases) > max_slices:
            return {postprocess.KEY: [], "note": f"not measured (more than {max_slices} slices)", "epoch": self.best_epoch}
        predicted, truth, spacings = [], [], []
        # linked across the slices of the cases' first axis: only where that is the native slice axis, on which
        # the rule is applied to whole volumes (coronal or sagittal models: face connectivity, as applied)
        axial = self.preprocessing.axis == 0
        known = (self.spacings if axial and self.spacings is not None and len(self.spacings) == len(self.cases)
                 else [None] * len(self.cases))
        for case, spacing in zip(self.cases, known):
            if not case.annotated:
                continue
            spacings.append(spacing)
            classes = np.concatenate([self._predict_slices(model, case, list(range(i, min(i + 8, case.shape[0]))))
                                      for i in range(0, case.shape[0], 8)])
            predicted.append(classes)
            truth.append(np.asarray(case.labels[:]))
        record = postprocess.decide(predicted, truth, list(range(1, self.model_config.classes)), spacings)
        # class indices -> label values for the model file
        record[postprocess.KEY] = [self._values[c] for c in record[postprocess.KEY]]
        record[postprocess.ANCHORED] = [self._values[c] for c in record[postprocess.ANCHORED]]
        record["scores"] = {str(self._values[int(k)]): v for k, v in record["scores"].items()}
        return {**record, "epoch": self.best_epoch}

    def _predict_slices(self, model: torch.nn.Module, case: Case, slices: list[int]) -> np.ndarray:
        """Class indices ``(n, y, x)`` uint8 of ``slices`` of ``case`` (at the working size, on the model's device)."""
        images = np.stack([context_stack(case.image, z, self.model_config.context) for z in slices])
        h, w = images.shape[-2:]
        device = next(model.parameters()).device
        x = torch.from_numpy(pad_to_multiple(images, self.model_config.multiple)).to(device)
        amp = self._amp if device.type == self.device.type else None
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            classes = model(x).argmax(1)[:, :h, :w]
        return classes.to(torch.uint8).cpu().numpy()


def adamw(params, learning_rate: float, weight_decay: float, device: torch.device) -> torch.optim.AdamW:
    """AdamW; on CUDA the fused kernel: one launch for all parameters, and it takes the fp16 loss scaler's
    scale and inf check as device tensors, so that GPUs without bf16 (fp16 + GradScaler) do not wait for the
    device every step either (GradScaler reads the inf check back for any other optimizer)."""
    return torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay, fused=device.type == "cuda" or None)


def measure_step_seconds(model_config: UNetConfig, config: TrainConfig, repeats: int = 2) -> float:
    """Seconds one training step (augmentation, forward, backward, AdamW) takes for ``config``'s patch and
    batch on its device, timed on a throwaway model after one warm-up step."""
    device = pick_device(config.device)
    if device.type == "cpu":
        configure_threads(config.threads)
    model = UNet(model_config).to(device)
    optimizer = adamw(model.parameters(), 1e-4, 0.0, device)
    g = torch.Generator().manual_seed(0)
    aug = AugmentConfig(elastic_probability=0.5 if config.elastic else 0.0)
    amp = amp_dtype(device) if config.amp else None
    x = torch.randn(config.batch_size, model_config.in_channels, *config.patch, generator=g).to(device)
    y = torch.randint(0, model_config.classes, (config.batch_size, *config.patch), generator=g).to(device)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        xa, ya = augment(x, y, aug, g) if config.augment else (x, y)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss = dice_ce_loss(model(xa), ya)
        loss.backward()
        optimizer.step()
        float(loss.detach())  # waits for the device
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))
