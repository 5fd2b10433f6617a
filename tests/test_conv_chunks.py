"""Convolution by chunks of images (primitives/conv.py): the result, the gradients and the
Hessian-vector product do not depend on how many images a chunk holds, a last chunk shorter
than the others included; and the column matrix of the whole batch is never made."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from catalogue import conv2d_reference

SOURCE = """
fn f(x: f64[N, 4, 7, 6], w: f64[6, 2, 3, 2], c: f64[N, 6, 4, 6]) -> f64 {
    return sum(c * tanh(conv2d(x, w, stride=[2, 1], padding=1, dilation=[1, 2], groups=2)))
}
grad f wrt x, w
hvp f wrt x, w

fn g(x: f64[N, 3, 9], w: f64[5, 3, 3]) -> f64 {
    return sum(relu(conv1d(x, w, padding=2)) ** 2)
}
grad g wrt x, w

fn h(x: f64[N, 2, 12, 12], w: f64[4, 2, 5, 5]) -> f64 {
    return sum(sin(conv2d(x, w)))
}
grad h wrt w
"""


@pytest.fixture
def module(tl):
    return tl(SOURCE)


def _run(m, budget, x, w, c, vx, vw, x1, w1):
    m._IM2COL_BYTES = budget
    return [np.asarray(a) for a in (m.f(x, w, c), *m.f_grad(x, w, c)[1:], *m.f_hvp(x, w, c, vx, vw),
                                    *m.g_grad(x1, w1))]


def test_every_chunk_size_computes_the_same(module):
    m = module
    rng = np.random.default_rng(0)
    n = 5
    x, w, c = rng.standard_normal((n, 4, 7, 6)), rng.standard_normal((6, 2, 3, 2)), rng.standard_normal((n, 6, 4, 6))
    vx, vw = rng.standard_normal(x.shape), rng.standard_normal(w.shape)
    x1, w1 = rng.standard_normal((n, 3, 9)), rng.standard_normal((5, 3, 3))
    default = m._IM2COL_BYTES
    whole = _run(m, default, x, w, c, vx, vw, x1, w1)  # these sizes: one chunk of all 5 images
    for budget in (1, 2 * 4 * 3 * 2 * 4 * 6 * 8):  # one image a chunk; two (5 = 2 + 2 + 1)
        for a, b in zip(_run(m, budget, x, w, c, vx, vw, x1, w1), whole):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    m._IM2COL_BYTES = default
    z = conv2d_reference(x, w, (2, 1), (1, 1), (1, 2), 2)
    np.testing.assert_allclose(whole[0], np.sum(c * np.tanh(z)), rtol=1e-12)


def test_the_whole_batch_columns_never_exist(module):
    """x [64, 2, 12, 12] has columns of 64 * 2 * 25 * 64 doubles (1.6 MB, 11x x); with a budget
    of two images' columns, the gradient's peak stays far below that."""
    m = module
    rng = np.random.default_rng(1)
    n = 64
    x, w = rng.standard_normal((n, 2, 12, 12)), rng.standard_normal((4, 2, 5, 5))
    columns = n * 2 * 25 * 64 * 8
    default = m._IM2COL_BYTES
    m._IM2COL_BYTES = 2 * columns // n
    try:
        expected = m.h_grad(x, w)
        tracemalloc.start()
        got = m.h_grad(x, w)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        m._IM2COL_BYTES = default
    np.testing.assert_array_equal(got[1], expected[1])
    # what remains: the activations and their cotangent (64 * 4 * 64 doubles each) and a chunk
    assert peak < columns / 4, (peak, columns)
