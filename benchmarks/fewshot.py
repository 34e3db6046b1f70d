"""Few-shot training benchmark: Dice on the unannotated slices after a CPU time budget, the recipe before the
planner ("old": the cpu preset as `unetgui train` used it, with a held-out slice and the best validation
epoch) beside the planned one ("new" and "finetune": tasks/train.py and tasks/segment.py, the path the app
runs, with the case as the app's open document), several seeds, on the development cases of
benchmarks/dev_cases.py.

    python benchmarks/dev_cases.py benchmarks/.cases           # once: the cases as .npz (needs the shared data)
    python benchmarks/fewshot.py --cases benchmarks/.cases --minutes 1 --seeds 0 1 2 --jobs 1 --out result.json
    python benchmarks/fewshot.py --table result.json            # the markdown table

Each run is its own process with ``--threads`` CPU threads (default 2: the development machine), so several
can run side by side on a machine with more cores (``--jobs``); the two recipes of a case and seed always
run under the same conditions. Synthetic cases are a different volume per seed. Extra recipe variants for
ablations: ``new-noema`` (no weight averaging), ``new-noelastic``, ``new-val`` (hold out a validation slice
as the old recipe did), ``new-context1`` (2.5-D: one neighbouring slice on each side as input channels),
``new-border`` (the U-Net paper's border weight map), ``finetune`` (retraining after a correction: see run_one).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_LOCK = threading.Lock()
RECIPES = ("old", "new", "new-noema", "new-noelastic", "new-val", "new-context1", "new-border", "finetune")


def _dice(pred: np.ndarray, truth: np.ndarray) -> float:
    p, t = pred > 0, truth > 0
    return float(2 * (p & t).sum() / max(p.sum() + t.sum(), 1))


def _old_trainer(case, table, minutes: float, seed: int, threads: int):
    """The recipe before the planner: cpu preset (base 16, depth 4, 256 px working size and square patch,
    batch 4, 50 steps per epoch), every ~6th annotated slice held out, best validation epoch kept."""
    from unetgui.engine.data import prepare_case
    from unetgui.engine.preprocessing import Preprocessing
    from unetgui.engine.training import TrainConfig, Trainer
    from unetgui.engine.unet import UNetConfig

    working = 256 if max(case.image.shape[1:]) > 256 else None
    pre = Preprocessing.for_modality(case.modality, working).fit_statistics([case.image], [case.sparse])
    cases = [prepare_case(case.name, case.image, case.sparse, pre)]
    cfg = TrainConfig(epochs=100_000, minutes=minutes, batch_size=4, patch=256, seed=seed, device="cpu", threads=threads)
    return Trainer(cases, table, pre, cfg, UNetConfig(classes=2, base=16, depth=4))


def _new_trainer(case, table, minutes: float, seed: int, threads: int, extra: dict | None = None, init=None):
    from unetgui.engine.training_run import AnnotatedVolume, build_trainer

    volume = AnnotatedVolume(case.name, case.image, case.sparse, case.modality, case.spacing_yx, case.spacing_z)
    return build_trainer([volume], table, "cpu", minutes, {"seed": seed, "threads": threads, **(extra or {})}, init)


def _task_train(case, table, minutes: float, seed: int, threads: int, extra: dict | None = None, init=None):
    """Train as the app does (tasks/train.py on the case as the open document): (checkpoint, epochs, plan, notes)."""
    from unetgui.core.progress import run_to_end
    from unetgui.engine.events import EpochStats
    from unetgui.tasks.sources import ProjectSource
    from unetgui.tasks.train import TrainRequest, TrainStarted, train

    request = TrainRequest("cpu", minutes, {"seed": seed, "threads": threads, **(extra or {})}, init)
    events = []
    result = run_to_end(train(request, ProjectSource(_volume(case), case.sparse, table)), events.append)
    plan = next(e.plan for e in events if isinstance(e, TrainStarted))
    return result.checkpoint, sum(isinstance(e, EpochStats) for e in events), plan, list(result.notes)


def _volume(case):
    from unetgui.core.volume import Volume

    return Volume(case.image, np.diag([case.spacing_yx[1], case.spacing_yx[0], case.spacing_z, 1.0]), case.modality)


def run_one(cases_dir: Path, name: str, seed: int, recipe: str, minutes: float, threads: int,
            extra: dict | None = None) -> dict:
    import torch

    from dev_cases import load
    from unetgui.core.volume import LabelTable
    from unetgui.tasks.segment import SegmentRequest, collect

    torch.set_num_threads(threads)
    case = load(cases_dir, name, seed)
    table = LabelTable.from_names("structure")
    start = time.monotonic()
    trainer, notes = None, []
    if recipe in ("new", "finetune"):  # the product's path
        init = None
        if recipe == "finetune":
            # retraining after a correction: a model planned on all annotated slices but the middle one (trained
            # for the same budget, not counted), then the corrected middle slice joins and the model is
            # fine-tuned for the budget; "new" is the same budget from scratch on all of them
            middle = case.annotated[len(case.annotated) // 2]
            first_case = replace(case, annotated=[z for z in case.annotated if z != middle])
            init = _task_train(first_case, table, minutes, seed, threads)[0]
            start = time.monotonic()
        checkpoint, epochs, plan, notes = _task_train(case, table, minutes, seed, threads, extra, init)
        plan = plan.summary()
    else:  # the old recipe and the ablations: the engine directly
        trainer = _old_trainer(case, table, minutes, seed, threads) if recipe == "old" else _new_trainer(
            case, table, minutes, seed, threads, extra)
        if recipe == "new-noema":
            trainer = _rebuild(trainer, ema=None)
        elif recipe == "new-noelastic":
            trainer = _rebuild(trainer, elastic=False)
        elif recipe == "new-val":
            trainer = _rebuild(trainer, holdout_min=0)
        elif recipe == "new-context1":
            trainer = _rebuild(trainer, model={"context": 1})
        elif recipe == "new-border":
            trainer = _rebuild(trainer, border_weight=10.0)
        epochs = sum(hasattr(event, "val_dice") for event in trainer.run())
        checkpoint = trainer.best_checkpoint()
        notes = list(getattr(trainer, "notes", []))
        plan = trainer.plan.summary() if trainer.plan is not None else "old recipe"
    if recipe == "old":
        checkpoint.info.pop("postprocessing", None)  # the old recipe had none
    train_seconds = time.monotonic() - start
    # as the app segments the annotated volume: the slice spacing and the user's annotation go with it
    volume = _volume(case)
    labels = collect(SegmentRequest("cpu", compile=False, threads=threads), checkpoint, volume,
                     annotation=case.sparse).labels
    raw = collect(SegmentRequest("cpu", compile=False, postprocess=False, threads=threads), checkpoint, volume).labels
    rest, seen = case.unannotated, case.annotated
    empty = [z for z in rest if not case.truth[z].any()]  # other slices without the structure
    return {"case": name, "seed": seed, "recipe": recipe, "minutes": minutes, "dice": _dice(labels[rest], case.truth[rest]),
            "dice_without_postprocessing": _dice(raw[rest], case.truth[rest]),
            "dice_annotated": _dice(raw[seen], case.truth[seen]),
            "fp_voxels": int((labels[empty] > 0).sum()), "fp_voxels_without_postprocessing": int((raw[empty] > 0).sum()),
            "fp_slices": int((labels[empty] > 0).any(axis=(1, 2)).sum()), "empty_slices": len(empty),
            "epochs": epochs, "train_seconds": round(train_seconds, 1),
            "postprocessing": {k: v for k, v in (checkpoint.info.get("postprocessing") or {}).items() if k != "scores"},
            "fit_note": [n for n in notes if "learned" in n],
            "plan": plan,
            "misclassified": float(((labels[rest] > 0) != (case.truth[rest] > 0)).mean())}


def _rebuild(trainer, model: dict | None = None, **changes):
    """The same planned run with some training (and model) settings changed (ablations)."""
    from unetgui.engine.training import Trainer

    plan = replace(trainer.plan, train=replace(trainer.plan.train, **changes),
                   model=replace(trainer.plan.model, **(model or {})))
    fresh = Trainer(trainer.source_cases, trainer.labels, trainer.preprocessing, plan.train, plan.model)
    fresh.plan = plan
    return fresh


def _spawn(args, job) -> dict:
    name, seed, recipe, minutes = job
    cmd = [sys.executable, __file__, "--run", name, str(seed), recipe, str(minutes), "--cases", str(args.cases),
           "--threads", str(args.threads), "--extra", json.dumps(args.extra or {})]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        return {"case": name, "seed": seed, "recipe": recipe, "minutes": minutes, "error": out.stderr[-800:]}
    result = json.loads(lines[-1])
    if args.tag:
        result["tag"] = args.tag
    if args.extra:
        result["extra"] = args.extra
    print(json.dumps(result), flush=True)
    if args.out:  # one line per finished run, so a run cut short keeps what it measured
        with _LOCK, open(args.out.with_suffix(".jsonl"), "a") as f:
            f.write(json.dumps(result) + "\n")
    return result


def table(results: list[dict]) -> str:
    """Markdown: one row per case and budget, mean +- std over seeds per recipe (or per ``--tag``, e.g. before /
    after): the Dice on the slices nobody annotated; where the results have them, the Dice on the annotated
    slices (the fit) and the false-positive voxels on the other slices without the structure."""
    variant = lambda x: x.get("tag") or x["recipe"]  # noqa: E731
    variants = list(dict.fromkeys(variant(x) for x in results if "dice" in x))
    keys = sorted({(x["case"], x["minutes"]) for x in results}, key=lambda k: (k[1], k[0]))
    fit = any("dice_annotated" in x for x in results)
    head = ["Dice other slices"] + (["Dice annotated", "FP voxels (slices)"] if fit else [])
    rows = ["| case | budget | " + " | ".join(f"{v}: {h}" for v in variants for h in head) + " |",
            "|---|---|" + "---|" * (len(variants) * len(head))]
    for case, minutes in keys:
        cells = []
        for v in variants:
            runs = [x for x in results if (x["case"], x["minutes"]) == (case, minutes) and variant(x) == v and "dice" in x]
            if not runs:
                cells += [""] * len(head)
                continue
            d = [x["dice"] for x in runs]
            cells.append(f"{np.mean(d):.3f} +- {np.std(d):.3f}")
            if fit:
                a = [x.get("dice_annotated", np.nan) for x in runs]
                cells.append(f"{np.mean(a):.3f} +- {np.std(a):.3f}")
                fp = [x.get("fp_voxels", 0) for x in runs]
                sl = [x.get("fp_slices", 0) for x in runs]
                cells.append(f"{np.mean(fp):.0f} ({np.mean(sl):.1f} of {np.mean([x.get('empty_slices', 0) for x in runs]):.0f})")
        seeds = max(len([x for x in results if (x["case"], x["minutes"]) == (case, minutes) and variant(x) == v])
                    for v in variants)
        rows.append(f"| {case} | {minutes:g} min (n={seeds}) | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=Path(__file__).resolve().parent / ".cases")
    parser.add_argument("--only", nargs="*", help="case names (default: all)")
    parser.add_argument("--recipes", nargs="*", default=["old", "new"], choices=RECIPES)
    parser.add_argument("--minutes", type=float, nargs="*", default=[1.0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--extra", type=json.loads, help="planner overrides for the new recipe, as JSON (ablations)")
    parser.add_argument("--tag", help="a name for this run's code (e.g. before / after), kept in each result")
    parser.add_argument("--table", type=Path, help="print the table of a result file and exit")
    parser.add_argument("--run", nargs=4, metavar=("CASE", "SEED", "RECIPE", "MINUTES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.table:
        text = args.table.read_text()
        print(table(json.loads(text) if args.table.suffix == ".json" else [json.loads(ln) for ln in text.splitlines() if ln]))
        return
    if args.run:
        name, seed, recipe, minutes = args.run
        print(json.dumps(run_one(args.cases, name, int(seed), recipe, float(minutes), args.threads, args.extra)), flush=True)
        return
    from dev_cases import CASES

    names = args.only or CASES
    jobs = [(n, s, r, m) for m in args.minutes for n in names for s in args.seeds for r in args.recipes]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda job: _spawn(args, job), jobs))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    print(table(results))
    for r in results:
        if "error" in r:
            print(f"FAILED {r['case']} seed {r['seed']} {r['recipe']}: {r['error']}", file=sys.stderr)


if __name__ == "__main__":
    main()
