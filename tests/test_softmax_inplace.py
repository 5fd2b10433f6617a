"""softmax and log_softmax write into the fused loop's rows, or over an input that is a
temporary read only there (Loop.into), never into a fresh block copied in (issue 18 (c));
the values are those of the float64 formula, the arguments untouched."""
from __future__ import annotations

import re

import numpy as np
import pytest

from tapeless.compiler import compile_source
from test_cupy_backend import import_cupy_module
from util import compile_module

SRC = """
fn heads(x: f64[N, D], w: f64[D, C], y: f64[N, C]) -> f64 {
    p = softmax(x @ w, axis=-1)
    lp = log_softmax(2 * (x @ w), axis=-1)
    return sum(p * y) - mean(lp * y)
}

fn of_args(z: f64[N, C]) -> f64[N, C] {
    return softmax(z, axis=-1) + log_softmax(z, axis=0)
}

grad heads wrt w
"""


def _softmax(z, axis):
    e = np.exp(z - z.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def _log_softmax(z, axis):
    m = z.max(axis, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis, keepdims=True))


def _expected(x, w, y):
    t = x @ w
    return (_softmax(t, -1) * y).sum() - (_log_softmax(2 * t, -1) * y).mean()


def _inputs():
    rng = np.random.default_rng(0)
    return rng.standard_normal((37, 5)), rng.standard_normal((5, 11)), rng.standard_normal((37, 11))


def test_no_block_is_copied_in():
    text = compile_source(SRC, path="s.tl")
    assert "] = _softmax(" not in text and "] = _log_softmax(" not in text
    assert "_softmax(t_b, axis=1, out=" in text  # written into a block, over nothing it still needs
    assert "_log_softmax(" in text and ", out=" in text


@pytest.mark.parametrize("opt_level", [0, 1, 2])
def test_values_and_arguments_untouched(tmp_path, opt_level):
    m = compile_module(SRC, tmp_path, opt_level=opt_level)
    x, w, y = _inputs()
    copies = [a.copy() for a in (x, w, y)]
    assert np.isclose(m.heads(x, w, y), _expected(x, w, y), rtol=1e-12)
    value, dw = m.heads_grad(x, w, y)
    assert np.isclose(value, _expected(x, w, y), rtol=1e-12)
    eps = 1e-6  # the gradient, against central differences
    k = (2, 7)
    wp, wm = w.copy(), w.copy()
    wp[k] += eps
    wm[k] -= eps
    assert np.isclose(dw[k], (_expected(x, wp, y) - _expected(x, wm, y)) / (2 * eps), rtol=1e-6)
    z = x @ w
    zc = z.copy()
    assert np.allclose(m.of_args(z), _softmax(zc, -1) + _log_softmax(zc, 0), rtol=1e-12)
    for a, c in zip((x, w, y, z), copies + [zc]):
        assert np.array_equal(a, c)


def test_rows_of_minus_inf(tmp_path):
    """A row of -inf gives NaN (0 / 0, and -inf - -inf), as before the in-place forms; a -inf
    among finite values gives 0 and -inf."""
    m_fused = compile_module("fn f(z: f64[N, C]) -> f64[N, C] { return log_softmax(z * 1, axis=-1) }\n"
                             "fn g(z: f64[N, C]) -> f64[N, C] { return softmax(z * 1, axis=-1) }", tmp_path)
    z = np.array([[-np.inf, -np.inf, -np.inf], [0.0, 1.0, -np.inf]])
    assert np.isnan(m_fused.f(z)[0]).all() and np.allclose(m_fused.f(z)[1, :2], _log_softmax(z[1:, :2], -1)[0])
    assert np.isnan(m_fused.g(z)[0]).all() and m_fused.g(z)[1, 2] == 0 and m_fused.f(z)[1, 2] == -np.inf


def test_cupy_writes_over_the_temporary(tmp_path):
    """On CuPy log_softmax is a call outside the fused kernels: `2 * t` (a kernel's result, a
    temporary read only there) is written over (inplace=True); the module computes the same as
    NumPy's (the CPU stand-in, kernels through g++ when present)."""
    text = compile_source(SRC, path="s.tl", backend="cupy")
    assert re.search(r"(\w+) = _k\d+\(t\)  # .*\n.*_log_softmax\(\1, axis=1, inplace=True\)", text)
    m = import_cupy_module(text, tmp_path, "standin")
    x, w, y = _inputs()
    assert np.isclose(float(m.heads(x, w, y)), _expected(x, w, y), rtol=1e-12)
