"""Forward mode and second order: `jvp` and `hvp` directives (docs/language.md, "Derivatives")."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

from tapeless.runtime import gradcheck

LOGISTIC = """
fn logistic(X: f64[N, D], t: f64[N], w: f64[D]) -> f64 {
    return sum(softplus(-t * (X @ w)))
}
hvp logistic wrt w
jvp logistic wrt w
"""


def _logistic_inputs(n=40, d=7, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.choice([-1.0, 1.0], n), rng.standard_normal(d), rng.standard_normal(d)


def test_signatures_and_names(tl):
    m = tl(LOGISTIC)
    assert m.__tapeless__["logistic_hvp"]["params"] == ("X", "t", "w", "v_w")
    assert m.__tapeless__["logistic_jvp"]["params"] == ("X", "t", "w", "t_w")
    X, t, w, v = _logistic_inputs()
    value, dw, hv = m.logistic_hvp(X, t, w, v)
    assert value == pytest.approx(m.logistic(X, t, w))
    out, tangent = m.logistic_jvp(X, t, w, v)
    assert tangent == pytest.approx(dw @ v)                 # the directional derivative is <grad, v>


def test_logistic_hvp_is_the_closed_form(tl):
    m = tl(LOGISTIC)
    X, t, w, v = _logistic_inputs()
    s = 1 / (1 + np.exp(t * (X @ w)))                       # sigmoid(-t * z)
    closed = X.T @ (s * (1 - s) * (t * t) * (X @ v))
    np.testing.assert_allclose(m.logistic_hvp(X, t, w, v)[2], closed, rtol=1e-12)
    src = inspect.getsource(m.logistic_hvp)
    body = src.split('"""')[-1]
    # four matrix-vector products in all: X @ w and back for the gradient, X @ v and back for Hv
    assert body.count(" @ ") == 4
    assert "(D, D)" not in body and "np.eye" not in body    # no Hessian is ever formed
    assert body.count("np.exp(") == 1                        # exp(-|z|), shared by softplus and sigmoid


def test_forward_mode_passes_gradcheck(tl):
    m = tl(LOGISTIC)
    X, t, w, _ = _logistic_inputs()
    assert gradcheck(m.logistic_hvp, X, t, w)
    assert gradcheck(m.logistic_jvp, X, t, w)


def test_jvp_of_masked_paths_is_exactly_zero(tl):
    m = tl("""
fn f(x: f64[N]) -> (f64[N], f64[N], f64[N]) {
    return where(x > 0, sqrt(x), 0), sqrt(relu(x)), sqrt(clip(x, 0, 9))
}
jvp f wrt x
""")
    x = np.array([-1.0, 0.0, 4.0])
    with np.errstate(all="raise"):
        *_, ta, tb, tc = m.f_jvp(x, np.ones(3))
    for t in (ta, tb):
        np.testing.assert_array_equal(t, [0.0, 0.0, 0.25])
    # clip passes the derivative at its bounds (torch.clamp), so at x = 0 sqrt's slope shows: inf,
    # as in reverse mode and in PyTorch; below the bound the path is cut: exactly 0
    np.testing.assert_array_equal(tc, [0.0, np.inf, 0.25])


def test_hvp_of_masked_paths_is_exactly_zero(tl):
    m = tl("fn f(x: f64[N]) -> f64 { return sum(where(x > 0, x * sqrt(x), 0)) }\nhvp f wrt x\n")
    x = np.array([-1.0, 0.0, 4.0])
    with np.errstate(all="raise"):
        value, g, hv = m.f_hvp(x, np.ones(3))
    np.testing.assert_allclose(g, [0.0, 0.0, 3.0])            # d x^1.5 = 1.5 sqrt(x)
    np.testing.assert_allclose(hv, [0.0, 0.0, 0.375])         # d^2 x^1.5 = 0.75 / sqrt(x)


def test_several_wrt_and_vectors(tl):
    m = tl("fn f(a: f64[3], b: f64[3]) -> f64 { return sum(a * a * b + sin(b)) }\nhvp f wrt a, b\n")
    a, b = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 2.0])
    va, vb = np.array([1.0, 0.0, 2.0]), np.array([0.0, 1.0, -1.0])
    value, da, db, ha, hb = m.f_hvp(a, b, va, vb)
    np.testing.assert_allclose(da, 2 * a * b)
    np.testing.assert_allclose(db, a * a + np.cos(b))
    np.testing.assert_allclose(ha, 2 * b * va + 2 * a * vb)   # H = [[2b, 2a], [2a, -sin b]]
    np.testing.assert_allclose(hb, 2 * a * va - np.sin(b) * vb)
    assert gradcheck(m.f_hvp, a, b)


def test_third_order_through_forward_mode(tl):
    m = tl("""
fn quartic(x: f64) -> f64 { return x ** 4 }
hvp quartic wrt x as h          # (x^4, 4x^3, 12x^2 v)
jvp h wrt x as h3               # ..., d/dx along t: (4x^3 t, 12x^2 t, 24x v t)
""")
    *_, third = m.h3(1.5, 2.0, 1.0)
    assert third == pytest.approx(24 * 1.5 * 2.0)


def test_jvp_of_a_vjp_function(tl):
    m = tl("""
fn f(x: f64[3]) -> f64[3] { return exp(x) * x }
vjp f wrt x
jvp f_vjp wrt x
""")
    x, ct, t = np.array([0.1, 0.2, -0.3]), np.array([1.0, -2.0, 0.5]), np.array([0.3, 0.1, 1.0])
    assert gradcheck(m.f_vjp_jvp, x, ct)
    *_, t_y, t_dx = m.f_vjp_jvp(x, ct, t)
    np.testing.assert_allclose(t_y, np.exp(x) * (1 + x) * t)
    np.testing.assert_allclose(t_dx, ct * np.exp(x) * (2 + x) * t)
