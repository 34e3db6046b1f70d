"""Composition root of the desktop app: QApplication, main window, event loop."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from unetgui import __version__
from unetgui.core import crashlog
from unetgui.ui.main_window import MainWindow



def _resources() -> Path:
    """The icon and the sample study: in a PyInstaller bundle under _MEIPASS, in an installed wheel inside
    the package (unetgui/resources, see pyproject.toml), in a source checkout the repo's resources/."""
    if hasattr(sys, "_MEIPASS"):
        return Path(sys._MEIPASS) / "resources"
    here = Path(__file__).resolve().parent
    return here / "resources" if (here / "resources").is_dir() else here.parent / "resources"


RESOURCES = _resources()


def create_app(argv: list[str]) -> QApplication:
    if QApplication.instance() is None:  # the 3-D view's dock keeps its OpenGL context when floated (ui/view3d.py)
        QApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)
    app = QApplication.instance() or QApplication([sys.argv[0], *argv])
    app.setApplicationName("unetgui")
    app.setOrganizationName("unetgui")
    app.setApplicationVersion(__version__)
    icon = RESOURCES / "unetgui.svg"
    if icon.is_file():  # absent only in a wheel install without resources; Qt then uses its default
        app.setWindowIcon(QIcon(str(icon)))
    return app


def run(argv: list[str]) -> int:
    """Open the main window and run the event loop.

    ``unetgui PATH`` opens a DICOM folder, NIfTI file or project folder; ``--sample`` the sample study;
    ``--self-test`` opens the window, segments the sample and exits 0 (used to check an installed bundle).
    """
    if "--self-test" in argv:
        return self_test(argv)
    app = create_app(argv)
    window = MainWindow(resources=str(RESOURCES))
    install_last_resort(window)
    window.show()
    window.projects.retire_old()
    paths = [a for a in argv if not a.startswith("-")]
    if window.projects.check_crash():  # a crash last time: its project first (its edits are offered back)
        if paths or "--sample" in argv:
            window.statusBar().showMessage("The project open at the crash was reopened first; open "
                                           f"{paths[0] if paths else 'the sample'} again when you are ready.", 15000)
    elif "--sample" in argv:
        window.open_sample()
    elif paths:
        window.open_path(paths[0])
    return app.exec()


def install_last_resort(window: MainWindow) -> None:
    """An exception that escapes an event handler (a bug, a file error nobody caught) is logged with its
    traceback (core/crashlog.py) and shown in one line; the app goes on, the annotation is autosaved."""
    shown: set[str] = set()

    def hook(kind, exc, tb) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, exc, tb)
            return
        message = crashlog.report(exc.with_traceback(tb), "app")
        last = traceback.extract_tb(tb)[-1:] if tb is not None else []
        key = f"{kind.__name__} {last[0].filename}:{last[0].lineno}" if last else kind.__name__
        if key not in shown:  # one box per error and place, not one per repaint
            shown.add(key)
            window.io.warn("unetgui met an unexpected error; your annotation is autosaved and you can go on",
                           [message])

    sys.excepthook = hook


def bundle_checks(volume, labels) -> str:
    """What a bundle must carry beyond the segmentation, run on the sample's labels: the statistics with surface
    areas (PyMCubes), a decimated STL mesh (fast-simplification), a C-ECHO to a DICOM server started here on
    loopback (pynetdicom), the DICOMweb client; and whether the 3-D view can draw (said, not required: offscreen
    has no OpenGL). A line that says what ran; an exception names what is missing."""
    import tempfile

    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    import dicomweb_client  # noqa: F401 - the DICOMweb client of File > Open from archive
    from unetgui.formats import mesh
    from unetgui.net import dimse
    from unetgui.net.nodes import Node
    from unetgui.tasks.stats import document_statistics
    from unetgui.ui.view3d import opengl_problem

    stats = [r for r in document_statistics(volume, labels) if r.voxels]
    if not stats or not all(r.surface_mm2 and r.surface_mm2 > 0 for r in stats):
        raise RuntimeError("the statistics measured no surface area")
    surface = mesh.surface(labels.labels == stats[0].label, labels.affine, decimate=0.5)
    with tempfile.TemporaryDirectory(prefix="unetgui-selftest-") as folder:
        mesh.write(surface, os.path.join(folder, "label.stl"), "stl")
    server_ae = AE(ae_title="SELFTEST")
    server_ae.add_supported_context(Verification)
    server = server_ae.start_server(("127.0.0.1", 0), block=False)
    try:
        seconds = dimse.echo(Node("self-test", host="127.0.0.1", port=server.server_address[1], called_aet="SELFTEST",
                                  timeout_s=10))
    finally:
        server.shutdown()
    gl = opengl_problem()
    return (f"statistics of {len(stats)} label(s) with surface areas, a decimated STL of {len(surface.faces)} "
            f"triangles, a C-ECHO in {seconds * 1000:.0f} ms; 3-D view: {'not here (' + gl + ')' if gl else 'OpenGL'}")


def self_test(argv: list[str], timeout_s: float = 300.0) -> int:
    """Open the window, open the sample (in a temp folder), segment it, check the result, exit 0."""
    import tempfile
    import time

    from PySide6.QtCore import QSettings, QTimer

    scratch = None if os.environ.get("UNETGUI_DATA") else tempfile.mkdtemp(prefix="unetgui-selftest-")
    if scratch:
        os.environ["UNETGUI_DATA"] = scratch  # the sample copy goes here, removed at the end
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)  # the user's settings (recent projects) stay untouched
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, scratch or os.environ["UNETGUI_DATA"])
    app = create_app([a for a in argv if a != "--self-test"])
    window = MainWindow(resources=str(RESOURCES))
    window.show()
    started, result = time.monotonic(), {"code": 1, "message": "timed out"}

    def finish(code: int, message: str) -> None:
        result.update(code=code, message=message)
        window.close()
        app.quit()

    def segmented(message: str) -> None:
        s = window.session
        predicted = [z for z in range(s.volume.shape[0]) if not s.reviewed[z] and (s.labels.labels[z] == 1).any()]
        if len(predicted) < (~s.reviewed).sum() // 2:
            finish(1, f"self-test failed: only {len(predicted)} slices got a segmentation")
            return
        try:
            features = bundle_checks(s.volume, s.labels)
        except Exception as exc:  # noqa: BLE001 - a library missing from the bundle: say which, fail
            finish(1, f"self-test failed: {exc.__class__.__name__}: {exc}")
            return
        finish(0, f"self-test passed: {message}; {len(predicted)} unannotated slices segmented "
                  f"in {time.monotonic() - started:.1f} s; {features}")

    def ready() -> None:
        if window.models.checkpoint is None:
            QTimer.singleShot(200, ready)  # the project's model is still loading
            return
        window.models.segment()

    window.models.segment_done.connect(segmented)
    window.models.failed.connect(lambda message: finish(1, f"self-test failed: {message}"))
    window.io.busy.connect(lambda text: print(text, flush=True) if text else None)
    window.projects.ready.connect(ready)
    QTimer.singleShot(int(timeout_s * 1000), lambda: finish(1, "self-test failed: timed out"))
    watch = QTimer(window)  # an error dialog (e.g. the sample missing) ends the test at once
    watch.timeout.connect(lambda: window.io.last_error and finish(1, "self-test failed"))
    watch.start(250)
    window.open_sample()
    app.exec()
    if scratch:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
    print(f"unetgui {__version__}: {result['message']}" + ("" if result["code"] == 0 else f" ({window.io.last_error})"), flush=True)
    return result["code"]
