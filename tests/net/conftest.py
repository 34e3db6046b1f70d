"""A real Orthanc for the archive tests: started once per session on free loopback ports (HTTP and DICOM) with a
temporary storage folder, the DICOMweb plugin, a called-AE check and our AE title registered for C-MOVE; loaded with
the shared CT (3 slices) and two small MR series of another patient. Skipped, with the reason, where Orthanc is not
installed (CI installs the Debian packages ``orthanc`` and ``orthanc-dicomweb``).

This folder is a package (``__init__.py``) so that this conftest does not take the module name ``conftest`` from
tests/conftest.py, which other test modules import.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from conftest import DATA
from unetgui.net.nodes import Node

ORTHANC = shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if os.path.exists("/usr/sbin/Orthanc") else None)
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
AET = "ORTHANC"
OUR_AET = "UNETGUI"
START_TIMEOUT_S = 20.0

CT = DATA / "dcmqi-ct-3slice-liver-seg" / "ct"
SEG = DATA / "dcmqi-ct-3slice-liver-seg" / "seg" / "liver_seg.dcm"
SEG_OVERLAPS = DATA / "dcmqi-ct-3slice-liver-seg" / "seg" / "partial_overlaps_seg.dcm"
MR_HITACHI = DATA / "dicom2nifti-test-series" / "hitachi" / "anatomical" / "001"  # 4 MR slices, study 2017-12-05
MR_GENERIC = DATA / "dicom2nifti-test-series" / "generic" / "anatomical" / "002_non_isotropic"  # 4 MR, 2018-06-06


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout: float, what: str, step: float = 0.05):
    """Poll ``condition`` until it returns something true or ``timeout`` seconds pass (then fail naming ``what``)."""
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


@dataclass
class Orthanc:
    http_port: int
    dicom_port: int
    move_port: int
    folder: Path
    process: subprocess.Popen
    dicomweb: bool

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def dimse(self, name: str = "orthanc", **changes) -> Node:
        settings = dict(host="127.0.0.1", port=self.dicom_port, called_aet=AET, calling_aet=OUR_AET,
                        move_port=self.move_port, timeout_s=10.0)
        return Node(name, **{**settings, **changes})

    def web(self, name: str = "orthanc-web", **changes) -> Node:
        if not self.dicomweb:
            pytest.skip(f"the Orthanc DICOMweb plugin is not installed ({DICOMWEB_PLUGIN})")
        return Node(name, **{"url": f"{self.rest}/dicom-web", "timeout_s": 10.0, **changes})

    def upload(self, path: Path) -> None:
        answer = requests.post(f"{self.rest}/instances", data=path.read_bytes(), timeout=10)
        answer.raise_for_status()

    def log_tail(self) -> str:
        log = self.folder / "orthanc.log"
        return log.read_text(errors="replace")[-3000:] if log.exists() else ""

    def answering(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"Orthanc stopped at start (exit {self.process.returncode}): {self.log_tail()}")
        try:
            return requests.get(f"{self.rest}/system", timeout=1).ok
        except requests.RequestException:
            return False


def _config(folder: Path, http_port: int, dicom_port: int, move_port: int, plugin: bool) -> dict:
    config = {
        "Name": "unetgui-tests", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
        "HttpPort": http_port, "DicomPort": dicom_port, "DicomAet": AET,
        "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
        "DicomCheckCalledAet": True, "DicomModalities": {"unetgui": [OUR_AET, "127.0.0.1", move_port]},
        "StableAge": 1, "StorageCompression": False, "HttpDescribeErrors": False,
    }
    if plugin:
        config["Plugins"] = [DICOMWEB_PLUGIN]
        config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/"}
    return config


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory) -> Orthanc:
    """A running Orthanc with the shared series loaded; stopped at the end of the session."""
    if ORTHANC is None:
        pytest.skip("Orthanc is not installed (/usr/sbin/Orthanc; Debian packages orthanc and orthanc-dicomweb): the "
                    "tests against a real archive are skipped")
    folder = tmp_path_factory.mktemp("orthanc")
    ports = free_port(), free_port(), free_port()
    plugin = os.path.exists(DICOMWEB_PLUGIN)
    (folder / "config.json").write_text(json.dumps(_config(folder, *ports, plugin)))
    with open(folder / "orthanc.log", "wb") as log:
        process = subprocess.Popen([ORTHANC, str(folder / "config.json")], stdout=log, stderr=subprocess.STDOUT,
                                   cwd=folder)
    server = Orthanc(*ports, folder, process, plugin)
    try:
        wait_until(server.answering, START_TIMEOUT_S, "Orthanc's GET /system")
        for series in (CT, MR_HITACHI, MR_GENERIC):
            for path in sorted(series.iterdir()):
                if path.is_file() and not path.name.endswith((".txt", ".md", ".nii.gz")):
                    server.upload(path)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(autouse=True)
def data_root(tmp_path, monkeypatch) -> Path:
    """Each test its own data root: its own archive cache and saved nodes."""
    root = tmp_path / "data"
    monkeypatch.setenv("UNETGUI_DATA", str(root))
    monkeypatch.delenv("UNETGUI_ARCHIVE_PASSWORD", raising=False)
    return root


@pytest.fixture
def silent_port():
    """A port that accepts TCP connections (the kernel completes them) but never answers: a hung server."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]
