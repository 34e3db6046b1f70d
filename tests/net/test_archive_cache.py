"""The archive cache's management (tasks/archive.py): its entries and usage, the size cap that evicts the least
recently used series after a retrieve (never the one just retrieved, never one of a project), clearing all or some
series without following links or touching a retrieve in progress, ``unetgui archive cache`` and the dialog's
Clear cache... button. Cache entries are made by real retrieves from the test Orthanc (tests/net/conftest.py)."""

from __future__ import annotations

import json
import os
import time

import pydicom
import pytest

from net.conftest import CT, MR_GENERIC, MR_HITACHI, free_port
from unetgui import cli
from unetgui.core.errors import FormatError, UnetguiError
from unetgui.formats.inputs import open_image
from unetgui.project.store import Project
from unetgui.tasks import archive
from unetgui.net.nodes import USERS_FILE, read_users
from unetgui.tasks import archive_cache

CAP = archive_cache.CACHE_CAP_VARIABLE


def _uids(folder) -> tuple[str, str]:
    ds = pydicom.dcmread(next(p for p in sorted(folder.iterdir()) if p.suffix == ".dcm"), stop_before_pixels=True)
    return ds.StudyInstanceUID, ds.SeriesInstanceUID


def _get(orthanc, series, **kw) -> str:
    return archive.retrieve(orthanc.dimse(), *_uids(series), "get", **kw)


def _entry(folder: str) -> archive_cache.CacheEntry:
    (entry,) = [e for e in archive_cache.cache_entries() if e.folder == folder]
    return entry


def _aged(folder: str, seconds: float) -> None:
    when = time.time() - seconds
    os.utime(folder, (when, when))


def _project_of(root, folder: str) -> Project:
    project = Project.create(str(root))
    project.add_series(folder, open_image(folder).volume, "dicom")
    return project


def test_entries_usage_and_the_least_recently_used_go_first(orthanc, monkeypatch):
    monkeypatch.delenv(CAP, raising=False)
    # the third series' size, learnt by retrieving it once; clearing that one series empties the cache again
    c = _get(orthanc, MR_GENERIC)
    size_c = _entry(c).bytes
    assert [e.folder for e in archive_cache.clear_cache([_uids(MR_GENERIC)[1]])] == [c]
    assert archive_cache.cached_series(_uids(MR_GENERIC)[1]) is None and archive_cache.cache_entries() == []

    a, b = _get(orthanc, CT), _get(orthanc, MR_HITACHI)
    entry = _entry(a)
    assert (entry.series_uid, entry.node, entry.files, entry.projects) == (_uids(CT)[1], "orthanc", 3, ())
    assert "via get" in entry.origin and entry.bytes == sum(os.path.getsize(os.path.join(a, n)) for n in os.listdir(a))
    usage = archive_cache.cache_usage()
    assert (usage.series, usage.bytes, usage.cap) == (2, entry.bytes + _entry(b).bytes, 20 * 10**9)

    _aged(a, 300)
    _aged(b, 200)
    assert [e.folder for e in archive_cache.cache_entries()] == [a, b]  # least recently used first
    closed = orthanc.dimse(port=free_port())  # served from the cache: the archive is not asked, and a counts as used
    assert archive.retrieve(closed, *_uids(CT)) == a
    assert [e.folder for e in archive_cache.cache_entries()] == [b, a]

    monkeypatch.setenv(CAP, str((_entry(a).bytes + size_c + 100) / 1e9))  # room for two of the three
    assert _get(orthanc, MR_GENERIC) == c
    assert archive_cache.cached_series(_uids(MR_HITACHI)[1]) is None  # the least recently used went
    assert {e.folder for e in archive_cache.cache_entries()} == {a, c}
    assert sorted(os.listdir(archive_cache.cache_folder())) == sorted(os.path.basename(p) for p in (a, c))  # no leftovers


def test_the_series_just_retrieved_and_those_of_projects_stay(orthanc, monkeypatch, data_root, tmp_path):
    """A project keeps only the path of its image: evicting it would lose the image, so it is spared; a series
    cleared anyway comes back under the same folder once retrieved again, and the project opens it."""
    monkeypatch.delenv(CAP, raising=False)
    a, b = _get(orthanc, CT), _get(orthanc, MR_HITACHI)
    untitled = _project_of(data_root / "projects" / "untitled-1", a)  # where the app puts an image opened alone
    elsewhere = _project_of(tmp_path / "elsewhere", b)  # a saved project outside the data folder
    assert untitled.series[0].source == a  # the absolute path into the cache: the image is not copied
    # each project recorded itself in its series' folder when the series joined it
    assert read_users(b) == [elsewhere.root]
    marks = {e.folder: e.projects for e in archive_cache.cache_entries()}
    assert marks == {a: (untitled.root,), b: (elsewhere.root,)}

    monkeypatch.setenv(CAP, "0")
    c = _get(orthanc, MR_GENERIC)
    assert {e.folder for e in archive_cache.cache_entries()} == {a, b, c}  # over the cap: nothing may go
    archive_cache.clear_cache([_uids(MR_GENERIC)[1]])
    os.remove(os.path.join(b, USERS_FILE))  # a project from before the record: known only when named (recent ones)
    assert _get(orthanc, MR_GENERIC, projects=[elsewhere.root]) == c
    assert {e.folder for e in archive_cache.cache_entries()} == {a, b, c}
    archive_cache.clear_cache([_uids(MR_GENERIC)[1]])
    assert _get(orthanc, MR_GENERIC) == c  # not named: its series goes
    assert {e.folder for e in archive_cache.cache_entries()} == {a, c}

    reopened = Project.open(elsewhere.root)
    with pytest.raises(FormatError, match="is not at .* any more"):
        reopened.load_image(reopened.series[0])
    assert _get(orthanc, MR_HITACHI) == b  # retrieved again: the same folder, and the project's image is back
    assert reopened.load_image(reopened.series[0]).shape == (4, *open_image(b).volume.shape[1:])


def test_clear_follows_no_link_and_leaves_a_retrieve_in_progress(orthanc, tmp_path):
    a = _get(orthanc, CT)
    cache = archive_cache.cache_folder()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.dcm").write_bytes(b"not the cache's")
    link = os.path.join(cache, "0" * 32)  # named like a cache entry
    os.symlink(outside, link)
    os.symlink(outside / "keep.dcm", os.path.join(a, "link.dcm"))  # a link inside an entry
    young, old = os.path.join(cache, ".partial-writing"), os.path.join(cache, ".partial-crashed")
    for partial in (young, old):
        os.mkdir(partial)
        with open(os.path.join(partial, "x.dcm"), "wb") as f:
            f.write(b"x")
    _aged(old, archive_cache.STALE_SECONDS + 60)
    assert [e.folder for e in archive_cache.cache_entries()] == [a]  # the link and the partials are no entries

    assert [e.folder for e in archive_cache.clear_cache()] == [a]
    assert (outside / "keep.dcm").read_bytes() == b"not the cache's" and os.path.islink(link)
    assert os.path.isdir(young) and not os.path.exists(old)  # a retrieve writing now is left alone
    assert sorted(os.listdir(cache)) == sorted([os.path.basename(link), os.path.basename(young)])
    assert archive_cache.cache_entries() == []


def test_clear_refuses_a_series_not_cached_and_a_wrong_cap_fails_before_the_archive_is_asked(monkeypatch):
    with pytest.raises(UnetguiError, match="not in the archive cache: 1.2.3"):
        archive_cache.clear_cache(["1.2.3"])
    with pytest.raises(UnetguiError, match="must be a DICOM UID"):
        archive_cache.clear_cache(["../x"])
    monkeypatch.setenv(CAP, "lots")
    with pytest.raises(UnetguiError, match=f"{CAP} must be .* in GB"):
        archive.retrieve(archive_node(), "1.2", "1.2.3")
    monkeypatch.setenv(CAP, "0.5")
    assert archive_cache.cache_cap() == 500_000_000
    assert [archive_cache.size_text(n) for n in (812, 3_400_000, 1_234_000_000)] == ["812 B", "3.4 MB", "1.2 GB"]


def archive_node():
    from unetgui.net.nodes import Node

    return Node("closed", host="127.0.0.1", port=free_port(), called_aet="X", timeout_s=2.0)


def test_the_command_lists_and_clears(orthanc, capsys):
    a, b = _get(orthanc, CT), _get(orthanc, MR_HITACHI)
    _aged(a, 60)
    assert cli.main(["archive", "cache"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("last used") and lines[0].endswith("series UID")
    assert lines[1].endswith(_uids(CT)[1]) and lines[2].endswith(_uids(MR_HITACHI)[1])  # least recently used first
    assert lines[1].split()[2:4] == ["3", archive_cache.size_text(_entry(a).bytes).split()[0]] and " orthanc " in lines[1]
    assert lines[3].startswith("2 series, ") and lines[3].endswith(f"of the 20.0 GB cap in {archive_cache.cache_folder()}")

    assert cli.main(["archive", "cache", "--clear", "--series", _uids(CT)[1]]) == 0
    assert capsys.readouterr().out.startswith("removed 1 series (")
    assert archive_cache.cached_series(_uids(CT)[1]) is None and archive_cache.cached_series(_uids(MR_HITACHI)[1]) == b
    assert cli.main(["archive", "cache", "--clear", "--series", _uids(CT)[1]]) == 1
    err = capsys.readouterr().err
    assert err == f"unetgui: error: not in the archive cache: {_uids(CT)[1]}\n"
    assert cli.main(["archive", "cache", "--clear"]) == 0
    assert cli.main(["archive", "cache"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("0 series, 0 B of the 20.0 GB cap")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["archive", "cache", "--series", _uids(CT)[1]])
    assert exit_.value.code == 2


@pytest.mark.gui
def test_the_dialogs_clear_button_asks_then_clears_and_the_marks_update(qtbot, orthanc, monkeypatch, data_root):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QMessageBox

    from unetgui.ui.archive_dialog import ArchiveDialog
    from unetgui.workers.jobs import JobRunner

    a, _ = _get(orthanc, CT), _get(orthanc, MR_HITACHI)
    _project_of(data_root / "projects" / "untitled-1", a)
    runner = JobRunner()
    dialog = ArchiveDialog(None, runner)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.clear_button.isEnabled(), timeout=10_000)
    assert dialog.cache_line.text().startswith("Cache: 2 series, ") and "of 20.0 GB" in dialog.cache_line.text()
    dialog._found(archive.find(orthanc.dimse(), archive.Query(patient_id="99000", modality="CT")))
    assert dialog.table.item(0, 8).text() == "cached"

    asked, answer = [], [QMessageBox.StandardButton.Cancel]
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kw: asked.append(args[2]) or answer[0])
    qtbot.mouseClick(dialog.clear_button, Qt.MouseButton.LeftButton)
    assert len(asked) == 1 and "Remove the 2 series (" in asked[0] and "1 of them is the image of a project" in asked[0]
    assert dialog.cache_job is None and len(archive_cache.cache_entries()) == 2  # Cancel: nothing removed

    answer[0] = QMessageBox.StandardButton.Yes
    qtbot.mouseClick(dialog.clear_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.cache_line.text() == "Cache: empty", timeout=10_000)
    assert dialog.status.text().startswith("Removed 2 series (") and dialog.table.item(0, 8).text() == ""
    assert archive_cache.cache_entries() == [] and not dialog.clear_button.isEnabled()
    qtbot.waitUntil(lambda: not runner.busy, timeout=10_000)


def test_a_damaged_project_never_breaks_listing_clearing_or_the_size_cap(data_root, monkeypatch):
    """A project.json whose series path holds a NUL (damaged, or made by hand) is skipped like an unreadable one:
    the cache still lists, evicts and clears (a NUL used to raise from os.path.realpath in all three)."""
    from unetgui.project.store import FORMAT

    cache = archive_cache.cache_folder()
    folder = archive_cache.final_folder("1.2.3")
    os.makedirs(folder)
    with open(os.path.join(folder, "a.dcm"), "wb") as f:
        f.write(b"x" * 1000)
    project = data_root / "projects" / "untitled-1"
    project.mkdir(parents=True)
    (project / "project.json").write_text(json.dumps(
        {"format": FORMAT, "version": 1, "series": [{"id": "s1", "source": "a\x00b", "kind": "dicom"}]}))
    assert [e.folder for e in archive_cache.cache_entries()] == [folder]
    assert [e.folder for e in archive_cache.evict(0, "elsewhere", [])] == [folder]  # over a cap of 0: it goes
    assert archive_cache.cache_entries() == [] and os.listdir(cache) == []
    os.makedirs(folder)
    assert [e.folder for e in archive_cache.clear_cache()] == [folder]
