"""`import model` finds `model.tl`: a meta-path finder that compiles through the cache.

    import tapeless.runtime
    tapeless.runtime.install_import_hook()   # once
    import layer                              # compiles layer.tl (cached) and imports it

A `.tl` file is found wherever a `.py` module would be (sys.path, package
__path__); a real `.py` module of the same name wins, as it comes first.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
from pathlib import Path

from .loader import EntryLoader, cached_module


class TlFinder(importlib.abc.MetaPathFinder):
    def __init__(self, backend: str = "numpy", checks: bool = True, opt_level: int = 1):
        self.options = (backend, checks, opt_level)

    def find_spec(self, fullname, path=None, target=None):
        leaf = fullname.rpartition(".")[2]
        for entry in path if path is not None else sys.path:
            candidate = Path(entry or os.getcwd()) / f"{leaf}.tl"
            if candidate.is_file():
                return importlib.util.spec_from_loader(fullname, TlLoader(candidate, self.options),
                                                       origin=str(candidate))
        return None


class TlLoader(importlib.abc.Loader):
    def __init__(self, source: Path, options):
        self.source = source
        self.options = options

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        backend, checks, opt = self.options
        target, data = cached_module(self.source, backend, checks, opt)
        module.__file__ = str(target)
        module.__tl_source__ = str(self.source)
        exec(EntryLoader(module.__name__, target, data).get_code(module.__name__), module.__dict__)


_installed: list[TlFinder] = []


def install_import_hook(backend: str = "numpy", checks: bool = True, opt_level: int = 1) -> TlFinder:
    """Let `import name` load `name.tl`. Returns the finder (pass it to uninstall_import_hook)."""
    finder = TlFinder(backend, checks, opt_level)
    sys.meta_path.append(finder)
    _installed.append(finder)
    return finder


def uninstall_import_hook(finder: TlFinder | None = None) -> None:
    for f in [finder] if finder else list(_installed):
        if f in sys.meta_path:
            sys.meta_path.remove(f)
        if f in _installed:
            _installed.remove(f)
