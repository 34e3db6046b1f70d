"""The U-Net paper's border weight map, an option for labels with touching objects."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from conftest import DATA
from unetgui.engine.augment import AugmentConfig, augment
from unetgui.engine.data import Case, PatchSampler
from unetgui.engine.loss import dice_ce_loss
from unetgui.engine.weightmap import SIGMA, W0, border_weights

ISBI_LABEL = DATA / "isbi2012-membrane" / "train" / "label"


def test_border_weight_stresses_the_gap_between_touching_objects():
    classes = np.zeros((60, 100), np.uint8)
    classes[10:50, 10:48] = 1
    classes[10:50, 51:90] = 1  # two cells, a 3-pixel gap of background between them
    w = border_weights(classes)
    # every gap pixel (48-50) lies 4 pixel steps from the two cells' nearest pixels (47 and 51) together
    assert np.allclose(w[30, 48:51], 1 + W0 * np.exp(-16 / (2 * SIGMA**2)), rtol=1e-3)
    assert w[30, 49] > 8 and w[30, 70] < 1.01 and w[5, 2] < 1.5  # not inside a cell, not far outside
    one = np.zeros((60, 100), np.uint8)
    one[10:50, 10:48] = 1  # a single object (an organ): nothing lies between two objects
    assert np.allclose(border_weights(one), 1.0)
    unannotated = classes.copy()
    unannotated[:, :5] = 255
    assert np.isfinite(border_weights(unannotated)).all()


def test_border_weight_on_real_em_membranes():
    raw = cv2.imread(str(ISBI_LABEL / "3.png"), cv2.IMREAD_UNCHANGED)
    membrane = (raw == 0).astype(np.uint8)  # label 1 = membrane (cells are the background objects)
    w = border_weights(membrane)
    assert w[membrane == 1].mean() > 3 * w[membrane == 0].mean()
    assert w[membrane == 0].mean() < 1.2 and w.max() <= 1 + W0 + 1e-4


def test_weighted_loss_and_augmentation_carry_the_weights():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 16, 16, generator=g)
    labels = torch.randint(0, 2, (2, 16, 16), generator=g)
    labels[:, :2] = 255
    ones = torch.ones(2, 16, 16)
    assert torch.isclose(dice_ce_loss(logits, labels, weights=ones), dice_ce_loss(logits, labels))
    assert dice_ce_loss(logits, labels, weights=ones * 3) > dice_ce_loss(logits, labels)
    # a flip moves the weight map with the labels; intensity changes leave it alone
    weights = torch.arange(256.0).view(1, 16, 16).repeat(2, 1, 1)
    images = labels.float().unsqueeze(1)
    cfg = AugmentConfig(rotation_degrees=0, scale=(1, 1), spatial_probability=1.0, intensity_probability=1.0)
    out_images, out_labels, out_weights = augment(images, labels, cfg, g, weights)
    for b in range(2):
        flips = [d for d, axis in ((-1, 2), (-2, 1)) if not torch.equal(out_labels[b], labels[b])
                 and torch.equal(out_labels[b], labels[b].flip(d))]
        expected = weights[b]
        for d in flips:
            expected = expected.flip(d)
        if torch.equal(out_labels[b], labels[b]) or flips:
            assert torch.allclose(out_weights[b], expected, atol=1e-3)
    sampler = PatchSampler([Case("c", np.zeros((1, 8, 8), np.float32), np.zeros((1, 8, 8), np.uint8), (0,))],
                           [(0, 0)], 12, 0)
    sampler.weights = {(0, 0): np.full((8, 8), 5.0, np.float32)}
    _, patch_labels, patch_weights = sampler.batch(2, with_weights=True)
    assert (patch_weights[patch_labels != 255] == 5).all() and (patch_weights[patch_labels == 255] == 1).all()


def test_a_planned_run_with_the_border_weight_trains_on_the_weight_maps():
    from unetgui.core.volume import LabelTable
    from unetgui.engine.training_run import AnnotatedVolume, build_trainer

    classes = np.zeros((4, 64, 64), np.uint8)
    classes[:, 8:56, 8:30] = 1
    classes[:, 8:56, 33:56] = 1  # two touching cells on every slice
    image = (classes * 100 + np.random.default_rng(0).normal(0, 20, classes.shape)).astype(np.int16)
    labels = np.full(classes.shape, 255, np.uint8)
    labels[[0, 2]] = classes[[0, 2]]
    trainer = build_trainer([AnnotatedVolume("cells", image, labels, "OT")], LabelTable.from_names("cell"), "cpu",
                            None, {"epochs": 2, "steps_per_epoch": 3, "border_weight": 10, "threads": 2}, measure=False)
    assert trainer.config.border_weight == 10 and "border_weight" in trainer.plan.overridden
    assert any("border weight" in r for r in trainer.plan.reasons)
    assert set(trainer.sampler.weights) == {(0, 0), (0, 2)}
    assert trainer.sampler.weights[(0, 0)][30, 31] > 8  # the gap between the cells
    losses = [e.train_loss for e in trainer.run() if hasattr(e, "train_loss")]
    assert len(losses) == 2 and all(np.isfinite(losses))
