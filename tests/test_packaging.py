"""Installed, the project is one package: ``clmtune`` (``clmtune.backend``, ``clmtune.tui``,
``clmtune.themes``); nothing named ``backend``, ``tui`` or ``themes`` lands in site-packages."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import zipfile

import pytest
import tomllib

from tests.run_helpers import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _setuptools_new_enough() -> bool:
    try:
        major = int(importlib.metadata.version("setuptools").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        return False
    return major >= 77


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools leaves a build/ folder in the tree it builds.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for name in ("backend", "tui", "themes"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    # Without build isolation when the venv's setuptools can build it (no network needed).
    isolation = [] if not _setuptools_new_enough() else ["--no-build-isolation"]
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *isolation, "-w", str(out),
         str(src)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = out.glob("clmtune_tui-*.whl")
    with zipfile.ZipFile(path) as zf:
        yield zf


def test_everything_installs_under_one_name(wheel):
    tops = {name.split("/")[0] for name in wheel.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"clmtune"}


def test_every_package_on_disk_is_in_the_wheel(wheel):
    names = set(wheel.namelist())
    for folder in ("backend", "tui", "themes"):
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.relative_to(REPO).as_posix()
            assert f"clmtune/{rel}" in names, f"{rel} is not packaged: add it to pyproject"


def test_the_wheel_carries_its_data_files(wheel):
    names = set(wheel.namelist())
    data = [*(REPO / "themes").glob("*.tcss"), *(REPO / "backend" / "metrics_local").glob("*.py")]
    for path in data:
        assert f"clmtune/{path.relative_to(REPO).as_posix()}" in names


def test_console_scripts_name_installed_modules(wheel):
    (entry,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(entry).decode()
    assert "clmtune = clmtune.backend.cli:main" in text
    assert "clmtune-tui = clmtune.tui.app:main" in text


def test_top_level_names_do_not_import_outside_the_checkout(tmp_path):
    code = (
        "import importlib.util, sys\n"
        "print([n for n in ('backend', 'tui', 'themes') if importlib.util.find_spec(n)])\n"
        "import clmtune.backend.cli, clmtune.tui.app\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_package_dir_maps_each_folder():
    mapping = PYPROJECT["tool"]["setuptools"]["package-dir"]
    assert mapping == {"clmtune.backend": "backend", "clmtune.tui": "tui",
                       "clmtune.themes": "themes"}  # fmt: skip
