"""--backend numba over rows longer than a split loop's chunk: the chunks' bounds are unsigned
(numba's wraparound test on a signed index kept LLVM from vectorising), a float max or min along
a row runs by lanes (numba_writer.by_lanes), and the row's index read as a value (cross_entropy's
label ops) stays an int64. The values are the NumPy backend's, nan and infinities included, at
row lengths around the lanes' and the chunk's sizes."""
from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.mkdtemp(prefix="tapeless-numba-tests-"))
numba = pytest.importorskip("numba", reason="numba is not installed (pip install tapeless[numba])")

from tapeless.compiler.codegen.kernels.numba_writer import LANES, SPLIT_CHUNK  # noqa: E402
from util import assert_backend_values, compile_module  # noqa: E402

ROWS = """
fn rows(x: f32[N, C], labels: i64[N]) -> f32 {
    top = max(x, axis=-1)
    low = min(x * 2.0, axis=-1)
    return mean(cross_entropy(x, labels)) + sum(top * low)
}

grad rows wrt x

fn peak(x: f32[N, C]) -> f32 {
    return max(x * 3.0 - 1.0)
}
"""
# (row lengths: under, at and over the lanes' width and the chunk's length, and one chunk's
# length plus a tail shorter than the lanes)
LENGTHS = (1, LANES - 1, LANES, LANES + 1, 4 * LANES + 3, SPLIT_CHUNK, SPLIT_CHUNK + 1, 2 * SPLIT_CHUNK + LANES + 5)


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("long_rows")
    return (compile_module(ROWS, tmp, name="np_long_rows", path="rows.tl"),
            compile_module(ROWS, tmp, name="nb_long_rows", path="rows.tl", backend="numba"))




def test_the_kernel_is_split_by_lanes_with_unsigned_chunks(modules):
    source = open(modules[1].__file__).read()
    assert f"range(np.uint64(0), np.uint64(n1), np.uint64({SPLIT_CHUNK}))" in source
    assert f"for l in range(np.uint64({LANES})):" in source  # (the running maxima, side by side)
    assert "np.int64(j1) == " in source  # (the label compared as an int64, not through float64)


def test_long_rows_give_the_numpy_backends_values(modules):
    mn, mb = modules
    for c in LENGTHS:
        rng = np.random.default_rng(c)
        n = 5
        x = (rng.standard_normal((n, c)) * 4).astype(np.float32)
        labels = rng.integers(0, c, n)
        labels[0], labels[-1] = 0, c - 1  # (the first and last column: a chunk's edges)
        for got, want in zip(mb.rows_grad(x, labels), mn.rows_grad(x, labels)):
            assert_backend_values(got, want, f"rows_grad, C = {c}")
        assert_backend_values(mb.peak(x), mn.peak(x), f"peak, C = {c}")


def test_nan_and_infinities_anywhere_in_a_row(modules):
    """A nan in any lane, the tail or a later chunk makes the row's max and min nan, as NumPy's
    do; -inf and inf are values like any other."""
    mn, mb = modules
    c = 2 * SPLIT_CHUNK + LANES + 5
    rng = np.random.default_rng(7)
    base = rng.standard_normal((1, c)).astype(np.float32)
    for at in (0, 1, LANES - 1, LANES, SPLIT_CHUNK - 1, SPLIT_CHUNK, c - 3, c - 1):
        for special in (np.nan, np.inf, -np.inf):
            x = base.copy()
            x[0, at] = special
            got, want = mb.peak(x), mn.peak(x)
            assert (np.isnan(got) and np.isnan(want)) or got == want, (at, special, got, want)
            v_got, v_want = mb.rows_grad(x, np.array([at]))[0], mn.rows_grad(x, np.array([at]))[0]
            assert (np.isnan(v_got) and np.isnan(v_want)) or np.isclose(v_got, v_want, rtol=1e-6), \
                (at, special, v_got, v_want)
