"""(a @ b)^T over the last two axes is written b^T @ a^T when a transpose cancels (simplify's
`transposed_product`): attention's gradient of k comes out of one product in C order, as the
hand version's `dp^T @ q`, not as a strided view of q^T @ dp. Values equal -O0 on both dtypes."""
from __future__ import annotations

import numpy as np
import pytest

from tapeless.compiler import compile_source
from util import compile_module

ATTENTION = """
fn attention(q: {t}[B, T, D], k: {t}[B, T, D], v: {t}[B, T, D]) -> {t} {{
    p = softmax(q @ transpose(k, [0, 2, 1]), axis=-1)
    return sum((p @ v) ** 2)
}}

fn both(a: {t}[N, M], b: {t}[N, K]) -> {t}[K, M] {{
    return transpose(transpose(a) @ b)
}}

fn neither(a: {t}[M, N], b: {t}[N, K]) -> {t}[K, M] {{
    return transpose(a @ b)
}}

grad attention wrt q, k, v
"""


def _args(dtype):
    rng = np.random.default_rng(5)
    return [rng.standard_normal((2, 5, 3)).astype(dtype) for _ in range(3)]


@pytest.mark.parametrize("t", ["f32", "f64"])
def test_the_product_is_written_transposed(t):
    text = compile_source(ATTENTION.format(t=t), path="a.tl")
    grad = text.split("def attention_grad(", 1)[1].split("\ndef ", 1)[0]
    assert ".transpose(0, 2, 1) @ q" in grad
    assert ") @ t_6).transpose(" not in grad and "q.transpose(0, 2, 1) @" not in grad
    both = text.split("def both(", 1)[1].split("\ndef ", 1)[0]
    assert "b.T @ a" in both and "a.T" not in both
    neither = text.split("def neither(", 1)[1].split("\ndef ", 1)[0]
    assert "(a @ b).T" in neither and "b.T @ a.T" not in neither  # nothing cancels: left as written


@pytest.mark.parametrize("t,dtype,rtol", [("f32", np.float32, 2e-5), ("f64", np.float64, 1e-12)])
def test_values_equal_minus_o0_and_the_gradient_is_c_ordered(tmp_path, t, dtype, rtol):
    src = ATTENTION.format(t=t)
    got = compile_module(src, tmp_path).attention_grad(*_args(dtype))
    ref = compile_module(src, tmp_path, opt_level=0).attention_grad(*_args(dtype))
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
    assert got[2].flags.c_contiguous  # d_k
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((4, 3)).astype(dtype), rng.standard_normal((4, 2)).astype(dtype)
    m = compile_module(src, tmp_path)
    np.testing.assert_allclose(m.both(a, b), (a.T @ b).T, rtol=rtol)
    np.testing.assert_allclose(m.neither(a.T.copy(), b), (a.T @ b).T, rtol=rtol)
