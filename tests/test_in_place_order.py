"""An operation that writes over its input (softmax, sub_label, index_grads_onto: Loop.into) may
do so only when nothing reads that input later, and "later" is where the reading expression is
*evaluated*: a one-use expression is written inside its reader's statement (inlined) or into the
return statement, after the nodes placed between. Regression: at -O0,
`cross_entropy(z, k) + softmax(z) * w` had its softmax written over by sub_label before the
inlined `t * (w - ...)` read it (gradient off by up to 6.6)."""
from __future__ import annotations

import numpy as np
import pytest

from util import compile_module

SOURCE = """fn f(z: f32[N, C], k: i64[N], w: f32[N, C]) -> f32 {
    return sum(cross_entropy(z, k)) + sum(softmax(z, 1) * w)
}
grad f wrt z
"""


def _reference(z, k, w):
    z = z.astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    w = w.astype(np.float64)
    return p - (k[:, None] == np.arange(z.shape[1])) + p * (w - (p * w).sum(1, keepdims=True))


@pytest.mark.parametrize("opt", [0, 1, 2])
@pytest.mark.parametrize("n", [7, 2000])  # small (no fused loop) and large enough for one
def test_a_value_read_by_an_inlined_expression_is_not_written_over(tmp_path, opt, n):
    m = compile_module(SOURCE, tmp_path, opt_level=opt)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((n, 50)).astype(np.float32)
    k = rng.integers(0, 50, n)
    w = rng.standard_normal((n, 50)).astype(np.float32)
    _, d_z = m.f_grad(z, k, w)
    np.testing.assert_allclose(d_z, _reference(z, k, w), rtol=1e-5, atol=1e-6)
