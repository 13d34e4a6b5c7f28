"""The package metadata ships what a user needs: every subpackage, the license, typing, bounds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _package_dirs() -> dict[str, Path]:
    """Package name -> directory, for every directory holding an __init__.py in the source tree."""
    mapping = PYPROJECT["tool"]["setuptools"]["package-dir"]
    found = {}
    for name, folder in mapping.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base).parts
            if "__pycache__" in rel:
                continue
            found[".".join((name, *rel))] = init.parent
    return found


def test_every_package_directory_is_listed():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = set(_package_dirs())
    assert "streamlstm.tools" in found and "streamlstm.converters" in found
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - found == set(), "listed packages without an __init__.py"


def test_license_is_an_spdx_string_and_the_file_matches():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    setuptools_req = next(r for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools"))
    assert tuple(map(int, re.search(r">=(\d+)", setuptools_req).group(1).split("."))) >= (77,)


def test_numba_has_an_upper_bound_and_the_installed_version_is_inside_it():
    import numba

    (spec,) = [d for d in PYPROJECT["project"]["dependencies"] if d.startswith("numba")]
    low = re.search(r">=\s*([\d.]+)", spec).group(1)
    high = re.search(r"<\s*([\d.]+)", spec).group(1)

    def version(text: str) -> tuple:
        return tuple(int(x) for x in re.findall(r"\d+", text)[:2])

    assert version(low) <= version(numba.__version__) < version(high)


def test_typed_and_described():
    assert (ROOT / "streamlstm" / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["streamlstm"]
    project = PYPROJECT["project"]
    assert "Typing :: Typed" in project["classifiers"]
    assert {"Homepage", "Documentation", "Changelog"} <= set(project["urls"])
    assert (ROOT / "CHANGELOG.md").is_file()


def test_optional_dependencies_have_their_own_extras():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert extras["h5"] == ["h5py>=3.0"]
    for name in ("torch", "keras", "ray", "serve", "bench", "test"):
        assert extras[name]
    core = {re.split(r"[<>=!~ ]", d)[0] for d in PYPROJECT["project"]["dependencies"]}
    assert core == {"numba", "numpy", "onnx"}


def test_sdist_manifest_carries_tests_docs_examples_bench():
    manifest = (ROOT / "MANIFEST.in").read_text().split("\n")
    for folder in ("tests", "docs", "examples", "bench"):
        assert f"graft {folder}" in manifest
