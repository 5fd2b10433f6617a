"""The gradient of a value read through several slices (x[1:], x[:-1]) is one zeros array with each
slice's cotangent added into a view of it (primitives/simplification.py, index_grads): never one
padded full-size array per slice and their sum."""
from __future__ import annotations

import inspect
import re
import tracemalloc

import numpy as np
import pytest

from util import compile_module, force_tiny_blocks

SOURCE = """
fn prod(x: f64[n]) -> f64 {
    return sum(x[1:] * x[:-1])
}

fn fd(x: f64[n]) -> f64 {
    return sum((x[1:] - x[:-1]) ** 2)
}

grad prod wrt x
grad fd wrt x
"""

# calls that make a full-size array in a gradient function (a fused loop's 0-d accumulator is not one)
FULL_SIZE = re.compile(r"_index_grads?\(|np\.zeros\((?!\(\))|np\.pad\(|_take_grad\(")


def _body(fn) -> str:
    return inspect.getsource(fn).split('"""')[2]  # (after the docstring)


@pytest.fixture(scope="module")
def mods(tmp_path_factory):
    d = tmp_path_factory.mktemp("slices")
    return {level: compile_module(SOURCE, d, f"slices{level}", opt_level=level) for level in (0, 1)}


def _numeric_grad(f, x, h=1e-6):
    g = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


@pytest.mark.parametrize("name", ["prod", "fd"])
def test_one_full_size_allocation_for_the_gradient(mods, name):
    m = mods[1]
    for fn in (f"{name}_grad", f"{name}_grad_bwd"):
        calls = FULL_SIZE.findall(_body(getattr(m, fn)))
        assert calls == ["_index_grads("], (fn, calls)
    # -O0 keeps the padded arrays (the rewrite is what removed them)
    assert FULL_SIZE.findall(_body(getattr(mods[0], f"{name}_grad"))) == ["_index_grad(", "_index_grad("]


def test_a_negated_slice_cotangent_is_subtracted_not_copied(mods):
    src = _body(mods[1].fd_grad)
    assert ", -1)" in src and "np.negative" not in src


@pytest.mark.parametrize("name", ["prod", "fd"])
def test_values_match_finite_differences_and_O0_exactly(mods, name):
    x = np.random.default_rng(1).standard_normal(9)
    value, g = getattr(mods[1], f"{name}_grad")(x)
    value0, g0 = getattr(mods[0], f"{name}_grad")(x)
    np.testing.assert_allclose(g, _numeric_grad(getattr(mods[1], name), x), rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(g, g0)  # 0 + a + b: the same sums in the same order as pad(a) + pad(b)
    assert value == value0
    (gb,) = getattr(mods[1], f"{name}_grad_bwd")(getattr(mods[1], f"{name}_grad_fwd")(x)[1], seed=2.0)
    np.testing.assert_allclose(gb, 2 * g, rtol=1e-12)


def test_peak_memory_is_one_gradient_array(mods):
    """prod's cotangents are views of x: the gradient is the only full-size array made (before:
    two padded arrays and their sum)."""
    x = np.random.default_rng(2).standard_normal(200_000)
    m = mods[1]
    m.prod_grad(x)  # (warm: helpers, thread pool)
    tracemalloc.start()
    try:
        m.prod_grad(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * x.nbytes, peak / x.nbytes


DATA = """
fn denoise(x: f64[R, C], y: f64[R, C]) -> f64 {
    return sum((x[1:] - x[:-1]) ** 2) + sum((x[:, 1:] - x[:, :-1]) ** 2) + 0.5 * sum((x - y) ** 2)
}

grad denoise wrt x
"""


@pytest.mark.parametrize("tiny", [False, True])
def test_slice_cotangents_go_onto_the_full_size_gradient(tmp_path, tiny):
    """x - y (the data term's gradient) takes the slices' cotangents into views of itself, in
    place: no zeros array, no negated copy, no add pass (W13). The fused loops that make the
    cotangents add each block into the rows of x - y (fused/plan.py, scatters): no full array
    of a cotangent; the loop over x[1:] - x[:-1], whose blocks share a row, on one thread.
    tiny: blocks of a row or two, threads forced where allowed."""
    m = compile_module(DATA, tmp_path, "denoise")
    body = _body(m.denoise_grad)
    assert FULL_SIZE.findall(body) == [] and "np.negative" not in body
    assert "_index_grads_onto(" not in body and body.count("np.empty((R") == 1, body  # the gradient only
    assert re.search(r"\w+\[1:\]\[i:j\] \+= b0", body) and re.search(r"\w+\[:-1\]\[i:j\] -= b0", body)
    assert re.search(r"\w+\[:, 1:\]\[i:j\] \+= b0", body) and "on one thread" in body
    if tiny:
        force_tiny_blocks(m)
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((7, 4)), rng.standard_normal((7, 4))
    xc = x.copy()
    value, g = m.denoise_grad(x, y)
    np.testing.assert_array_equal(x, xc)
    assert value == m.denoise(x, y)
    num = np.empty_like(x)
    for k in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[k] = 1e-6
        num[k] = (m.denoise(x + e, y) - m.denoise(x - e, y)) / 2e-6
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-8)
    m0 = compile_module(DATA, tmp_path, "denoise0", opt_level=0)
    np.testing.assert_allclose(g, m0.denoise_grad(x, y)[1], rtol=1e-14)


def test_cotangents_that_are_views_of_the_argument(tmp_path):
    """sum(x x) + sum(x[1:] x[:-1]): the slices' cotangents (views of x) go onto 2 x; x is
    untouched and the gradient is the closed form."""
    m = compile_module("fn f(x: f64[n]) -> f64 { return sum(x * x) + sum(x[1:] * x[:-1]) }\n"
                       "vjp f wrt x", tmp_path, "shared")
    x = np.random.default_rng(4).standard_normal(7)
    xc = x.copy()
    _, g = m.f_vjp(x, 1.0)
    np.testing.assert_array_equal(x, xc)
    expect = 2 * x
    expect[1:] += x[:-1]
    expect[:-1] += x[1:]
    np.testing.assert_allclose(g, expect, rtol=1e-14)
