"""`load(path)`: compile a `.tl` file (or reuse the cached module) and import it.

The module is imported from its real file in the cache, so tracebacks and
debuggers show the generated lines. Writes are atomic: a failed or interrupted
compile never leaves a partial file behind.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from .cache import entry_path


def load(path: str | os.PathLike, backend: str = "numpy", checks: bool = True, opt_level: int = 1,
         cache: bool = True) -> ModuleType:
    """Import the module compiled from the `.tl` file at `path`.

    Raises tapeless.compiler.CompileError (with every diagnostic) when the file has errors,
    ValueError for options it does not know or a file that is not UTF-8 text, OSError (naming
    the path) when the file cannot be read or the cache cannot be written.
    """
    if opt_level not in (0, 1, 2) or isinstance(opt_level, bool):
        raise ValueError(f"load(): opt_level must be 0, 1 or 2, got {opt_level!r}")
    path = Path(path)
    data = path.read_bytes()
    options = ("v1", backend, bool(checks), int(opt_level))
    target = entry_path(data, path.stem, options)
    if not cache or not target.exists():
        _compile_into(path, data, target, backend, checks, opt_level)
    return import_file(target, module_name(path, target), source=path)


def _compile_into(path: Path, data: bytes, target: Path, backend: str, checks: bool, opt_level: int) -> None:
    from tapeless.compiler import pipeline
    from tapeless.compiler.core.source import SourceFile, decode

    # not UTF-8: NotText (a ValueError) naming the file and byte; never cached, so always met here
    source = SourceFile.from_text(str(path), decode(data, path))
    text = pipeline.compile_source(source, backend=backend, checks=checks, opt_level=opt_level)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        pipeline.write_atomic(target, text)
    except OSError as e:
        raise OSError(e.errno, f"cannot write the compiled module of {path} into the cache "
                               f"({target.parent}; set TAPELESS_CACHE_DIR to choose another): {e.strerror}") from None


def module_name(source: Path, target: Path) -> str:
    return f"_tapeless_cache.{target.stem}"


def import_file(target: Path, name: str, source: Path | None = None) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, target)
    module = importlib.util.module_from_spec(spec)
    if source is not None:
        module.__tl_source__ = str(source)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module
