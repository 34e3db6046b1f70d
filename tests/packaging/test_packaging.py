"""Packaging (issue 12, item 12): the wheel holds every package and the sample study, and an installed (not
editable) unetgui passes its self-test from outside the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _pyproject() -> dict:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def test_the_package_list_covers_the_source_tree_and_the_resources():
    from setuptools import find_packages

    listed = _pyproject()["tool"]["setuptools"]["packages"]
    code = sorted(find_packages(str(REPO), include=["unetgui", "unetgui.*"]))
    folders = [REPO / "resources", *(d for d in (REPO / "resources").rglob("*") if d.is_dir() and "__pycache__" not in d.parts)]
    resources = [".".join(("unetgui", *d.relative_to(REPO).parts)) for d in folders]
    assert sorted(listed) == sorted(code + resources)


def test_dependency_floors_and_the_pyside_exclusion():
    deps = _pyproject()["project"]["dependencies"]
    assert "highdicom>=0.27" in deps and "torch>=2.5" in deps
    assert not any(d.startswith("platformdirs") for d in deps)
    (pyside,) = [d for d in deps if d.startswith("PySide6-Essentials")]
    assert "!=6.12.0" in pyside and "==" not in pyside.replace("!=", "")
    pinned = (REPO / "constraints.txt").read_text()
    assert "PySide6_Essentials==6.11.3" in pinned and "torch==2.13.0" in pinned


@pytest.mark.slow
def test_pip_install_then_self_test_from_outside_the_source_tree(tmp_path):
    """`pip install .` into a fresh venv (the wheel built as a user's pip builds it), then `unetgui --self-test`
    run from another folder. The dependencies come from this test run's environment through a .pth file
    (installing them again would take minutes; CI installs them from pyproject.toml anyway)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "_dev_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = wheels.glob("unetgui-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "unetgui/resources/unetgui.svg" in names and "unetgui/resources/sample/model.unetgui" in names
    assert len([n for n in names if n.startswith("unetgui/resources/sample/dicom/")]) == 32
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "UNETGUI_DATA": str(tmp_path / "data"), "PYTHONPATH": ""}
    where = subprocess.run([str(python), "-c", "import unetgui, unetgui.app; print(unetgui.__file__, unetgui.app.RESOURCES)"],
                           capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert str(venv) in where.stdout and str(REPO) not in where.stdout  # the installed copy, its own resources
    script = venv / ("Scripts/unetgui.exe" if os.name == "nt" else "bin/unetgui")
    result = subprocess.run([str(script), "--self-test"], capture_output=True, text=True, timeout=300, env=env,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "self-test passed" in result.stdout
