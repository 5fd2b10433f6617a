"""`load(path)`: compile a `.tl` file (or reuse the cached module) and import it.

The module is imported from its real file in the cache, so tracebacks and
debuggers show the generated lines. What is imported is exactly the bytes that
were verified (runtime/cache.py): a damaged or foreign entry is rebuilt with one
CacheWarning, never imported. Writes are atomic: a failed or interrupted compile
never leaves a partial file behind.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType

from .cache import CacheWarning, entry_key, entry_path, read_entry, stamp, touch, with_header, write_entry


def load(path: str | os.PathLike, backend: str = "numpy", checks: bool = True, opt_level: int = 1,
         cache: bool = True) -> ModuleType:
    """Import the module compiled from the `.tl` file at `path`.

    Raises tapeless.compiler.CompileError (with every diagnostic) when the file has errors,
    ValueError for options it does not know or a file that is not UTF-8 text, ImportError when
    the backend's library (numba, cupy) is not installed, OSError (naming
    the path) when the file cannot be read or the cache cannot be written. A cache entry that
    is damaged or foreign is rebuilt with one CacheWarning (docs/language.md, "Loading and the cache").
    """
    if opt_level not in (0, 1, 2) or isinstance(opt_level, bool):
        raise ValueError(f"load(): opt_level must be 0, 1 or 2, got {opt_level!r}")
    missing = missing_backend(backend)
    if missing is not None:
        raise ImportError(f"load(): {missing}", name=BACKEND_MODULES[backend])
    path = Path(path)
    target, data = cached_module(path, backend, checks, opt_level, reuse=cache)
    return import_entry(target, data, module_name(path, target), source=path)


# The module a backend's generated code imports besides numpy: load() says so plainly when it is
# missing, rather than the generated module's import failing (the compiler is not imported on a
# warm load, so this is the runtime's own small table)
BACKEND_MODULES = {"numba": "numba", "cupy": "cupy"}

# Backends whose modules keep compiled kernels in a JIT's own on-disk cache keyed by the module
# file's mtime (numba's cache=True: __pycache__ beside the entry, or NUMBA_CACHE_DIR): marking
# such an entry used would make every fresh process compile its kernels again, so it is not
# (least-recently-used eviction then sees its creation time)
JIT_CACHED = frozenset({"numba"})


def missing_backend(backend: str) -> str | None:
    """Why the backend's modules cannot be imported here (its library is not installed), or None."""
    needs = BACKEND_MODULES.get(backend)
    if needs is not None and importlib.util.find_spec(needs) is None:
        return (f"the {backend} backend's modules import {needs}, which is not installed "
                f"(pip install 'tapeless[{backend}]')")
    return None


def cached_module(path: Path, backend: str, checks: bool, opt_level: int, reuse: bool = True,
                  text: bytes | None = None, stem: str | None = None) -> tuple[Path, bytes]:
    """(the entry's path, its verified bytes): the cached module when it is there and valid
    (marked used), else compiled and written. Only the cold path imports the compiler.
    `text`: the source's bytes when they are not read from `path` (a notebook cell; `path` is
    then the name diagnostics show); `stem`: the entry's name, else the path's."""
    data = path.read_bytes() if text is None else text
    options = ("v1", backend, bool(checks), int(opt_level))
    key = entry_key(data, path, options)
    target = entry_path(key, stem or path.stem)
    if reuse:
        entry, wrong = read_entry(target, key)
        if entry is not None:
            if backend not in JIT_CACHED:
                touch(target)
            return target, entry
        if wrong:
            warnings.warn(CacheWarning(f"rebuilding tapeless cache entry {target} (of {path}): {wrong}"),
                          stacklevel=3)
    from .cache_maintenance import after_write, max_bytes  # (the cold path only)

    cap = max_bytes()  # (a malformed TAPELESS_CACHE_MAX_BYTES is reported before the work)
    entry = with_header(key, _compile(path, data, backend, checks, opt_level))
    try:
        write_entry(target, entry)
    except OSError as e:
        raise OSError(e.errno, f"cannot write the compiled module of {path} into the cache "
                               f"({target.parent}; set TAPELESS_CACHE_DIR to choose another): {e.strerror}") from None
    after_write(target, cap)
    return target, entry


def _compile(path: Path, data: bytes, backend: str, checks: bool, opt_level: int) -> str:
    from tapeless.compiler import pipeline
    from tapeless.compiler.core.source import SourceFile, decode

    # not UTF-8: NotText (a ValueError) naming the file and byte; never cached, so always met here
    source = SourceFile.from_text(str(path), decode(data, path))
    return pipeline.compile_source(source, backend=backend, checks=checks, opt_level=opt_level)


def module_name(source: Path, target: Path) -> str:
    return f"_tapeless_cache.{target.stem}"


class EntryLoader(importlib.machinery.SourceFileLoader):
    """Imports an entry from the bytes that were verified, never from a second read of the file
    (a concurrent rebuild or prune may replace or remove it meanwhile). Python's bytecode in
    __pycache__ is still used, validated against the entry's content rather than its mtime,
    which every cache hit moves (least-recently-used eviction)."""

    def __init__(self, name: str, target: Path, data: bytes):
        super().__init__(name, str(target))
        self.data = data
        self.stamp = stamp(data)  # stands for the mtime

    def get_data(self, path):
        return self.data if path == self.path else super().get_data(path)

    def path_stats(self, path):
        return {"mtime": self.stamp, "size": len(self.data)}

    def get_code(self, fullname):
        try:
            return super().get_code(fullname)
        except (EOFError, ValueError, TypeError, ImportError):  # damaged bytecode behind a valid pyc header
            try:
                os.unlink(importlib.util.cache_from_source(self.path))  # (rewritten from the source now)
            except OSError:
                pass
            return super().get_code(fullname)


def import_entry(target: Path, data: bytes, name: str, source: Path | None = None) -> ModuleType:
    loader = EntryLoader(name, target, data)
    spec = importlib.util.spec_from_file_location(name, target, loader=loader)
    module = importlib.util.module_from_spec(spec)
    if source is not None:
        module.__tl_source__ = str(source)
    loader.exec_module(module)
    sys.modules[name] = module
    return module


def import_file(target: Path, name: str, source: Path | None = None) -> ModuleType:
    """Import a generated module from a file of one's own (not a cache entry)."""
    spec = importlib.util.spec_from_file_location(name, target)
    module = importlib.util.module_from_spec(spec)
    if source is not None:
        module.__tl_source__ = str(source)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module
