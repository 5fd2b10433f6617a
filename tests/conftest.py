"""Shared fixtures: compiling `.tl` text into imported modules, and golden files."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/util.py, tests/catalogue.py


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite golden files from the current compiler output (read the diff!)")


@pytest.fixture
def update_golden(request) -> bool:
    return request.config.getoption("--update-golden")


@pytest.fixture
def tl(tmp_path):
    """tl(source_text, **options) -> the imported generated module."""
    from util import compile_module

    def make(source: str, **options):
        return compile_module(source, tmp_path, **options)

    return make


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache directory of the test's own, with the default size cap (the user's environment
    does not leak in); bytecode is not written, so sizes and listings are the entries alone."""
    d = tmp_path / "cache"
    monkeypatch.setenv("TAPELESS_CACHE_DIR", str(d))
    monkeypatch.delenv("TAPELESS_CACHE_MAX_BYTES", raising=False)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    return d
