"""The 3-D view dock (issue 27): a surface per visible label in its colour, in world space, and the shown plane.

The surfaces come from :func:`unetgui.tasks.stats.label_surfaces` (marching cubes on the label volume, mapped
through the image's affine: spacing and direction, so an anisotropic or oblique series keeps its true shape). They
are built on a worker (:class:`SurfaceBuilder`): edits restart a short timer, so a stroke's stream of changes
becomes one build after it pauses; at most one build runs, and changes that arrive meanwhile give one more build
when it ends. Nothing is built while the dock is hidden.

Rendering is pyqtgraph's OpenGL (a QOpenGLWidget). A missing or too old OpenGL must never take the app down: Qt's
offscreen platform offers no context, and one of OpenGL 2.0 makes pyqtgraph raise inside ``initializeGL`` and the
process crash. :func:`opengl_problem` therefore asks for a context before any GL widget exists; when it refuses,
the dock says why and builds nothing. ``UNETGUI_NO_OPENGL=1`` turns the view off (broken drivers, tests).

A GL widget moved into another window (the dock floated or docked again) gets a new context unless the app
shares contexts, and pyqtgraph's items would draw with the buffers and compiled shaders of the old one: the next
paint crashes. Qt takes ``AA_ShareOpenGLContexts`` only before the QApplication exists, so this module sets it on
import (the main window imports it before ``app.create_app`` runs), and the view refuses to start without it.
"""

from __future__ import annotations

import functools
import os
import time
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QCoreApplication, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from unetgui.core.geometry import voxel_to_world
from unetgui.core.progress import CancelToken, check
from unetgui.core.session import Session
from unetgui.core.volume import UNANNOTATED, default_color
from unetgui.formats.mesh import Mesh
from unetgui.tasks.stats import label_surfaces
from unetgui.ui.tool_state import ToolState
from unetgui.workers.jobs import Job, JobRunner

if TYPE_CHECKING:
    from pyqtgraph.opengl import GLViewWidget

NO_OPENGL_ENV = "UNETGUI_NO_OPENGL"
MIN_OPENGL = (2, 1)  # what pyqtgraph.opengl's shaders need (it raises below it)
DEBOUNCE_MS = 250  # a pause this long in a stream of edits starts a build
MAX_WAIT_S = 2.0  # a long stream of edits (a segmentation writing slices) still shows every ~2 s
PLANE_RGB = (80, 200, 255)  # the slice view's crosshair colour: the plane shown there
BACKGROUND = (28, 32, 40)
FOV_DEGREES = 30.0  # as 3D Slicer's camera: a wider angle distorts what lies near the camera
FRONT_ELEVATION = 10.0  # degrees above the anterior view: the axial plane shows as a band, not a line

NEEDS_OPENGL = ("The 3-D view needs OpenGL {major}.{minor}, which this display does not offer ({reason}). "
                "Everything else works; the statistics and mesh export do not need it.")


if QCoreApplication.instance() is None:  # see the module docstring; too late once an application exists
    QCoreApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)


# -- OpenGL probe ----------------------------------------------------------------------------------
def opengl_problem() -> str | None:
    """Why the 3-D view cannot draw here (a sentence), or None when OpenGL >= 2.1 is available. Asked before any
    GL widget exists: creating one on a platform without a usable context crashes the process."""
    if os.environ.get(NO_OPENGL_ENV, "").strip() not in ("", "0"):
        return f"turned off by {NO_OPENGL_ENV}"
    if not QCoreApplication.testAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts):
        return "the application was started without shared OpenGL contexts"
    try:
        import OpenGL.GL  # noqa: F401
        import pyqtgraph.opengl  # noqa: F401
    except Exception as exc:  # ImportError, or PyOpenGL failing to find a GL library
        return f"PyOpenGL cannot be loaded: {exc}"
    return _context_problem()


@functools.lru_cache(maxsize=1)
def _context_problem() -> str | None:
    """A context's verdict, asked once per process (the platform does not change while the app runs)."""
    from PySide6.QtGui import QOffscreenSurface, QOpenGLContext

    try:
        context = QOpenGLContext()
        if not context.create():
            return "no OpenGL context can be created on this display"
        surface = QOffscreenSurface()
        surface.setFormat(context.format())
        surface.create()
        try:
            if not surface.isValid() or not context.makeCurrent(surface):
                return "the OpenGL context cannot be made current"
            version = context.format().version()
            context.doneCurrent()
        finally:
            surface.destroy()
    except Exception as exc:  # a driver error must not end the app
        return f"OpenGL failed: {exc}"
    if tuple(version) < MIN_OPENGL:
        return f"it offers OpenGL {version[0]}.{version[1]}"
    return None


# -- geometry of the scene (world RAS mm) ----------------------------------------------------------
def volume_corners(affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """``(8, 3)`` world corners of the voxels' outer faces (index -0.5 and n-0.5 along each axis)."""
    lo, hi = -0.5, np.asarray(shape, float) - 0.5
    zyx = np.array([[z, y, x] for z in (lo, hi[0]) for y in (lo, hi[1]) for x in (lo, hi[2])])
    return voxel_to_world(affine, zyx)


def plane_corners(affine: np.ndarray, shape: tuple[int, int, int], axis: int, index: int) -> np.ndarray:
    """``(4, 3)`` world corners, in order around it, of plane ``index`` along array ``axis`` (through the voxel
    centres of that plane, to the outer faces of the others)."""
    a, b = (k for k in range(3) if k != axis)
    out = np.zeros((4, 3))
    out[:, axis] = index
    for i, (u, v) in enumerate(((0, 0), (1, 0), (1, 1), (0, 1))):
        out[i, a] = -0.5 if u == 0 else shape[a] - 0.5
        out[i, b] = -0.5 if v == 0 else shape[b] - 0.5
    return voxel_to_world(affine, out)


def box_edges(corners: np.ndarray) -> np.ndarray:
    """``(24, 3)``: the 12 edges of the box of :func:`volume_corners` as pairs of points (GL lines)."""
    pairs = [(i, i ^ bit) for i in range(8) for bit in (1, 2, 4) if i < i ^ bit]
    return corners[np.array(pairs).ravel()]


def orientation_marks(corners: np.ndarray) -> dict[str, np.ndarray]:
    """Where the letters R, L, A, P, S and I stand: a little beyond the middle of each side of the world box of
    ``corners`` (world RAS: +x is the patient's right, +y anterior, +z superior), so that a turned scene still says
    which way the patient faces."""
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    centre, half = (lo + hi) / 2, (hi - lo) / 2 * 1.08 + 2.0
    marks = {}
    for axis, (plus, minus) in enumerate((("R", "L"), ("A", "P"), ("S", "I"))):
        for letter, sign in ((plus, 1.0), (minus, -1.0)):
            point = centre.copy()
            point[axis] += sign * half[axis]
            marks[letter] = point
    return marks


def front_camera(corners: np.ndarray, aspect: float) -> dict:
    """pyqtgraph camera parameters that show the world box of ``corners`` from the patient's front (anterior,
    as 3D Slicer's anterior view: superior up, the patient's right on the screen's left), centred and fitted
    to a view ``aspect`` (width / height) wide."""
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    centre, size = (lo + hi) / 2, hi - lo
    half_h = np.tan(np.radians(FOV_DEGREES) / 2)  # pyqtgraph's field of view is horizontal
    half_v = half_h / max(aspect, 1e-3)
    # the box seen from +y: its x extent across the screen, z up, y in depth
    distance = 1.12 * max(size[0] / 2 / half_h, size[2] / 2 / half_v) + size[1] / 2
    return {"center": centre, "distance": float(max(distance, 1.0)), "elevation": FRONT_ELEVATION,
            "azimuth": 90.0, "fov": FOV_DEGREES}


def build_surfaces(labels: np.ndarray, affine: np.ndarray, values: list[int],
                   cancel: CancelToken | None = None) -> dict[int, tuple[Mesh, np.ndarray]]:
    """The preview surface of each of ``values`` present in ``labels`` (``(z, y, x)``, a copy) and its vertex
    normals (float32): the normals are made here because pyqtgraph computes them in a Python loop per vertex,
    seconds on the GUI thread for a liver. Runs on a worker."""
    out = {}
    for value, mesh in label_surfaces(labels, affine, values, preview=True, cancel=cancel).items():
        check(cancel)
        if not mesh.empty:
            out[value] = (mesh, mesh.vertex_normals().astype(np.float32))
    return out


# -- building ------------------------------------------------------------------------------------
class SurfaceBuilder(QObject):
    """Builds the label surfaces of the session on a worker, debounced and coalesced; works without OpenGL
    (the view draws what it emits)."""

    started = Signal()
    built = Signal(object)  # dict[int, (Mesh, normals)]: the labels' surfaces of the current document
    failed = Signal(str)

    def __init__(self, session: Session, tools: ToolState, runner: JobRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.tools, self.runner = session, tools, runner
        self.active = False  # the view is shown: build; hidden: only remember that something changed
        self.builds = 0  # jobs started (the tests count them)
        self.seconds = 0.0  # how long the last build took (from the copy of the labels to the result)
        self._dirty = True
        self._since: float | None = None  # when the oldest change not yet built arrived
        self._job: Job | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self._start)
        listeners = session.listeners
        listeners.labels_changed.append(lambda slices, box: self.changed())
        listeners.volume_changed.append(self._on_volume_changed)
        listeners.closed.append(self._on_closed)

    def _on_volume_changed(self) -> None:
        """Another document: the build of the old one is of no use (its result would be dropped), stop it."""
        if self._job is not None:
            self._job.cancel()
        self.changed()

    @property
    def running(self) -> bool:
        return self._job is not None

    def set_active(self, active: bool) -> None:
        self.active = active
        if active and self._dirty:
            self._timer.start()

    def changed(self) -> None:
        """The labels changed: build after a pause, or at the latest ``MAX_WAIT_S`` after the first change."""
        self._dirty = True
        now = time.monotonic()
        if self._since is None:
            self._since = now
        if self.active and not (self._timer.isActive() and now - self._since > MAX_WAIT_S):
            self._timer.start()

    def _start(self) -> None:
        if self._job is not None or not self._dirty or not self.active:
            return  # one at a time: the end of the running job starts the next
        self._dirty, self._since = False, None
        s = self.session
        if not s.is_open:
            return
        values = [v for v in range(1, UNANNOTATED) if v not in self.tools.hidden_labels]
        generation, begun = s.generation, time.perf_counter()
        self.builds += 1
        self._job = self.runner.run("3-D surfaces", build_surfaces, s.labels.labels.copy(), s.volume.affine.copy(),
                                    values, on_finished=lambda out: self._on_built(out, generation, begun),
                                    on_failed=self.failed.emit, on_done=self._on_done)
        self.started.emit()

    def _on_built(self, out: dict, generation: int, begun: float) -> None:
        if generation == self.session.generation:  # else: a result of the document closed meanwhile
            self.seconds = time.perf_counter() - begun
            self.built.emit(out)

    def _on_done(self) -> None:
        self._job = None
        if self._dirty and self.active and not self._timer.isActive():
            self._start()

    def _on_closed(self) -> None:
        self._timer.stop()
        if self._job is not None:
            self._job.cancel()
        self._dirty, self._since = False, None  # nothing to build until a document opens (volume_changed)

    def stop(self) -> None:
        """Build nothing more (the view gives up): cancel what runs."""
        self.active = False
        self._on_closed()


# -- the view -----------------------------------------------------------------------------------
class View3D(QWidget):
    """The dock's widget: status line, Reset view, and the scene (or why there is none)."""

    surfaces_ready = Signal()  # self.meshes changed: after each build, a label hidden, the document closed

    def __init__(self, session: Session, tools: ToolState, runner: JobRunner) -> None:
        super().__init__()
        self.session, self.tools, self.runner = session, tools, runner
        self.meshes: dict[int, Mesh] = {}
        self.problem: str | None = None  # why there is no scene (None: not asked yet, or it works)
        self.gl: GLViewWidget | None = None
        self.builder: SurfaceBuilder | None = None
        self._items: dict = {}  # label value -> GLMeshItem
        self._hidden: set[int] = set()  # the hidden labels the scene shows without
        self._scene: dict = {}  # the plane, its outline, the volume's box
        self.status = QLabel("")
        self.status.setWordWrap(True)  # many labels make a long line: it wraps instead of widening the dock
        self.reset_button = QPushButton("Reset view")
        self.reset_button.setToolTip("Look at the whole image from the patient's front, head up")
        self.reset_button.clicked.connect(self.reset_view)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.hide()
        top = QHBoxLayout()
        top.addWidget(self.status, 1)
        top.addWidget(self.reset_button)
        self._layout = QVBoxLayout(self)
        self._layout.addLayout(top)
        self._layout.addWidget(self.message, 1)
        self._started = False

    # -- start: only when first shown (the dock is hidden until asked for) -----------------------------
    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if not self._started:
            self._started = True
            self._start_scene()
        if self.builder is not None:
            self.builder.set_active(True)

    def hideEvent(self, event) -> None:  # noqa: N802
        super().hideEvent(event)
        if self.builder is not None:
            self.builder.set_active(False)

    def _start_scene(self) -> None:
        self.problem = opengl_problem()
        if self.problem is None:
            try:
                self.gl = self._make_gl()
            except Exception as exc:  # never let a GL failure kill the app
                self.problem = f"the OpenGL view failed: {exc}"
        if self.problem is not None:
            self._refuse(self.problem)
            return
        self._layout.addWidget(self.gl, 1)
        self._hidden = set(self.tools.hidden_labels)
        self.builder = SurfaceBuilder(self.session, self.tools, self.runner, self)
        self.builder.started.connect(lambda: self.status.setText("building surfaces…"))
        self.builder.built.connect(self._on_built)
        self.builder.failed.connect(lambda message: self.status.setText(f"surfaces failed: {message}"))
        listeners = self.session.listeners
        for name in ("slice_changed", "axis_changed", "position_changed"):
            getattr(listeners, name).append(lambda *_: self._show_plane())
        listeners.volume_changed.append(self._on_volume_changed)
        listeners.table_changed.append(self._recolour)
        listeners.closed.append(self._on_closed)
        self.tools.overlay_changed.connect(self._on_overlay_changed)
        self._on_volume_changed()

    def _refuse(self, reason: str) -> None:
        self.message.setText(NEEDS_OPENGL.format(major=MIN_OPENGL[0], minor=MIN_OPENGL[1], reason=reason))
        self.message.show()
        self.reset_button.setEnabled(False)
        self.status.setText("no 3-D view")

    def _make_gl(self) -> GLViewWidget:
        import pyqtgraph.opengl as gl

        view = gl.GLViewWidget()
        self._shader = surface_shader()  # one per view: a compiled program belongs to its GL context
        view.setBackgroundColor(BACKGROUND)
        view.setMinimumSize(160, 160)
        view.setToolTip("Drag to turn, Ctrl+drag to move, wheel to zoom; Reset view shows the patient's front")
        self._scene = {"plane": gl.GLMeshItem(vertexes=np.zeros((4, 3)), faces=np.array([[0, 1, 2], [0, 2, 3]]),
                                              color=(*np.divide(PLANE_RGB, 255), 0.16), glOptions="translucent",
                                              computeNormals=False),
                       "outline": gl.GLLinePlotItem(color=(*np.divide(PLANE_RGB, 255), 0.9), width=1.5,
                                                    mode="line_strip", glOptions="translucent"),
                       "box": gl.GLLinePlotItem(color=(0.55, 0.58, 0.65, 0.7), width=1.0, mode="lines",
                                                glOptions="translucent")}
        for letter in "RLAPSI":  # drawn by QPainter over the scene: no depth to set
            self._scene[letter] = gl.GLTextItem(text=letter, color=(235, 200, 90, 255))
        for depth, item in enumerate(self._scene.values(), start=10):  # drawn after the opaque surfaces
            item.setDepthValue(depth)
            item.setVisible(False)
            view.addItem(item)
        return view

    # -- document ---------------------------------------------------------------------------------------
    def _on_volume_changed(self) -> None:
        """A new document: its box, the plane, the front view; surfaces follow from the builder."""
        self._clear_surfaces()
        if not self.session.is_open:
            self.status.setText("no image")
            return
        v = self.session.volume
        corners = volume_corners(v.affine, v.shape)
        self._scene["box"].setData(pos=box_edges(corners))
        self._scene["box"].setVisible(True)
        for letter, point in orientation_marks(corners).items():
            self._scene[letter].setData(pos=point)
            self._scene[letter].setVisible(True)
        self._show_plane()
        self.reset_view()
        self.status.setText("building surfaces…")

    def _on_closed(self) -> None:
        self._clear_surfaces()
        for item in self._scene.values():
            item.setVisible(False)
        self.status.setText("no image")
        self.surfaces_ready.emit()

    def _show_plane(self) -> None:
        """The shown plane as a translucent quad with an outline (cheap: four corners)."""
        s = self.session
        if self.gl is None or not s.is_open:
            return
        corners = plane_corners(s.volume.affine, s.volume.shape, s.axis, s.index)
        self._scene["plane"].setMeshData(vertexes=corners, faces=np.array([[0, 1, 2], [0, 2, 3]]))
        self._scene["outline"].setData(pos=np.vstack([corners, corners[:1]]))
        for name in ("plane", "outline"):
            self._scene[name].setVisible(True)

    def reset_view(self) -> None:
        """The front view of the whole image (Reset view)."""
        s = self.session
        if self.gl is None or not s.is_open:
            return
        from pyqtgraph import Vector

        camera = front_camera(volume_corners(s.volume.affine, s.volume.shape),
                              self.gl.width() / max(self.gl.height(), 1))
        camera["center"] = Vector(*camera["center"])
        self.gl.setCameraParams(**camera)

    # -- surfaces --------------------------------------------------------------------------------------
    def _on_built(self, out: dict) -> None:
        out = {v: pair for v, pair in out.items() if v not in self.tools.hidden_labels}  # hidden meanwhile
        for value in set(self._items) - set(out):
            self.gl.removeItem(self._items.pop(value))
        for value, (mesh, normals) in out.items():
            self._show_surface(value, mesh, normals)
        self.meshes = {v: mesh for v, (mesh, _) in out.items()}
        self._show_status()
        self.surfaces_ready.emit()

    def _show_surface(self, value: int, mesh: Mesh, normals: np.ndarray) -> None:
        import pyqtgraph.opengl as gl

        data = gl.MeshData(vertexes=mesh.vertices, faces=mesh.faces)
        data._vertexNormals = normals  # the cache vertexNormals() would fill with its slow per-vertex loop
        item = self._items.get(value)
        if item is None:
            item = gl.GLMeshItem(meshdata=data, smooth=True, shader=self._shader, glOptions="opaque")
            self._items[value] = item
            self.gl.addItem(item)
        else:
            item.setMeshData(meshdata=data)
        item.setColor(self._colour(value))

    def _colour(self, value: int) -> tuple[float, float, float, float]:
        label = self.session.table.get(value)
        rgb = label.color if label is not None else default_color(value)
        return (*(c / 255 for c in rgb), 1.0)

    def _recolour(self) -> None:
        """A label renamed or recoloured: the voxels are the same, the surfaces too."""
        for value, item in self._items.items():
            item.setColor(self._colour(value))
        self._show_status()

    def _on_overlay_changed(self) -> None:
        """Hidden labels: a hidden one goes at once; one shown again needs its surface built."""
        hidden = set(self.tools.hidden_labels)
        if hidden == self._hidden:
            return
        shown_again, self._hidden = self._hidden - hidden, hidden
        gone = hidden & set(self._items)
        for value in gone:
            self.gl.removeItem(self._items.pop(value))
            self.meshes.pop(value, None)
        self._show_status()
        if gone:
            self.surfaces_ready.emit()
        if shown_again:
            self.builder.changed()

    def _clear_surfaces(self) -> None:
        for item in self._items.values():
            self.gl.removeItem(item)
        self._items.clear()
        self.meshes = {}

    def _show_status(self) -> None:
        if not self.meshes:
            self.status.setText("no labels to show" if self.session.is_open else "no image")
            return
        parts = []
        for value, mesh in sorted(self.meshes.items()):
            label = self.session.table.get(value)
            parts.append(f"{label.name if label is not None else f'label {value}'}: {len(mesh.faces):,} triangles")
        seconds = self.builder.seconds if self.builder is not None else 0.0
        self.status.setText("; ".join(parts) + f" ({seconds:.1f} s)")


def surface_shader():
    """A key light from the viewer's upper left with a little specular: shapes read as in 3D Slicer (pyqtgraph's
    "shaded" lights from behind the viewer's right, leaving the faces towards the viewer dark)."""
    from pyqtgraph.opengl.shaders import FragmentShader, ShaderProgram, VertexShader

    return ShaderProgram("unetgui-surface", [
        VertexShader("""
            uniform mat4 u_mvp;
            uniform mat3 u_normal;
            attribute vec4 a_position;
            attribute vec3 a_normal;
            attribute vec4 a_color;
            varying vec4 v_color;
            varying vec3 v_normal;
            void main() {
                v_normal = normalize(u_normal * a_normal);
                v_color = a_color;
                gl_Position = u_mvp * a_position;
            }
        """),
        FragmentShader("""
            #ifdef GL_ES
            precision mediump float;
            #endif
            varying vec4 v_color;
            varying vec3 v_normal;
            void main() {
                vec3 n = normalize(v_normal);
                vec3 key = normalize(vec3(-0.35, 0.45, 1.0));
                float diffuse = max(dot(n, key), 0.0);
                float fill = 0.25 * max(dot(n, normalize(vec3(0.6, -0.3, 0.8))), 0.0);
                float shine = pow(max(dot(n, normalize(key + vec3(0.0, 0.0, 1.0))), 0.0), 40.0);
                vec3 rgb = v_color.rgb * (0.16 + 0.76 * diffuse + fill) + vec3(0.2 * shine);
                gl_FragColor = vec4(min(rgb, vec3(1.0)), v_color.a);
            }
        """),
    ])
