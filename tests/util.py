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


def assert_backend_values(got, want, what: str, rtol32: float = 1e-6) -> None:
    """One backend's result against another's: same dtype and shape, integers equal, floats
    within rtol (rtol32 for float32, 1e-12 for float64) plus 8 rtol of the largest finite value
    (where a value is the difference of larger terms, the two round those terms differently)."""
    import numpy as np

    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, what
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    rtol = rtol32 if want.dtype == np.float32 else 1e-12
    scale = float(np.max(np.abs(want[np.isfinite(want)]), initial=0.0))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=8 * rtol * scale, err_msg=what)
