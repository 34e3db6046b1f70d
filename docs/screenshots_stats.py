"""Screenshot of the statistics dock on a CT with three liver lesions in one "Lesion" label: the Pieces tab lists
each lesion with its volume and RECIST diameters, and the second one was clicked: the view went to the slice of its
longest diameter, zoomed in, with its calipers drawn.

    xvfb-run -a -s "-screen 0 1280x800x24" python docs/screenshots_stats.py

The CT is TotalSegmentator's 20-slice example (../shared/data) with the lesions of benchmarks/dev_cases.py's
``ct_lesion`` seeds 0, 1 and 2 inserted into its texture (each seed's change to the CT added up). Writes
docs/images/stats_lesions.png; and docs/images/stats_sample.png, the sample's statistics.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "docs"))

from dev_cases import DATA, ct_lesion  # noqa: E402
from shots import grab, later, wait_for  # noqa: E402

from unetgui.app import create_app  # noqa: E402
from unetgui.core.volume import Label, LabelMap, LabelTable  # noqa: E402
from unetgui.formats.dicom import load_series, scan  # noqa: E402
from unetgui.ui.main_window import MainWindow  # noqa: E402


def sample(app) -> None:
    """docs/images/stats_sample.png: the sample opened as a user opens it, with its statistics dock."""
    from unetgui.app import RESOURCES

    window = MainWindow(resources=str(RESOURCES))
    window.resize(1280, 800)
    window.show()
    window.open_sample()
    out = ROOT / "docs" / "images" / "stats_sample.png"

    def shoot() -> None:
        window.docks["Statistics"].show()
        later(300, lambda: wait_for(lambda: not window.stats.pending,
                                    lambda: later(500, lambda: (grab(window, out), print(f"wrote {out}"),
                                                                window.close(), app.quit()))))

    wait_for(lambda: window.session.volume is not None and not window.runner.busy, shoot)
    app.exec()


def main() -> int:
    app = create_app([])
    sample(app)
    base = load_series(scan(str(DATA / "totalsegmentator-example-ct-dicom")).series[0])
    hu = base.voxels.astype(np.float32)
    truth = np.zeros(base.shape, np.uint8)
    for seed in (0, 1, 2):
        case = ct_lesion(seed)
        hu += case.image.astype(np.float32) - base.voxels  # this seed's lesion, in the CT's texture
        truth |= case.truth
    window = MainWindow()
    window.resize(1280, 800)
    window.show()
    volume = type(base)(np.round(hu).astype(np.int16), base.affine, "CT")
    window.session.open(volume, LabelMap(truth, base.affine.copy(), LabelTable((Label(1, "Lesion", (240, 170, 40)),))))
    window.docks["Statistics"].show()
    panel = window.stats
    out = ROOT / "docs" / "images" / "stats_lesions.png"

    def shoot() -> None:
        panel.tabs.setCurrentIndex(1)
        panel.pieces.selectRow(1)
        panel.pieces.cellClicked.emit(1, 0)  # as a click on the second lesion
        later(300, lambda: (window.area.set_three_planes(False),
                            window.view.zoom_to(tuple(slice(max(0, c - 30), c + 30) for c in window.session.position),
                                                margin_mm=0)))
        later(1200, lambda: (grab(window, out), print(f"wrote {out}"), app.quit()))

    later(500, lambda: wait_for(lambda: not panel.pending, shoot))
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
