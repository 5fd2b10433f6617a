"""tapeless.runtime.jax_function: a generated grad/vjp function as a JAX function with a custom
VJP, checked against the same models written in jax.numpy (under jit, grad, vjp, vmap), and its
refusals: wrong kind, wrong shapes, f64 without x64, an argument outside `wrt`, second order."""
from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="jax is an optional extra (pip install 'tapeless[jax]')")
jnp = jax.numpy

from tapeless.runtime import jax_function  # noqa: E402
from util import compile_module  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

SMALL = """
fn two(a: f32[N, 3], s: f32) -> (f32[N, 3], f32) {
    return a * s, sum(a) * s
}
vjp two wrt a, s

fn top(x: f32[N]) -> (f32, i64) {
    return sum(x * x), argmax(x)
}
vjp top wrt x

fn m(x: f32[N]) -> f32 {
    return mean(x)
}
grad m wrt x
jvp m wrt x

fn ce(logits: f32[N, C], labels: i64[N]) -> f32 {
    return mean(cross_entropy(logits, labels))
}
grad ce wrt logits

fn layer(x: f32[N, 4], y: f32[N, 3], w: f32[4, 3], b: f32[3]) -> f32 {
    z = x @ w + b
    return mean(bce_with_logits(z, y))
}
grad layer wrt w, b
vjp layer_grad wrt w, b

fn cube(x: f64[N]) -> f64 {
    return sum(x ** 3)
}
grad cube wrt x
"""


def bce_layer(x, y, w, b):
    """The model of examples/layer.tl in jax.numpy."""
    z = x @ w + b
    return jnp.mean(jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z))))


@pytest.fixture(scope="module")
def layer_module(tmp_path_factory):
    return compile_module((EXAMPLES / "layer.tl").read_text(), tmp_path_factory.mktemp("jax"), "layer",
                          path="examples/layer.tl")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return compile_module(SMALL, tmp_path_factory.mktemp("jax"), "small")


def layer_data(seed=0, n=16):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 784), dtype=np.float32)
    y = (rng.random((n, 10)) > 0.5).astype(np.float32)
    w = (0.05 * rng.standard_normal((784, 10))).astype(np.float32)
    b = (0.1 * rng.standard_normal(10)).astype(np.float32)
    return x, y, w, b


def close(a, b, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


def test_layer_value_and_gradient_under_jit_match_jax_numpy(layer_module):
    f = jax_function(layer_module.layer_grad)
    x, y, w, b = layer_data()
    assert f.__name__ == "layer"
    close(f(x, y, w, b), bce_layer(x, y, w, b))
    grads = jax.jit(jax.grad(f, argnums=(2, 3)))(x, y, w, b)
    expected = jax.jit(jax.grad(bce_layer, argnums=(2, 3)))(x, y, w, b)
    for g, e in zip(grads, expected):
        assert g.dtype == jnp.float32 and g.shape == e.shape
        close(g, e)
    # the gradients are layer_grad_bwd's: the same as the generated function's own
    _, dw, db = layer_module.layer_grad(x, y, w, b)
    close(grads[0], dw, rtol=0, atol=0)
    close(grads[1], db, rtol=0, atol=0)


def test_jitted_gradient_descent_follows_the_jax_numpy_model(layer_module):
    f = jax_function(layer_module.layer_grad)
    x, y, w, b = layer_data(seed=1)

    def step_of(loss):
        @jax.jit
        def step(params):
            value, grads = jax.value_and_grad(lambda p: loss(x, y, *p))(params)
            return value, tuple(p - 0.5 * g for p, g in zip(params, grads))
        return step

    ours, theirs = step_of(f), step_of(bce_layer)
    p, q = (jnp.asarray(w), jnp.asarray(b)), (jnp.asarray(w), jnp.asarray(b))
    losses = []
    for _ in range(4):
        loss_p, p = ours(p)
        loss_q, q = theirs(q)
        close(loss_p, loss_q)
        losses.append(float(loss_p))
    assert losses[-1] < losses[0]  # it trains
    for a, e in zip(p, q):
        close(a, e, rtol=1e-4, atol=1e-6)


def test_value_and_grad_eager_equals_jit(small):
    f = jax_function(small.layer_grad)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((5, 4), dtype=np.float32), (rng.random((5, 3)) > 0.5).astype(np.float32)
    w, b = rng.standard_normal((4, 3), dtype=np.float32), rng.standard_normal(3, dtype=np.float32)
    eager = jax.value_and_grad(f, argnums=(2, 3))(x, y, w, b)
    jitted = jax.jit(jax.value_and_grad(f, argnums=(2, 3)))(x, y, w, b)
    close(eager[0], jitted[0], rtol=0, atol=0)
    for a, e in zip(eager[1], jitted[1]):
        close(a, e, rtol=0, atol=0)
    close(eager[0], bce_layer(x, y, w, b))


def test_vjp_of_a_two_output_function_matches_jax_numpy(small):
    two = jax_function(small.two_vjp)
    rng = np.random.default_rng(3)
    a, s = rng.standard_normal((4, 3), dtype=np.float32), np.float32(1.5)
    cts = (rng.standard_normal((4, 3), dtype=np.float32), np.float32(0.7))
    outs, back = jax.vjp(two, a, s)
    ref_outs, ref_back = jax.vjp(lambda a, s: (a * s, jnp.sum(a) * s), a, s)
    for o, r in zip(outs, ref_outs):
        close(o, r)
    for g, r in zip(back(cts), ref_back(cts)):
        close(g, r)
    # one output unused: its cotangent is a symbolic zero, instantiated for two_vjp_bwd
    g = jax.jit(jax.grad(lambda a, s: two(a, s)[1], argnums=(0, 1)))(a, s)
    close(g[0], np.full((4, 3), 1.5, np.float32))
    close(g[1], a.sum())


def test_an_integer_output_has_a_float0_cotangent(small):
    top = jax_function(small.top_vjp)
    x = np.array([1.0, 5.0, -2.0], np.float32)
    (total, where), back = jax.vjp(top, x)
    assert int(where) == 1 and where.dtype == jnp.int32  # i64 as JAX holds it while x64 is off
    grad, = back((np.float32(3.0), np.zeros((), jax.dtypes.float0)))
    close(grad, 6 * x)
    close(jax.jit(jax.grad(lambda x: top(x)[0]))(x), 2 * x)


def test_size_residuals_and_integer_labels(small):
    # m_grad_bwd needs N alone (a `size` residual): static at trace time, never a JAX value
    m = jax_function(small.m_grad)
    close(jax.jit(jax.grad(m))(np.ones(7, np.float32)), np.full(7, 1 / 7, np.float32))
    # i64 labels travel as int32 while x64 is off, and reach ce_grad_bwd as i64 again
    ce = jax_function(small.ce_grad)
    rng = np.random.default_rng(4)
    logits, labels = rng.standard_normal((5, 4), dtype=np.float32), np.array([0, 3, 1, 2, 2])
    value, grad = jax.jit(jax.value_and_grad(ce))(logits, labels)
    def ref_ce(z):
        return jnp.mean(jax.nn.logsumexp(z, axis=1) - z[jnp.arange(5), labels])

    ref = jax.jit(jax.value_and_grad(ref_ce))(logits)
    close(value, ref[0])
    close(grad, ref[1])


def test_vmap_runs_once_per_parameter_set_like_a_loop(small):
    f = jax_function(small.layer_grad)
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((6, 4), dtype=np.float32), (rng.random((6, 3)) > 0.5).astype(np.float32)
    ws, bs = rng.standard_normal((3, 4, 3), dtype=np.float32), rng.standard_normal((3, 3), dtype=np.float32)
    values = jax.vmap(f, in_axes=(None, None, 0, 0))(x, y, ws, bs)
    grads = jax.jit(jax.vmap(jax.grad(f, argnums=(2, 3)), in_axes=(None, None, 0, 0)))(x, y, ws, bs)
    for k in range(3):
        value, dw, db = small.layer_grad(x, y, ws[k], bs[k])
        close(values[k], value, rtol=0, atol=0)
        close(grads[0][k], dw, rtol=0, atol=0)
        close(grads[1][k], db, rtol=0, atol=0)


def test_second_derivatives_through_vjp_of_the_grad(small):
    """jax.grad of jax.grad is refused (the generated backward pass is opaque to JAX), pointing
    at `vjp F_grad`; wrapping that directive gives the Hessian."""
    f = jax_function(small.layer_grad)
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((5, 4), dtype=np.float32), (rng.random((5, 3)) > 0.5).astype(np.float32)
    w, b = rng.standard_normal((4, 3), dtype=np.float32), rng.standard_normal(3, dtype=np.float32)
    with pytest.raises(TypeError, match=r"cannot differentiate layer_grad's generated derivative.*vjp layer_grad wrt"):
        jax.grad(lambda w: jnp.sum(jax.grad(f, argnums=2)(x, y, w, b)))(w)
    grad_fn = jax_function(small.layer_grad_vjp)  # layer_grad's outputs (value, d_w, d_b), differentiable
    v = rng.standard_normal((4, 3), dtype=np.float32)
    hv, = jax.vjp(lambda w: grad_fn(x, y, w, b)[1], w)[1](v)  # the Hessian (symmetric) times v
    ref = jax.jit(lambda v: jax.jvp(lambda w: jax.grad(bce_layer, argnums=2)(x, y, w, b), (w,), (v,))[1])(v)
    close(hv, ref, rtol=1e-4, atol=1e-6)


def test_differentiating_an_argument_outside_wrt_is_an_error(small):
    f = jax_function(small.layer_grad)
    x, y = np.ones((2, 4), np.float32), np.zeros((2, 3), np.float32)
    w, b = np.ones((4, 3), np.float32), np.zeros(3, np.float32)
    with pytest.raises(TypeError, match=r"argument `x`, but layer_grad gives gradients with respect to w, b only"):
        jax.grad(f, argnums=0)(x, y, w, b)
    # with x held constant the same call is fine
    g = jax.grad(lambda x, w: f(jax.lax.stop_gradient(x), y, w, b), argnums=1)(x, w)
    close(g, small.layer_grad(x, y, w, b)[1], rtol=0, atol=0)


def test_wrong_shapes_are_reported_at_trace_time_naming_the_argument(small):
    f = jax_function(small.layer_grad)
    x, y = np.ones((2, 4), np.float32), np.zeros((2, 3), np.float32)
    w, b = np.ones((4, 3), np.float32), np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"jax_function\(layer_grad\): argument 'w' should have shape \[4, 3\]"):
        jax.jit(f)(x, y, w[:2], b)
    with pytest.raises(ValueError, match=r"argument 'y' has N = 5, but an earlier argument has N = 2"):
        f(x, np.zeros((5, 3), np.float32), w, b)
    with pytest.raises(ValueError, match=r"argument 'b' should have rank 1"):
        f(x, y, w, 0.0)
    with pytest.raises(TypeError, match=r"argument `labels` must be i64\[N\]: cannot convert float32 to int32"):
        jax_function(small.ce_grad)(np.ones((2, 3), np.float32), np.zeros(2, np.float32))
    with pytest.raises(TypeError, match=r"layer\(\) \(jax_function\(layer_grad\)\): missing a required argument: 'b'"):
        f(x, y, w)


def test_f64_needs_jax_x64_mode(small):
    cube = jax_function(small.cube_grad)
    x = np.array([1.0, 2.0, -0.5])
    with pytest.raises(TypeError, match=r"argument `x` is f64, but JAX's x64 mode is off"):
        cube(x)
    with jax.enable_x64(True):
        value, grad = jax.jit(jax.value_and_grad(cube))(jnp.asarray(x))
        assert grad.dtype == jnp.float64
        close(value, np.sum(x ** 3), rtol=1e-15)
        close(grad, 3 * x ** 2, rtol=1e-15)


def test_what_jax_function_refuses(small, layer_module):
    for fn, what in [(small.layer, r"layer is a plain function \(add `grad layer wrt"),
                     (small.layer_grad_fwd, r"layer_grad_fwd is the fwd half of `grad layer` \(pass the whole "
                                            r"function, m.layer_grad\)"),
                     (small.layer_grad_bwd, r"layer_grad_bwd is the bwd half of `grad layer`"),
                     (small.m_jvp, r"m_jvp is made by a `jvp` directive \(accepted: `grad`, `vjp`\)")]:
        with pytest.raises(TypeError, match=what + r".*jax_function takes the whole function of a `grad` or `vjp`"):
            jax_function(fn)
    for fn in (np.sum, lambda x: x):
        with pytest.raises(TypeError, match="is not a function of a tapeless-generated module"):
            jax_function(fn)
    # a CuPy-backend module (stood in for: cupy need not be installed): its functions take CuPy arrays
    namespace = {"cp": types.ModuleType("cupy"), "__tapeless__": layer_module.__tapeless__}
    exec("def layer_grad(x, y, w, b):\n    pass\n", namespace)
    with pytest.raises(TypeError, match="cupy backend.*backend='numpy'"):
        jax_function(namespace["layer_grad"])
