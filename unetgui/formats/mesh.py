"""Surface meshes of label volumes, and their files: binary STL, OBJ and binary PLY.

A surface is extracted with marching cubes (PyMCubes: a 0.3 MB wheel, against scikit-image's 14 MB and its
image-I/O dependencies) from the label's mask, padded by empty voxels so that a structure that does not touch
the volume's border gives a closed (watertight) surface, then mapped to world millimetres with the image's
affine (spacing, direction, origin: an oblique or anisotropic series comes out in its true shape).

``smoothing`` is a number of Taubin lambda|mu iterations on the marching-cubes surface: 0 gives the raw
surface, faithful to the voxels but whose area overstates a curved surface by 9 to 24 % (the staircase); the
default 30 removes the staircase without shrinking the surface or rounding flat faces, and is what the
statistics' surface area is measured on. Thick slices are first cut into thinner ones by shape-based
interpolation (:func:`thin_slices`). Spheres of 10 to 40 mm radius come within +1.8 % on 1 to 3 mm slices, boxes
of 40 mm and more within -2 %, a 20 mm cube -3.9 % (docs/meshes.md has the table). ``decimate`` (0..0.95) removes that share of the triangles by quadric edge collapse
(fast-simplification, 0.3 MB); when a collapse would open a closed surface, the undecimated surface is kept
and :attr:`Mesh.note` says so.

Files are in world mm in LPS (what 3D Slicer assumes for STL and OBJ) or RAS, stated in each file
(``SPACE=LPS`` in the STL header, a comment in OBJ and PLY, as 3D Slicer writes and reads it). Label names
come from files: only their printable ASCII reaches a header (:func:`header_text`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage, sparse

from unetgui.core.errors import FormatError
from unetgui.core.geometry import LPS_TO_RAS, voxel_to_world
from unetgui.core.progress import CancelToken, check

SMOOTHING = 30  # Taubin iterations: the statistics' surface (see the module docstring)
MAX_SMOOTHING = 500
TAUBIN = (0.5, -0.53)
MAX_INTERPOLATION = 4  # thin slices per thick one (shape-based interpolation of thick-slice series)  # lambda, mu: Taubin's pass band (k_PB = 1/lambda + 1/mu ~ 0.11)
MAX_DECIMATE = 0.95
SPACES = ("LPS", "RAS")
MESH_FORMATS = ("stl", "obj", "ply")


@dataclass(frozen=True)
class Mesh:
    """A triangle surface: ``vertices`` ``(n, 3)`` float64 in world RAS mm, ``faces`` ``(m, 3)`` int32 indices
    wound counter-clockwise seen from outside (normals point out). ``note``: what happened on the way
    (e.g. decimation refused), empty when nothing to say. ``settings``: how it was made, for the files."""

    vertices: np.ndarray
    faces: np.ndarray
    note: str = ""
    settings: dict = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return len(self.faces) == 0

    def face_normals(self) -> np.ndarray:
        """Unit normals per face (zero for a degenerate face)."""
        v = self.vertices[self.faces]
        n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
        length = np.linalg.norm(n, axis=1, keepdims=True)
        return np.divide(n, length, out=np.zeros_like(n), where=length > 0)

    def vertex_normals(self) -> np.ndarray:
        """Area-weighted unit normals per vertex (for smooth shading)."""
        v = self.vertices[self.faces]
        n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
        out = np.zeros_like(self.vertices)
        for k in range(3):
            np.add.at(out, self.faces[:, k], n)
        length = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, length, out=np.zeros_like(out), where=length > 0)

    def area(self) -> float:
        """Surface area in mm^2."""
        v = self.vertices[self.faces]
        return float(0.5 * np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1).sum())

    def volume(self) -> float:
        """Enclosed volume in mm^3 (divergence theorem; meaningful for a closed surface)."""
        v = self.vertices[self.faces]
        return float(np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6.0)

    def closed(self) -> bool:
        """True when every edge is shared by exactly two faces, once in each direction (watertight and
        consistently wound)."""
        if self.empty:
            return False
        f = self.faces
        directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        n = len(self.vertices)
        forward = directed[:, 0].astype(np.int64) * n + directed[:, 1]
        backward = directed[:, 1].astype(np.int64) * n + directed[:, 0]
        if len(np.unique(forward)) != len(forward):
            return False  # an edge used twice in one direction: non-manifold or flipped faces
        return bool(np.isin(backward, forward, assume_unique=False).all())

    def in_space(self, space: str) -> np.ndarray:
        """The vertices in ``space`` ("RAS" or "LPS") mm."""
        if space not in SPACES:
            raise ValueError(f"coordinate system must be one of {SPACES}, got {space!r}")
        return self.vertices.copy() if space == "RAS" else self.vertices * np.diag(LPS_TO_RAS)[:3]


def surface(mask: np.ndarray, affine: np.ndarray, smoothing: int = SMOOTHING, decimate: float = 0.0,
            step: int = 1, origin: tuple[int, int, int] = (0, 0, 0), cancel: CancelToken | None = None) -> Mesh:
    """The closed surface of ``mask`` (``(z, y, x)`` bool on the grid of ``affine``; ``origin``: the grid index of
    ``mask[0, 0, 0]`` when it is a box of a larger grid) in world RAS mm.

    ``smoothing``: Taubin iterations (0: the raw voxel surface). ``decimate``: share of triangles to remove
    (0..0.95). ``step``: sample the mask every ``step``-th voxel along each axis, after a Gaussian of ``step / 2``
    voxels against aliasing (a coarse, fast preview for the 3-D view; 1 for measurement and export). An empty
    mask gives an empty mesh.
    """
    import mcubes  # PyMCubes: loaded on first use, the app starts without it

    if not 0.0 <= decimate <= MAX_DECIMATE:
        raise ValueError(f"decimation must be 0..{MAX_DECIMATE}, got {decimate}")
    if not 0 <= int(smoothing) <= MAX_SMOOTHING or step < 1:
        raise ValueError(f"smoothing must be 0..{MAX_SMOOTHING} iterations and step >= 1, got {smoothing}, {step}")
    settings = {"smoothing_iterations": int(smoothing), "taubin_lambda": TAUBIN[0], "taubin_mu": TAUBIN[1],
                "decimation": float(decimate), "step": int(step)}
    mask = np.asarray(mask, bool)
    empty = Mesh(np.zeros((0, 3)), np.zeros((0, 3), np.int32), settings=settings)
    box = ndimage.find_objects(mask.view(np.uint8))
    if not box or box[0] is None:
        return empty
    # the label's box with a margin that holds the preview blur's reach, plus empty voxels that close the surface
    margin = 1 + 2 * step
    lo = np.array([s.start for s in box[0]]) - margin
    crop = np.pad(mask[box[0]], margin)  # empty beyond the volume's border too, so the surface closes there
    check(cancel)
    axis, factor = thin_slices(affine) if step == 1 else (0, 1)
    settings["slice_interpolation"] = int(factor)
    if step > 1:
        crop = ndimage.gaussian_filter(crop.astype(np.float32), step / 2, mode="constant")[::step, ::step, ::step]
    elif factor > 1:
        crop = _interpolated(crop, affine, axis, factor)
        check(cancel)
    vertices, faces = mcubes.marching_cubes(crop.astype(np.float32), 0.5)
    if len(faces) == 0:
        return empty
    if factor > 1:  # sub-slice i of slice k sits at k + (i + 0.5) / factor - 0.5
        vertices[:, axis] = (vertices[:, axis] + 0.5) / factor - 0.5
    zyx = vertices * step + lo + np.asarray(origin, float)  # voxel indices of the full grid
    faces = np.asarray(faces, np.int32)
    # PyMCubes winds its triangles counter-clockwise seen from outside in (z, y, x) index space; the
    # index-to-world map keeps or mirrors that (its determinant's sign)
    if np.linalg.det(np.asarray(affine, float)[:3, :3][:, ::-1]) < 0:
        faces = faces[:, ::-1].copy()
    world = voxel_to_world(affine, zyx)
    check(cancel)
    note = ""
    if smoothing:
        raw = Mesh(world, faces).volume()
        smooth = _inside_grid(_taubin(world, faces, int(smoothing)), affine, mask.shape, origin)
        if abs(Mesh(smooth, faces).volume()) >= 0.8 * abs(raw):
            world = smooth
        else:  # a structure a voxel or two across: smoothing would shrink it to nothing (a small lesion, a vessel)
            note = "too small or thin to smooth: the voxel surface"
            settings["smoothing_iterations"] = 0
    mesh = Mesh(world, faces, note=note, settings=settings)
    if mesh.volume() < 0:  # never expected: keep normals outward whatever the extractor's convention
        mesh = replace(mesh, faces=faces[:, ::-1].copy())
    if decimate > 0:
        check(cancel)
        mesh = _decimated(mesh, decimate)
    return mesh


def thin_slices(affine: np.ndarray) -> tuple[int, int]:
    """``(axis, factor)``: the array axis (0 z, 1 y, 2 x) whose spacing is the largest, and into how many thinner
    slices to interpolate each of its slices (1: none) so that they come within 1.5 times the other two axes'
    spacing (closer costs time for little area: docs/meshes.md), at most :data:`MAX_INTERPOLATION`."""
    spacing = np.linalg.norm(np.asarray(affine, float)[:3, :3], axis=0)[::-1]  # z, y, x
    axis = int(np.argmax(spacing))
    others = np.delete(spacing, axis).mean()
    factor = int(round(spacing[axis] / (1.5 * others))) if others > 0 else 1
    return axis, int(np.clip(factor, 1, MAX_INTERPOLATION))


def _interpolated(mask: np.ndarray, affine: np.ndarray, axis: int, factor: int) -> np.ndarray:
    """``mask`` with each slice along ``axis`` cut into ``factor`` thinner ones by shape-based interpolation (see
    :func:`_interpolated_piece`), each connected piece (26-connected) on its own: a small lesion on one slice next
    to another lesion on the neighbouring slice must not take that one's distance (the far side of the slice for
    it), which would shave it away."""
    pieces, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return _interpolated_piece(mask, affine, axis, factor)
    shape = list(mask.shape)
    shape[axis] *= factor
    fine = np.zeros(shape, bool)
    for k, box in enumerate(ndimage.find_objects(pieces), start=1):
        piece = np.pad(pieces[box] == k, [(0, 0) if a == axis else (1, 1) for a in range(3)])  # background around it
        thin = _interpolated_piece(piece, affine, axis, factor)
        thin = thin[tuple(slice(None) if a == axis else slice(1, -1) for a in range(3))]
        target = tuple(slice(b.start * factor, b.stop * factor) if a == axis else b for a, b in enumerate(box))
        fine[target] |= thin
    return fine


def _interpolated_piece(mask: np.ndarray, affine: np.ndarray, axis: int, factor: int) -> np.ndarray:
    """``mask`` with each slice along ``axis`` cut into ``factor`` thinner ones by shape-based interpolation:
    the in-plane signed distance (mm) to the structure's outline, interpolated linearly between slice centres.
    A slice without the structure next to one with it takes the latter's distance unsigned, so the structure ends
    half a slice beyond its last slice, where its voxels end (a flat cap, as the voxels say)."""
    moved = np.moveaxis(mask, axis, 0)
    spacing = np.linalg.norm(np.asarray(affine, float)[:3, :3], axis=0)[::-1]
    plane = tuple(float(s) for k, s in enumerate(spacing) if k != axis)
    distance = np.zeros(moved.shape, np.float32)
    present = moved.any(axis=(1, 2))
    for k in np.flatnonzero(present):
        inside = ndimage.distance_transform_edt(moved[k], sampling=plane)
        outside = ndimage.distance_transform_edt(~moved[k], sampling=plane)
        half = 0.5 * min(plane)  # the outline between an inside and an outside pixel centre
        distance[k] = np.where(moved[k], half - inside, outside - half)
    n = moved.shape[0]
    fine = np.zeros((n * factor,) + moved.shape[1:], bool)
    for i in range(n * factor):  # one thin slice at a time: two slices of temporaries, not the whole volume's
        centre = (i + 0.5) / factor - 0.5  # in slice indices
        lo = min(max(int(np.floor(centre)), 0), n - 1)
        hi = min(lo + 1, n - 1)
        if not (present[lo] or present[hi]):
            continue
        t = float(np.clip(centre - lo, 0.0, 1.0))
        below = distance[lo] if present[lo] else np.abs(distance[hi])
        above = distance[hi] if present[hi] else np.abs(distance[lo])
        fine[i] = (1 - t) * below + t * above < 0
    return np.moveaxis(fine, 0, axis)


def _inside_grid(world: np.ndarray, affine: np.ndarray, shape: tuple[int, ...], origin) -> np.ndarray:
    """``world`` points moved back inside the box of ``mask`` (the outer faces of its voxels, from ``origin``)
    where smoothing pushed them out: no voxel of the structure lies outside it (a mask cut from a larger grid
    is the label's bounding box), and a structure cut by the image's border ends there."""
    a = np.asarray(affine, float)
    index = np.linalg.solve(a[:3, :3], (world - a[:3, 3]).T).T[:, ::-1]  # (z, y, x) grid indices
    lo = np.asarray(origin, float) - 0.5
    hi = lo + np.asarray(shape, float)
    if ((index >= lo) & (index <= hi)).all():
        return world
    return voxel_to_world(a, np.clip(index, lo, hi))


def _taubin(vertices: np.ndarray, faces: np.ndarray, iterations: int) -> np.ndarray:
    """Taubin's lambda|mu smoothing (a low-pass filter of the surface that does not shrink it) with the
    umbrella operator: each step moves a vertex towards the mean of its neighbours by lambda, then away by
    mu. It removes the voxel staircase, keeps flat faces flat and rounds edges by about a voxel."""
    n = len(vertices)
    i = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    j = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    adjacency = sparse.coo_matrix((np.ones(2 * len(i)), (np.concatenate([i, j]), np.concatenate([j, i]))), shape=(n, n))
    adjacency = adjacency.tocsr()
    adjacency.data[:] = 1.0  # each neighbour once, whatever the number of faces sharing the edge
    mean = sparse.diags(1.0 / np.maximum(np.asarray(adjacency.sum(axis=1)).ravel(), 1)) @ adjacency
    v = vertices.copy()
    lam, mu = TAUBIN
    for _ in range(iterations):
        v += lam * (mean @ v - v)
        v += mu * (mean @ v - v)
    return v


def _decimated(mesh: Mesh, share: float) -> Mesh:
    import fast_simplification

    was_closed = mesh.closed()
    points, faces = fast_simplification.simplify(mesh.vertices.astype(np.float32), mesh.faces, target_reduction=share)
    smaller = replace(mesh, vertices=np.asarray(points, np.float64), faces=np.asarray(faces, np.int32))
    if smaller.empty or (was_closed and not smaller.closed()):
        settings = dict(mesh.settings, decimation=0.0)
        return replace(mesh, settings=settings,
                       note=f"decimation by {share:.0%} would have opened the closed surface; written undecimated")
    if smaller.volume() < 0:
        smaller = replace(smaller, faces=smaller.faces[:, ::-1].copy())
    return smaller


def header_text(text: str, limit: int) -> str:
    """``text`` (a label name from a file, a setting) as printable ASCII on one line, at most ``limit``
    characters: nothing in it can end a header line, start an STL ``solid`` text file or carry an escape."""
    clean = "".join(c if " " <= c <= "~" else "?" for c in str(text).replace("\r", " ").replace("\n", " "))
    return clean[:limit]


def describe(mesh: Mesh, space: str, name: str) -> list[str]:
    """The lines that state a mesh file's content: coordinate system, unit, label and settings."""
    s = mesh.settings
    return [f"SPACE={space}", "unit mm", f"label {header_text(name, 64)}",
            f"smoothing {s.get('smoothing_iterations', 0)} Taubin iterations (lambda {s.get('taubin_lambda', 0):g} mu "
            f"{s.get('taubin_mu', 0):g}), decimation {s.get('decimation', 0):g}",
            "written by unetgui"]


def write(mesh: Mesh, path: str, fmt: str, space: str = "LPS", name: str = "") -> None:
    """Write ``mesh`` to ``path`` as ``fmt`` ("stl", "obj" or "ply") in ``space`` mm."""
    if fmt not in MESH_FORMATS:
        raise FormatError(f"mesh format must be one of {', '.join(MESH_FORMATS)}, got {fmt!r}")
    if mesh.empty:
        raise FormatError(f"{name or 'this label'}: no surface to write (the label is empty)")
    vertices = mesh.in_space(space)
    faces = mesh.faces  # LPS mirrors two axes (a rotation by 180 degrees): winding and normals stay outward
    lines = describe(mesh, space, name)
    with open(path, "wb") as f:
        if fmt == "stl":
            _write_stl(f, vertices, faces, lines)
        elif fmt == "obj":
            _write_obj(f, vertices, faces, lines)
        else:
            _write_ply(f, vertices, faces, lines)


def _write_stl(f, vertices: np.ndarray, faces: np.ndarray, lines: list[str]) -> None:
    # 80-byte header: never "solid..." (readers would take the file for ASCII STL)
    header = header_text(" ".join(lines[:2] + lines[2:3]), 80).encode("ascii").ljust(80, b" ")
    tri = vertices[faces].astype(np.float32)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(n, axis=1, keepdims=True)
    n = np.divide(n, length, out=np.zeros_like(n), where=length > 0)
    record = np.zeros(len(faces), dtype=[("normal", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    record["normal"] = n
    record["v"] = tri
    f.write(header)
    f.write(struct.pack("<I", len(faces)))
    f.write(record.tobytes())


def _write_obj(f, vertices: np.ndarray, faces: np.ndarray, lines: list[str]) -> None:
    f.write("".join(f"# {line}\n" for line in lines).encode("ascii"))
    f.write("".join(f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in vertices).encode("ascii"))
    f.write("".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in faces).encode("ascii"))


def _write_ply(f, vertices: np.ndarray, faces: np.ndarray, lines: list[str]) -> None:
    head = ["ply", "format binary_little_endian 1.0", *(f"comment {line}" for line in lines),
            f"element vertex {len(vertices)}", "property float x", "property float y", "property float z",
            f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header"]
    f.write(("\n".join(head) + "\n").encode("ascii"))
    f.write(vertices.astype("<f4").tobytes())
    record = np.zeros(len(faces), dtype=[("n", "u1"), ("i", "<i4", 3)])
    record["n"] = 3
    record["i"] = faces
    f.write(record.tobytes())
