"""--backend numba with slice cotangents: each kernel adds its slices' cotangents into the one
gradient array (fused/plan.py's scatters, kernels/program.py's Scatter steps), never a
full-size array per slice; the values are the NumPy backend's, for both float types, at odd
sizes (a size 1, empty slices, many blocks), with out= and the _fwd/_bwd split, and the same
bits for any thread count (blocks whose rows add into a shared row run evens, then odds).
"""
from __future__ import annotations

import inspect
import os
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.mkdtemp(prefix="tapeless-numba-tests-"))
pytest.importorskip("numba", reason="numba is not installed (pip install tapeless[numba])")

from tapeless.compiler import compile_source  # noqa: E402
from util import assert_backend_values, compile_module  # noqa: E402

HERE = Path(__file__).parent

# W13's objective: row and column differences (their cotangents overlap on every row and
# column but the ends) and a data term whose gradient is the base they are added into
DENOISE = """
fn denoise(x: f32[R, C], y: f32[R, C]) -> f32 {
    return sum((x[1:] - x[:-1]) ** 2) + sum((x[:, 1:] - x[:, :-1]) ** 2) + 0.5 * sum((x - y) ** 2)
}

grad denoise wrt x
"""

# rows shifted by 3 (blocks of at least 3 rows), both axes at once, a negative start
SHIFTS = """
fn shifts(x: f32[R, C], w: f32[C]) -> f32 {
    a = x[3:] * x[:-3]
    b = x[1:, 2:] - x[:-1, :-2]
    return sum(a * w) + sum(b * b) + sum(tanh(x[:, -2:]) * 3) + sum(x * x)
}

grad shifts wrt x
"""

# (R, C): a row (x[1:] empty), a column, 1 x 1, odd sizes, and 1000 x 37 (a few blocks of rows)
DENOISE_SIZES = [(1, 5), (5, 1), (1, 1), (2, 3), (7, 5), (1000, 37)]
SHIFT_SIZES = [(3, 2), (4, 3), (5, 4), (1000, 37)]


def _program(text: str, dtype: str) -> str:
    return text.replace("f32", dtype)


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    d = tmp_path_factory.mktemp("numba_slices")
    out = {}
    # (numba compiles every kernel, a second or two each: W13's in both types, the shifts in f64)
    for name, text, dtypes in (("denoise", DENOISE, ("f32", "f64")), ("shifts", SHIFTS, ("f64",))):
        for dtype in dtypes:
            src = _program(text, dtype)
            out[name, dtype] = (compile_module(src, d, f"np_{name}_{dtype}", path=f"{name}.tl"),
                                compile_module(src, d, f"nb_{name}_{dtype}", path=f"{name}.tl", backend="numba"))
    return out




def _args(name, dtype, R, C, seed=0):
    rng = np.random.default_rng(seed)
    t = np.float32 if dtype == "f32" else np.float64
    x = rng.standard_normal((R, C)).astype(t)
    second = rng.standard_normal((R, C) if name == "denoise" else (C,)).astype(t)
    return x, second


@pytest.mark.parametrize("name, dtype", [("denoise", "f32"), ("denoise", "f64"), ("shifts", "f64")])
def test_the_numpy_backends_values_at_odd_sizes(modules, name, dtype):
    mn, mb = modules[name, dtype]
    sizes = DENOISE_SIZES if name == "denoise" else SHIFT_SIZES
    grad = f"{name}_grad"
    for R, C in sizes:
        x, second = _args(name, dtype, R, C)
        x0 = x.copy()
        (vn, gn), (vb, gb) = getattr(mn, grad)(x, second), getattr(mb, grad)(x, second)
        np.testing.assert_array_equal(x, x0)  # (the argument is never written into)
        assert_backend_values(vb, vn, f"{name} {dtype} {R}x{C} value", rtol32=1e-5)
        assert_backend_values(gb, gn, f"{name} {dtype} {R}x{C} gradient", rtol32=1e-5)
        bn, bb = np.full_like(x, 0.5), np.full_like(x, 0.5)
        getattr(mn, grad)(x, second, out=bn)
        getattr(mb, grad)(x, second, out=bb)
        assert_backend_values(bb, bn, f"{name} {dtype} {R}x{C} out=", rtol32=1e-5)
        if (name, dtype) == ("denoise", "f32"):  # (numba compiles each kernel: the split of one program)
            (_, rn), (_, rb) = getattr(mn, f"{grad}_fwd")(x, second), getattr(mb, f"{grad}_fwd")(x, second)
            (dn,), (db,) = getattr(mn, f"{grad}_bwd")(rn, seed=1.5), getattr(mb, f"{grad}_bwd")(rb, seed=1.5)
            assert_backend_values(db, dn, f"{name} {dtype} {R}x{C} _bwd", rtol32=1e-5)


def test_the_kernels_add_into_the_gradient(modules):
    """No slice cotangent is made whole: no _index_grads_onto called; a row shift runs its blocks
    evens then odds; a column slice is read as the array at an offset (contiguous)."""
    for name, dtype in (("denoise", "f32"), ("shifts", "f64")):
        _, mb = modules[name, dtype]
        for fn in (f"{name}_grad", f"{name}_grad_bwd"):  # (the source only: nothing compiled)
            assert "_index_grads_onto(" not in inspect.getsource(getattr(mb, fn)), fn
    src = compile_source(DENOISE, backend="numba", path="denoise.tl")
    assert "for half in range(2):" in src and "blk = 2 * pair + half" in src
    assert "x[j0, j1 + 1]" in src and "[j0 + 1, j1] += " in src


@pytest.mark.parametrize("fn", ["denoise_grad", "denoise_grad_bwd"])
def test_no_full_size_temporary_per_slice(modules, fn):
    """W13's gradient (and its _bwd) allocate the gradient and nothing else of its size: the
    peak is about one array of x's (before: the gradient and one array per slice, 3x)."""
    mn, mb = modules["denoise", "f32"]
    x, y = _args("denoise", "f32", 600, 512, seed=1)
    call = (lambda: mb.denoise_grad(x, y)) if fn == "denoise_grad" else \
        (lambda r=mb.denoise_grad_fwd(x, y)[1]: mb.denoise_grad_bwd(r))
    call()  # (compiled, warm)
    tracemalloc.start()
    try:
        call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.25 * x.nbytes, peak / x.nbytes


_THREADS = r"""
import hashlib, sys, numpy as np
sys.path.insert(0, {tests!r})
from pathlib import Path
from tapeless.runtime.loader import import_file
m = import_file(Path({path!r}), {name!r})
rng = np.random.default_rng(5)
# 1200 x 512: over numba_writer.PARALLEL_ELEMENTS, so the kernels run on the threads, in 64 blocks
x, y = rng.standard_normal((1200, 512)).astype(np.float32), rng.standard_normal((1200, 512)).astype(np.float32)
v, g = m.denoise_grad(x, y)
sys.stdout.write(np.asarray(v).tobytes().hex() + hashlib.sha256(g.tobytes()).hexdigest())
"""


def test_the_same_bits_for_any_number_of_threads(modules):
    mb = modules["denoise", "f32"][1]  # (its kernels are in numba's cache by now, under its name)
    path = Path(mb.__file__)
    outs = []
    for threads in ("1", "2", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads)
        code = _THREADS.format(tests=str(HERE), path=str(path), name=mb.__name__)
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        outs.append(r.stdout)
    assert outs[0] == outs[1] == outs[2] and len(outs[0]) > 64
