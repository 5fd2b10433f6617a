"""Test helpers: compile `.tl` text to a module in a temporary directory and import it."""
from __future__ import annotations

import itertools
from pathlib import Path

from tapeless.compiler import compile_source
from tapeless.runtime.loader import import_file

_counter = itertools.count()
ROOT = Path(__file__).resolve().parent.parent


def compile_module(source: str, directory: Path, name: str = "m", **options):
    options.setdefault("path", f"{name}.tl")
    text = compile_source(source, **options)
    k = next(_counter)
    path = Path(directory) / f"{name}_{k}.py"
    path.write_text(text)
    return import_file(path, f"tl_test_{name}_{k}")


def diagnostics(source: str, path: str = "t.tl"):
    """The rendered diagnostics of compiling `source` ("" when it compiles)."""
    from tapeless.compiler import CompileError

    try:
        compile_source(source, path=path)
    except CompileError as e:
        return e.render()
    return ""
