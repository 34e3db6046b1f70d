"""Projects: save/reopen identity, the autosave journal, crash recovery after SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import phantom_hu
from unetgui.core.errors import FormatError
from unetgui.core.geometry import affine_from_dicom  # noqa: F401 - geometry is exercised through nifti
from unetgui.core.session import BrushSettings, Session
from unetgui.core.volume import Label, LabelMap, LabelTable, Volume
from unetgui.formats import nifti
from unetgui.project import journal
from unetgui.project.autosave import Autosaver
from unetgui.project.store import Project

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import autosave_child  # noqa: E402


def _image(tmp_path: Path, shape=(10, 48, 56)) -> tuple[str, Volume]:
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    path = str(tmp_path / "ct.nii.gz")
    nifti.write_image(Volume(phantom_hu(shape), affine, "CT"), path)
    return path, nifti.read_image(path)


def _project(tmp_path: Path) -> tuple[Project, Volume]:
    path, volume = _image(tmp_path)
    project = Project.create(str(tmp_path / "proj"), LabelTable.from_names("Liver"))
    project.add_series(path, volume, "nifti")
    return project, volume


def test_journal_replays_records_and_stops_at_a_torn_tail(tmp_path):
    path = str(tmp_path / "j")
    j = journal.Journal(path, "s1", (4, 8, 8), "tok")
    rng = np.random.default_rng(0)
    planes = [rng.integers(0, 3, (1, 8, 8), dtype=np.uint8) for _ in range(3)]
    for k, p in enumerate(planes):
        j.append([k], p, np.arange(4) == k, np.zeros(4, bool))
    j.close()
    records = journal.replay(path, "tok", (4, 8, 8))
    assert [r.slices for r in records] == [(0,), (1,), (2,)]
    assert all(np.array_equal(r.planes, p) for r, p in zip(records, planes))
    assert records[2].reviewed.tolist() == [False, False, True, False]
    size = os.path.getsize(path)
    with open(path, "r+b") as f:  # a write cut short by a kill
        f.truncate(size - 5)
    assert len(journal.replay(path, "tok", (4, 8, 8))) == 2
    with open(path, "r+b") as f:  # a flipped byte in the second record: only the first is trusted
        f.seek(size - 5 - 60)
        byte = f.read(1)
        f.seek(size - 5 - 60)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert len(journal.replay(path, "tok", (4, 8, 8))) <= 2
    assert journal.replay(path, "other snapshot", (4, 8, 8)) == []  # a journal of an older snapshot


def test_project_saved_and_reopened_is_identical(tmp_path):
    project, volume = _project(tmp_path)
    entry = project.series[0]
    session = Session()
    session.open(volume, table=project.table)
    saver = Autosaver(session, project, entry.id)
    session.add_label("Kidney")
    for k in range(6):
        autosave_child.stroke(session, k)
    session.set_reviewed(1)  # R: the plane is truth
    session.set_test(2)
    project.state = {"current_series": entry.id}
    saver.snapshot()
    project.save()
    project.unlock()

    again = Project.open(project.root)
    assert [s.to_json() for s in again.series] == [s.to_json() for s in project.series]
    assert again.table == session.table and [lab.name for lab in again.table] == ["Liver", "Kidney"]
    assert again.state == {"current_series": entry.id}
    saved = again.load_labels(entry.id)
    assert np.array_equal(saved.labels, session.labels.labels)
    assert np.array_equal(saved.reviewed, session.reviewed) and np.array_equal(saved.test, session.test)
    assert session.annotated.any() and np.array_equal(saved.annotated, session.annotated)  # the strokes' voxels
    assert saved.recovered_edits == 0
    assert np.array_equal(again.load_image(again.series[0]).voxels, volume.voxels)


def test_journal_alone_restores_the_edits_since_the_snapshot(tmp_path):
    project, volume = _project(tmp_path)
    session = Session()
    session.open(volume, table=project.table)
    Autosaver(session, project, "s1")
    for k in range(5):
        autosave_child.stroke(session, k)
    session.undo()  # undo and redo are journaled too
    session.set_reviewed(0)
    saved = Project.open(project.root).load_labels("s1")  # no snapshot since the first one
    assert saved.recovered_edits >= 6
    assert np.array_equal(saved.labels, session.labels.labels)
    assert np.array_equal(saved.reviewed, session.reviewed)
    assert np.array_equal(saved.annotated, session.annotated)


def test_a_failed_segmentation_is_taken_back_in_the_journal_at_once(tmp_path):
    """Issue 12, item 10: batches of a segmentation can reach the journal before it fails (any flush while it
    runs writes the dirty slices); the rollback must be journaled at once, or a crash brings them back."""
    project, volume = _project(tmp_path)
    session = Session()
    session.open(volume, table=project.table)
    Autosaver(session, project, "s1")
    before = {z: session.labels.labels[z].copy() for z in (2, 3)}
    session.apply_prediction([2, 3], np.ones((2, *volume.shape[1:]), np.uint8))  # two batches shown
    session.set_reviewed(7)  # the user marks another slice meanwhile: a flush journals slices 2 and 3
    assert Project.open(project.root).read_labels("s1").labels[2].all()
    assert session.discard_prediction(before) == (2, 3)  # the job failed
    on_disk = Project.open(project.root).read_labels("s1")  # what a crash now would recover
    assert np.array_equal(on_disk.labels, session.labels.labels) and not on_disk.labels[2].any()


def test_a_stroke_in_progress_is_not_journaled_until_it_ends(tmp_path):
    project, volume = _project(tmp_path)
    session = Session()
    session.open(volume, table=project.table)
    Autosaver(session, project, "s1")
    session.begin_stroke()
    session.paint_segment(10, 10, 20, 20, BrushSettings(radius=4))
    assert Project.open(project.root).load_labels("s1").labels.max() == 0
    session.end_stroke()
    assert Project.open(project.root).load_labels("s1").labels.max() == 1


def test_model_is_saved_atomically_into_the_project_and_reopened(tmp_path):
    from engine_fixtures import tiny_checkpoint

    project, _ = _project(tmp_path)
    checkpoint = tiny_checkpoint()
    entry = project.add_model(checkpoint, "first model")
    assert entry.file == "models/first-model.unetgui" and project.current_model == entry.file
    again = Project.open(project.root)
    loaded = again.load_model()
    assert again.models[0].name == "first-model"
    for key, value in checkpoint.weights.items():
        assert (loaded.weights[key] == value).all()
    assert os.listdir(project.path("models")) == ["first-model.unetgui"]  # no temporary file left


def test_bad_projects_give_clear_errors(tmp_path):
    with pytest.raises(FormatError, match="not a unetgui project"):
        Project.open(str(tmp_path))
    project, _ = _project(tmp_path)
    with pytest.raises(FormatError, match="already holds a project"):
        Project.create(project.root)
    Path(project.path("project.json")).write_text("{ broken")
    with pytest.raises(FormatError, match="damaged"):
        Project.open(project.root)


def test_crafted_project_files_cannot_reach_outside_the_project(tmp_path, capsys):
    import json

    from unetgui import cli
    from engine_fixtures import tiny_checkpoint

    project, volume = _project(tmp_path)
    project.save_labels("s1", np.zeros(volume.shape, np.uint8), np.zeros(volume.shape[0], bool), np.zeros(volume.shape[0], bool))
    project.add_model(tiny_checkpoint(), "m")
    good = json.loads(Path(project.path("project.json")).read_text())
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("not a model")
    crafted = {
        "series id as a path": {"series": [{**good["series"][0], "id": str(outside / "x")}]},
        "series id climbing out": {"series": [{**good["series"][0], "id": "../../outside/x"}]},
        "a series twice": {"series": [good["series"][0], good["series"][0]]},
        "current model elsewhere": {"current_model": str(secret)},
        "current model climbing out": {"current_model": "models/../../secret.txt"},
        "a model entry elsewhere": {"models": [{**good["models"][0], "file": str(secret)}], "current_model": None},
        "current model not listed": {"current_model": "models/other.unetgui"},
    }
    for what, change in crafted.items():
        Path(project.path("project.json")).write_text(json.dumps({**good, **change}))
        with pytest.raises(FormatError, match="damaged"):
            Project.open(project.root)
        assert cli.main(["export", "--project", project.root, "--output", str(tmp_path / "out"), "--model", "current"]) == 1, what
        assert "damaged" in capsys.readouterr().err
    assert os.listdir(outside) == [] and not (tmp_path / "out").exists()
    # a model file that is a link out of the project, or not a model, is never copied into an export
    Path(project.path("project.json")).write_text(json.dumps(good))
    os.remove(project.path(good["current_model"]))
    os.symlink(secret, project.path(good["current_model"]))
    assert cli.main(["export", "--project", project.root, "--output", str(tmp_path / "out"), "--model", "current"]) == 1
    assert "not a model file inside" in capsys.readouterr().err
    os.remove(project.path(good["current_model"]))
    Path(project.path(good["current_model"])).write_text("not a model")
    assert cli.main(["export", "--project", project.root, "--output", str(tmp_path / "out"), "--model", "current"]) == 1
    assert "not a unetgui model" in capsys.readouterr().err and not (tmp_path / "out").exists()
    with pytest.raises(FormatError, match="not a series id"):
        Project.open(project.root).labels_path("../x")


def test_moved_source_is_reported(tmp_path):
    project, _ = _project(tmp_path)
    os.rename(tmp_path / "ct.nii.gz", tmp_path / "elsewhere.nii.gz")
    with pytest.raises(FormatError, match="not at"):
        project.load_image(project.series[0])


@pytest.mark.parametrize("strokes", [25, 60])
def test_sigkill_mid_session_loses_at_most_the_last_stroke(tmp_path, strokes):
    project, volume = _project(tmp_path)
    project.save()
    child = subprocess.Popen([sys.executable, str(Path(__file__).resolve().parents[1] / "autosave_child.py"), project.root],
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    done = -1
    deadline = time.monotonic() + 60
    while done < strokes - 1 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        done = int(line)
    os.kill(child.pid, signal.SIGKILL)  # mid-session: the child is painting its next stroke
    child.wait()
    assert done == strokes - 1, "the child did not paint"
    for line in child.stdout:  # strokes finished between our last read and the kill
        done = int(line)
    child.stdout.close()

    recovered = Project.open(project.root)
    assert recovered.lock_owner().state == "crashed"
    saved = recovered.load_labels("s1")
    # replay the same strokes here: the recovered labels are the state after `done` or `done + 1` strokes
    expected = Session()
    expected.open(volume, table=project.table)
    states = []
    for k in range(done + 2):
        autosave_child.stroke(expected, k)
        states.append((expected.labels.labels.copy(), expected.reviewed.copy(), expected.annotated.copy()))
    matches = [k for k, (labels, reviewed, annotated) in enumerate(states)
               if np.array_equal(saved.labels, labels) and np.array_equal(saved.reviewed, reviewed)
               and np.array_equal(saved.annotated, annotated)]
    assert matches and matches[-1] >= done, f"recovered state after stroke {matches} of {done + 1} reported"


def test_after_a_crash_the_journal_continues_past_its_torn_tail(tmp_path):
    project, volume = _project(tmp_path)
    session = Session()
    session.open(volume, table=project.table)
    saver = Autosaver(session, project, "s1")
    for k in range(4):
        autosave_child.stroke(session, k)
    saver.detach()
    with open(project.journal_path("s1"), "ab") as f:  # a record cut short by a kill
        f.write(journal.RECORD + b"\x10\x00\x00\x00garbage")
    again = Project.open(project.root)
    saved = again.load_labels("s1")
    assert saved.recovered_edits == 4
    session.open(volume, LabelMap(saved.labels, volume.affine.copy(), again.table), reviewed=saved.reviewed)
    Autosaver(session, again, "s1")  # continues the journal: no new snapshot, the torn tail cut off
    for k in range(4, 7):
        autosave_child.stroke(session, k)
    final = Project.open(project.root).read_labels("s1")
    assert final.recovered_edits > 4  # the records after the cut are reachable (an eraser stroke on nothing writes none)
    assert np.array_equal(final.labels, session.labels.labels)


def test_cli_exports_a_project_with_its_journaled_labels(tmp_path, capsys):
    from unetgui import cli
    from engine_fixtures import tiny_checkpoint

    project, volume = _project(tmp_path)
    session = Session()
    session.open(volume, table=project.table)
    Autosaver(session, project, "s1")
    for k in range(5):
        autosave_child.stroke(session, k)  # journaled only: the export must include them
    project.add_model(tiny_checkpoint(), "m")
    out = tmp_path / "out"
    assert cli.main(["export", "--project", project.root, "--output", str(out), "--model", "current"]) == 0
    written = capsys.readouterr().out.split()
    labels = next(p for p in written if p.endswith("_labels.nii.gz"))
    assert np.array_equal(nifti.read_labels(labels, volume).labels, session.labels.labels)
    assert any(p.endswith("_model.unetgui") for p in written) and all(p.startswith(str(out / "s1")) for p in written)
    assert cli.main(["export", "--project", project.root, "--input", "x", "--output", str(out)]) == 1


def test_fills_and_slice_copies_are_journaled_with_their_pixels(tmp_path):
    project, volume = _project(tmp_path)
    session = Session()
    session.open(volume, table=project.table)
    Autosaver(session, project, "s1")
    session.set_slice(3)
    session.flood_fill(20, 20)  # labels_changed comes before the commit: the filled slice is in the record
    session.set_slice(4)
    session.copy_from(3)
    saved = Project.open(project.root).read_labels("s1")
    assert saved.labels[3].all() and saved.labels[4].all() and saved.annotated[3:5].all()  # the user's edit: annotated
    assert not saved.reviewed.any()  # strokes only: no plane became truth
    session.set_review_on_edit(True)
    session.set_slice(5)
    session.copy_from(4)
    saved = Project.open(project.root).read_labels("s1")
    assert saved.labels[5].all() and saved.reviewed[5] and saved.reviewed.sum() == 1


def test_a_failed_journal_write_is_cut_off_and_later_records_stay_readable(tmp_path, monkeypatch):
    from unetgui.core.errors import FormatError

    path = str(tmp_path / "j")
    j = journal.Journal(path, "s1", (3, 8, 8), "tok")
    plane = np.ones((1, 8, 8), np.uint8)
    j.append([0], plane, np.zeros(3, bool), np.zeros(3, bool))
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(FormatError, match="No space left"):
        j.append([1], plane, np.zeros(3, bool), np.zeros(3, bool))
    monkeypatch.setattr(os, "fsync", real)
    j.append([2], plane * 2, np.zeros(3, bool), np.zeros(3, bool))
    j.close()
    assert [r.slices for r in journal.replay(path, "tok", (3, 8, 8))] == [(0,), (2,)]


def test_autosave_failure_is_reported_and_retried(tmp_path, monkeypatch):
    project, volume = _project(tmp_path)
    session = Session()
    session.open(volume, table=project.table)
    messages = []
    saver = Autosaver(session, project, "s1", failed=messages.append)
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    autosave_child.stroke(session, 0)
    assert messages and "Autosave failed" in messages[0] and saver.unsaved
    monkeypatch.setattr(os, "fsync", real)
    autosave_child.stroke(session, 1)  # the next edit writes the earlier one too
    assert not saver.unsaved
    assert np.array_equal(Project.open(project.root).read_labels("s1").labels, session.labels.labels)


def test_a_project_open_in_a_running_process_is_recognised(tmp_path):
    import json
    import socket

    from unetgui.project import lock
    from unetgui.project.store import inside

    project, _ = _project(tmp_path)

    def held_by(**owner) -> lock.LockOwner:
        with open(project.path(".lock"), "w") as f:
            json.dump({"host": socket.gethostname(), **owner}, f)
        return project.lock_owner()

    parent = os.getppid()  # alive
    assert held_by(pid=parent) == lock.LockOwner(lock.RUNNING, parent, socket.gethostname())
    assert held_by(pid=parent, boot=lock.boot_id(), start=lock.process_start(parent)).state == lock.RUNNING
    if lock.boot_id():  # Linux: a pid reused after a reboot, or by a later process, is not the lock's owner
        assert held_by(pid=1, boot="another boot", start="12").state == lock.CRASHED
        assert held_by(pid=parent, boot=lock.boot_id(), start="1").state == lock.CRASHED
        assert held_by(pid=os.getpid(), boot=lock.boot_id(), start="1").state == lock.CRASHED  # our pid, reused
    assert held_by(pid=parent, host="workstation-7").state == lock.OTHER_HOST  # never called a crash
    for damaged in ("{not json", "[1, 2]", '{"pid": "abc"}', "", '{"pid": 1e400}', '{"pid": 99999999999999}',
                    "[" * 100_000):  # cut short by a crash, or by hand
        with open(project.path(".lock"), "w") as f:
            f.write(damaged)
        assert project.lock_owner().state == lock.CRASHED
    project.lock()
    assert project.lock_owner().state == lock.OURS
    project.unlock()
    assert project.lock_owner().state == lock.NONE
    assert inside(str(tmp_path), project.root) and not inside(project.root, str(tmp_path))
    with pytest.raises(FormatError, match="inside the project"):
        project.copy_to(project.path("copy"))


@pytest.mark.parametrize("damage", ["zip version", "deflate stream"])
def test_a_damaged_labels_snapshot_is_reported_as_damaged(tmp_path, damage):
    """Found by the fuzz test (issue 26 put the annotation mask into the snapshot): a flipped bit in the npz can
    claim an unknown zip version (NotImplementedError) or break the deflate stream (zlib.error)."""
    project, volume = _project(tmp_path)
    z, y, x = volume.shape
    project.save_labels("s1", np.ones(volume.shape, np.uint8), np.zeros(z, bool), np.zeros(z, bool),
                        annotated=np.ones(volume.shape, bool))
    project.close_journal("s1")
    project.save()
    project.unlock()
    path = project.labels_path("s1")
    data = bytearray(open(path, "rb").read())
    if damage == "zip version":
        at = data.find(b"PK\x01\x02")
        data[at + 6] = 109  # "version needed to extract": 10.9
    else:
        at = data.find(b"labels.npy") + len("labels.npy") + 40
        data[at:at + 16] = bytes(16)
    open(path, "wb").write(data)
    with pytest.raises(FormatError, match="damaged"):
        Project.open(project.root).read_labels("s1")
