"""A constant array (a gradient's zeros) takes the memory of an array of its type that is dead by
then, filled (codegen/dead_arrays.py), or as it is when a loop sets every row of it before
reading any (loops.overwritten_carries): W10's gradient of every step's x[t] @ w goes into the
projections' own array, in memory already, not a fresh np.zeros whose pages the backward loop
faults in. Values are those of -O0 (which plans no memory) on both dtypes and every backend that
runs here; a loop that sets only some rows gets zeros; a loop whose result may share memory with
what it read keeps that array."""
from __future__ import annotations

import numpy as np
import pytest

from tapeless.compiler import compile_source
from util import compile_module

RNN = """
fn rnn(x: {t}[T, B, D], h0: {t}[B, H], w: {t}[D, H], u: {t}[H, H]) -> {t} {{
    h = h0
    for t in range(T) {{
        h = tanh(x[t] @ w + h @ u)
    }}
    return mean(h * h)
}}

grad rnn wrt w, u, h0
"""

# the loop sets rows 1.. of the gradient of xs only: row 0 must be zeros, in the dead array of xs @ w
PART = """
fn part(x: {t}[T, N, D], w: {t}[D, D], h0: {t}[N, D]) -> {t} {{
    xs = x @ w
    h = h0
    for t in range(1, T) {{
        h = tanh(xs[t] + h)
    }}
    return sum(h * h)
}}

grad part wrt x
"""

# the loop's result is a row of the array it reads (a view): that array must stay as it is
ROW = """
fn last_row(a: {t}[T, N]) -> {t} {{
    xs = 2 * a
    h = xs[0]
    for t in range(T) {{
        h = xs[t]
    }}
    return sum(h * h) + sum(xs * xs)
}}

grad last_row wrt a
"""


def _rnn_args(dtype):
    rng = np.random.default_rng(3)
    T, B, D, H = 6, 4, 5, 3
    return (rng.standard_normal((T, B, D)).astype(dtype), rng.standard_normal((B, H)).astype(dtype),
            (rng.standard_normal((D, H)) / 3).astype(dtype), (rng.standard_normal((H, H)) / 3).astype(dtype))


def _function(text: str, name: str) -> str:
    return text.split(f"def {name}(", 1)[1].split("\ndef ", 1)[0]


@pytest.mark.parametrize("t", ["f32", "f64"])
def test_gradient_zeros_take_the_dead_projections(t):
    src = _function(compile_source(RNN.format(t=t), path="rnn.tl"), "rnn_grad")
    assert "x_w = " in src
    assert "t_5 = x_w  # its memory is free" in src  # the gradient of x[t] @ w, in the projections' memory,
    assert "_filled(" not in src  # unfilled: the backward loop sets every row
    assert "np.zeros((T, B, H)" not in src
    assert "del x_w" not in src  # (its name is kept: the memory goes on under the gradient's)
    # without memory planning (-O0): a fresh array, as before
    assert "_filled(" not in _function(compile_source(RNN.format(t=t), path="rnn.tl", opt_level=0), "rnn_grad")


@pytest.mark.parametrize("t,dtype,rtol", [("f32", np.float32, 1e-5), ("f64", np.float64, 1e-12)])
def test_rnn_values_equal_across_levels_and_backends(tmp_path, t, dtype, rtol):
    args = _rnn_args(dtype)
    ref = compile_module(RNN.format(t=t), tmp_path, opt_level=0).rnn_grad(*args)
    backends = ["numpy"]
    try:
        import numba  # noqa: F401
        backends.append("numba")
    except ImportError:
        pass
    for backend in backends:
        got = compile_module(RNN.format(t=t), tmp_path, backend=backend).rnn_grad(*args)
        for a, b in zip(got, ref):
            assert np.asarray(a).dtype == dtype
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-3)
        again = compile_module(RNN.format(t=t), tmp_path, backend=backend).rnn_grad(*args)  # no state kept
        for a, b in zip(again, got):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("t,dtype", [("f32", np.float32), ("f64", np.float64)])
def test_an_array_a_loop_result_may_view_is_not_taken(tmp_path, t, dtype):
    a = np.arange(12, dtype=dtype).reshape(3, 4) / 7
    expected = 2 * 4 * a  # d/da of sum(4 a^2) (the rows of xs, xs[-1] once more)
    expected[-1] += 2 * 4 * a[-1]
    for level in (0, 1):
        m = compile_module(ROW.format(t=t), tmp_path, opt_level=level)
        value, g = m.last_row_grad(a)
        np.testing.assert_allclose(value, (4 * a[-1] ** 2).sum() + (4 * a * a).sum(), rtol=1e-6)
        np.testing.assert_allclose(g, expected, rtol=1e-6)


@pytest.mark.parametrize("t,dtype,rtol", [("f32", np.float32, 1e-5), ("f64", np.float64, 1e-12)])
def test_rows_a_loop_does_not_set_are_zeros(tmp_path, t, dtype, rtol):
    text = compile_source(PART.format(t=t), path="part.tl")
    assert "_filled(" in _function(text, "part_grad")  # filled: row 0 is not the loop's
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((4, 3, 2)).astype(dtype), (rng.standard_normal((2, 2)) / 2).astype(dtype)
    h0 = rng.standard_normal((3, 2)).astype(dtype)
    got = compile_module(PART.format(t=t), tmp_path).part_grad(x, w, h0)
    ref = compile_module(PART.format(t=t), tmp_path, opt_level=0).part_grad(x, w, h0)
    assert not got[1][0].any()  # x[0] is never read
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-3)
