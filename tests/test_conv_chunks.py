"""Convolution by chunks of images (primitives/conv.py): the result, the gradients and the
Hessian-vector product do not depend on how many images a chunk holds, a last chunk shorter
than the others included; and the column matrix of the whole batch is never made. In a fused
loop (Loop.images) a block of images is the chunk: its columns are copied once for the forward
GEMM and the gradient of w, and the activations and their cotangent exist a block at a time."""
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


def _budget(m, budget):
    """Chunks of columns (outside loops) and blocks of fused loops (inside: least one image) of
    about `budget` bytes."""
    m._IM2COL_BYTES = m._BLOCK_BYTES = budget


def _run(m, budget, x, w, c, vx, vw, x1, w1):
    _budget(m, budget)
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
    assert m._BLOCK_BYTES == default  # (restored below as one)
    whole = _run(m, default, x, w, c, vx, vw, x1, w1)  # these sizes: one chunk of all 5 images
    for budget in (1, 2 * 4 * 3 * 2 * 4 * 6 * 8):  # one image a chunk; two (5 = 2 + 2 + 1)
        for a, b in zip(_run(m, budget, x, w, c, vx, vw, x1, w1), whole):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    _budget(m, default)
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
    _budget(m, 2 * columns // n)
    try:
        expected = m.h_grad(x, w)
        tracemalloc.start()
        got = m.h_grad(x, w)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        _budget(m, default)
    np.testing.assert_array_equal(got[1], expected[1])
    # what remains: the activations and their cotangent (64 * 4 * 64 doubles each) and a chunk
    assert peak < columns / 4, (peak, columns)


LAYER = """
fn layer(x: f32[N, 3, 16, 16], w: f32[8, 3, 5, 5]) -> f32 {
    return mean(relu(conv2d(x, w)))
}
grad layer wrt w
"""


def test_a_layer_gradient_holds_a_block_of_activations(tl):
    """W9's shape of program (benchmarks/workloads/w9_conv.tl): the convolution, relu, mean, the
    mask and the gradient of w run in one fused loop, a block of images at a time, with one copy
    of the block's columns. The peak of the gradient call is then about a block's columns, below
    half the batch's activations (which the convolution made whole before, issue 18: W9 4.19 MiB
    where the hand version's blocks take 2.20)."""
    m = tl(LAYER)
    src = open(m.__file__).read()
    grad = src[src.index("def layer_grad("):src.index("def layer_grad_fwd(")]
    assert "_conv_block(" in grad and "_conv_grad_w_block(" in grad and grad.count("_conv_columns(") == 1
    assert "_conv(" not in grad and "_conv_grad_w(" not in grad
    rng = np.random.default_rng(2)
    n = 64
    x = rng.standard_normal((n, 3, 16, 16)).astype(np.float32)
    w = (0.1 * rng.standard_normal((8, 3, 5, 5))).astype(np.float32)
    activations = n * 8 * 12 * 12 * 4
    per_image = 3 * 25 * 12 * 12 * 4  # one image's columns
    default = m._IM2COL_BYTES
    _budget(m, 2 * per_image)  # blocks of two images
    try:
        tracemalloc.start()
        loss, dw = m.layer_grad(x, w)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        _budget(m, default)
    # a block: its columns (86 KB), its activations and masks (14 KB), w's partial gradients
    assert peak < 1.5 * 2 * per_image and peak < activations / 2, (peak, per_image, activations)
    z = conv2d_reference(x.astype(np.float64), w.astype(np.float64), (1, 1), (0, 0), (1, 1), 1)
    np.testing.assert_allclose(loss, np.maximum(z, 0).mean(), rtol=1e-5)
    windows = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), (5, 5), axis=(2, 3))
    expected = np.einsum("nohw,nchwkl->ockl", (z > 0) / z.size, windows)
    np.testing.assert_allclose(dw, expected, rtol=1e-4, atol=1e-7)
    # and the same values with blocks of every size: one image, two, the default
    for budget in (1, 2 * per_image, default):
        _budget(m, budget)
        got = m.layer_grad(x, w)
        np.testing.assert_allclose(got[1], dw, rtol=1e-5, atol=1e-8)
    _budget(m, default)


TWO = """
fn two(x: f64[N, 4, 9, 9], w1: f64[6, 4, 3, 3], w2: f64[5, 4, 3, 3], c: f64[N, 6, 7, 7]) -> f64 {
    return sum(relu(conv2d(x, w1))) + sum(tanh(conv2d(x, w2)) ** 2) + sum(conv2d(tanh(x), w1) * c)
}
grad two wrt x, w1, w2
"""


def test_convolutions_of_one_input_share_a_block_of_columns(tl):
    """Two convolutions of x and their w gradients multiply one copy of a block's columns; one of
    tanh(x), made in the loop, copies its own (its w gradient, whose cotangent c is an argument,
    stays a call outside). The values are those of the unfused code (-O0)."""
    fused, plain = tl(TWO), tl(TWO, opt_level=0)
    src = open(fused.__file__).read()
    grad = src[src.index("def two_grad("):src.index("def two_grad_fwd(")]
    assert grad.count("_conv_block(") == 3 and grad.count("_conv_grad_w_block(") == 2
    assert grad.count("_conv_columns(") == 2  # x's columns once per loop call, tanh(x)'s per block
    assert "_conv_block(" not in open(plain.__file__).read().split("def two(")[1]
    rng = np.random.default_rng(3)
    n = 7
    args = (rng.standard_normal((n, 4, 9, 9)), rng.standard_normal((6, 4, 3, 3)),
            rng.standard_normal((5, 4, 3, 3)), rng.standard_normal((n, 6, 7, 7)))
    expected = plain.two_grad(*args)
    default = fused._IM2COL_BYTES
    for budget in (1, 3 * 4 * 9 * 49 * 8, default):  # blocks of one image, of three (7 = 3 + 3 + 1)
        _budget(fused, budget)
        for a, b in zip(fused.two_grad(*args), expected):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    _budget(fused, default)
