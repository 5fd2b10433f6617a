"""The wheel holds the whole package: pyproject.toml lists every folder that is a package and
ships the grammar, and its version is the compiler's. (.ci/run builds the wheel and runs README's
first command with it installed, away from the checkout.)"""
from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def setuptools_table() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def package_folders(table: dict) -> dict[str, Path]:
    """Every package the source tree holds (a folder with an __init__.py under a mapped folder), by name."""
    out = {}
    for name, folder in table["package-dir"].items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            parts = init.parent.relative_to(ROOT / folder).parts
            out[".".join((name, *parts))] = init.parent
    return out


def test_every_package_folder_is_listed(setuptools_table):
    found = package_folders(setuptools_table)
    listed = setuptools_table["packages"]
    assert sorted(set(found) - set(listed)) == [], "folders with an __init__.py that the wheel would leave out"
    assert sorted(set(listed) - set(found)) == [], "listed packages with no folder"
    assert len(listed) == len(set(listed))
    assert set(setuptools_table["package-dir"]) == {"tapeless.compiler", "tapeless.runtime", "tapeless.grammar"}


def test_package_data_covers_every_file_that_is_not_python(setuptools_table):
    """The grammar (tapeless.lark) above all: frontend/quick.py and lark read it at run time."""
    data = setuptools_table.get("package-data", {})
    missing = []
    for name, folder in package_folders(setuptools_table).items():
        for path in folder.iterdir():
            if path.is_file() and path.suffix not in (".py", ".pyc") and not path.name.startswith("."):
                if not any(fnmatch.fnmatch(path.name, pattern) for pattern in data.get(name, ())):
                    missing.append(str(path.relative_to(ROOT)))
    assert missing == []
    assert any(fnmatch.fnmatch("tapeless.lark", p) for p in data["tapeless.grammar"])


def test_the_project_version_is_the_compilers():
    """`tapeless --version` of a checkout that was never installed, the generated modules' header and
    the cache key say pipeline.VERSION; the installed metadata says pyproject's."""
    from tapeless.compiler.pipeline import VERSION

    assert tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"] == VERSION
