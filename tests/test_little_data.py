"""Options for little data: the U-Net paper's border weight map and self-training on the unannotated slices."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from conftest import DATA
from unetgui.core.volume import LabelTable
from unetgui.engine.augment import AugmentConfig, augment
from unetgui.engine.data import Case, PatchSampler
from unetgui.engine.loss import dice_ce_loss
from unetgui.engine.preprocessing import Preprocessing
from unetgui.engine.training import TrainConfig, Trainer
from unetgui.engine.unet import UNetConfig
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


def _stack(slices: int = 8, size: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A bright disc drifting through a noisy stack: (image, truth)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    truth = np.stack([((yy - 20 - z) ** 2 + (xx - 24) ** 2 < 64) for z in range(slices)]).astype(np.uint8)
    image = (truth * 2.0 + rng.normal(0, 0.5, truth.shape)).astype(np.float32)
    return image, truth


def test_self_training_labels_only_confident_pixels_of_unannotated_slices(monkeypatch):
    import unetgui.engine.training as training

    monkeypatch.setattr(training, "PSEUDO_START", 0.0)
    image, truth = _stack()
    labels = np.full(truth.shape, 255, np.uint8)
    labels[[2, 5]] = truth[[2, 5]]
    source = labels.copy()
    cfg = TrainConfig(epochs=3, steps_per_epoch=15, batch_size=4, patch=48, device="cpu", threads=2, holdout_min=10,
                      ema=0.9, pseudo_labels=0.9, warmup_steps=2)
    trainer = Trainer([Case("v", image, labels, (2, 5))], LabelTable.from_names("disc"),
                      Preprocessing.for_modality("OT", None), cfg, UNetConfig(classes=2, base=8, depth=2))
    for _ in trainer.run():
        pass
    assert trainer.pseudo_slices == 4  # at least 4, at most 2 per annotated slice
    pseudo_refs = [r for r in trainer.sampler.refs if r[0] == 1]
    assert len(pseudo_refs) == 4 and {z for _, z in pseudo_refs}.isdisjoint({2, 5})
    assert trainer.sampler.refs.count((0, 2)) == 2  # the annotated slices keep half of the draws
    pseudo = trainer.sampler.cases[1].labels
    for _, z in pseudo_refs:
        decided = pseudo[z] != 255
        assert decided.mean() > 0.5  # the model is confident on most of a slice ...
        assert (pseudo[z][decided] == truth[z][decided]).mean() > 0.9  # ... and mostly right there
    # the user's labels, the curves and the post-processing decision never see the model's labels
    assert np.array_equal(labels, source) and trainer.train_refs == [(0, 2), (0, 5)]
    assert np.array_equal(trainer.cases[0].labels == 255, source == 255)
    assert trainer.best_checkpoint().info["training"]["config"]["pseudo_labels"] == 0.9
