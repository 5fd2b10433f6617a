"""The order of a fused loop's members (fused/lean_order.py): the writer keeps the order that
needs fewer scratch blocks, with the same results; never one that needs more."""
from __future__ import annotations

import inspect
import re
import tracemalloc

import numpy as np

from tapeless.compiler.codegen.fused import writer as writer_module
from util import force_tiny_blocks

HVP = """
fn logistic(X: f32[N, D], t: f32[N], w: f32[D]) -> f32 {
    return sum(softplus(-t * (X @ w)))
}
hvp logistic wrt w
"""


def _scratch(src: str) -> int:
    return src.count("np.empty((min(")


def _hvp_args(n=2048, d=8, seed=7):
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, d)) / np.sqrt(d)).astype(np.float32)
    t = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32)
    w, v = rng.standard_normal(d).astype(np.float32), rng.standard_normal(d).astype(np.float32)
    return X, t, w, v


def test_hvp_loop_makes_the_sigmoid_first_and_needs_three_scratch_blocks(tl):
    """W7's loop: in the plan's order max(u, 0) and log(1 + e) are made while e, 1 + e and the
    mask wait for the sigmoid (5 scratch blocks); the sigmoid first, 3, with the same calls and
    the same results (whole blocks, and tiny blocks on threads)."""
    fused, plain = tl(HVP), tl(HVP, opt_level=0)
    src = inspect.getsource(fused.logistic_hvp)
    assert _scratch(src) == 3, src
    calls = re.findall(r"np\.(\w+)\(", src[src.index("for i in range"):])
    assert calls.index("divide") < calls.index("log"), src  # the quotient before the value's log
    args = _hvp_args(n=53)
    want = plain.logistic_hvp(*args)
    for tiny in (False, True):
        if tiny:
            force_tiny_blocks(fused)
        got = fused.logistic_hvp(*args)
        for g, w_ in zip(got, want):
            np.testing.assert_allclose(g, w_, rtol=2e-5, atol=1e-5)


def test_hvp_peak_memory_is_five_vectors(tl):
    """One block (N = 2048): X @ w and X @ v (whose memory the gradient and Hv take over) and 3
    scratch vectors are alive at the peak; it was 7 vectors (5 scratch)."""
    m = tl(HVP)
    args = _hvp_args()
    m.logistic_hvp(*args)  # (the first call's one-off allocations out of the way)
    vector = args[1].nbytes
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = m.logistic_hvp(*args)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    del result
    assert 5 * vector <= peak < 6 * vector, (peak, vector)


SMOOTH = """
fn smooth(x: f32[N, M], lam: f32) -> f32 {
    dx = x[1:, :] - x[:-1, :]
    return sum(dx * dx) + lam * sum(x)
}
grad smooth wrt x
"""


def test_the_plans_order_stays_when_the_lean_one_writes_more_scratch(tl, monkeypatch):
    """lean_order's model knows neither lent rows nor a product a sum's einsum computes: for
    smooth_grad it proposes the doubling before the sum of squares, which would need a scratch
    block for dx; the plan's order keeps dx in the rows of its gradient, and is written."""
    proposed = []
    real = writer_module.lean_order

    def spy(k, reusable):
        order = real(k, reusable)
        proposed.append(order is not None)
        return order

    monkeypatch.setattr(writer_module, "lean_order", spy)
    m = tl(SMOOTH)
    assert any(proposed)
    src = inspect.getsource(m.smooth_grad)
    assert _scratch(src) == 0, src
    x = np.random.default_rng(3).standard_normal((9, 5)).astype(np.float32)
    value, g = m.smooth_grad(x, np.float32(0.5))
    d = x[1:] - x[:-1]
    want = np.zeros_like(x)
    want[1:] += 2 * d
    want[:-1] -= 2 * d
    np.testing.assert_allclose(value, (d * d).sum() + 0.5 * x.sum(), rtol=1e-5)
    np.testing.assert_allclose(g, want + 0.5, rtol=1e-5, atol=1e-6)
