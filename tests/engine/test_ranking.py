"""Uncertainty and "next slice to correct": the score finds a planted ambiguity; ranking spreads out."""

from __future__ import annotations

import numpy as np
import pytest

from engine_fixtures import FAST, TABLE, TINY, phantom_case
from unetgui.core.ranking import rank_slices, slice_scores, uncertainty

PLANTED = (3, 7)  # slices whose "liver" has a contrast between the trained classes


def test_uncertainty_is_one_minus_the_margin_of_the_two_top_classes():
    p = np.zeros((1, 3, 1, 3), np.uint8)
    p[0, :, 0, 0] = (255, 0, 0)  # sure
    p[0, :, 0, 1] = (128, 127, 0)  # a coin toss between two classes
    p[0, :, 0, 2] = (153, 51, 51)  # fairly sure
    u = uncertainty(p)[0, 0]
    assert u[0] == 0 and u[1] >= 254 and 140 < u[2] < 160
    assert uncertainty(np.array([[[[0.5]], [[0.5]]]], np.float32))[0, 0, 0] == 255


def test_ranking_skips_reviewed_and_spreads_the_suggestions():
    scores = np.array([0, 9, 10, 9.5, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], float)
    reviewed = np.zeros(20, bool)
    reviewed[15] = True
    picks = rank_slices(scores, reviewed, width=2.0)
    assert picks[0].slice == 2  # the highest
    assert picks[1].slice == 8  # not 1 or 3: right next to the first pick
    assert 15 not in [p.slice for p in picks] and len(picks) == 19
    reviewed[2] = True  # the user corrected slice 2: its neighbours are damped, 8 comes first
    assert rank_slices(scores, reviewed, 1, width=2.0)[0].slice == 8
    scores[10] = np.nan  # not segmented: never suggested
    assert 10 not in [p.slice for p in rank_slices(scores, reviewed)]


@pytest.fixture(scope="module")
def model_and_ambiguous_volume():
    """A tiny model trained on the phantom (liver 90 HU in a 40 HU body), and a copy of the phantom whose
    liver is planted at 66 HU (halfway: ambiguous) on the PLANTED slices."""
    from unetgui.engine.training import TrainConfig, Trainer

    hu, truth, sparse, pre, case = phantom_case()
    trainer = Trainer([case], TABLE, pre, TrainConfig(**{**FAST.to_json(), "epochs": 8}), TINY)
    for _ in trainer.run():
        pass
    ambiguous = hu.copy()
    for z in PLANTED:
        ambiguous[z][truth[z] == 1] -= 24
    return trainer.best_checkpoint(), ambiguous, truth


def test_score_is_high_on_the_planted_ambiguity_and_low_on_confident_slices(model_and_ambiguous_volume):
    from unetgui.engine.inference import Predictor

    checkpoint, volume, truth = model_and_ambiguous_volume
    slices = [z for z in range(volume.shape[0]) if truth[z].any()]
    prediction = Predictor(checkpoint).predict(volume, slices)
    scores = np.full(volume.shape[0], np.nan)
    scores[slices] = slice_scores(prediction.uncertainty[slices], prediction.labels[slices])
    confident = [z for z in slices if z not in PLANTED]
    assert min(scores[z] for z in PLANTED) > 2 * np.median(scores[confident]), scores
    top = [p.slice for p in rank_slices(scores, np.zeros(volume.shape[0], bool), 2)]
    assert sorted(top) == sorted(PLANTED)


def test_cli_suggest_ranks_the_planted_slices_first_and_skips_annotated_ones(model_and_ambiguous_volume, tmp_path, capsys):
    import json

    from unetgui import cli
    from unetgui.core.volume import Volume
    from unetgui.engine import checkpoint as model_file
    from unetgui.formats import nifti

    checkpoint, volume, truth = model_and_ambiguous_volume
    model, image, labels = str(tmp_path / "m.unetgui"), str(tmp_path / "ct.nii.gz"), str(tmp_path / "l.nii.gz")
    model_file.save(checkpoint, model)
    nifti.write_image(Volume(volume, np.diag([0.8, 0.8, 2.0, 1.0]), "CT"), image)
    sparse = np.full(volume.shape, 255, np.uint8)
    sparse[PLANTED[0]] = truth[PLANTED[0]]  # already annotated: never suggested
    from unetgui.core.volume import LabelMap

    nifti.write_labels(LabelMap(sparse, np.diag([0.8, 0.8, 2.0, 1.0]), TABLE), labels)
    out = str(tmp_path / "rank.json")
    assert cli.main(["suggest", "--model", model, "--input", image, "--labels", labels, "--count", "3", "--json", out]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("rank") and len(lines) == 4
    assert lines[1].split("\t")[1] == str(PLANTED[1])
    with open(out) as f:
        ranking = json.load(f)
    assert ranking["reviewed"] == [PLANTED[0]] and ranking["scores"][PLANTED[0]] is None
    assert PLANTED[0] not in [s["slice"] for s in ranking["suggestions"]]
    assert cli.main(["suggest", "--model", model, "--input", image, "--count", "-1"]) == 1
