"""Special functions (scipy.special semantics; docs/language.md): the import they bring, and
the points where a closed form needs care. Values and derivatives elsewhere are the
catalogue's (finite differences, SymPy, recorded PyTorch references)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.special
from tapeless.compiler import compile_source

USES = "fn f(x: f64[N]) -> f64 {\n    return sum(erf(x))\n}\n"
PLAIN = "fn f(x: f64[N]) -> f64 {\n    return sum(exp(x))\n}\n"


def test_only_a_module_that_uses_one_imports_scipy_special():
    assert "scipy" not in compile_source(PLAIN)
    numpy_text = compile_source(USES)
    assert numpy_text.count("import scipy.special as _special") == 1
    # on CuPy erf runs inside the fused chain's kernel (CUDA has erf): no import; erfcx, which the
    # kernels do not have, is a cupyx.scipy.special call
    assert "cupyx" not in compile_source(USES, backend="cupy") and "erf(x)" in compile_source(USES, backend="cupy")
    cupy_text = compile_source(USES.replace("erf(", "erfcx("), backend="cupy")
    assert "import cupyx.scipy.special as _special" in cupy_text and "import scipy" not in cupy_text


def test_log_ndtr_gradient_is_finite_far_in_the_left_tail(tl):
    m = tl("fn f(x: f64[N]) -> f64 {\n    return sum(log_ndtr(x))\n}\ngrad f wrt x\n")
    x = np.array([-40.0, -10.0, 0.0, 10.0])
    _, dx = m.f_grad(x)
    # d/dx log Phi(x) = phi(x) / Phi(x) -> -x for x -> -inf (the plain ratio is 0/0 = NaN at -40)
    want = np.exp(-x ** 2 / 2 - scipy.special.log_ndtr(x)) / np.sqrt(2 * np.pi)
    np.testing.assert_allclose(dx, want, rtol=1e-12)
    assert dx[0] == pytest.approx(40.0, rel=1e-3)


def test_bessel_derivatives_at_zero_are_their_limits(tl):
    m = tl("fn f(x: f64[N]) -> f64 {\n    return sum(i1(x) + j1(x) * 2 + i1e(x) * 4)\n}\ngrad f wrt x\n")
    _, dx = m.f_grad(np.array([0.0, 1.0]))
    assert dx[0] == pytest.approx(0.5 + 2 * 0.5 + 4 * 0.5)  # i1'(0) = j1'(0) = i1e'(0) = 1/2
    assert np.isfinite(dx).all()


def test_xlogy_is_zero_where_x_is_zero_with_pytorchs_derivatives(tl):
    m = tl("fn f(x: f64[N], y: f64[N]) -> f64 {\n    return sum(xlogy(x, y))\n}\ngrad f wrt x, y\n")
    x, y = np.array([0.0, 0.0, 2.0]), np.array([0.0, 3.0, 4.0])
    value, dx, dy = m.f_grad(x, y)
    assert value == pytest.approx(2 * np.log(4.0))  # 0 * log 0 = 0
    np.testing.assert_array_equal(dx, [0.0, 0.0, np.log(4.0)])  # torch: xlogy(x != 0, y)
    np.testing.assert_array_equal(dy[1:], [0.0, 0.5])  # x / y
