"""An einsum that is a (batched) matrix product is emitted as `@` on views of its operands
(linalg.py `_matmul_form`) and computes what numpy.einsum does; other specs stay einsum."""
from __future__ import annotations

import numpy as np
import pytest

from tapeless.compiler import compile_source
from test_cupy_backend import import_cupy_module
from util import compile_module

# (spec, shape of a, shape of b): B=3, I=4, J=5, K=6
MATMUL = [
    ("ij,jk->ik", "I, J", "J, K"),
    ("td,sd->ts", "I, J", "K, J"),  # attention scores: b transposed
    ("ts,td->sd", "I, J", "I, K"),  # a transposed
    ("ij,jk->ki", "I, J", "J, K"),  # result transposed
    ("bij,bjk->bik", "B, I, J", "B, J, K"),
    ("bji,bjk->bik", "B, J, I", "B, J, K"),
    ("bik,bjk->bij", "B, I, K", "B, J, K"),
    ("bji,bkj->bki", "B, J, I", "B, K, J"),  # both transposed, result transposed
    ("bij,bjk->bki", "B, I, J", "B, J, K"),
    ("...ij,...jk->...ik", "B, I, J", "J, K"),  # `...` broadcasts as `@`'s batch axes do
    ("abij,abjk->abik", "B, 1, I, J", "B, 2, J, K"),  # size-1 batch axis broadcasts
]
NOT_MATMUL = [
    ("jib,bjk->bik", "J, I, B", "B, J, K"),  # batch axis not leading: einsum is faster
    ("bij,bj->bi", "B, I, J", "B, J"),  # matrix-vector
    ("bij,bij->bi", "B, I, J", "B, I, J"),  # a product summed along one axis, no matrix product
    ("ij,jk->k", "I, J", "J, K"),  # i summed within one operand
    ("ij,kl->ijkl", "I, J", "K, B"),  # outer product
    ("ij,jk->ik", "I, 1", "J, K"),  # a size-1 contracted axis einsum broadcasts
]
SIZES = {"B": 3, "I": 4, "J": 5, "K": 6}


def _typed_source(spec, sa, sb, dtype="f64"):
    """The result type written out, from numpy.einsum on arrays of the literal sizes."""
    a, b = _arrays(sa, sb, np.float64)
    shape = np.einsum(spec, a, b).shape
    return (f'fn f(a: {dtype}[{_lit(sa)}], b: {dtype}[{_lit(sb)}]) -> {dtype}[{", ".join(map(str, shape))}] {{\n'
            f'    return einsum("{spec}", a, b)\n}}\n')


def _lit(s):
    return ", ".join(str(SIZES.get(d.strip(), d.strip())) for d in s.split(","))


def _arrays(sa, sb, dtype, seed=0):
    rng = np.random.default_rng(seed)
    shape = lambda s: tuple(int(SIZES.get(d.strip(), d.strip())) for d in s.split(","))  # noqa: E731
    return rng.standard_normal(shape(sa)).astype(dtype), rng.standard_normal(shape(sb)).astype(dtype)


def _body(text):
    return [line for line in text.splitlines() if "# f.tl:2" in line]


@pytest.mark.parametrize("spec, sa, sb", MATMUL, ids=[c[0] for c in MATMUL])
@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_matrix_product_spec_is_matmul_and_agrees_with_einsum(spec, sa, sb, dtype, tmp_path):
    src = _typed_source(spec, sa, sb, dtype)
    body = _body(compile_source(src, path="f.tl"))
    assert body and all("@" in line and "einsum" not in line for line in body), body
    m = compile_module(src, tmp_path, "f")
    npd = np.float32 if dtype == "f32" else np.float64
    a, b = _arrays(sa, sb, npd)
    got = m.f(a, b)
    want = np.einsum(spec, a.astype(np.float64), b.astype(np.float64))
    assert got.dtype == npd and got.shape == want.shape
    tol = 1e-5 if dtype == "f32" else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("spec, sa, sb", NOT_MATMUL, ids=[c[0] + " " + c[1] for c in NOT_MATMUL])
def test_other_specs_stay_einsum(spec, sa, sb, tmp_path):
    src = _typed_source(spec, sa, sb)
    body = _body(compile_source(src, path="f.tl"))
    assert body and all("einsum" in line and "@" not in line for line in body), body
    a, b = _arrays(sa, sb, np.float64)
    np.testing.assert_allclose(compile_module(src, tmp_path, "f").f(a, b), np.einsum(spec, a, b), rtol=1e-12)


def test_symbolic_sizes_and_gradients_use_matmul(tmp_path):
    """With symbolic sizes (the cached-path helper's case) and in the gradients, where the
    einsum VJP writes transposed variants of the spec."""
    src = ("fn f(q: f64[B, T, D], k: f64[B, S, D], v: f64[B, S, E]) -> f64 {\n"
           '    p = einsum("btd,bsd->bts", q, k)\n'
           '    return sum(einsum("bts,bse->bte", p, v) ** 2)\n}\ngrad f wrt q, k, v\n')
    text = compile_source(src, path="f.tl")
    assert "einsum('" not in text.split("__tapeless_source__")[0].replace("np.einsum('abc,abc->'", ""), text
    m = compile_module(src, tmp_path, "f")
    rng = np.random.default_rng(1)
    q, k, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 6))
    p = np.einsum("btd,bsd->bts", q, k)
    o = np.einsum("bts,bse->bte", p, v)
    want = (2 * np.einsum("bte,bse->bts", o, v) @ k, np.einsum("bts,btd->bsd", 2 * np.einsum("bte,bse->bts", o, v), q),
            np.einsum("bts,bte->bse", p, 2 * o))
    got = m.f_grad(q, k, v)
    assert len(got) == 4  # the value, then the gradients
    np.testing.assert_allclose(got[0], np.sum(o ** 2), rtol=1e-12)
    for g, w in zip(got[1:], want):
        np.testing.assert_allclose(g, w, rtol=1e-12)


@pytest.mark.parametrize("spec, sa, sb", MATMUL[4:9], ids=[c[0] for c in MATMUL[4:9]])
def test_cupy_backend_emits_matmul(spec, sa, sb, tmp_path):
    text = compile_source(_typed_source(spec, sa, sb), backend="cupy", path="f.tl")
    assert all("@" in line for line in _body(text))
    m = import_cupy_module(text, tmp_path, "standin")
    a, b = _arrays(sa, sb, np.float64)
    np.testing.assert_allclose(m.f(a, b), np.einsum(spec, a, b), rtol=1e-12)
