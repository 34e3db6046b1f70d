"""Surfaces, meshes and segment statistics (issue 27) against known shapes and independent implementations:
a sphere and a box of known size on an anisotropic, oblique grid (volume, surface area, vertices against the true
surface in LPS and RAS, closed); the statistics against SimpleITK's label shape and intensity filters; STL, OBJ and
PLY read back by trimesh and numpy-stl; a mesh of the real CT's DICOM-SEG liver inside the image's world bounds."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from unetgui.core.geometry import LPS_TO_RAS, voxel_to_world
from unetgui.core.volume import Label, LabelMap, LabelTable, Volume
from unetgui.formats import mesh
from unetgui.formats.statistics import csv_text, json_text, label_statistics

SPACING = np.array([0.7, 0.9, 2.0])  # x, y, z mm: anisotropic, 2 mm slices
SHAPE = (60, 150, 230)  # z, y, x


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    def r(axis, deg):
        c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
        m = np.eye(3)
        i, j = [k for k in range(3) if k != axis]
        m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
        return m
    return r(2, az) @ r(1, ay) @ r(0, ax)


ROT = _rotation(20, -15, 30)  # an oblique acquisition


def _affine() -> np.ndarray:
    a = np.eye(4)
    a[:3, :3] = ROT * SPACING
    a[:3, 3] = [-40.0, 25.0, -80.0]
    return a


def _local(affine, centre_zyx) -> np.ndarray:
    """Each voxel centre in mm along the grid's own x, y, z axes, from ``centre_zyx``."""
    zyx = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), -1).astype(float)
    return (zyx - centre_zyx)[..., ::-1] * SPACING


def _half_voxel(normals_local: np.ndarray) -> np.ndarray:
    """Half the extent of a voxel along each (unit, grid-axis) normal: half a voxel in that direction."""
    return 0.5 * (np.abs(normals_local) * SPACING).sum(axis=1)


@pytest.fixture(scope="module")
def shapes():
    affine = _affine()
    centre = np.array([30.3, 75.4, 80.2])
    radius = 25.0
    sphere = np.linalg.norm(_local(affine, centre), axis=-1) <= radius
    box = np.zeros(SHAPE, bool)
    lo, counts = np.array([8, 20, 160]), np.array([20, 45, 60])  # z, y, x voxels: 40 x 40.5 x 42 mm
    box[lo[0]:lo[0] + counts[0], lo[1]:lo[1] + counts[1], lo[2]:lo[2] + counts[2]] = True
    assert not (sphere & box).any()  # apart
    return affine, centre, radius, sphere, box, lo, counts


def test_a_sphere_on_an_oblique_anisotropic_grid_measures_true(shapes):
    affine, centre, radius, sphere, _, _, _ = shapes
    assert sphere.sum() > 10_000 and not sphere[0].any() and not sphere[-1].any()
    labels = LabelMap(sphere.astype(np.uint8), affine, LabelTable.from_names("sphere"))
    (stats,) = label_statistics(None, labels)
    assert stats.volume_mm3 == pytest.approx(4 / 3 * np.pi * radius**3, rel=0.01)
    assert stats.volume_ml == pytest.approx(stats.volume_mm3 / 1000)
    assert stats.surface_mm2 == pytest.approx(4 * np.pi * radius**2, rel=0.03)
    surface = mesh.surface(sphere, affine)
    assert surface.closed()
    assert surface.volume() == pytest.approx(4 / 3 * np.pi * radius**3, rel=0.01)
    centre_ras = voxel_to_world(affine, centre)
    for space in mesh.SPACES:  # the true surface in each coordinate system against the vertices written in it
        true_centre = centre_ras if space == "RAS" else centre_ras * np.diag(LPS_TO_RAS)[:3]
        offset = surface.in_space(space) - true_centre
        distance = np.linalg.norm(offset, axis=1)
        normals = (offset / distance[:, None]) @ (ROT if space == "RAS" else LPS_TO_RAS[:3, :3] @ ROT)
        assert np.all(np.abs(distance - radius) <= _half_voxel(normals))
    # outward normals: each face's normal points away from the centre
    faces = surface.vertices[surface.faces].mean(axis=1)
    assert np.all(np.einsum("ij,ij->i", surface.face_normals(), faces - centre_ras) > 0)


def test_a_box_of_known_size_on_an_oblique_anisotropic_grid_measures_true(shapes):
    affine, _, _, _, box, lo, counts = shapes
    sides = counts[::-1] * SPACING  # x, y, z mm
    area = 2 * (sides[0] * sides[1] + sides[1] * sides[2] + sides[0] * sides[2])
    labels = LabelMap(box.astype(np.uint8) * 3, affine, LabelTable((Label(3, "box", (0, 0, 255)),)))
    (stats,) = label_statistics(None, labels)
    assert stats.label == 3 and stats.volume_mm3 == pytest.approx(np.prod(sides), rel=1e-9)
    assert stats.extent_mm == pytest.approx(tuple(sides))
    assert stats.surface_mm2 == pytest.approx(area, rel=0.03)
    surface = mesh.surface(box, affine)
    assert surface.closed()
    corner_ras = voxel_to_world(affine, lo - 0.5)  # the box's true corner: the outer faces of its voxels
    for space in mesh.SPACES:
        flip = np.eye(3) if space == "RAS" else LPS_TO_RAS[:3, :3]
        local = (surface.in_space(space) - flip @ corner_ras) @ (flip @ ROT)  # mm along the grid's axes
        to_faces = np.minimum(np.abs(local), np.abs(sides - local))
        nearest = to_faces.argmin(axis=1)
        assert np.all(to_faces[np.arange(len(local)), nearest] <= 0.5 * SPACING[nearest] + 1e-6)
        assert np.all((local > -0.5 * SPACING) & (local < sides + 0.5 * SPACING))


def test_diameters_of_a_box_are_its_diagonals_and_of_any_shape_its_farthest_voxel_corners(shapes):
    """RECIST's longest diameter and its perpendicular width on the slices, and the 3-D Feret diameter: a box's are
    its face and space diagonals, exactly, on an oblique grid; on a random shape they equal the brute-force farthest
    pair of voxel corners (the convex hull shortcut loses nothing)."""
    from unetgui.core.statistics import diameters_mm

    affine, _, _, _, box, lo, counts = shapes
    x, y, z = counts[::-1] * SPACING
    (stats,) = label_statistics(None, LabelMap(box.astype(np.uint8), affine, LabelTable.from_names("box")))
    assert stats.long_diameter_mm == pytest.approx(np.hypot(x, y), rel=1e-9)
    # RECIST's short axis: the longest chord perpendicular to the diagonal, from a corner to the far side
    assert stats.short_diameter_mm == pytest.approx(min(x, y) * np.hypot(x, y) / max(x, y), rel=1e-9)
    (x0, y0), (x1, y1) = stats.axes.long  # the diagonal's ends: opposite corners of the box's slice
    assert stats.axes.slice == lo[0] and {abs(x1 - x0), abs(y1 - y0)} == {counts[2], counts[1]}
    assert {min(x0, x1), min(y0, y1)} == {lo[2] - 0.5, lo[1] - 0.5}
    assert stats.long_diameter_slice == lo[0]  # every slice alike: the first
    assert stats.feret_mm == pytest.approx(np.linalg.norm([x, y, z]), rel=1e-9)
    rng = np.random.default_rng(7)
    for _ in range(5):
        shape = rng.random((4, 7, 9)) < 0.3
        long_, short, where, feret, axes = diameters_mm(shape, (10, 3, 5), affine)
        voxels = np.argwhere(shape)[:, ::-1].astype(float)  # x, y, z
        corners = (voxels[:, None, :] + np.array([[dx, dy, dz] for dx in (-.5, .5) for dy in (-.5, .5)
                                                  for dz in (-.5, .5)])[None]).reshape(-1, 3) @ affine[:3, :3].T
        assert feret == pytest.approx(np.max(np.linalg.norm(corners[:, None] - corners[None], axis=-1)), rel=1e-9)
        per_slice = []
        for k in range(shape.shape[0]):
            c = corners.reshape(len(voxels), 8, 3)[voxels[:, 2] == k][:, ::2]  # the corners at one face of slice k
            c = c.reshape(-1, 3)
            per_slice.append(np.max(np.linalg.norm(c[:, None] - c[None], axis=-1)) if len(c) else 0.0)
        assert long_ == pytest.approx(max(per_slice), rel=1e-9) 
        assert where == 10 + next(k for k, d in enumerate(per_slice) if d >= max(per_slice) * (1 - 1e-9))
        assert 0 < short <= long_ + 1e-9


def test_the_diameters_of_a_rotated_ellipse_are_its_axes_within_a_pixel():
    """A 40 x 15 mm ellipse turned 30 degrees on 0.5 mm pixels: long and short axis within a pixel's diagonal
    (digitised edges), the short axis perpendicular to the long one, both ends on the ellipse's edge."""
    from unetgui.core.statistics import diameters_mm

    affine = np.diag([0.5, 0.5, 3.0, 1.0])
    y, x = np.mgrid[:200, :200] - 100.0
    angle = np.deg2rad(30)
    u, v = x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)
    ellipse = ((u / 40) ** 2 + (v / 15) ** 2 < 1)[None]  # semi-axes in pixels
    long_, short, where, feret, axes = diameters_mm(ellipse, (7, 0, 0), affine)
    pixel = np.hypot(0.5, 0.5)
    assert 40 <= long_ <= 40 + pixel and 15 <= short <= 15 + pixel and where == axes.slice == 7
    assert feret == pytest.approx(np.hypot(long_, 3.0), rel=0.01)  # one 3 mm slice: the long axis across it
    ends = np.array([*axes.long, *axes.short]) - 100.0  # (x, y) pixels from the centre
    long_dir, short_dir = ends[1] - ends[0], ends[3] - ends[2]
    assert abs(long_dir @ short_dir) / (np.linalg.norm(long_dir) * np.linalg.norm(short_dir)) < 1e-9
    assert np.linalg.norm(long_dir) * 0.5 == pytest.approx(long_) and np.linalg.norm(short_dir) * 0.5 == pytest.approx(short)
    radius = np.hypot((ends @ [np.cos(angle), np.sin(angle)]) / 40, (ends @ [-np.sin(angle), np.cos(angle)]) / 15)
    assert np.all(np.abs(radius - 1) < 0.06)  # on the edge, within the digitisation


def test_a_small_lesion_next_to_another_keeps_its_surface_on_thick_slices():
    """Slices interpolated between (5 mm on 0.78 mm pixels) piece by piece: an 8 mm lesion on one slice, next to a
    30 mm one on the neighbouring slices in the same label, keeps its own volume and area (the other's distance,
    the far side of the slice for it, used to shave it away)."""
    affine = np.diag([0.78, 0.78, 5.0, 1.0])
    z, y, x = np.mgrid[:12, :120, :120]
    big = ((x - 40) * 0.78) ** 2 + ((y - 40) * 0.78) ** 2 + ((z - 6) * 5.0) ** 2 < 15 ** 2  # slices 4..8
    small = (((x - 90) * 0.78) ** 2 + ((y - 90) * 0.78) ** 2 < 4 ** 2) & (z == 9)  # slice 9 only
    alone = [mesh.surface(m, affine) for m in (big, small)]
    both = mesh.surface(big | small, affine)
    assert alone[1].volume() > 0.9 * small.sum() * 0.78 * 0.78 * 5.0
    assert both.volume() == pytest.approx(alone[0].volume() + alone[1].volume(), rel=1e-3)
    assert both.area() == pytest.approx(alone[0].area() + alone[1].area(), rel=1e-3)


def test_the_statistics_equal_simpleitks_label_shape_and_intensity_filters(shapes):
    sitk = pytest.importorskip("SimpleITK")
    affine, _, _, sphere, box, _, _ = shapes
    labels = np.zeros(SHAPE, np.uint8)
    labels[sphere] = 1
    labels[box] = 2
    labels[50:55, 10:14, 140:150] = 2  # a second piece of label 2
    rng = np.random.default_rng(0)
    image = rng.normal(40, 25, SHAPE).round().astype(np.int16)  # HU-like integers
    volume = Volume(image, affine, "CT")
    stats = label_statistics(volume, LabelMap(labels, affine, LabelTable.from_names("sphere", "box")))

    lps = LPS_TO_RAS @ affine  # ITK's physical space is LPS
    def itk(array):
        img = sitk.GetImageFromArray(array)  # (z, y, x) array -> an (x, y, z) image
        img.SetSpacing(tuple(float(s) for s in SPACING))
        img.SetOrigin(tuple(float(v) for v in lps[:3, 3]))
        img.SetDirection(tuple((lps[:3, :3] / SPACING).ravel()))
        return img
    shape_filter = sitk.LabelShapeStatisticsImageFilter()
    shape_filter.ComputeFeretDiameterOn()
    shape_filter.Execute(itk(labels))
    intensity = sitk.LabelIntensityStatisticsImageFilter()
    intensity.SetNumberOfBins(int(image.max() - image.min()) + 1)  # one bin per integer: an exact median
    intensity.Execute(itk(labels), itk(image))
    for s in stats:
        assert s.voxels == shape_filter.GetNumberOfPixels(s.label)
        assert s.volume_mm3 == pytest.approx(shape_filter.GetPhysicalSize(s.label), rel=1e-9)
        size = np.array(shape_filter.GetBoundingBox(s.label)[3:])  # x, y, z voxels
        assert s.extent_mm == pytest.approx(tuple(size * SPACING), rel=1e-9)
        centroid_ras = np.diag(LPS_TO_RAS)[:3] * np.array(shape_filter.GetCentroid(s.label))
        assert s.centroid_ras == pytest.approx(tuple(centroid_ras), abs=1e-6)
        assert s.mean == pytest.approx(intensity.GetMean(s.label), rel=1e-9)
        assert s.std == pytest.approx(intensity.GetStandardDeviation(s.label), rel=1e-9)  # N - 1, as ITK
        assert (s.minimum, s.maximum) == (intensity.GetMinimum(s.label), intensity.GetMaximum(s.label))
        assert abs(s.median - intensity.GetMedian(s.label)) <= 1.0  # ITK's median is a histogram bin's
        pieces = sitk.ConnectedComponent(itk((labels == s.label).astype(np.uint8)), False)  # faces (6-connected)
        counts = np.bincount(sitk.GetArrayFromImage(pieces).ravel())[1:]
        assert s.components == len(counts) and s.largest_share == pytest.approx(counts.max() / counts.sum())
        assert s.unit == "HU"
        # ITK joins border voxel centres, we the voxels' outer corners: longer by at most a voxel's diagonal
        feret = shape_filter.GetFeretDiameter(s.label)
        assert feret < s.feret_mm <= feret + np.linalg.norm(SPACING) + 1e-6
        inside = image[labels == s.label].astype(float)
        assert (s.p5, s.p95) == pytest.approx(tuple(np.percentile(inside, [5, 95])))
    pixel = np.linalg.norm(np.cross(affine[:3, 0], affine[:3, 1]))
    assert stats[1].slice_area_mm2 == pytest.approx(np.count_nonzero(labels == 2, axis=(1, 2)) * pixel)


def test_the_one_writer_gives_csv_and_json_with_names_from_files_made_safe():
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    labels = np.zeros((6, 20, 20), np.uint8)
    labels[1:4, 5:10, 5:12] = 1
    table = LabelTable((Label(1, "=cmd|' /C calc'!A0", (1, 2, 3)), Label(2, "absent", (4, 5, 6))))
    stats = label_statistics(Volume(np.ones(labels.shape, np.float32), affine, "MR"), LabelMap(labels, affine, table))
    rows = list(csv.DictReader(io.StringIO(csv_text(stats))))
    first, absent = [r for r in rows if r["section"] == "labels"]
    assert first["name"].startswith("'=") and first["voxels"] == str(3 * 5 * 7) and first["unit"] == ""
    assert (absent["voxels"], absent["first_slice"], absent["mean"]) == ("0", "", "")
    assert [(r["slice"], float(r["area_mm2"])) for r in rows if r["section"] == "slice_area"] == [
        (str(z), pytest.approx(35 * 0.64)) for z in (2, 3, 4)]
    data = json.loads(json_text(stats, "image\x1b[31m.nii"))
    assert data["image"] == "image [31m.nii" and data["labels"][1]["centroid_r_mm"] is None
    assert data["labels"][0]["slice_area_mm2"][1] == pytest.approx(35 * 0.64)
    assert first["long_diameter_slice"] == "2" and data["labels"][0]["long_diameter_slice"] == 2  # from 1
    assert not [r for r in rows if r["section"] == "piece"]  # one piece: the label's row says it all
    assert [p["piece"] for p in data["labels"][0]["pieces"]] == [1] and data["labels"][1]["pieces"] == []
    # a second piece: a row per piece, largest first, slices from 1
    labels[5, 15:17, 15:18] = 1
    stats = label_statistics(None, LabelMap(labels, affine, table))
    rows = list(csv.DictReader(io.StringIO(csv_text(stats))))
    pieces = [r for r in rows if r["section"] == "piece"]
    label = next(r for r in rows if r["section"] == "labels")  # a label of two pieces: its largest piece's diameters
    assert [label[k] for k in ("long_diameter_mm", "short_diameter_mm", "long_diameter_slice")] == [
        pieces[0][k] for k in ("long_diameter_mm", "short_diameter_mm", "long_diameter_slice")]
    assert float(label["feret_mm"]) > float(pieces[0]["feret_mm"])  # the 3-D maximum spans both, as ITK's
    # the JSON says where each diameter lies: its ends in world RAS mm, as far apart as the diameter is long
    for item in json.loads(json_text(stats))["labels"][0]["pieces"]:
        for axis, length in (("long_axis_ras_mm", "long_diameter_mm"), ("short_axis_ras_mm", "short_diameter_mm")):
            ends = np.array(item[axis])
            assert ends.shape == (2, 3) and np.linalg.norm(ends[1] - ends[0]) == pytest.approx(item[length])
            assert np.allclose(ends[:, 2], affine[2, 2] * (item["long_diameter_slice"] - 1) + affine[2, 3])
    assert [(r["piece"], r["voxels"], r["long_diameter_slice"]) for r in pieces] == [("1", "105", "2"),
                                                                                     ("2", "6", "6")]
    assert pieces[1]["name"].startswith("'=") and float(pieces[1]["long_diameter_mm"]) == pytest.approx(
        np.hypot(2, 3) * 0.8)


@pytest.mark.parametrize("fmt", mesh.MESH_FORMATS)
@pytest.mark.parametrize("space", mesh.SPACES)
def test_mesh_files_read_back_by_trimesh_closed_in_their_stated_space(tmp_path, shapes, fmt, space):
    trimesh = pytest.importorskip("trimesh")
    affine, _, _, sphere, _, _, _ = shapes
    surface = mesh.surface(sphere, affine, decimate=0.5)
    assert surface.closed() and surface.settings["decimation"] == 0.5
    path = tmp_path / f"sphere.{fmt}"
    mesh.write(surface, str(path), fmt, space, name="sphere\n\x1b[31m é")
    raw = path.read_bytes()
    header = raw[:80] if fmt == "stl" else raw[:400]
    assert f"SPACE={space}".encode() in header and b"\x1b" not in header and not raw.startswith(b"solid")
    back = trimesh.load(str(path), process=fmt == "stl")  # STL stores triangles: merge their corners again
    assert back.is_watertight and back.is_winding_consistent and back.volume > 0  # outward normals
    assert len(back.faces) == len(surface.faces)
    assert back.volume == pytest.approx(surface.volume(), rel=1e-4)
    expected = surface.in_space(space)
    assert np.allclose(np.sort(back.vertices, axis=0), np.sort(expected, axis=0), atol=1e-3)


@pytest.mark.parametrize("box", [(1, 1, 1), (2, 2, 2), (1, 1, 14)])
def test_a_label_a_voxel_or_two_across_keeps_its_voxel_surface(box):
    """Smoothing would shrink a small lesion or a thin vessel to nothing: its voxel surface is kept, and said so."""
    mask = np.pad(np.ones(box, bool), 3)
    surface = mesh.surface(mask, np.diag([0.8, 0.8, 2.0, 1.0]))
    assert surface.closed() and surface.area() > 0 and "too small or thin" in surface.note
    assert surface.settings["smoothing_iterations"] == 0
    assert surface.volume() == pytest.approx(mesh.surface(mask, np.diag([0.8, 0.8, 2.0, 1.0]), smoothing=0).volume())


def test_an_empty_label_has_no_surface_and_cannot_be_written(tmp_path):
    from unetgui.core.errors import FormatError

    empty = mesh.surface(np.zeros((4, 5, 6), bool), np.eye(4))
    assert empty.empty and not empty.closed()
    with pytest.raises(FormatError, match="empty"):
        mesh.write(empty, str(tmp_path / "x.stl"), "stl")


def test_a_mesh_of_the_real_ct_liver_is_read_by_numpy_stl_inside_the_image(tmp_path, data_dir: Path):
    stl = pytest.importorskip("stl")
    from unetgui import cli
    from unetgui.formats.inputs import open_image

    case = data_dir / "dcmqi-ct-3slice-liver-seg"
    out = tmp_path / "out"
    assert cli.main(["export", "--input", str(case / "ct"), "--labels", str(case / "seg" / "liver_seg.dcm"),
                     "--output", str(out), "--mesh", "stl"]) == 0
    (path,) = out.glob("*_mesh/*_1_Liver.stl")
    manifest = json.loads(next(out.glob("*_mesh/*_meshes.json")).read_text())
    assert manifest["coordinate_system"] == "LPS" and manifest["unit"] == "mm" and manifest["meshes"][0]["closed"]
    liver = stl.mesh.Mesh.from_file(str(path))
    points = liver.vectors.reshape(-1, 3)
    volume = open_image(str(case / "ct")).volume
    corners = np.array([[z, y, x] for z in (-0.5, volume.shape[0] - 0.5) for y in (-0.5, volume.shape[1] - 0.5)
                        for x in (-0.5, volume.shape[2] - 0.5)])
    world_lps = voxel_to_world(volume.affine, corners) * np.diag(LPS_TO_RAS)[:3]
    # inside the image's world bounds: the points, in the grid's own axes, within the image's box
    lps = LPS_TO_RAS @ volume.affine
    index_xyz = np.linalg.solve(lps[:3, :3], (points - lps[:3, 3]).T).T
    assert np.all(index_xyz >= -0.5 - 1e-3) and np.all(index_xyz <= np.array(volume.shape[::-1]) - 0.5 + 1e-3)
    assert np.all(points >= world_lps.min(axis=0) - 1e-3) and np.all(points <= world_lps.max(axis=0) + 1e-3)
    volume_mm3, _, _ = liver.get_mass_properties()
    stats_volume = 107_098 * abs(np.linalg.det(volume.affine[:3, :3]))  # the SEG's liver voxels
    assert volume_mm3 == pytest.approx(stats_volume, rel=0.1)  # a 3-slice slab: its smoothed edges cost a little


def test_an_export_with_metrics_and_meshes_builds_each_surface_once(tmp_path, data_dir: Path, monkeypatch):
    """The metrics CSV's surface area is measured on the mesh file's surface when the mesh has the default
    settings (one build per label, the same area as the metrics alone); other settings keep the default area."""
    from unetgui import cli

    case = data_dir / "dcmqi-ct-3slice-liver-seg"
    built, real = [], mesh.surface
    monkeypatch.setattr(mesh, "surface", lambda *a, **k: built.append(1) or real(*a, **k))

    def export(out, *extra):
        built.clear()
        assert cli.main(["export", "--input", str(case / "ct"), "--labels", str(case / "seg" / "liver_seg.dcm"),
                         "--output", str(tmp_path / out), "--metrics", *extra]) == 0
        rows = list(csv.DictReader(io.StringIO(next((tmp_path / out).glob("*_metrics.csv")).read_text())))
        return [float(r["surface_mm2"]) for r in rows if r["section"] == "labels"], len(built)

    alone, builds = export("alone")
    assert builds == 1
    both, builds = export("both", "--mesh", "stl")
    assert builds == 1 and both == pytest.approx(alone, rel=1e-9)
    manifest = json.loads(next((tmp_path / "both").glob("*_mesh/*_meshes.json")).read_text())
    assert manifest["meshes"][0]["area_mm2"] == pytest.approx(alone[0], rel=1e-9)
    raw, builds = export("raw", "--mesh", "stl", "--mesh-smoothing", "0")
    assert builds == 2 and raw == pytest.approx(alone, rel=1e-9)  # the metrics keep the default surface


def test_unetgui_stats_prints_each_piece_of_a_label_of_several(tmp_path, capsys):
    nib = pytest.importorskip("nibabel")
    from unetgui import cli

    affine = np.diag([0.8, 0.8, 2.0, 1.0])  # x, y, z
    labels = np.zeros((40, 40, 10), np.uint8)  # x, y, z as NIfTI stores
    labels[5:15, 5:15, 2:5] = 1
    labels[30:33, 30:38, 6:8] = 1
    labels[20:30, 20:25, 1:3] = 2
    nib.save(nib.Nifti1Image(labels, affine), str(tmp_path / "labels.nii.gz"))
    nib.save(nib.Nifti1Image(np.ones(labels.shape, np.float32), affine), str(tmp_path / "image.nii.gz"))
    assert cli.main(["stats", "--image", str(tmp_path / "image.nii.gz"), "--labels", str(tmp_path / "labels.nii.gz"),
                     "--no-surface"]) == 0
    lines = capsys.readouterr().out.splitlines()
    pieces = [line.split() for line in lines if line.startswith("  piece")]
    assert [p[:4] for p in pieces] == [["piece", "1", "of", "2"], ["piece", "2", "of", "2"]]
    assert pieces[1][4] == "48" and pieces[1][6] == f"{np.hypot(2.4, 6.4):.1f}x{2.4 * np.hypot(2.4, 6.4) / 6.4:.1f}"
    assert "on slice 7" in " ".join(pieces[1])  # z 6 from 0
    assert not any("piece" in line for line in lines[lines.index(next(x for x in lines if x.startswith("Label 2"))):])


def test_unetgui_stats_prints_and_writes_what_the_task_measures(tmp_path, data_dir: Path, capsys):
    from unetgui import cli
    from unetgui.formats.inputs import open_image, open_labels
    from unetgui.tasks.stats import document_statistics

    case = data_dir / "dcmqi-ct-3slice-liver-seg"
    args = ["stats", "--image", str(case / "ct"), "--labels", str(case / "seg" / "liver_seg.dcm"),
            "--csv", str(tmp_path / "s.csv"), "--json", str(tmp_path / "s.json")]
    assert cli.main(args) == 0
    assert "Liver" in capsys.readouterr().out
    image = open_image(str(case / "ct"))
    labels, _ = open_labels(str(case / "seg" / "liver_seg.dcm"), image)
    (expected,) = document_statistics(image.volume, labels)
    (row,) = json.loads((tmp_path / "s.json").read_text())["labels"]
    assert row["voxels"] == expected.voxels == int(np.count_nonzero(labels.labels == 1))
    assert row["mean"] == pytest.approx(float(image.volume.voxels[labels.labels == 1].mean()))
    assert row["surface_mm2"] == pytest.approx(expected.surface_mm2) and row["unit"] == "HU"
    table = list(csv.DictReader(open(tmp_path / "s.csv", newline="")))
    assert table[0]["voxels"] == str(expected.voxels) and sum(r["section"] == "slice_area" for r in table) == 3
    assert cli.main(["stats", "--image", str(case / "ct"), "--labels", str(tmp_path / "missing.nii.gz")]) == 1
