"""The app's side of "segmenting a 500-slice CT fills the overlay in about a second": the real window
(offscreen), its segmentation job, worker thread, signals, Session and views, fed by a predictor that hands
over precomputed batches instantly (a GPU as fast as can be). What this measures is what the app adds on top
of benchmarks/gpu_throughput.py's pipeline time.

Usage: QT_QPA_PLATFORM=offscreen python benchmarks/overlay_fill.py [--slices 500] [--batch 64]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=500)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("UNETGUI_DATA", tempfile.mkdtemp(prefix="unetgui-bench-"))

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tempfile.mkdtemp())
    from unetgui.app import create_app
    from unetgui.core.volume import LabelTable, Volume
    from unetgui.engine import inference
    from unetgui.engine.checkpoint import Checkpoint
    from unetgui.engine.preprocessing import Preprocessing
    from unetgui.engine.unet import UNet, UNetConfig
    from unetgui.ui.main_window import MainWindow

    n, s = args.slices, args.size
    rng = np.random.default_rng(0)
    labels = np.zeros((args.batch, s, s), np.uint8)
    labels[:, s // 3:s // 2, s // 4:s // 2] = 1
    uncert = rng.integers(0, 60, (args.batch, s, s)).astype(np.uint8)
    probs = np.zeros((args.batch, 2, s, s), np.uint8)
    scores = rng.random(args.batch).astype(np.float32)

    class InstantPredictor:  # the real Predictor's interface, results ready at once
        def __init__(self, checkpoint, device="auto", scores=False, **_):
            self.device_name, self.notes = "instant", []

        def run(self, voxels, slices=None, cancel=None):
            order = list(range(voxels.shape[0])) if slices is None else list(slices)
            for i in range(0, len(order), args.batch):
                part = order[i:i + args.batch]
                k = len(part)
                yield inference.SliceBatch(tuple(part), labels[:k], probs[:k], i + k, len(order), 0.0, uncert[:k], scores[:k])

    inference.Predictor = InstantPredictor
    create_app([])
    window = MainWindow()
    window.resize(1400, 900)
    window.show()
    volume = Volume(rng.integers(-1000, 1000, (n, s, s)).astype(np.int16), np.eye(4), "CT")
    window.session.open(volume)
    checkpoint = Checkpoint.from_model(UNet(UNetConfig(base=4, depth=2)), Preprocessing(), LabelTable.from_names("liver"))
    window.models.checkpoint = checkpoint
    times = []
    for _ in range(args.repeat):
        done = []
        window.models.segment_done.connect(done.append)
        start = time.perf_counter()
        window.models.segment()
        while not done:
            QApplication.processEvents()
            time.sleep(0.001)
        times.append(time.perf_counter() - start)
        window.models.segment_done.disconnect(done.append)
    filled = int((window.session.labels.labels == 1).any(axis=(1, 2)).sum())
    assert filled == n, f"{filled} of {n} slices got the prediction"
    print(f"{n} slices of {s} x {s} in batches of {args.batch}, instant predictor: the app took "
          f"{min(times):.2f} s (best of {args.repeat}: {', '.join(f'{t:.2f}' for t in times)}) to fill the overlay")
    window.close()


if __name__ == "__main__":
    main()
