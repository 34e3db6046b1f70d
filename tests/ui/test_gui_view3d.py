"""The 3-D view dock (issue 27). In this process Qt runs offscreen, which has no OpenGL: the dock must say so
and the app keep working. The surface builder (debounce, coalescing, old documents) needs no OpenGL and is
tested here with a real worker; the drawing itself is tested for real in a child process on Xvfb with Mesa's
software OpenGL (tests/gui_view3d_child.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import phantom_hu
from gui_helpers import _drag, _line, _open_phantom
from unetgui.core.session import BrushSettings, Session
from unetgui.core.volume import LabelMap, LabelTable, Volume
from unetgui.ui import view3d
from unetgui.ui.view3d import SurfaceBuilder, box_edges, front_camera, opengl_problem, plane_corners, volume_corners

pytestmark = pytest.mark.gui

CHILD = Path(__file__).resolve().parents[1] / "gui_view3d_child.py"


def _show_3d(window, qtbot):
    window.docks["3-D view"].toggleViewAction().trigger()
    qtbot.waitUntil(window.view3d.isVisible)
    return window.view3d


def _paint_with_mouse(window, qtbot) -> None:
    window.tools.tool = "brush"
    window.tools.brush_size = 6
    _drag(qtbot, window.view, _line(window.view, 30, 20, 50), pace_ms=12)


def test_without_opengl_the_dock_says_so_and_the_app_keeps_working(window, qtbot):
    from PySide6.QtGui import QGuiApplication

    if QGuiApplication.platformName() != "offscreen":
        pytest.skip("this display may offer OpenGL: the refusal is tested offscreen")
    _open_phantom(window, qtbot)
    view = _show_3d(window, qtbot)
    assert view.problem and view.gl is None and view.builder is None  # offscreen Qt has no OpenGL context
    assert "needs OpenGL 2.1" in view.message.text() and view.problem in view.message.text()
    assert view.message.isVisible() and not view.reset_button.isEnabled()
    before = window.session.labels.labels.copy()
    _paint_with_mouse(window, qtbot)
    assert (window.session.labels.labels != before).any()
    qtbot.wait(view3d.DEBOUNCE_MS + 100)
    assert "3-D surfaces" not in window.runner.running_names() and view.meshes == {}
    window.docks["3-D view"].toggleViewAction().trigger()  # hide and show again: still only the message
    window.docks["3-D view"].toggleViewAction().trigger()
    qtbot.waitUntil(view.isVisible)
    assert view.gl is None and view.message.isVisible()
    window.session.close()  # closing the document with the dock shown
    assert view.meshes == {}


def test_turned_off_by_the_environment(window, qtbot, monkeypatch):
    monkeypatch.setenv("UNETGUI_NO_OPENGL", "1")
    assert opengl_problem() == "turned off by UNETGUI_NO_OPENGL"
    _open_phantom(window, qtbot)
    view = _show_3d(window, qtbot)
    assert "turned off by UNETGUI_NO_OPENGL" in view.message.text() and view.gl is None
    before = window.session.labels.labels.copy()
    _paint_with_mouse(window, qtbot)
    assert (window.session.labels.labels != before).any()


# -- geometry of the scene -------------------------------------------------------------------------------
def _oblique_affine() -> np.ndarray:
    """Anisotropic (0.7 x 0.9 x 2.5 mm) and rotated by 30 degrees about the superior axis."""
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    affine = np.eye(4)
    affine[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.diag([0.7, 0.9, 2.5])
    affine[:3, 3] = (10, -20, 5)
    return affine


def test_planes_and_box_lie_in_world_space():
    affine, shape = _oblique_affine(), (12, 40, 50)
    corners = volume_corners(affine, shape)
    assert corners.shape == (8, 3) and len(box_edges(corners)) == 24
    edges = box_edges(corners).reshape(12, 2, 3)
    lengths = sorted(np.round(np.linalg.norm(edges[:, 0] - edges[:, 1], axis=1), 6))
    assert lengths == sorted([0.7 * 50] * 4 + [0.9 * 40] * 4 + [2.5 * 12] * 4)  # sides in mm, spacing kept
    axial = plane_corners(affine, shape, 0, 3)
    assert np.allclose(axial[:, 2], 5 + 2.5 * 3)  # the plane of slice 3: one height, its corners at the faces
    sides = np.linalg.norm(axial[[1, 3]] - axial[0], axis=1)
    assert np.allclose(sides, (0.9 * 40, 0.7 * 50))  # rows (y) then columns (x), to the voxels' outer faces
    for axis in (1, 2):
        quad = plane_corners(affine, shape, axis, 5)
        normal = np.cross(quad[1] - quad[0], quad[3] - quad[0])
        step = affine[:3, 2 - axis]  # world step of array axis `axis`
        assert np.allclose(np.cross(normal, step), 0, atol=1e-6)  # the quad is across its axis


def test_orientation_letters_stand_beyond_each_side_of_the_box():
    from unetgui.ui.view3d import orientation_marks, volume_corners

    corners = volume_corners(np.diag([-0.8, -0.8, 2.5, 1.0]), (20, 100, 120))  # an axial CT stored as LPS rows
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    marks = orientation_marks(corners)
    assert marks["R"][0] > hi[0] and marks["L"][0] < lo[0]  # RAS: +x is the patient's right
    assert marks["A"][1] > hi[1] and marks["P"][1] < lo[1] and marks["S"][2] > hi[2] and marks["I"][2] < lo[2]
    assert np.allclose(marks["S"][:2], (lo + hi)[:2] / 2)


def test_front_camera_looks_from_the_front_at_the_whole_box():
    corners = volume_corners(np.diag([-1.2, -1.2, 3.0, 1.0]), (32, 160, 160))
    camera = front_camera(corners, aspect=1.5)
    assert camera["azimuth"] == 90.0 and 0 <= camera["elevation"] < 30  # from +y (anterior), a little above
    assert np.allclose(camera["center"], (corners.min(0) + corners.max(0)) / 2)
    half = np.tan(np.radians(camera["fov"] / 2))
    front = camera["distance"] - (corners.max(0) - corners.min(0))[1] / 2
    assert front * half >= 96 and front * half / 1.5 >= 48  # the 192 mm width and 96 mm height fit


# -- the builder: no OpenGL needed ---------------------------------------------------------------------------
@pytest.fixture
def builder(qtbot):
    from unetgui.ui.tool_state import ToolState
    from unetgui.workers.jobs import JobRunner

    session, tools, runner = Session(), ToolState(), JobRunner()
    b = SurfaceBuilder(session, tools, runner)
    b.results = []
    b.built.connect(b.results.append)
    yield b
    b.stop()
    qtbot.waitUntil(lambda: not runner.busy, timeout=30_000)


def _open(session: Session, seed=0) -> None:
    volume = Volume(phantom_hu((10, 48, 56), seed), np.diag([0.8, 0.8, 2.0, 1.0]), "CT")
    labels = np.zeros(volume.shape, np.uint8)
    labels[3:7, 10:30, 12:32] = 1
    labels[2:5, 30:40, 36:50] = 2
    session.open(volume, LabelMap(labels, volume.affine, LabelTable.from_names("Liver", "Lesion")))


def _slow(monkeypatch, seconds: float) -> None:
    real = view3d.build_surfaces

    def slow(labels, affine, values, cancel=None):
        time.sleep(seconds)
        return real(labels, affine, values, cancel)

    monkeypatch.setattr(view3d, "build_surfaces", slow)


def test_builder_builds_each_visible_label_once_per_stroke(builder, qtbot):
    s = builder.session
    _open(s)
    qtbot.wait(view3d.DEBOUNCE_MS + 100)
    assert builder.builds == 0  # inactive (the dock hidden): nothing built
    builder.set_active(True)
    qtbot.waitUntil(lambda: len(builder.results) == 1, timeout=30_000)
    out = builder.results[-1]
    assert sorted(out) == [1, 2] and all(mesh.closed() for mesh, _ in out.values())
    mesh, normals = out[1]
    assert normals.shape == mesh.vertices.shape and np.allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-3)
    s.set_slice(8)
    s.begin_stroke()
    for k in range(15):  # a drag: a change every ~15 ms, one build after it
        s.paint_segment(20, 10 + k, 20, 11 + k, BrushSettings(radius=3))
        qtbot.wait(15)
    s.end_stroke()
    qtbot.waitUntil(lambda: len(builder.results) == 2 and not builder.running, timeout=30_000)
    assert builder.builds == 2
    grown = builder.results[-1][1][0]
    assert grown.vertices[:, 2].max() > mesh.vertices[:, 2].max() + 2  # slice 8 lies above the liver's 3..6
    builder.tools.set_overlay(hidden={2})
    builder.changed()
    qtbot.waitUntil(lambda: len(builder.results) == 3, timeout=30_000)
    assert sorted(builder.results[-1]) == [1]  # a hidden label is not built


def test_builder_runs_one_job_and_once_more_for_changes_meanwhile(builder, qtbot, monkeypatch):
    _slow(monkeypatch, 1.5)
    _open(builder.session)
    builder.set_active(True)
    qtbot.waitUntil(lambda: builder.running, timeout=5_000)
    for _ in range(5):  # changes while it runs: no second job now, one after it
        builder.changed()
        qtbot.wait(60)
    qtbot.wait(view3d.DEBOUNCE_MS + 60)  # the debounce has fired while the job runs
    assert builder.builds == 1 and builder.running
    qtbot.waitUntil(lambda: len(builder.results) == 2 and not builder.running, timeout=30_000)
    qtbot.wait(view3d.DEBOUNCE_MS + 60)
    assert builder.builds == 2  # one more for all the changes, then quiet


def test_builder_drops_a_result_of_an_older_document(builder, qtbot, monkeypatch):
    _slow(monkeypatch, 0.6)
    _open(builder.session)
    builder.set_active(True)
    qtbot.waitUntil(lambda: builder.running, timeout=5_000)
    s = builder.session
    s.open(Volume(phantom_hu((6, 32, 32)), np.eye(4), "CT"))  # empty labels: the new document has no surfaces
    qtbot.waitUntil(lambda: builder.builds == 2 and not builder.running, timeout=30_000)
    assert builder.results == [{}]  # the first document's surfaces never arrive
    builder.changed()
    qtbot.waitUntil(lambda: builder.running, timeout=5_000)
    s.close()  # cancels the running build; its result never arrives
    qtbot.waitUntil(lambda: not builder.running, timeout=30_000)
    qtbot.wait(view3d.DEBOUNCE_MS + 100)
    assert builder.results == [{}] and builder.builds == 3


# -- drawing, for real: Xvfb and software OpenGL in a child process ----------------------------------------
@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run is not installed (apt-get install xvfb xauth)")
def test_the_real_window_draws_the_sample_and_follows_a_stroke(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "UNETGUI_NO_OPENGL", "DISPLAY")}
    env.update(QT_QPA_PLATFORM="xcb", PYTHONPATH=os.pathsep.join(sys.path), PYTHONFAULTHANDLER="1")
    command = ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", sys.executable, str(CHILD), str(tmp_path)]
    try:
        run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the child did not finish in 120 s: {exc.stdout}\n{exc.stderr}")
    assert run.returncode == 0, f"child exited {run.returncode}:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    assert (tmp_path / "view3d.png").is_file() and (tmp_path / "view3d_gl.png").is_file()
