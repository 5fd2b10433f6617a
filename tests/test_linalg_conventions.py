"""What the factorizations do at singular and indefinite matrices (docs/language.md, "The
factorizations"): det's and slogdet's gradients (through inv), solve and inv raise NumPy's
LinAlgError at an exactly singular matrix, and cholesky, logdet and cho_solve refuse a matrix that is not positive
definite the same way; never a silently wrong number."""
from __future__ import annotations

import numpy as np
import pytest

SINGULAR = np.array([[1.0, 2.0], [2.0, 4.0]])
INDEFINITE = np.array([[1.0, 2.0], [2.0, 1.0]])


@pytest.mark.parametrize("expr", ["det(a)", "logabsdet"])
def test_det_gradient_at_a_singular_matrix_raises_and_its_value_does_not(tl, expr):
    body = "sign, logabsdet = slogdet(a)\n    return logabsdet" if expr == "logabsdet" else f"return {expr}"
    m = tl(f"fn f(a: f64[2, 2]) -> f64 {{\n    {body}\n}}\ngrad f wrt a\n")
    with np.errstate(all="ignore"):
        value = m.f(SINGULAR)
    assert value == (0.0 if expr == "det(a)" else -np.inf)
    with pytest.raises(np.linalg.LinAlgError):
        m.f_grad(SINGULAR)


@pytest.mark.parametrize("expr", ["sum(solve(a, b))", "sum(inv(a))"])
def test_solve_and_inv_of_a_singular_matrix_raise(tl, expr):
    m = tl(f"fn f(a: f64[2, 2], b: f64[2]) -> f64 {{ return {expr} }}\n")
    with pytest.raises(np.linalg.LinAlgError):
        m.f(SINGULAR, np.ones(2))


@pytest.mark.parametrize("expr", ["sum(cholesky(a))", "logdet(a)", "sum(cho_solve(cholesky(a), b))"])
def test_the_positive_definite_ones_refuse_an_indefinite_matrix(tl, expr):
    m = tl(f"fn f(a: f64[2, 2], b: f64[2]) -> f64 {{ return {expr} }}\ngrad f wrt a\n")
    with pytest.raises(np.linalg.LinAlgError):
        m.f(INDEFINITE, np.ones(2))
    with pytest.raises(np.linalg.LinAlgError):
        m.f_grad(INDEFINITE, np.ones(2))
