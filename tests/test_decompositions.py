"""eigh, svd and qr beyond the catalogue: the documented behaviour at repeated eigenvalues and
singular values, and svd's and qr's k = min(m, n) for symbolic sizes (the catalogue checks values
and derivatives at generic points)."""
from __future__ import annotations

import numpy as np
import pytest

from tapeless.runtime import gradcheck


def _with_singular_values(s, m, n, seed=0):
    """A random m x n matrix whose singular values are s (len min(m, n))."""
    rng = np.random.default_rng(seed)
    u = np.linalg.qr(rng.standard_normal((m, len(s))))[0]
    v = np.linalg.qr(rng.standard_normal((n, len(s))))[0]
    return u @ np.diag(s) @ v.T


@pytest.mark.parametrize("shape", [(3, 3), (4, 3), (3, 4)])
def test_repeated_singular_values_leave_a_loss_of_s_alone_differentiable(shape, tl):
    """sum(s) (the nuclear norm) is smooth at a full-rank matrix even where singular values are
    equal: its gradient is u vh, finite, and the JVP of s is too."""
    m, n = shape
    a = _with_singular_values([2.0, 2.0, 1.0], m, n)
    mod = tl("fn f(a: f64[%d, %d]) -> f64 {\n    u, s, vh = svd(a)\n    return sum(s * s * s) + norm(a, \"nuc\")\n}\n"
             "vjp f wrt a\njvp f wrt a\n" % shape)
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    _, g = mod.f_vjp(a, 1.0)
    np.testing.assert_allclose(g, u @ np.diag(3 * s * s + 1) @ vh, atol=1e-12)
    assert gradcheck(mod.f_vjp, a) and gradcheck(mod.f_jvp, a)


def test_repeated_singular_values_make_the_singular_vectors_gradient_non_finite(tl):
    """As PyTorch: u (here through u * u, which does not depend on u's signs) is not
    differentiable where two singular values are equal (exactly: LAPACK gives them so here;
    nearly equal ones give a huge gradient)."""
    a = np.array([[3.0, 4, 0], [-4, 3, 0], [0, 0, 1], [0, 0, 0]])
    assert np.linalg.svd(a, compute_uv=False).tolist() == [5.0, 5.0, 1.0]
    mod = tl("fn f(a: f64[4, 3], b: f64[4, 3]) -> f64 {\n    u, s, vh = svd(a)\n    return sum(u * u * b)\n}\n"
             "vjp f wrt a\n")
    _, g = mod.f_vjp(a, np.random.default_rng(0).standard_normal((4, 3)), 1.0)
    assert not np.all(np.isfinite(g))


def test_repeated_eigenvalues_leave_a_loss_of_the_eigenvalues_alone_differentiable(tl):
    """sum(w * w) is |a|_F^2 for a symmetric a: gradient 2 a, also at the identity (where the
    eigenvectors are not differentiable); w's JVP there is diag(v^T t v)."""
    mod = tl("fn f(a: f64[3, 3]) -> f64 {\n    w, v = eigh(a)\n    return sum(w * w)\n}\nvjp f wrt a\njvp f wrt a\n")
    a = np.diag([2.0, 2.0, 1.0])
    np.testing.assert_allclose(mod.f_vjp(a, 1.0)[1], 2 * a, atol=1e-12)
    t = np.random.default_rng(3).standard_normal((3, 3))
    np.testing.assert_allclose(mod.f_jvp(a, t)[1], 2 * np.sum(a * (t + t.T) / 2), rtol=1e-12)


def test_a_literal_k_against_a_symbolic_size_is_checked_when_running(tl):
    mod = tl("fn f(a: f64[N, 3]) -> f64[3] {\n    u, s, vh = svd(a)\n    q, r = qr(a)\n"
             "    return s + sum(r * r, axis=1)\n}\n")
    a = np.random.default_rng(1).standard_normal((5, 3))
    want = np.linalg.svd(a, compute_uv=False) + np.sum(np.linalg.qr(a)[1] ** 2, axis=1)
    np.testing.assert_allclose(mod.f(a), want, rtol=1e-12)
    with pytest.raises(ValueError, match=r"with N = 2, `svd` of f64\[N, 3\] takes k = 3: N must be at least that"):
        mod.f(a[:2])


def test_sizes_that_differ_by_a_constant_give_k(tl):
    mod = tl("fn f(a: f64[N, N]) -> f64 {\n    b = a[:, 2:]\n    q, r = qr(b)\n    u, s, vh = svd(b)\n"
             "    return sum(s) + sum(q * q)\n}\n")
    a = np.random.default_rng(2).standard_normal((5, 5))
    np.testing.assert_allclose(mod.f(a), np.linalg.norm(a[:, 2:], "nuc") + 3, rtol=1e-12)
