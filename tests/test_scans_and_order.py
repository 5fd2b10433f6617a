"""Scans and order (docs/language.md, "Built-in functions"): what the catalogue's one case per
built-in does not show: ties, symbolic sizes, integer results, flattening defaults."""
from __future__ import annotations

import numpy as np
import pytest


def test_sort_gives_tied_values_their_gradient_in_order(tl):
    # sort([2, 1, 2]) = [1, 2 (x0), 2 (x2)]: stable, so x0's weight is w[1] and x2's is w[2]
    m = tl("fn f(x: f64[3], w: f64[3]) -> f64 {\n    return sum(sort(x) * w)\n}\ngrad f wrt x\n")
    _, dx = m.f_grad(np.array([2.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(dx, [2.0, 1.0, 3.0])


def test_topk_on_a_symbolic_axis_checks_the_size_when_called(tl):
    m = tl("fn f(x: f64[N]) -> f64 {\n    v, i = topk(x, 3)\n    return sum(v * f64(i))\n}\ngrad f wrt x\n")
    x = np.array([0.5, 3.0, -1.0, 2.0])
    value, dx = m.f_grad(x)
    assert value == 3.0 * 1 + 2.0 * 3 + 0.5 * 0
    np.testing.assert_array_equal(dx, [0.0, 1.0, 0.0, 3.0])
    with pytest.raises(ValueError, match=r"f\(\): with N = 2, slice bound 3 is out of range"):
        m.f(np.array([1.0, 2.0]))


def test_a_constant_slice_bound_on_a_symbolic_axis_is_checked_when_called(tl):
    m = tl("fn f(x: f64[N]) -> f64[3] {\n    return x[:3] * 2\n}\n")
    np.testing.assert_array_equal(m.f(np.arange(5.0)), [0.0, 2.0, 4.0])
    with pytest.raises(ValueError, match="slice bound 3 is out of range for axis 0 of size N"):
        m.f(np.arange(2.0))  # NumPy would give 2 values for a declared f64[3]


def test_roll_takes_any_shift_and_symbolic_sizes(tl):
    m = tl("fn f(x: f64[N, 3]) -> f64[N, 3] {\n    return roll(x, 7, axis=0) + roll(x, -1, axis=1)\n}\n"
           "fn g(x: f64[2, 3]) -> f64[2, 3] {\n    return roll(x, 4)\n}\n")
    x = np.arange(12.0).reshape(4, 3)
    np.testing.assert_array_equal(m.f(x), np.roll(x, 7, 0) + np.roll(x, -1, 1))
    y = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(m.g(y), np.roll(y, 4))  # no axis: the flattened array, as NumPy


def test_argmax_argmin_without_axis_index_the_flattened_array(tl):
    m = tl("fn f(x: f64[2, 3]) -> i64 {\n    return argmax(x) * 10 + argmin(x)\n}\n"
           "fn g(x: f64[2, 3]) -> i64[1, 1] {\n    return argmax(x, keepdims=true)\n}\n")
    x = np.array([[1.0, 5.0, 5.0], [-2.0, 0.0, 3.0]])
    assert m.f(x) == 1 * 10 + 3  # the first of the tied maxima
    np.testing.assert_array_equal(m.g(x), [[1]])


def test_integer_scans_and_sorts_stay_integers(tl):
    m = tl("fn f(k: i32[4]) -> i64[4] {\n    return cumsum(k) + sort(i64(k)) + argsort(k)\n}\n")
    k = np.array([3, -1, 2, 2], dtype=np.int32)
    out = m.f(k)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, np.cumsum(k) + np.sort(k) + np.argsort(k, kind="stable"))


def test_pad_tile_repeat_match_numpy_with_symbolic_sizes(tl):
    m = tl("fn f(x: f64[N, 2]) -> f64 {\n"
           "    return sum(pad(x, 1, value=-1) ** 3) + sum(tile(x, [3]) ** 3) + sum(repeat(x, 2) ** 3)\n}\n"
           "grad f wrt x\n")
    x = np.random.default_rng(0).standard_normal((3, 2))
    want = np.sum(np.pad(x, 1, constant_values=-1) ** 3) + np.sum(np.tile(x, 3) ** 3) + np.sum(np.repeat(x, 2) ** 3)
    value, dx = m.f_grad(x)
    assert value == pytest.approx(want)
    # each element appears once in pad, 3 times in tile, twice in repeat
    np.testing.assert_allclose(dx, 3 * x ** 2 * (1 + 3 + 2))


def test_diff_and_cumsum_are_inverse_in_value_and_gradient(tl):
    m = tl("fn f(x: f64[N]) -> f64 {\n    d = diff(cumsum(x))\n    return sum(d * d)\n}\ngrad f wrt x\n")
    x = np.array([1.0, 2.0, -3.0, 0.5])
    value, dx = m.f_grad(x)
    assert value == pytest.approx(np.sum(x[1:] ** 2))
    np.testing.assert_allclose(dx, np.concatenate([[0.0], 2 * x[1:]]))


def test_cumprod_derivatives_are_exact_with_zeros(tl):
    m = tl("fn f(x: f64[N, 4], w: f64[N, 4]) -> f64 {\n    return sum(cumprod(x, axis=1) * w)\n}\n"
           "grad f wrt x\njvp f wrt x\n")
    rng = np.random.default_rng(1)
    w = rng.standard_normal((3, 4))
    x = np.array([[1.5, 0.0, 2.0, -1.0], [0.0, 2.0, 0.0, 3.0], [2.0, -0.5, 1.5, 0.0]])

    def grad(i, r):  # d/dx[r, i] of sum_k w[r, k] prod_{j <= k} x[r, j], each product written out
        return sum(w[r, k] * np.prod([x[r, j] for j in range(k + 1) if j != i]) for k in range(i, 4))

    want = np.array([[grad(i, r) for i in range(4)] for r in range(3)])
    _, dx = m.f_grad(x, w)
    np.testing.assert_allclose(dx, want, rtol=1e-14, atol=1e-14)
    t = rng.standard_normal((3, 4))
    _, tangent = m.f_jvp(x, w, t)
    assert tangent == pytest.approx(np.sum(want * t), rel=1e-13)


def _mp_logcumsumexp(row):
    import mpmath

    return [mpmath.log(mpmath.fsum(mpmath.exp(mpmath.mpf(v)) for v in row[:k + 1])) for k in range(len(row))]


def test_logcumsumexp_is_exact_at_any_magnitude(tl):
    """No overflow at +-700 or +-1000 (exp(700) is near f64's limit), no underflow of a prefix
    far below the line's maximum: values, gradient and tangent against 40-digit mpmath."""
    import mpmath

    mpmath.mp.dps = 40
    m = tl("fn f(x: f64[N, 5], w: f64[N, 5]) -> f64 {\n    return sum(logcumsumexp(x, axis=1) * w)\n}\n"
           "fn g(x: f64[N, 5]) -> f64[N, 5] {\n    return logcumsumexp(x, axis=1)\n}\n"
           "grad f wrt x\njvp f wrt x\n")
    x = np.array([[700.0, 710.0, -700.0, 705.0, 1000.0], [-1000.0, -700.0, -1000.0, 700.0, 699.0],
                  [-745.0, -746.0, -744.0, -745.0, -1000.0]])
    rng = np.random.default_rng(2)
    w, t = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    exact = [_mp_logcumsumexp(list(r)) for r in x]
    # d/dx_i = sum over j >= i of w_j exp(x_i - out_j), written out in mpmath
    dx = np.array([[float(mpmath.fsum(w[r, j] * mpmath.exp(mpmath.mpf(x[r, i]) - exact[r][j]) for j in range(i, 5)))
                    for i in range(5)] for r in range(3)])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # (exp(-1000) underflows: fine)
        out = m.g(x)
        _, grad = m.f_grad(x, w)
        _, tangent = m.f_jvp(x, w, t)
    np.testing.assert_allclose(out, np.array(exact, dtype=float), rtol=1e-15)
    assert out[0, 0] == 700.0 and out[1, 0] == -1000.0  # a prefix far below the line's max stays exact
    np.testing.assert_allclose(grad, dx, rtol=1e-13, atol=1e-300)
    assert tangent == pytest.approx(float(np.sum(dx * t)), rel=1e-13)


def test_logcumsumexp_of_a_minus_inf_prefix_is_minus_inf_with_gradient_zero(tl):
    """As torch: an all -inf prefix gives -inf; its gradient (and second derivative) is 0, not
    NaN, and a -inf entry after the prefix gets gradient 0 too."""
    m = tl("fn f(x: f64[5], w: f64[5]) -> f64 {\n    return sum(where(logcumsumexp(x) > -inf, logcumsumexp(x), 0) * w)\n}\n"
           "fn g(x: f64[5]) -> f64[5] {\n    return logcumsumexp(x)\n}\n"
           "grad f wrt x\njvp f wrt x\nhvp f wrt x\n")
    x = np.array([-np.inf, -np.inf, 1.0, -np.inf, 2.0])
    w = np.array([0.5, -1.0, 2.0, 1.5, -0.25])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # (exp(-1000) underflows: fine)
        out = m.g(x)
        _, grad = m.f_grad(x, w)
        _, tangent = m.f_jvp(x, w, np.ones(5))
        hv = m.f_hvp(x, w, np.ones(5))[-1]
    np.testing.assert_array_equal(out[:2], [-np.inf, -np.inf])
    np.testing.assert_allclose(out[2:], [1.0, 1.0, np.logaddexp(1.0, 2.0)], rtol=1e-15)
    # only x[2] and x[4] carry weight: d out_j/dx_i = exp(x_i - out_j) for i <= j
    p = np.exp(1.0 - out[4])
    want = np.array([0.0, 0.0, w[2] + w[3] + w[4] * p, 0.0, w[4] * (1 - p)])
    np.testing.assert_allclose(grad, want, rtol=1e-15)
    assert tangent == pytest.approx(np.sum(want))
    assert np.all(np.isfinite(hv)) and hv[0] == hv[1] == hv[3] == 0.0


def test_cumprod_second_derivatives_are_exact_with_zeros(tl):
    """hvp of sum(cumprod(x) * w) with one zero and with two zeros in a row: the Hessian is
    d2/dx_i dx_l = sum over k >= max(i, l) of w_k prod_{j <= k, j != i, l} x_j (i != l), 0 on
    the diagonal, written out here; the masked first derivative gave 0 instead."""
    m = tl("fn f(x: f64[N, 5], w: f64[N, 5]) -> f64 {\n    return sum(cumprod(x, axis=1) * w)\n}\nhvp f wrt x\n")
    rng = np.random.default_rng(3)
    w, v = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    x = np.array([[1.5, 0.0, 2.0, -1.0, 0.5], [0.0, 0.0, 1.5, 2.0, -0.5], [2.0, -0.5, 0.0, 0.0, 3.0]])

    def hess(r, i, l):
        if i == l:
            return 0.0
        return sum(w[r, k] * np.prod([x[r, j] for j in range(k + 1) if j not in (i, l)]) for k in range(max(i, l), 5))

    want = np.array([[sum(hess(r, i, l) * v[r, l] for l in range(5)) for i in range(5)] for r in range(3)])
    assert np.abs(want).min() == 0 and np.abs(want).max() > 1  # zeros and non-zeros both occur
    hv = m.f_hvp(x, w, v)[-1]
    np.testing.assert_allclose(hv, want, rtol=1e-14, atol=1e-14)
