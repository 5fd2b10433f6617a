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


def force_tiny_blocks(m, block_bytes=40, threads=3):
    """Fused loops of m over tiny blocks (a few rows, a last one partial), on threads whatever
    their size: every path of the loop code runs on small inputs."""
    if not hasattr(m, "_blocks"):
        return  # no fused loop in this module
    knobs = {"_BLOCK_BYTES": block_bytes, "_MIN_ROWS": 1, "_CHEAP_BLOCKS": 1, "_PARALLEL": 1, "_THREAD_BLOCK": 1,
             "_THREADS": threads}
    missing = [k for k in knobs if not hasattr(m, k)]
    # a renamed knob must fail here: setting an attribute the loops never read tests nothing
    assert not missing, f"the fused-loop helper no longer reads {missing}: update force_tiny_blocks"
    for name, value in knobs.items():
        setattr(m, name, value)
