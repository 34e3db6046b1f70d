"""Training: it learns, masks unannotated pixels, stops on cancel, is deterministic, fine-tunes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine_fixtures import FAST, TABLE, TINY, dice, phantom_case
from unetgui.core.errors import Cancelled, UnetguiError
from unetgui.core.progress import CancelToken
from unetgui.engine.checkpoint import describe
from unetgui.engine.data import prepare_case, split
from unetgui.engine.inference import Predictor
from unetgui.engine.loss import dice_ce_loss
from unetgui.engine.training import BatchStats, EpochStats, Trainer, TrainConfig


@pytest.fixture(scope="module")
def trained():
    hu, truth, sparse, pre, case = phantom_case()
    trainer = Trainer([case], TABLE, pre, FAST, TINY)
    events = list(trainer.run())
    return hu, truth, trainer, events


def test_a_few_epochs_on_a_phantom_reach_a_high_dice(trained):
    hu, truth, trainer, events = trained
    epochs = [e for e in events if isinstance(e, EpochStats)]
    assert len(epochs) == FAST.epochs and epochs[-1].stop_reason == "epochs"
    assert max(e.val_dice[1] for e in epochs) > 0.9
    assert epochs[-1].train_loss < epochs[0].train_loss
    batches = [e for e in events if isinstance(e, BatchStats)]
    assert len(batches) == FAST.epochs * FAST.steps_per_epoch and batches[-1].eta == pytest.approx(0, abs=1)
    prediction = Predictor(trainer.best_checkpoint(), device="cpu", runtime="torch").predict(hu)
    assert dice(prediction.labels, truth) > 0.9  # also on the 8 slices nobody annotated


def test_the_best_epoch_is_kept(trained):
    _, _, trainer, events = trained
    epochs = [e for e in events if isinstance(e, EpochStats)]
    best = max(epochs, key=lambda e: e.val_dice[1])
    assert trainer.best_epoch == best.epoch
    info = trainer.best_checkpoint().info
    assert info["training"]["best_epoch"] == best.epoch
    assert info["metrics"]["val_dice"]["1"] == pytest.approx(best.val_dice[1])
    assert len(info["history"]) == len(epochs)


def test_masked_loss_ignores_unannotated_pixels():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    labels = torch.randint(0, 3, (2, 8, 8))
    labels[:, :4] = 255
    loss = dice_ce_loss(logits, labels)
    loss.backward()
    assert torch.all(logits.grad[:, :, :4] == 0) and logits.grad[:, :, 4:].abs().sum() > 0
    changed = logits.detach().clone()
    changed[:, :, :4] = torch.randn(2, 3, 4, 8) * 100  # whatever the model says where nobody annotated
    assert dice_ce_loss(changed, labels).item() == pytest.approx(loss.item())
    assert dice_ce_loss(logits, torch.full((2, 8, 8), 255)).item() == 0.0


def test_cancel_stops_within_one_batch():
    *_, pre, case = phantom_case()
    trainer = Trainer([case], TABLE, pre, FAST, TINY)
    token = CancelToken()
    seen = []
    with pytest.raises(Cancelled):
        for event in trainer.run(token):
            seen.append(event)
            if len(seen) == 3:
                token.set()
    assert len(seen) == 3


def test_same_seed_same_training():
    *_, pre, case = phantom_case()
    cfg = TrainConfig(**{**FAST.to_json(), "epochs": 2})
    runs = [[e.loss for e in Trainer([case], TABLE, pre, cfg, TINY).run() if isinstance(e, BatchStats)] for _ in range(2)]
    assert runs[0] == runs[1]


def test_time_budget_and_early_stopping():
    *_, pre, case = phantom_case()
    cfg = TrainConfig(**{**FAST.to_json(), "epochs": 1000, "minutes": 0.05})
    last = [e for e in Trainer([case], TABLE, pre, cfg, TINY).run() if isinstance(e, EpochStats)][-1]
    assert last.stop_reason == "time budget" and last.elapsed < 3 * 60 * 0.05 + 5
    cfg = TrainConfig(**{**FAST.to_json(), "epochs": 1000, "patience": 2, "learning_rate": 1e-9, "warmup_steps": 1})
    last = [e for e in Trainer([case], TABLE, pre, cfg, TINY).run() if isinstance(e, EpochStats)][-1]
    assert last.stop_reason == "early stopping" and last.epoch < 20


def test_fine_tuning_starts_from_the_checkpoint(trained):
    _, _, trainer, _ = trained
    *_, pre, case = phantom_case()
    cfg = TrainConfig(**{**FAST.to_json(), "epochs": 1, "learning_rate": 1e-5})
    first = next(e for e in Trainer([case], TABLE, pre, cfg, init=trainer.best_checkpoint()).run() if isinstance(e, EpochStats))
    assert first.val_dice[1] > 0.85  # a scratch model is near 0 after one slow epoch
    from unetgui.core.volume import LabelTable

    with pytest.raises(UnetguiError, match="same labels"):
        Trainer([case], LabelTable.from_names("a", "b"), pre, cfg, init=trainer.best_checkpoint())


def test_slices_reviewed_during_training_join_at_the_next_epoch():
    hu, truth, sparse, pre, case = phantom_case()
    trainer = Trainer([case], TABLE, pre, TrainConfig(**{**FAST.to_json(), "epochs": 3}), TINY)
    counts, expected = [], None
    for event in trainer.run():
        if isinstance(event, EpochStats):
            counts.append(event.train_slices)
            if event.epoch == 1:
                more = sparse.copy()
                more[[0, 1, 3]] = truth[[0, 1, 3]]  # three more slices reviewed while training runs
                fresh = prepare_case("phantom", hu, more, pre)
                train, val = split([fresh])
                expected = len(train)
                trainer.update_data([fresh], train, val)
    assert counts[0] == 3 and expected == 6 and counts[1:] == [6, 6]


def test_split_rules():
    hu, truth, sparse, pre, _ = phantom_case()
    full = prepare_case("full", hu, truth, pre)
    train, val = split([full])
    assert len(val) == 2 and len(train) == 10 and not set(train) & set(val)
    one = np.full(hu.shape, 255, np.uint8)
    one[4] = truth[4]
    train, val = split([prepare_case("one", hu, one, pre)])
    assert train == [(0, 4)] and val == []
    cases = [prepare_case(f"c{i}", hu, sparse, pre) for i in range(6)]
    train, val = split(cases)
    assert len({c for c, _ in val}) == 1 and not {c for c, _ in val} & {c for c, _ in train}
    with pytest.raises(UnetguiError, match="no annotated slice"):
        split([prepare_case("none", hu, np.full(hu.shape, 255, np.uint8), pre)])


@pytest.mark.gpu
def test_cuda_training_with_amp():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    *_, pre, case = phantom_case()
    cfg = TrainConfig(**{**FAST.to_json(), "device": "cuda", "epochs": 3})
    last = [e for e in Trainer([case], TABLE, pre, cfg, TINY).run() if isinstance(e, EpochStats)][-1]
    assert np.isfinite(last.train_loss)


def test_out_of_memory_inside_the_first_optimizer_step_is_recovered(monkeypatch):
    """AdamW makes its moments one by one on its first step: running out of memory between the two left a
    half-made state that failed the retry (KeyError 'exp_avg_sq'). The retry starts that state afresh."""
    *_, pre, case = phantom_case()
    trainer = Trainer([case], TABLE, pre, TrainConfig(**{**FAST.to_json(), "epochs": 1, "steps_per_epoch": 3}), TINY)
    real_step, real_zeros, made = trainer.optimizer.step, torch.zeros_like, []

    def zeros_like(*args, **kwargs):
        made.append(1)
        if len(made) == 2:  # the first parameter's second moment
            raise torch.cuda.OutOfMemoryError("simulated")
        return real_zeros(*args, **kwargs)

    def step(*args, **kwargs):
        if made:
            return real_step(*args, **kwargs)
        monkeypatch.setattr(torch, "zeros_like", zeros_like)
        try:
            return real_step(*args, **kwargs)
        finally:
            monkeypatch.setattr(torch, "zeros_like", real_zeros)

    monkeypatch.setattr(trainer.optimizer, "step", step)
    events = list(trainer.run())
    assert len(made) == 2 and trainer.batch_size == FAST.batch_size // 2
    assert isinstance(events[-1], EpochStats) and np.isfinite(events[-1].train_loss)
    assert all({"step", "exp_avg", "exp_avg_sq"} <= s.keys() for s in trainer.optimizer.state.values())
    assert len(trainer.optimizer.state) == len(list(trainer.model.parameters()))

def test_out_of_memory_in_validation_takes_fewer_slices_a_batch(monkeypatch):
    """Validation runs whole slices in batches sized from the training batch; out of memory, it halves its
    batches until they fit instead of ending the run."""
    *_, pre, case = phantom_case((12, 64, 64))
    config = TrainConfig(**{**FAST.to_json(), "epochs": 2, "steps_per_epoch": 2, "val_fraction": 0.5})
    trainer = Trainer([case], TABLE, pre, config, TINY)
    assert trainer._val_size_at_most(trainer.val_refs) == len(trainer.val_refs) == 2
    real, seen = trainer._try_validate, []

    def tight(slices):
        sizes = [len(b) for b in trainer._val_batches(slices)]
        seen.append(max(sizes))
        if max(sizes) > 1:
            raise torch.cuda.OutOfMemoryError("simulated")
        return real(slices)

    monkeypatch.setattr(trainer, "_try_validate", tight)
    events = [e for e in trainer.run() if isinstance(e, EpochStats)]
    assert len(events) == 2 and all(e.val_loss is not None and np.isfinite(e.val_loss) for e in events)
    assert seen[0] == 2 and seen[-1] == 1 and any("validation batch" in n for n in trainer.notes)
    assert trainer.batch_size == FAST.batch_size  # training's batch is untouched

    monkeypatch.setattr(trainer, "_try_validate", lambda slices: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError("x")))
    with pytest.raises(UnetguiError, match="validating one slice"):
        trainer._validate(trainer.val_refs)  # on the CPU at one slice a batch: a clear error, not a loop

def test_out_of_memory_in_training_halves_the_batch(monkeypatch):
    *_, pre, case = phantom_case()
    trainer = Trainer([case], TABLE, pre, TrainConfig(**{**FAST.to_json(), "epochs": 1, "steps_per_epoch": 2}), TINY)
    real = trainer._try_step
    calls = []

    def flaky(aug):
        calls.append(trainer.batch_size)
        if trainer.batch_size > 1:
            raise torch.cuda.OutOfMemoryError("simulated")
        return real(aug)

    monkeypatch.setattr(trainer, "_try_step", flaky)
    events = list(trainer.run())
    assert calls[:3] == [4, 2, 1] and trainer.batch_size == 1 and trainer.notes
    assert isinstance(events[-1], EpochStats)

    def always(aug):
        raise torch.cuda.OutOfMemoryError("simulated")

    monkeypatch.setattr(trainer, "_try_step", always)
    with pytest.raises(UnetguiError, match="out of memory even for a batch of one patch"):
        list(trainer.run())  # already on the CPU with batch 1: a clear error, not a loop


def test_the_fit_check_says_when_the_annotated_slices_are_not_learned():
    *_, pre, case = phantom_case()
    cfg = TrainConfig(**{**FAST.to_json(), "epochs": 1, "steps_per_epoch": 1, "holdout_min": 10})  # no held-out slice
    trainer = Trainer([case], TABLE, pre, cfg, TINY)
    events = list(trainer.run())
    checkpoint = trainer.best_checkpoint()  # the check runs on the kept model
    assert trainer.fit["dice"][1] == pytest.approx(events[-1].val_dice[1], abs=0.02) and trainer.fit["dice"][1] < 0.8
    assert any("has not learned your annotation yet" in note and "liver" in note for note in trainer.notes)
    assert checkpoint.info["fit"]["dice"] == {"1": trainer.fit["dice"][1]}
    assert "Fit: NOT learned yet, Dice on its annotated slices liver" in describe(checkpoint)  # the model card says it
    measured = trainer.fit["dice"][1]
    trainer.postprocessing = {"largest_component": [], "note": "not measured"}  # a volume too large to decide on
    trainer._check_fit(checkpoint.build("cpu").eval())  # measured on the (4) training slices instead
    assert trainer.fit["dice"][1] == pytest.approx(measured, abs=0.02)
    checkpoint.info["fit"] = {"dice": "x"}  # a model file edited by hand: no fit line, no error
    assert "Fit" not in describe(checkpoint)


def test_a_model_that_fits_passes_the_fit_check(trained):
    trainer = trained[2]  # validation slices held out: the fit of the best epoch's weights on the annotated slices
    checkpoint = trainer.best_checkpoint()
    assert trainer.val_refs and trainer.fit["dice"][1] >= 0.8 and trainer.fit["epoch"] == trainer.best_epoch
    assert not any("has not learned" in note for note in trainer.notes)
    assert "Fit: it reproduces its annotated slices" in describe(checkpoint)
