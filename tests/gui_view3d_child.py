"""Child process of the 3-D view's rendering test (tests/ui/test_gui_view3d.py): the real window on a real X
display (Xvfb, Mesa's software OpenGL) opens the sample, shows the 3-D view and checks what it draws; then paints
a stroke of the liver far from the annotated slices and checks that the surface follows while the event loop
keeps running. Prints a JSON summary and exits 0; exits 1 with a message on the first failure.

    xvfb-run -a -s "-screen 0 1280x800x24" python gui_view3d_child.py TMPDIR

TMPDIR receives the settings, the sample's project, ``view3d.png`` (the screen) and ``view3d_gl.png`` (the 3-D
view's framebuffer).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

BUDGET_S = 55  # the whole run; the test kills the child a little later
started = time.monotonic()


def fail(message: str) -> None:
    print(f"FAILED: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def wait(app, condition, seconds: float, what: str) -> None:
    """Run the event loop until ``condition()`` (or fail after ``seconds`` or the whole budget)."""
    deadline = min(time.monotonic() + seconds, started + BUDGET_S)
    while not condition():
        if time.monotonic() > deadline:
            fail(f"timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.005)


def pieces(mesh) -> int:
    """Connected parts of a mesh (shared vertices)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = mesh.faces
    rows, cols = np.concatenate([f[:, 0], f[:, 1], f[:, 2]]), np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    n = len(mesh.vertices)
    return int(connected_components(coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)), directed=False)[0])


def hue_share(image, rgb: tuple[int, int, int]) -> int:
    """Pixels of a QImage whose hue lies within 20 degrees of ``rgb``'s and that are coloured (shading changes
    brightness, not hue)."""
    from PySide6.QtGui import QColor, QImage

    image = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height = image.width(), image.height()
    pixels = np.frombuffer(image.constBits(), np.uint8, image.bytesPerLine() * height)
    pixels = pixels.reshape(height, image.bytesPerLine())[:, :width * 3].reshape(height, width, 3).astype(float) / 255
    hi, lo = pixels.max(axis=2), pixels.min(axis=2)
    chroma = hi - lo
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    safe = np.where(chroma > 0, chroma, 1)
    hue = np.where(hi == r, ((g - b) / safe) % 6, np.where(hi == g, (b - r) / safe + 2, (r - g) / safe + 4)) * 60
    target = QColor(*rgb).hsvHueF() * 360
    near = np.abs((hue - target + 180) % 360 - 180) < 20
    return int(np.count_nonzero(near & (chroma / np.maximum(hi, 1e-6) > 0.25) & (hi > 0.15)))


def check_orientation(view, corners: np.ndarray) -> None:
    """The front view (also after Reset view): the patient's right on the screen's left, the head up, the front
    nearest (pyqtgraph's view space: x right, y up, the camera looking down -z)."""
    from PySide6.QtGui import QVector3D

    view.gl.orbit(70, 25)  # the user turned it
    view.reset_button.click()
    centre = (corners.min(axis=0) + corners.max(axis=0)) / 2
    matrix = view.gl.viewMatrix()

    def seen(offset) -> QVector3D:
        return matrix.map(QVector3D(*(centre + np.asarray(offset, float))))

    middle, right, head, front = seen((0, 0, 0)), seen((50, 0, 0)), seen((0, 0, 50)), seen((0, 50, 0))
    if not (right.x() < middle.x() and head.y() > middle.y() and front.z() > middle.z()):
        fail("the reset view is not the patient's front with the head up and the right on the screen's left")
    if abs(middle.x()) > 1e-3 or abs(middle.y()) > 1e-3:
        fail("the reset view is not centred on the image")


def check_hide_and_recolour(app, view, session, liver: int, ready: list) -> None:
    """Hiding the label removes its surface at once; showing it again builds it; a new colour is drawn."""
    from dataclasses import replace

    view.tools.set_overlay(hidden={liver})
    if liver in view.meshes or liver in view._items:
        fail("a hidden label's surface is still shown")
    count = len(ready)
    view.tools.set_overlay(hidden=set())
    wait(app, lambda: len(ready) > count and liver in view.meshes, 20, "the surface of a label shown again")
    session.update_label(replace(session.table.get(liver), color=(40, 200, 60)))
    wait(app, lambda: time.monotonic() - ready[-1] > 0.3, 5, "a frame")
    if hue_share(view.gl.grabFramebuffer(), (40, 200, 60)) < 300:
        fail("the surface did not take the label's new colour")


def screenshot(window, folder: str) -> str:
    """The X screen (what a user sees, GL included) or, without ImageMagick, the window's own grab."""
    path = os.path.join(folder, "view3d.png")
    if shutil.which("import") and subprocess.run(["import", "-window", "root", path], timeout=20).returncode == 0:
        return "screen"
    window.grab().save(path)
    return "window"


def main() -> None:
    folder = sys.argv[1]
    os.environ["UNETGUI_DATA"] = os.path.join(folder, "data")  # the sample's project goes here, not into home
    from PySide6.QtCore import QSettings, Qt, QTimer

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, os.path.join(folder, "settings"))
    from unetgui.app import RESOURCES, create_app
    from unetgui.core.session import BrushSettings
    from unetgui.ui.main_window import MainWindow
    from unetgui.ui.view3d import volume_corners

    app = create_app([])
    window = MainWindow(resources=str(RESOURCES))
    window.show()
    window.open_sample()
    session, view = window.session, window.view3d
    wait(app, lambda: session.volume is not None and not window.runner.busy, 30, "the sample")
    ready: list[float] = []
    view.surfaces_ready.connect(lambda: ready.append(time.monotonic()))
    dock = window.docks["3-D view"]
    shown = time.monotonic()
    dock.show()
    window.resizeDocks([dock], [520], Qt.Orientation.Horizontal)
    window.resizeDocks([dock], [420], Qt.Orientation.Vertical)
    wait(app, lambda: view.problem is not None or view.meshes, 20, "the first surfaces")
    if view.problem is not None:
        fail(f"no 3-D view: {view.problem}")
    first_s = ready[-1] - shown
    liver = next((lab.value for lab in session.table if lab.name.lower() == "liver"), None)
    if liver is None or liver not in view.meshes:
        fail(f"no liver surface: labels {session.table}, meshes {sorted(view.meshes)}")
    mesh = view.meshes[liver]
    if not mesh.closed():
        fail("the liver's surface is not closed")
    corners = volume_corners(session.volume.affine, session.volume.shape)
    lo, hi = corners.min(axis=0) - 0.5, corners.max(axis=0) + 0.5
    if not ((mesh.vertices >= lo) & (mesh.vertices <= hi)).all():
        fail(f"the liver lies outside the image: {mesh.vertices.min(0)}..{mesh.vertices.max(0)} not in {lo}..{hi}")
    before = {"faces": len(mesh.faces), "pieces": pieces(mesh), "top_mm": float(mesh.vertices[:, 2].max())}
    check_orientation(view, corners)
    wait(app, lambda: time.monotonic() - ready[-1] > 0.5, 5, "a frame")
    colour = session.table.get(liver).color
    coloured = hue_share(view.gl.grabFramebuffer(), colour)
    if coloured < 300:
        fail(f"the 3-D view shows {coloured} pixels of the liver's colour {colour}")

    # a stroke of the liver on slice 30 (7 slices above the highest annotated one), at a hand's pace
    ticks: list[tuple[float, bool]] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append((time.monotonic(), view.builder.running)))
    timer.start(10)
    builds, count = view.builder.builds, len(ready)
    session.set_slice(30)
    session.set_active_label(liver)
    session.begin_stroke()
    for k in range(20):
        session.paint_segment(70, 35 + 2 * k, 70, 37 + 2 * k, BrushSettings(radius=6))
        app.processEvents()
        time.sleep(0.012)
    session.end_stroke()
    stroked = time.monotonic()
    wait(app, lambda: len(ready) > count and not view.builder.running, 20, "the surfaces after the stroke")
    timer.stop()
    rebuilt_s = ready[-1] - stroked
    mesh = view.meshes.get(liver)
    if mesh is None or not mesh.closed():
        fail("the liver's surface is gone or open after the stroke")
    after = {"faces": len(mesh.faces), "pieces": pieces(mesh), "top_mm": float(mesh.vertices[:, 2].max())}
    if not (after["pieces"] > before["pieces"] and after["top_mm"] > before["top_mm"] + 10):
        fail(f"the surface did not follow the stroke: before {before}, after {after}")
    jobs = view.builder.builds - builds
    if not 1 <= jobs <= 2:
        fail(f"{jobs} builds for one stroke of 20 changes (expected one, coalesced)")
    times = [t for t, _ in ticks]
    gap = max(np.diff(times)) if len(times) > 1 else float("inf")
    during = sum(1 for _, running in ticks if running)
    if during < 1 or gap > 1.0:
        fail(f"the event loop stalled while the surface was built: {during} ticks during it, longest gap {gap:.2f} s")

    check_hide_and_recolour(app, view, session, liver, ready)
    wait(app, lambda: time.monotonic() - ready[-1] > 0.5, 5, "a frame")
    view.gl.grabFramebuffer().save(os.path.join(folder, "view3d_gl.png"))
    shot = screenshot(window, folder)
    version = _gl_version()
    window.close()
    print(json.dumps({"opengl": version, "first_surfaces_s": round(first_s, 2),
                      "build_s": round(view.builder.seconds, 3), "rebuild_after_stroke_s": round(rebuilt_s, 2),
                      "builds_for_stroke": jobs, "ticks_during_build": during, "longest_tick_gap_s": round(gap, 3),
                      "liver_pixels": coloured, "before": before, "after": after, "screenshot": shot,
                      "total_s": round(time.monotonic() - started, 1)}), flush=True)


def _gl_version() -> str:
    from PySide6.QtGui import QOffscreenSurface, QOpenGLContext

    context, surface = QOpenGLContext(), QOffscreenSurface()
    context.create()
    surface.setFormat(context.format())
    surface.create()
    context.makeCurrent(surface)
    from OpenGL import GL

    text = f"{GL.glGetString(GL.GL_VERSION).decode()} / {GL.glGetString(GL.GL_RENDERER).decode()}"
    context.doneCurrent()
    return text


if __name__ == "__main__":
    main()
