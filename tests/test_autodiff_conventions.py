"""The conventions of docs/language.md ("Conventions", "Derivatives"): PyTorch's values at kinks and ties, exact zeros on
masked paths (where PyTorch and JAX give NaN), stable derivatives at the extremes, and the
calling conventions of generated derivative functions (seed, out=, residuals)."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

from tapeless.runtime import gradcheck


def grad_of(tl, body: str, param: str = "x: f64[N]", wrt: str = "x"):
    m = tl(f"fn f({param}) -> f64 {{\n    return {body}\n}}\ngrad f wrt {wrt}\n")
    return m


def g(m, *args):
    with np.errstate(all="raise"):  # no warning may escape a generated function
        return m.f_grad(*args)


# ---- masked paths: exactly zero where the branch is not taken --------------------------------
def test_where_sqrt_is_zero_not_nan_where_masked(tl):
    m = grad_of(tl, "sum(where(x > 0, sqrt(x), 0))")
    value, dx = g(m, np.array([-1.0, 0.0, 4.0]))
    assert value == 2.0
    assert np.array_equal(dx, [0.0, 0.0, 0.25])


def test_where_log_of_negative_is_zero(tl):
    m = grad_of(tl, "sum(where(x > 0, log(x), 0) * 3)")
    _, dx = g(m, np.array([-2.0, 0.0, 0.5]))
    assert np.array_equal(dx, [0.0, 0.0, 6.0])


def test_masked_paths_through_a_chain_and_fan_out(tl):
    # the masked value feeds two users; the NaN of sqrt'(-1) must not leak through either
    m = grad_of(tl, "sum(where(x > 0, sqrt(x), 0) + where(x > 1, sqrt(sqrt(x)), 0))")
    _, dx = g(m, np.array([-1.0, 0.0, 0.25, 16.0]))
    assert np.all(np.isfinite(dx))
    assert dx[0] == 0.0 and dx[1] == 0.0
    np.testing.assert_allclose(dx[2:], [1.0, 0.125 + 0.25 * 16 ** -0.75])


def test_relu_clip_maximum_minimum_mask_exactly(tl):
    m = grad_of(tl, "sum(sqrt(relu(x)) + sqrt(clip(x, 0, 9)) + sqrt(maximum(x, 0)) - sqrt(-minimum(x, 0)))")
    _, dx = g(m, np.array([-4.0, 4.0]))
    # at -4: relu, clip and maximum pass nothing (exactly 0, although sqrt' is inf at 0);
    # minimum(x, 0) = -4 passes: d/dx -sqrt(4 - ...) = -(-1) / (2 * 2)
    assert dx[0] == pytest.approx(0.25)
    assert dx[1] == pytest.approx(3 * 0.25)


def test_logsumexp_of_all_minus_inf_has_gradient_zero(tl):
    m = grad_of(tl, "sum(where(x > -inf, logsumexp(x), 0)) + logsumexp(x + 0)")
    value, dx = g(m, np.full(3, -np.inf))
    assert value == -np.inf
    assert np.array_equal(dx, np.zeros(3))


# ---- PyTorch's conventions at kinks and ties ------------------------------------------------------
@pytest.mark.parametrize("body, x, want", [
    ("sum(relu(x))", [0.0, -1.0, 2.0], [0.0, 0.0, 1.0]),            # relu'(0) = 0
    ("sum(abs(x))", [0.0, -1.0, 2.0], [0.0, -1.0, 1.0]),            # abs'(0) = 0
    ("sum(sign(x) * 3)", [0.0, -1.0, 2.0], [0.0, 0.0, 0.0]),        # sign' = 0
    ("sum(clip(x, -1, 1))", [-1.0, 1.0, 1.5], [1.0, 1.0, 0.0]),     # clip passes at the bounds
    ("sum(maximum(x, 0))", [0.0, -1.0, 2.0], [0.5, 0.0, 1.0]),      # ties: half to each side
    ("sum(minimum(x, 1))", [1.0, 0.0, 2.0], [0.5, 1.0, 0.0]),
    ("max(x)", [3.0, 1.0, 3.0], [0.5, 0.0, 0.5]),                   # reduction ties share (amax)
    ("min(x) * 4", [2.0, 2.0, 2.0, 5.0], [4 / 3, 4 / 3, 4 / 3, 0.0]),
    ("prod(x)", [2.0, 0.0, 3.0], [0.0, 6.0, 0.0]),                  # one zero: product of the others
    ("prod(x)", [0.0, 0.0, 3.0], [0.0, 0.0, 0.0]),                  # two zeros: all zero
    ("sum(floor(x) + ceil(x) + round(x) + trunc(x))", [0.0, 0.5, 1.0], [0.0, 0.0, 0.0]),  # 0, at jumps too
    ("sum(x % 2.0 - fmod(x, 2.0) * 3)", [-1.0, 3.0, 2.0], [-2.0, -2.0, -2.0]),  # both d/da = 1
    ("sum(hypot(x, x * 0))", [0.0, 2.0, -3.0], [0.0, 1.0, -1.0]),  # decided: 0 at the origin
    ("sum(arctan2(x, x * x))", [0.0], [0.0]),                        # 0 at the origin (torch.atan2)
])
def test_conventions_at_non_differentiable_points(tl, body, x, want):
    m = grad_of(tl, body)
    _, dx = g(m, np.array(x))
    np.testing.assert_allclose(dx, want)


def test_power_at_zero_to_the_zero_has_pytorchs_derivatives(tl):
    """0 ** 0 = 1 with d/da = 0 and d/db = 0 (torch.pow gives both), in reverse and forward mode,
    not y * x ** (y - 1) = 0 * inf = NaN."""
    m = tl("fn f(x: f64[3], y: f64[3]) -> f64 {\n    return sum(x ** y)\n}\ngrad f wrt x, y\njvp f wrt x, y\n")
    x, y = np.array([0.0, 0.0, 2.0]), np.array([0.0, 1.0, 0.0])
    value, dx, dy = m.f_grad(x, y)
    assert value == 2.0  # 0 ** 0 + 0 ** 1 + 2 ** 0
    np.testing.assert_array_equal(dx, [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(dy, [0.0, 0.0, np.log(2.0)])
    _, t = m.f_jvp(x, y, np.ones(3), np.ones(3))
    assert t == 1.0 + np.log(2.0)


def test_binary_cross_entropy_gradient_is_pytorchs(tl):
    m = tl("fn f(p: f64[N], y: f64[N]) -> f64 { return sum(binary_cross_entropy(p, y)) }\ngrad f wrt p\n")
    p = np.array([0.0, 1.0, 0.3])
    y = np.array([1.0, 0.0, 1.0])
    value, dp = m.f_grad(p, y)
    assert value == pytest.approx(200 + -np.log(0.3))        # logs clamped at -100
    np.testing.assert_allclose(dp, [(0 - 1) / 1e-12, (1 - 0) / 1e-12, (0.3 - 1) / 0.21])


# ---- stability at the extremes ---------------------------------------------------------------------
def test_stable_derivatives_at_the_extremes(tl):
    m = tl("""
fn f(z: f64[N], y: f64[N]) -> f64 {
    return sum(bce_with_logits(z, y)) + sum(softplus(z)) + sum(sigmoid(z)) + sum(tanh(z)) + logsumexp(z)
}
grad f wrt z, y
""")
    z = np.array([-1000.0, -800.0, 0.0, 800.0, 1000.0])
    y = np.array([1.0, 0.0, 0.5, 1.0, 0.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value, dz, dy = m.f_grad(z, y)
    assert np.all(np.isfinite([value])) and np.all(np.isfinite(dz)) and np.all(np.isfinite(dy))
    sig = np.array([0.0, 0.0, 0.5, 1.0, 1.0])
    lse_grad = np.array([0.0, 0.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(dz, (sig - y) + sig + sig * (1 - sig) + (1 - np.tanh(z) ** 2) + lse_grad,
                               atol=1e-12)
    np.testing.assert_allclose(dy, -z)


def test_stable_forms_are_emitted_directly(tl):
    """d bce_with_logits/dz = sigmoid(z) - y, d softplus = sigmoid, d logsumexp = softmax,
    d cross_entropy = softmax - onehot: no exp of large numbers in the backward code."""
    import inspect

    m = tl("""
fn f(z: f32[N, C], k: i64[N], t: f32[N, C]) -> f32 {
    return mean(cross_entropy(z, k)) + mean(bce_with_logits(z, t)) + sum(softplus(z)) + sum(logsumexp(z, axis=1))
}
grad f wrt z
""", opt_level=0)  # the plain one-statement-per-value form (fused loops rewrite it as ufunc calls)
    src = inspect.getsource(m.f_grad_bwd)
    assert "_sigmoid(z)" in src and "- t)" in src           # sigmoid(z) - t
    # the one-hot subtracted by a scatter of -1 at the labels, over softmax's fresh array
    assert ("_sub_label(_softmax(z, axis=1), _checked_labels(k, C, 'f_grad_bwd(): residual `k`'), inplace=True)"
            in src)
    assert src.count("np.exp(") == 1 and "np.exp(z - np.where(" in src     # logsumexp's: shifted


# ---- stop_gradient ---------------------------------------------------------------------------------------
def test_stop_gradient_cuts_the_path(tl):
    m = grad_of(tl, "sum(x * stop_gradient(x))")
    x = np.array([1.0, -2.0, 3.0])
    value, dx = g(m, x)
    assert value == 14.0
    np.testing.assert_array_equal(dx, x)                      # not 2x: detach()


def test_stop_gradient_of_everything_gives_zero_gradient(tl):
    m = grad_of(tl, "sum(stop_gradient(x * x))")
    _, dx = g(m, np.array([1.0, 2.0]))
    np.testing.assert_array_equal(dx, [0.0, 0.0])


def test_integer_values_carry_no_derivative(tl):
    m = tl("fn f(x: f64[N], k: i64[N]) -> f64 { return sum(x * f64(k) + f64(k * k)) }\ngrad f wrt x\n")
    _, dx = m.f_grad(np.array([1.0, 2.0]), np.array([3, 4]))
    np.testing.assert_array_equal(dx, [3.0, 4.0])


# ---- calling conventions: seed, out=, residuals ------------------------------------------------------
LAYER = """
fn layer(x: f32[N, 5], y: f32[N, 3], w: f32[5, 3], b: f32[3]) -> f32 {
    z = x @ w + b
    return mean(bce_with_logits(z, y))
}
grad layer wrt w, b
"""


def _layer_inputs():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((4, 5)).astype(np.float32), (rng.random((4, 3)) > 0.5).astype(np.float32),
            rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32))


def test_fwd_bwd_agree_with_the_combined_function_and_seed_scales(tl):
    m = tl(LAYER)
    args = _layer_inputs()
    loss, dw, db = m.layer_grad(*args)
    value, res = m.layer_grad_fwd(*args)
    assert value == loss
    dw2, db2 = m.layer_grad_bwd(res)
    np.testing.assert_array_equal(dw, dw2)
    np.testing.assert_array_equal(db, db2)
    dw3, db3 = m.layer_grad_bwd(res, seed=2.5)
    np.testing.assert_allclose(dw3, 2.5 * dw, rtol=1e-6)
    assert dw3.dtype == np.float32 and db3.dtype == np.float32   # a Python seed is weak


def test_residuals_are_never_mutated_bwd_twice(tl):
    m = tl(LAYER)
    _, res = m.layer_grad_fwd(*_layer_inputs())
    before = [np.array(r, copy=True) for r in res]
    first = m.layer_grad_bwd(res)
    second = m.layer_grad_bwd(res)                         # retain_graph=True, always
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    for r, b in zip(res, before):
        np.testing.assert_array_equal(r, b)


def test_out_accumulates_in_place_and_returns_the_same_arrays(tl):
    m = tl(LAYER)
    args = _layer_inputs()
    _, dw, db = m.layer_grad(*args)
    gw, gb = np.zeros((5, 3), np.float32), np.zeros(3, np.float32)
    _, rw, rb = m.layer_grad(*args, out=(gw, gb))
    assert rw is gw and rb is gb
    m.layer_grad(*args, out=(gw, gb))                      # .grad accumulation
    np.testing.assert_allclose(gw, 2 * dw, rtol=1e-6)
    gw[...] = 0                                            # zero_grad()
    gb[...] = 0
    _, res = m.layer_grad_fwd(*args)
    rw, rb = m.layer_grad_bwd(res, out=(gw, gb))
    assert rw is gw
    np.testing.assert_allclose(gw, dw, rtol=1e-6)


def test_out_buffers_are_checked(tl):
    m = tl(LAYER)
    args = _layer_inputs()
    with pytest.raises(ValueError, match="out buffer for `w` must be a float32 array of shape"):
        m.layer_grad(*args, out=(np.zeros((5, 3)), np.zeros(3, np.float32)))
    with pytest.raises(ValueError, match=r"layer_grad\(\): out= needs a tuple of 2 arrays, one per wrt name "
                                         r"\(`w`, `b`\); got one array"):
        m.layer_grad(*args, out=np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match=r"out= needs a tuple of 2 arrays, .*; got a list of 3"):
        m.layer_grad(*args, out=[np.zeros((5, 3), np.float32)] * 3)
    with pytest.raises(ValueError, match="residuals"):
        m.layer_grad_bwd((1, 2))


ELEMENTWISE = """
fn f(x: f64[N], y: f64[N]) -> f64 {
    return sum(tanh(x * y) + x * x)
}
grad f wrt x, y
"""


@pytest.mark.parametrize("tiny", [False, True])
def test_out_buffers_of_fused_loops_are_added_into_block_by_block(tl, tiny):
    """A gradient a fused loop computes is added into the caller's buffer a block at a time:
    the same sums as without out=, and no array of the gradient is ever made."""
    import tracemalloc

    from util import force_tiny_blocks

    m = tl(ELEMENTWISE)
    if tiny:
        force_tiny_blocks(m)  # many blocks, on threads
    assert "np.add(out_x[i:j]" in inspect.getsource(m.f_grad)
    rng = np.random.default_rng(1)
    n = 50_000 if tiny else 1_000_000
    x, y = rng.standard_normal(n), rng.standard_normal(n)
    value, dx, dy = m.f_grad(x, y)
    gx, gy = np.full(n, 0.5), np.full(n, -2.0)
    tracemalloc.start()
    try:
        got = m.f_grad(x, y, out=(gx, gy))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got[1] is gx and got[2] is gy and got[0] == value
    np.testing.assert_array_equal(gx, 0.5 + dx)  # the same rounding: one add of the same values
    np.testing.assert_array_equal(gy, -2.0 + dy)
    if not tiny:
        assert peak < n * 8 / 4, peak  # blocks, not an 8 MB gradient (before: two of them)
    m.f_grad(x, y, out=(gx, gx))  # one buffer for both: both added in
    np.testing.assert_array_equal(gx, 0.5 + dx + dx + dy)


def test_out_buffers_overlapping_an_argument_are_refused(tl):
    m = tl(ELEMENTWISE)
    x, y = np.linspace(-1, 1, 7), np.linspace(0, 2, 7)
    keep = x.copy()
    with pytest.raises(ValueError, match="out buffer for `x` overlaps argument `x`"):
        m.f_grad(x, y, out=(x, np.zeros(7)))
    with pytest.raises(ValueError, match="out buffer for `y` overlaps argument `x`"):
        m.f_grad(x, y, out=(np.zeros(7), x[::-1]))
    np.testing.assert_array_equal(x, keep)  # refused before anything was written


def test_fwd_saves_only_what_bwd_needs(tl):
    m = tl(LAYER)
    assert "x: f32[N, 5]" in m.layer_grad_fwd.__doc__     # for dw = x.T @ dz
    _, res = m.layer_grad_fwd(*_layer_inputs())
    assert len(res) == 3                                   # x, z (for the sigmoid) and y; not w, b
    assert not any(r.shape == (5, 3) for r in res)


def test_vjp_cotangents_and_ones_like(tl):
    m = tl("fn sq(inp: f64[5, 5]) -> f64[5, 5] { return (inp + 1) ** 2 }\nvjp sq wrt inp\n")
    inp = np.eye(5)
    out, d = m.sq_vjp(inp, np.ones((5, 5)))              # out.backward(torch.ones_like(inp))
    np.testing.assert_array_equal(d, 2 * (inp + 1))
    buf = np.zeros((5, 5))
    m.sq_vjp(inp, np.ones((5, 5)), out=buf)
    (r,) = m.sq_vjp_bwd(m.sq_vjp_fwd(inp)[1], np.ones((5, 5)), out=buf)
    assert r is buf
    np.testing.assert_array_equal(buf, 4 * (inp + 1))   # accumulated twice


# ---- higher order by composition ---------------------------------------------------------------------
def test_vjp_of_grad_gives_hessian_vector_products(tl):
    m = tl("""
fn energy(w: f64[N], a: f64[N, N]) -> f64 {
    return sum(tanh(a @ w) ** 2) + sum(w ** 4) / 4
}
grad energy wrt w
vjp energy_grad wrt w as energy_hvp
""")
    rng = np.random.default_rng(1)
    w, a, v = rng.standard_normal(4), rng.standard_normal((4, 4)), rng.standard_normal(4)
    *_, hv = m.energy_hvp(w, a, 0.0, v)
    h = 1e-6
    fd = (m.energy_grad(w + h * v, a)[1] - m.energy_grad(w - h * v, a)[1]) / (2 * h)
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-8)
    assert gradcheck(m.energy_hvp, w, a)


def test_third_order_by_composition(tl):
    m = tl("""
fn quartic(x: f64) -> f64 { return x ** 4 }
grad quartic wrt x as d1        # (x^4, 4x^3)
vjp d1 wrt x as d2              # (x^4, 4x^3, c0 4x^3 + c1 12x^2)
vjp d2 wrt x as d3              # ..., d/dx of <cotangents, d2 outputs>
""")
    x = 1.5
    *_, third = m.d3(x, 0.0, 1.0, 0.0, 0.0, 1.0)          # d/dx 12x^2 = 24x
    assert third == pytest.approx(24 * x)
    assert m.__tapeless__["d3"]["params"] == ("x", "ct0", "ct1", "ct0_1", "ct1_1", "ct2")


def test_std_and_var_of_nothing_reduced_have_derivative_zero(tl):
    """std of a scalar (or over axis=[]) is the constant 0: derivative 0, not sqrt'(0) * 0 = NaN
    (found by the long fuzz run, seed 1, input 2776)."""
    m = tl("fn f(x: f32) -> f32 {\n    return std(x) + var(x) * 2\n}\ngrad f wrt x\njvp f wrt x\n")
    value, dx = m.f_grad(np.float32(0.5))
    assert value == 0 and dx == 0
    assert m.f_jvp(np.float32(0.5), np.float32(1.0)) == (0, 0)


def test_std_of_a_constant_slice_has_gradient_zero_as_torch_std(tl):
    """torch.std's gradient where the slice is constant is 0 (recorded: torch 2.13.0,
    torch.std(t, dim=1).sum().backward() on this x gives rows 0 and 2 as below, row 1 zeros);
    sqrt'(0) * 0 would be NaN. A NaN variance (ddof too large) stays NaN."""
    m = tl("fn g(x: f64[3, 4]) -> f64 { return sum(std(x, axis=1, ddof=1)) }\ngrad g wrt x\n"
           "fn h(x: f64[1]) -> f64 { return std(x, ddof=1) }\n")
    x = np.arange(12.0).reshape(3, 4)
    x[1] = 2.0
    _, grad = m.g_grad(x)
    row = np.array([-0.38729833, -0.12909944, 0.12909944, 0.38729833])
    np.testing.assert_allclose(grad, np.stack([row, np.zeros(4), row]), atol=1e-8)
    with np.errstate(all="ignore"):
        assert np.isnan(m.h(np.array([1.0])))
