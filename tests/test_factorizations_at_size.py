"""The factorizations at sizes where the generated helpers block (more than 64 rows), and the
Gaussian-process gradient that logdet and cho_solve exist for (docs/language.md,
"The factorizations"): one Cholesky factorization, no LU, no explicit inverse."""
from __future__ import annotations

import ast

import numpy as np
import pytest

from tapeless.compiler import compile_source

GP = """
fn nll(X: f64[N, D], y: f64[N], ls: f64[D], sf2: f64, sn2: f64) -> f64 {
    Z = X / ls
    q = sum(Z * Z, axis=1)
    K = sf2 * exp(-0.5 * (q[:, None] + q[None, :] - 2 * (Z @ Z.T))) + sn2 * eye(N)
    return 0.5 * sum(y * cho_solve(cholesky(K), y)) + 0.5 * logdet(K)
}
grad nll wrt ls, sf2, sn2
"""


def _gp_reference(X, y, ls, sf2, sn2):
    """Value and gradient from the explicit inverse, one kernel derivative per lengthscale."""
    diff2 = (X[:, None, :] - X[None, :, :]) ** 2
    E = np.exp(-0.5 * np.sum(diff2 / ls ** 2, axis=2))
    K = sf2 * E + sn2 * np.eye(len(y))
    Kinv = np.linalg.inv(K)
    alpha = Kinv @ y
    W = 0.5 * (Kinv - np.outer(alpha, alpha))
    dls = np.array([np.sum(W * sf2 * E * diff2[:, :, d] / ls[d] ** 3) for d in range(len(ls))])
    return 0.5 * y @ alpha + 0.5 * np.linalg.slogdet(K)[1], dls, np.sum(W * E), np.trace(W)


def _bodies(text, name):
    """The source of the module's function `name` (not the helpers it calls)."""
    tree = ast.parse(text)
    return next(ast.get_source_segment(text, f) for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == name)


def test_gp_gradient_factors_once_and_never_inverts(tl):
    text = compile_source(GP)
    body = _bodies(text, "nll_grad")
    assert body.count("np.linalg.cholesky(") == 1, body
    assert "np.linalg.inv(" not in body and "np.linalg.solve(" not in body, body
    m = tl(GP)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((150, 3)), rng.standard_normal(150)
    ls, sf2, sn2 = np.array([0.8, 1.5, 2.5]), 1.3, 0.2
    got = m.nll_grad(X, y, ls, sf2, sn2)
    want = _gp_reference(X, y, ls, sf2, sn2)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("lower", [True, False])
def test_solve_triangular_blocks_right_batched_and_with_a_vector(tl, lower):
    m = tl(f"""
fn mat(a: f64[B, N, N], b: f64[B, N, K]) -> f64[B, N, K] {{ return solve_triangular(a, b, lower={str(lower).lower()}) }}
fn vec(a: f64[N, N], b: f64[N]) -> f64[N] {{ return solve_triangular(a, b, lower={str(lower).lower()}) }}
""")
    rng = np.random.default_rng(1)
    n = 203  # odd sizes at every level of the halving
    a = rng.standard_normal((2, n, n)) + 3 * np.sqrt(n) * np.eye(n)  # the other triangle is garbage
    b = rng.standard_normal((2, n, 5))
    tri = np.tril(a) if lower else np.triu(a)
    np.testing.assert_allclose(m.mat(a, b), np.linalg.solve(tri, b), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.vec(a[0], b[0, :, 0]), np.linalg.solve(tri[0], b[0, :, 0]), rtol=1e-10, atol=1e-12)


def test_logdet_gradient_is_the_inverse_at_size(tl):
    """logdet's gradient: the inverse from the factor (blocked triangular inverse), batched."""
    m = tl("fn f(a: f64[B, N, N]) -> f64[B] { return logdet(a) }\nvjp f wrt a\n")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 130, 130))
    a = x @ np.swapaxes(x, 1, 2) / 130 + np.eye(130)
    ct = np.array([1.5, -0.5])
    value, grad = m.f_vjp(a, ct)
    np.testing.assert_allclose(value, np.linalg.slogdet(a)[1], rtol=1e-12)
    np.testing.assert_allclose(grad, ct[:, None, None] * np.linalg.inv(a), rtol=1e-8, atol=1e-10)
