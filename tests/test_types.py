"""Static shapes and dtypes agree with NumPy: broadcasting (property tests), NEP 50 promotion
with weak literals, and symbolic dimensions."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tapeless.compiler.core.types import (BroadcastError, Dim, DType, TensorType, broadcast_shapes, dim_add, dim_div,
                                     dim_mul, dim_prod, dim_sub, dim_subst, dim_text, promote)

shapes = st.lists(st.integers(1, 4), min_size=0, max_size=4).map(tuple)


@settings(max_examples=300, deadline=None)
@given(shapes, shapes)
def test_broadcasting_agrees_with_numpy_on_literal_shapes(a, b):
    try:
        want = np.broadcast_shapes(a, b)
    except ValueError:
        with pytest.raises(BroadcastError):
            broadcast_shapes(a, b)
    else:
        assert broadcast_shapes(a, b) == want


def test_symbols_match_themselves_or_one():
    n, m = Dim.symbol("N"), Dim.symbol("M")
    assert broadcast_shapes((n, 1), (1, 3)) == (n, 3)
    assert broadcast_shapes((n,), (n,)) == (n,)
    with pytest.raises(BroadcastError):
        broadcast_shapes((n,), (m,))
    with pytest.raises(BroadcastError):
        broadcast_shapes((n,), (3,))


STRONG = [d for d in DType]


@pytest.mark.parametrize("a", STRONG, ids=str)
@pytest.mark.parametrize("b", STRONG, ids=str)
def test_promotion_of_arrays_is_numpys(a, b):
    got, weak = promote(TensorType(a, (2,)), TensorType(b, (2,)))
    assert not weak
    assert got.np == np.result_type(a.np, b.np)


@pytest.mark.parametrize("a", STRONG, ids=str)
@pytest.mark.parametrize("literal", [True, 2, 2.5])
def test_weak_literals_follow_nep50(a, literal):
    kind = {bool: DType.BOOL, int: DType.I64, float: DType.F64}[type(literal)]
    got, weak = promote(TensorType(a, (2,)), TensorType(kind, (), True))
    assert not weak
    with np.errstate(all="ignore"):
        want = (np.ones(2, a.np) + literal).dtype if a != DType.BOOL or kind != DType.BOOL else np.dtype(bool)
    assert got.np == want


def test_weak_with_weak_stays_weak():
    assert promote(TensorType(DType.I64, (), True), TensorType(DType.F64, (), True)) == (DType.F64, True)


def test_dim_polynomials():
    n, m = Dim.symbol("N"), Dim.symbol("M")
    assert dim_mul(n, 3) == dim_mul(3, n)
    assert dim_sub(dim_add(n, 1), 1) == n
    assert dim_div(dim_mul(n, 15), 5) == dim_mul(n, 3)
    assert dim_div(dim_add(n, 1), n) is None
    assert dim_prod([n, m, 2]) == dim_mul(dim_mul(m, n), 2)
    assert dim_subst(dim_add(n, m), {"N": 2, "M": dim_mul(n, n)}) == dim_add(2, dim_mul(n, n))
    assert dim_text(dim_add(dim_mul(n, 3), -1)) == "3*N - 1"
    assert dim_text(dim_add(n, m), python=True, names={"N": "n_"}) == "(M + n_)"
