"""The training planner: fingerprints of real-looking data -> the plan; overrides; the few-annotation mode;
post-processing decided on data; elastic deformation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import phantom_hu
from engine_fixtures import TABLE
from unetgui.core.errors import UnetguiError
from unetgui.engine import planner, postprocess
from unetgui.engine.augment import AugmentConfig, augment
from unetgui.engine.planner import FEW_SLICES, fingerprint, plan_training
from unetgui.engine.unet import UNetConfig


def _disc_labels(shape, radius, annotated, centre=None):
    z, h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = centre or (h / 2, w / 2)
    labels = np.full(shape, 255, np.uint8)
    for k in annotated:
        labels[k] = (np.hypot(yy - cy, xx - cx) < radius).astype(np.uint8)
    return labels


def test_small_mr_slices_are_one_whole_non_square_patch():
    labels = _disc_labels((40, 42, 76), 4.5, [10, 20, 30])
    fp = fingerprint([np.zeros(labels.shape, np.int16)], [labels], "MR", [(1.0, 1.0)])
    assert fp.annotated == (3,) and 8 <= fp.widths[1] <= 10
    plan = plan_training(fp, "cpu", 3.0)
    assert plan.working_size is None
    assert plan.train.patch == (48, 80)  # the whole 42 x 76 slice, padded to the multiple of 2**3
    assert plan.model.depth == 3 and (48 >> 3) >= planner.MIN_BOTTLENECK_PX
    assert plan.train.batch_size > 4  # a batch costs about as much as 4 patches of 256 x 256
    assert plan.few_annotations and plan.train.holdout_min == FEW_SLICES and plan.train.ema


def test_a_thin_structure_keeps_the_native_grid_and_a_thick_one_is_shrunk():
    thin = _disc_labels((11, 320, 320), 2.0, [3, 7])
    fp = fingerprint([np.zeros(thin.shape, np.int16)], [thin], "MR")
    assert fp.fractions[1] < 0.001
    assert plan_training(fp, "cpu").working_size is None  # shrinking 320 -> 256 would lose the structure
    thick = _disc_labels((3, 512, 512), 120, [0, 2])
    plan = plan_training(fingerprint([np.zeros(thick.shape, np.int16)], [thick], "CT"), "cpu")
    assert plan.working_size == 256 and plan.train.patch == (256, 256) and plan.model.depth == 4


def test_a_small_structure_gets_structure_sized_patches_centred_on_it():
    """A lesion of 0.1 % of a 320 x 320 slice: patches of 4 x its extent (at least MIN_PATCH_SMALL), most of
    them centred on it; a structure of ordinary size keeps the general rule."""
    lesion = _disc_labels((11, 320, 320), 5.5, [4, 6])
    fp = fingerprint([np.zeros(lesion.shape, np.int16)], [lesion], "MR")
    assert fp.small_structure and fp.smallest_share < 0.002
    plan = plan_training(fp, "cpu", 3.0)
    assert plan.train.patch == (planner.MIN_PATCH_SMALL,) * 2 and plan.train.batch_size == planner.PROFILES["cpu"].max_batch
    assert plan.train.foreground_fraction == planner.SMALL_FOREGROUND_FRACTION
    assert plan.train.learning_rate == planner.LEARNING_RATE_SMALL > planner.LEARNING_RATE
    assert any("small structure" in reason for reason in plan.reasons)
    fine = plan_training(fp, "cpu", 3.0, init=(UNetConfig(classes=2, depth=4, base=16), None))
    assert fine.train.learning_rate == planner.FINE_TUNE_RATE  # fine-tuning keeps its own lower rate
    assert plan_training(fp, "cpu", 3.0, {"foreground_fraction": 0.3}).train.foreground_fraction == 0.3
    ordinary = _disc_labels((11, 320, 320), 60, [4, 6])
    plan = plan_training(fingerprint([np.zeros(ordinary.shape, np.int16)], [ordinary], "MR"), "cpu", 3.0)
    assert plan.train.foreground_fraction == planner.FOREGROUND_FRACTION and plan.train.patch == (256, 256)
    assert plan.train.learning_rate == planner.LEARNING_RATE


def test_gpu_plans_a_wider_deeper_network_and_bigger_batches():
    labels = _disc_labels((20, 512, 512), 100, list(range(2, 18)))
    fp = fingerprint([np.zeros(labels.shape, np.int16)], [labels], "CT")
    cpu, gpu = plan_training(fp, "cpu"), plan_training(fp, "cuda")
    assert gpu.model.base > cpu.model.base and gpu.model.depth == 5
    assert gpu.train.patch == (512, 512) and gpu.train.batch_size >= 8
    assert not gpu.few_annotations and gpu.selection == "the best validation epoch"


def test_overrides_are_named_and_unknown_settings_are_refused():
    labels = _disc_labels((10, 64, 64), 10, [2, 5])
    fp = fingerprint([np.zeros(labels.shape, np.int16)], [labels])
    plan = plan_training(fp, "cpu", 3.0, {"learning_rate": 0.01, "batch_size": None, "preset": "small"})
    assert plan.train.learning_rate == 0.01 and plan.model.base == 8 and plan.working_size is None  # 64 < 128
    assert plan.overridden == ("learning_rate", "preset") and "set by you: learning rate, preset" in plan.summary()
    with pytest.raises(UnetguiError, match="unknown training settings"):
        plan_training(fp, "cpu", 3.0, {"learnin_rate": 0.01})


def test_steps_per_epoch_follow_the_measured_step_time():
    labels = _disc_labels((10, 64, 64), 10, [2, 5])
    plan = plan_training(fingerprint([np.zeros(labels.shape, np.int16)], [labels]), "cpu")
    assert plan.with_step_seconds(0.1).train.steps_per_epoch == round(planner.TARGET_EPOCH_S / 0.1)
    assert plan.with_step_seconds(100.0).train.steps_per_epoch == 5
    fixed = plan_training(plan.fingerprint, "cpu", overrides={"steps_per_epoch": 7})
    assert fixed.with_step_seconds(0.1).train.steps_per_epoch == 7


def test_elastic_deformation_needs_a_budget_of_enough_steps():
    labels = _disc_labels((10, 64, 64), 10, [2, 5])
    fp = fingerprint([np.zeros(labels.shape, np.int16)], [labels])
    three = plan_training(fp, "cpu", 3.0)  # the app's default budget
    assert three.train.elastic
    short = three.with_step_seconds(1.0 * 180 / (planner.ELASTIC_MIN_STEPS - 10))  # a big slice on a slow CPU
    assert not short.train.elastic and any("no elastic deformation" in r for r in short.reasons)
    assert three.with_step_seconds(0.1).train.elastic  # 1800 steps
    by_epochs = plan_training(fp, "cpu", None, {"epochs": 2, "steps_per_epoch": 20})
    assert not by_epochs.with_step_seconds(0.1).train.elastic  # 40 steps, however fast
    asked = plan_training(fp, "cpu", 3.0, {"elastic": True})
    assert asked.with_step_seconds(10.0).train.elastic  # the user's choice stands


def test_the_warm_up_is_a_tenth_of_a_short_budget_at_most():
    labels = _disc_labels((10, 64, 64), 10, [2, 5])
    fp = fingerprint([np.zeros(labels.shape, np.int16)], [labels])
    one = plan_training(fp, "cpu", 1.0)
    assert one.train.warmup_steps == 30
    assert one.with_step_seconds(0.05).train.warmup_steps == 30  # 1200 steps: the full warm-up
    short = one.with_step_seconds(60 / 96)  # a 1-minute run of ~96 steps (the phantom on 2 cores)
    assert short.train.warmup_steps == 10 and "warm-up 10 steps" in short.reasons[-1]
    assert one.with_step_seconds(30.0).train.warmup_steps == planner.MIN_WARMUP  # 2 steps: never below the floor
    fine = plan_training(fp, "cpu", 1.0, init=(UNetConfig(classes=2, depth=2, base=4), 48))
    assert fine.with_step_seconds(60 / 96).train.warmup_steps == 10  # fine-tuning's own 10 steps stay
    assert fine.with_step_seconds(60 / 60).train.warmup_steps == 6


def test_fine_tuning_keeps_the_model_and_lowers_the_rate():
    labels = _disc_labels((10, 64, 64), 10, [2, 5])
    fp = fingerprint([np.zeros(labels.shape, np.int16)], [labels])
    model = UNetConfig(classes=2, depth=2, base=4)
    plan = plan_training(fp, "cpu", 3.0, init=(model, 48))
    assert plan.model == model and plan.working_size == 48 and plan.fine_tune
    assert plan.train.learning_rate == planner.FINE_TUNE_RATE < planner.LEARNING_RATE
    assert planner.panel_defaults(True)["learning_rate"] == plan.train.learning_rate
    assert planner.panel_defaults(False)["learning_rate"] == plan_training(fp, "cpu").train.learning_rate


def test_few_annotations_train_on_every_slice_and_keep_the_final_average(tmp_path):
    from unetgui.engine.training import EpochStats
    from unetgui.engine.training_run import AnnotatedVolume, build_trainer

    hu = phantom_hu((12, 48, 64))
    truth = (hu > 65).astype(np.uint8)
    sparse = np.full(hu.shape, 255, np.uint8)
    sparse[[3, 6, 9]] = truth[[3, 6, 9]]
    trainer = build_trainer([AnnotatedVolume("p", hu, sparse, "CT")], TABLE, "cpu", None,
                            {"epochs": 3, "steps_per_epoch": 8, "base": 8, "learning_rate": 1e-2, "threads": 2})
    assert trainer.plan.train.patch == (48, 64) and len(trainer.train_refs) == 3 and not trainer.val_refs
    epochs = [e for e in trainer.run() if isinstance(e, EpochStats)]
    assert [e.dice_on for e in epochs] == ["annotated"] * 3 and all(e.is_best for e in epochs)
    assert trainer.best_epoch == 3 and epochs[-1].stop_reason == "epochs"
    checkpoint = trainer.best_checkpoint()
    assert checkpoint.info["selection"].startswith("final weights") and checkpoint.info["dice_on"] == "annotated"
    assert checkpoint.info["plan"]["train"]["patch"] == [48, 64]
    assert checkpoint.info["postprocessing"]["measured_on"] == "annotated slices"
    # the kept weights are the moving average, not the last step's
    last = trainer.model.state_dict()
    assert any(not torch.equal(checkpoint.weights[k], v.cpu()) for k, v in last.items() if v.dtype.is_floating_point)


def test_largest_component_is_kept_only_where_it_does_not_hurt():
    truth = np.full((6, 20, 20), 255, np.uint8)
    truth[[1, 4]] = 0
    truth[[1, 4], 5:10, 5:10] = 1
    pred = np.zeros((6, 20, 20), np.uint8)
    pred[:, 5:10, 5:10] = 1  # one 3-D component through all slices
    pred[2, 15:18, 15:18] = 1  # a speck on an unannotated slice
    record = postprocess.decide([pred], [truth], [1])
    assert record["largest_component"] == [1]
    cleaned = postprocess.apply(pred, record)
    assert cleaned[2, 15:18, 15:18].max() == 0 and cleaned[:, 5:10, 5:10].all()
    # two real structures (e.g. kidneys) of one label: the rule must not drop one
    truth[[1, 4], 12:18, 12:18] = 1
    pred[:, 12:18, 12:18] = 1
    assert postprocess.decide([pred], [truth], [1])["largest_component"] == []


def test_elastic_deformation_moves_image_and_labels_together():
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    labels = ((yy // 8 + xx // 8) % 2).long().unsqueeze(0).repeat(4, 1, 1)  # a checkerboard
    images = labels.float().unsqueeze(1)
    cfg = AugmentConfig(spatial_probability=0.0, intensity_probability=0.0, elastic_probability=1.0, elastic_std=0.08)
    warped_images, warped_labels = augment(images, labels, cfg, g)
    valid = warped_labels != 255
    assert (warped_labels[valid] != labels[valid]).float().mean() > 0.05  # it did deform
    agree = (warped_images[:, 0].round().long() == warped_labels)[valid].float().mean()
    assert agree > 0.97  # and the labels followed the image (bilinear vs nearest differ only on edges)



@pytest.mark.gpu
def test_a_planned_run_on_the_gpu_uses_the_gpu_profile_and_learns():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    from unetgui.engine.inference import Predictor
    from unetgui.engine.training_run import AnnotatedVolume, build_trainer

    hu = phantom_hu((16, 96, 128))
    truth = (hu > 65).astype(np.uint8)
    sparse = np.full(hu.shape, 255, np.uint8)
    sparse[[4, 8, 12]] = truth[[4, 8, 12]]
    trainer = build_trainer([AnnotatedVolume("p", hu, sparse, "CT")], TABLE, "cuda", 0.5, {"threads": 2})
    plan = trainer.plan
    assert plan.model.base == 32 and plan.train.patch == (96, 128) and plan.train.batch_size == 64
    assert 5 <= plan.train.steps_per_epoch <= 250 and trainer.device.type == "cuda"
    list(trainer.run())
    labels = Predictor(trainer.best_checkpoint(), device="cuda", compile=False).predict(hu).labels
    others = [z for z in range(16) if z not in (4, 8, 12)]
    p, t = labels[others] == 1, truth[others] == 1
    assert 2 * (p & t).sum() / (p.sum() + t.sum()) > 0.9


def test_predict_applies_the_rule_to_whole_volumes_only(monkeypatch):
    from engine_fixtures import tiny_checkpoint
    from unetgui.engine import inference

    checkpoint = tiny_checkpoint()
    checkpoint.info["postprocessing"] = {"largest_component": [1]}

    def fake_run(self, voxels, slices=None, cancel=None):
        order = list(range(voxels.shape[0])) if slices is None else list(slices)
        labels = np.zeros((len(order), *voxels.shape[1:]), np.uint8)
        labels[:, 4:20, 4:20] = 1
        labels[:, 40:42, 40:42] = 1  # a second, smaller component on every slice
        yield inference.SliceBatch(tuple(order), labels, np.zeros((len(order), 2, *voxels.shape[1:]), np.uint8),
                                   len(order), len(order), 0.0, np.zeros(labels.shape, np.uint8))

    monkeypatch.setattr(inference.Predictor, "run", fake_run)
    predictor = inference.Predictor(checkpoint, device="cpu")
    hu = phantom_hu((6, 64, 64))
    assert predictor.predict(hu).labels[:, 40:42, 40:42].max() == 0
    assert predictor.predict(hu, postprocess=False).labels[:, 40:42, 40:42].min() == 1
    assert predictor.predict(hu, [1, 2]).labels[1:3, 40:42, 40:42].min() == 1  # a part of a volume: no 3-D rule
