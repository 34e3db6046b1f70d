"""Screenshots of File > Open from archive against a real Orthanc (docs/images/archive_*.png): starts Orthanc on free
loopback ports with a temporary storage, loads the shared CT and two MR series into it, saves it as a node, searches,
retrieves the CT and opens it. Run under Xvfb from the repository root:

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python docs/screenshots_archive.py
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
OUT = HERE / "images"
SERIES = [DATA / "dcmqi-ct-3slice-liver-seg" / "ct", DATA / "dicom2nifti-test-series" / "hitachi" / "anatomical" / "001",
          DATA / "dicom2nifti-test-series" / "generic" / "anatomical" / "002_non_isotropic"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_orthanc(folder: Path) -> tuple[subprocess.Popen, int, int, int]:
    http, dicom, move = _port(), _port(), _port()
    config = {"Name": "Hospital PACS (demo)", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
              "HttpPort": http, "DicomPort": dicom, "DicomAet": "ORTHANC", "RemoteAccessAllowed": False,
              "AuthenticationEnabled": False, "DicomModalities": {"unetgui": ["UNETGUI", "127.0.0.1", move]},
              "StableAge": 1}
    (folder / "config.json").write_text(json.dumps(config))
    process = subprocess.Popen(["Orthanc", str(folder / "config.json")], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            if requests.get(f"http://127.0.0.1:{http}/system", timeout=1).ok:
                break
        except requests.RequestException:
            time.sleep(0.1)
    for series in SERIES:
        for path in sorted(series.iterdir()):
            if path.is_file() and not path.name.endswith((".txt", ".md", ".nii.gz")):
                requests.post(f"http://127.0.0.1:{http}/instances", data=path.read_bytes(), timeout=10)
    return process, http, dicom, move


def main() -> int:
    scratch = Path(tempfile.mkdtemp(prefix="unetgui-shots-"))
    os.environ["UNETGUI_DATA"] = str(scratch / "data")
    process, http, dicom, move = start_orthanc(scratch)
    try:
        from PySide6.QtCore import QSettings

        from unetgui.app import create_app
        from unetgui.net.nodes import Node, save_nodes
        from unetgui.ui.main_window import MainWindow

        sys.path.insert(0, str(HERE))
        from shots import grab, later, wait_for

        save_nodes([Node("Hospital PACS", host="127.0.0.1", port=dicom, called_aet="ORTHANC", move_port=move)])
        QSettings.setDefaultFormat(QSettings.Format.IniFormat)
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(scratch / "settings"))
        app = create_app([])
        window = MainWindow()
        window.resize(1280, 760)
        window.show()
        OUT.mkdir(exist_ok=True)

        def search():
            window.show_archive()
            dialog = window.archive_dialog
            dialog.study_description.setText("") if hasattr(dialog, "study_description") else None
            dialog.search()
            wait_for(lambda: dialog.job is None and dialog.table.rowCount() > 0, lambda: shot_results(dialog))

        def shot_results(dialog):
            dialog.table.selectRow(next(r for r, h in enumerate(dialog.hits) if h.modality == "CT"))
            later(400, lambda: (grab(dialog, OUT / "archive_search.png"), retrieve(dialog)))

        def retrieve(dialog):
            dialog.open_selected()
            wait_for(lambda: window.session.is_open and not window.runner.busy, lambda: later(800, opened))

        def opened():
            window.archive_dialog.raise_()
            grab(window, OUT / "archive_opened.png")
            app.quit()

        later(500, search)
        app.exec()
    finally:
        process.terminate()
        process.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
