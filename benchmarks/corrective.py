"""Corrective annotation: train on the strokes only, or let a stroke mark its whole plane reviewed? A simulated
annotator, three strategies at the same correcting effort (docs/corrective.md has the protocol and results).

Each case and seed starts from its initially annotated slices (benchmarks/dev_cases.py: ``DevCase.annotated``)
and one model trained on them. Then ``--rounds`` rounds of: segment with the current model (as the app shows
it: with the model's post-processing), place the round's corrections, fine-tune from the previous round's
model for ``--steps`` steps, segment again. The corrections:

  (a) strokes   - "strokes only": the annotator paints ``--strokes`` strokes on the largest connected error
                  components (2-D, per slice, per true value, ranked by size over the volume); a stroke gives
                  the component's voxels their true value, at most STROKE_CAP of them (those nearest its
                  centroid), plus a RING_PX ring into correctly shown neighbours (a brush overlaps the
                  boundary). Training labels: the initial slices, the strokes, 255 (no loss) elsewhere.
  (b) reviewed  - "a stroke marks its plane reviewed": exactly (a)'s strokes, but every plane a stroke
                  touches becomes the user's labels: this strategy's own prediction on that plane when it was
                  first touched, plus every stroke since. Its uncorrected errors train as truth.
  (c) planes    - the same voxel budget as (a)'s strokes spent on correcting whole planes completely: a
                  plane costs its wrong voxels, the planes with the most errors first, a plane that does not
                  fit the remaining budget is skipped (never corrected in part); unspent budget carries over.

Dice is measured on a fixed set of held-out slices that no strategy ever corrects (every 3rd unannotated
slice with the structure and every 3rd without it); strokes and planes are placed on the other unannotated
slices only.

Training is the app's recipe: the planner's plan for the case (engine/training_run.plan_run: working size,
patch, depth, learning rate, foreground share; fine-tuning: the planner's fine-tuning rate and warm-up) with
two overrides to fit a 2-core CPU budget (MODEL_OVERRIDES), every annotated slice trains (nothing held out),
and patches drawn by engine/data.PatchSampler, which centres the patches of a stroke-only slice on its
strokes (the app's path: its cases are memory-mapped from the project cache; ``--sampler resident`` uses
the in-memory sampler that the engine picks for in-memory arrays, which does not).

    python benchmarks/corrective.py --cases phantom,mr_small,tiny --seeds 3 --rounds 4 --strokes 3 \
        --steps 40 --first-steps 120 --json corrective.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

import dev_cases  # noqa: E402
from unetgui.core.volume import UNANNOTATED, LabelTable  # noqa: E402
from unetgui.engine import postprocess  # noqa: E402
from unetgui.engine.checkpoint import Checkpoint  # noqa: E402
from unetgui.engine.data import Case, PatchSampler, with_labels  # noqa: E402
from unetgui.engine.inference import Predictor  # noqa: E402
from unetgui.engine.planner import TrainingPlan  # noqa: E402
from unetgui.engine.training import Trainer  # noqa: E402
from unetgui.engine.training_run import AnnotatedVolume, plan_run, prepare_cases, working_spacing  # noqa: E402

STRATEGIES = ("strokes", "reviewed", "planes")
#: the app's default brush diameter (ui/tool_state.py), px
BRUSH_PX = 16
#: one stroke drags the brush this far (3 brush diameters), px
STROKE_PX = 48
#: voxels one stroke annotates at most: the area a 16 px brush sweeps over 48 px (16 x 48 + the round ends)
STROKE_CAP = round(BRUSH_PX * STROKE_PX + math.pi * (BRUSH_PX / 2) ** 2)  # 969
#: the stroke's edge: correctly shown neighbours within this many px (8-connected) get their true value
RING_PX = 1
#: the planner's plan with a width-8 U-Net and batches of 8 patches: ~4x cheaper per step on a CPU
MODEL_OVERRIDES = {"base": 8, "batch_size": 8}
THREADS = 1
EIGHT = np.ones((3, 3), bool)


@dataclass
class Setup:
    """One case and seed, prepared once: the normalised image, the plans, the held-out and correctable slices."""

    case: dev_cases.DevCase
    prepared: Case
    table: LabelTable
    pre: object
    first: TrainingPlan
    fine: TrainingPlan | None
    spacing: tuple[float, float, float]  # native (z, y, x) mm
    working: tuple[float, float, float] | None
    held: list[int]
    eligible: np.ndarray  # (z,) bool: slices corrections may touch
    sampler: str


def load_case(folder: Path, name: str, seed: int) -> dev_cases.DevCase:
    key = f"{name}_{seed}" if name in dev_cases.SYNTHETIC else name
    if (folder / f"{key}.npz").exists():
        return dev_cases.load(folder, name, seed)
    if name in dev_cases.SYNTHETIC:
        return dev_cases.SYNTHETIC[name](seed)
    return dev_cases.FIXED[name]()


def held_out(case: dev_cases.DevCase) -> list[int]:
    """Every 3rd unannotated slice with the structure and every 3rd without it (from the 2nd): fixed, spread
    over the volume, and always some slices where the structure is."""
    rest = case.unannotated
    present = [z for z in rest if case.truth[z].any()]
    absent = [z for z in rest if not case.truth[z].any()]
    return sorted(present[1::3] + absent[1::3])


def make_setup(case: dev_cases.DevCase, steps: int, first_steps: int, sampler: str) -> Setup:
    table = LabelTable.from_names("structure")
    volume = AnnotatedVolume(case.name, case.image, case.sparse, case.modality, case.spacing_yx, case.spacing_z)
    overrides = {**MODEL_OVERRIDES, "epochs": 1, "threads": THREADS}
    first = plan_run([volume], table, "cpu", None, {**overrides, "steps_per_epoch": first_steps}).with_step_seconds(1.0)
    pre, (prepared,) = prepare_cases([volume], first)
    held = held_out(case)
    eligible = np.ones(case.truth.shape[0], bool)
    eligible[case.annotated + held] = False
    return Setup(case, prepared, table, pre, first, None, (case.spacing_z, *case.spacing_yx),
                 working_spacing(volume, pre), held, eligible, sampler)


def fine_plan(setup: Setup, model: Checkpoint, steps: int) -> TrainingPlan:
    """The planner's fine-tuning plan, made once from the initial annotation: the same settings for every
    strategy and round (the strategies differ in their labels only)."""
    c = setup.case
    volume = AnnotatedVolume(c.name, c.image, c.sparse, c.modality, c.spacing_yx, c.spacing_z)
    overrides = {**MODEL_OVERRIDES, "epochs": 1, "threads": THREADS, "steps_per_epoch": steps}
    return plan_run([volume], setup.table, "cpu", None, overrides, init=model).with_step_seconds(1.0)


def train(setup: Setup, labels: np.ndarray, seed: int, init: Checkpoint | None = None) -> Checkpoint:
    plan = setup.fine if init is not None else setup.first
    cfg = replace(plan.train, seed=seed)
    case = with_labels(setup.prepared, labels)
    refs = [(0, z) for z in case.annotated]  # every annotated slice trains, strokes-only slices included
    trainer = Trainer([case], setup.table, setup.pre, cfg, plan.model, init, (refs, []))
    trainer.plan, trainer.spacings = plan, [setup.working]
    if setup.sampler == "patch" and trainer._resident is not None:
        # the app's path (cases memory-mapped from the cache): patches of strokes-only slices on their strokes
        trainer._resident = None
        trainer.sampler = PatchSampler(trainer.cases, trainer.train_refs, cfg.patch, trainer.model_config.context,
                                       cfg.foreground_fraction, cfg.seed)
    for _ in trainer.run():
        pass
    return trainer.best_checkpoint()


def segment(setup: Setup, model: Checkpoint, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(post-processed as the app shows it, raw) label volumes."""
    raw = Predictor(model, device="cpu", threads=THREADS).predict(setup.case.image, keep_probabilities=False,
                                                                   postprocess=False).labels
    shown = postprocess.apply(raw, model.info.get("postprocessing"), setup.spacing, labels)
    return shown, raw


def dice(pred: np.ndarray, truth: np.ndarray, slices: list[int]) -> float:
    """Dice of label 1 over the voxels of ``slices`` together (as engine.metrics.evaluate_set counts it)."""
    p, t = pred[slices] == 1, truth[slices] == 1
    total = int(p.sum() + t.sum())
    return 1.0 if total == 0 else 2 * int((p & t).sum()) / total


def displayed(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """What the annotator sees: the labels where annotated, the segmentation elsewhere."""
    return np.where(labels != UNANNOTATED, labels, pred)


def place_strokes(shown: np.ndarray, truth: np.ndarray, annotated: np.ndarray, eligible: np.ndarray,
                  count: int) -> tuple[np.ndarray, list[int]]:
    """The round's strokes on what the annotator sees: a mask of the newly annotated voxels (each gets its true
    value) and the slice of each stroke."""
    wrong = (shown != truth) & eligible[:, None, None]
    components = []  # (size, z, value, id)
    for z in np.flatnonzero(wrong.any(axis=(1, 2))):
        for v in np.unique(truth[z][wrong[z]]):
            ids, n = ndimage.label(wrong[z] & (truth[z] == v), EIGHT)
            sizes = np.bincount(ids.ravel(), minlength=n + 1)[1:]
            components += [(int(s), int(z), int(v), i + 1) for i, s in enumerate(sizes)]
    components.sort(key=lambda c: (-c[0], c[1], c[2], c[3]))
    new = np.zeros(truth.shape, bool)
    touched = []
    for size, z, v, i in components[:count]:
        ids, _ = ndimage.label(wrong[z] & (truth[z] == v), EIGHT)
        ys, xs = np.nonzero(ids == i)
        if size > STROKE_CAP:  # the part of a large miss one stroke covers: nearest the component's centroid
            d = (ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2
            keep = np.argsort(d, kind="stable")[:STROKE_CAP]
            ys, xs = ys[keep], xs[keep]
        stroke = np.zeros(truth.shape[1:], bool)
        stroke[ys, xs] = True
        ring = ndimage.binary_dilation(stroke, EIGHT, iterations=RING_PX) & ~stroke & (shown[z] == truth[z])
        new[z] |= (stroke | ring) & ~annotated[z]
        touched.append(z)
    return new, touched


def correct_planes(shown: np.ndarray, truth: np.ndarray, done: np.ndarray, eligible: np.ndarray,
                   budget: int) -> tuple[list[int], int]:
    """Whole planes corrected within ``budget`` voxels: most errors first, a plane that does not fit is
    skipped; planes without an error cost nothing and are not taken (reviewing them is not free)."""
    cost = ((shown != truth) & (eligible & ~done)[:, None, None]).sum(axis=(1, 2))
    chosen, spent = [], 0
    for z in np.argsort(-cost, kind="stable"):
        if cost[z] == 0:
            break
        if spent + cost[z] <= budget:
            chosen.append(int(z))
            spent += int(cost[z])
    return chosen, spent


def run_seed(args, name: str, seed: int) -> dict:
    case = load_case(Path(args.cases_dir), name, seed)
    t0 = time.monotonic()
    setup = make_setup(case, args.steps, args.first_steps, args.sampler)
    truth, n = case.truth, case.truth.shape[0]
    start = case.sparse
    first = train(setup, start, seed)
    setup.fine = fine_plan(setup, first, args.steps)
    shown0, raw0 = segment(setup, first, start)
    labels = {s: start.copy() for s in STRATEGIES}
    models = {s: first for s in STRATEGIES}
    shown = {s: shown0 for s in STRATEGIES}
    out = {s: {"dice": [dice(shown0, truth, setup.held)], "dice_raw": [dice(raw0, truth, setup.held)],
               "voxels": [], "planes": [], "wrong_labels": []} for s in STRATEGIES}
    reviewed = np.zeros(n, bool)  # (b): planes the user's labels cover
    done = np.zeros(n, bool)  # (c): planes corrected completely
    carry = 0
    for r in range(1, args.rounds + 1):
        # (a): strokes on what the annotator sees with the strokes-only model
        seen = displayed(shown["strokes"], labels["strokes"])
        new, touched = place_strokes(seen, truth, labels["strokes"] != UNANNOTATED, setup.eligible, args.strokes)
        effort = int(new.sum())
        labels["strokes"][new] = truth[new]
        # (b): the same strokes; a plane first touched now takes this strategy's own segmentation as its labels
        lb = labels["reviewed"]
        for z in sorted(set(touched)):
            if not reviewed[z]:
                lb[z] = displayed(shown["reviewed"][z], lb[z])
                reviewed[z] = True
        lb[new] = truth[new]
        # (c): the same voxel budget on whole planes
        planes, spent = correct_planes(displayed(shown["planes"], labels["planes"]), truth, done, setup.eligible,
                                       effort + carry)
        carry = effort + carry - spent
        for z in planes:
            labels["planes"][z] = truth[z]
            done[z] = True
        out["strokes"]["voxels"].append(effort)
        out["reviewed"]["voxels"].append(effort)
        out["planes"]["voxels"].append(spent)
        stroked = np.flatnonzero((labels["strokes"] != UNANNOTATED).any(axis=(1, 2)) & setup.eligible)
        out["strokes"]["planes"].append(len(stroked))
        out["reviewed"]["planes"].append(int(reviewed.sum()))
        out["planes"]["planes"].append(int(done.sum()))
        for s in STRATEGIES:
            lab = labels[s]
            out[s]["wrong_labels"].append(int(((lab != UNANNOTATED) & (lab != truth)).sum()))
            models[s] = train(setup, lab, seed * 100 + r, init=models[s])
            shown[s], raw = segment(setup, models[s], lab)
            out[s]["dice"].append(dice(shown[s], truth, setup.held))
            out[s]["dice_raw"].append(dice(raw, truth, setup.held))
    seconds = time.monotonic() - t0
    print(f"  {case.name} seed {seed}: {seconds:.0f} s; held out {setup.held}; initial {case.annotated}", flush=True)
    for s in STRATEGIES:
        print(f"    {s:8s} Dice " + " ".join(f"{d:.3f}" for d in out[s]["dice"]) + "  voxels " +
              " ".join(str(v) for v in out[s]["voxels"]) + "  planes " + " ".join(str(p) for p in out[s]["planes"]) +
              "  wrong labels " + " ".join(str(w) for w in out[s]["wrong_labels"]), flush=True)
    return {"case": case.name, "seconds": seconds, "held": setup.held, "initial": case.annotated,
            "shape": list(case.truth.shape), "plan": setup.first.summary(), "fine_plan": setup.fine.summary(), **out}


def pm(values) -> str:
    a = np.asarray(values, float)
    return f"{a.mean():.3f} ± {a.std():.3f}"


def report(name: str, runs: list[dict], rounds: int) -> dict:
    print(f"\n{name}: {runs[0]['shape'][0]} slices of {runs[0]['shape'][1]}x{runs[0]['shape'][2]} (first seed); "
          f"Dice on the held-out slices, mean ± std over {len(runs)} seed(s); raw: without the post-processing")
    print(f"  plan: {runs[0]['plan']}")
    print("| round | " + " | ".join(str(r) for r in range(rounds + 1)) + " |")
    print("|---" * (rounds + 2) + "|")
    curves = {s: np.array([run[s]["dice"] for run in runs]) for s in STRATEGIES}
    for key, suffix in (("dice", ""), ("dice_raw", " (raw)")):
        for s in STRATEGIES:
            c = np.array([run[s][key] for run in runs])
            print(f"| {s}{suffix} | " + " | ".join(pm(c[:, r]) for r in range(rounds + 1)) + " |")
    for s in ("strokes", "planes"):
        v = np.array([run[s]["voxels"] for run in runs])
        print(f"| voxels/round ({s}) | - | " + " | ".join(f"{m:.0f}" for m in v.mean(0)) + " |")
    for s in STRATEGIES:
        p = np.array([run[s]["planes"] for run in runs])
        print(f"| planes touched ({s}) | - | " + " | ".join(f"{m:.1f}" for m in p.mean(0)) + " |")
    w = np.array([run["reviewed"]["wrong_labels"] for run in runs])
    print("| wrong voxels in reviewed's labels | - | " + " | ".join(f"{m:.0f}" for m in w.mean(0)) + " |")
    diffs = {}
    raw = {s: np.array([run[s]["dice_raw"] for run in runs]) for s in STRATEGIES}
    for other in ("reviewed", "planes"):
        d = curves["strokes"] - curves[other]  # paired by seed
        e = raw["strokes"] - raw[other]
        diffs[other] = {"final": d[:, -1].tolist(), "mean_rounds": d[:, 1:].mean(1).tolist(),
                        "final_raw": e[:, -1].tolist()}
        print(f"  strokes - {other}: final round {pm(d[:, -1])} (per seed " + " ".join(f"{v:+.3f}" for v in d[:, -1]) +
              f"), mean over rounds 1-{rounds} {pm(d[:, 1:].mean(1))}; raw final {pm(e[:, -1])} (per seed " +
              " ".join(f"{v:+.3f}" for v in e[:, -1]) + ")")
    return diffs


def summarise(results: dict, rounds: int) -> dict:
    summary = {name: report(name, runs, rounds) for name, runs in results.items()}
    print("\nOverall (paired per case and seed): strokes minus the other strategy")
    for other in ("reviewed", "planes"):
        final = [v for s in summary.values() for v in s[other]["final"]]
        mean = [v for s in summary.values() for v in s[other]["mean_rounds"]]
        raw = [v for s in summary.values() for v in s[other]["final_raw"]]
        print(f"  vs {other}: final round {pm(final)} (ahead in {sum(v > 0.005 for v in final)}, behind in "
              f"{sum(v < -0.005 for v in final)} of {len(final)} runs), mean over rounds {pm(mean)}; raw final "
              f"{pm(raw)} (ahead {sum(v > 0.005 for v in raw)}, behind {sum(v < -0.005 for v in raw)})")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="phantom,mr_small,tiny")
    parser.add_argument("--cases-dir", default=str(ROOT / "benchmarks" / ".cases"),
                        help="the .npz of benchmarks/dev_cases.py (built on the fly where missing)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--strokes", type=int, default=3, help="strokes per round")
    parser.add_argument("--steps", type=int, default=40, help="fine-tuning steps per round")
    parser.add_argument("--first-steps", type=int, default=120, help="steps of the first model")
    parser.add_argument("--sampler", choices=("patch", "resident"), default="patch")
    parser.add_argument("--json", help="write every curve here")
    parser.add_argument("--table", help="print the tables of a --json file written before, and run nothing")
    args = parser.parse_args()
    if args.table:
        saved = json.loads(Path(args.table).read_text())
        summarise(saved["results"], saved["args"]["rounds"])
        print(f"\n{saved['args']}; total {saved['seconds']:.0f} s")
        return
    start = time.monotonic()
    print(f"stroke cap {STROKE_CAP} voxels (brush {BRUSH_PX} px x {STROKE_PX} px), ring {RING_PX} px, "
          f"{args.strokes} strokes per round, {args.first_steps} + {args.rounds} x {args.steps} steps, "
          f"overrides {MODEL_OVERRIDES}, {THREADS} thread(s), sampler {args.sampler}", flush=True)
    results = {}
    for name in args.cases.split(","):
        print(f"\n== {name}", flush=True)
        results[name] = [run_seed(args, name, seed) for seed in range(args.seeds)]
    summary = summarise(results, args.rounds)
    total = time.monotonic() - start
    print(f"\ntotal {total:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "stroke_cap": STROKE_CAP, "ring_px": RING_PX,
                                               "overrides": MODEL_OVERRIDES, "seconds": total, "results": results,
                                               "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
