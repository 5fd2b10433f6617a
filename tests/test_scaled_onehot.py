"""cross_entropy's gradient scaled by a value constant along the class axis (a mean's 1/N, a
seed, per-row weights): at -O1 the scale joins the row's 1/s and the label scatter subtracts it
(primitives/simplification.py, scaled_softmax_minus_onehot), so the [..., C] values are written
once. Values against -O0 and a float64 reference, with rows of +-inf, NaN and huge logits."""
from __future__ import annotations

import numpy as np
import pytest

from tapeless.compiler.core.ir import graph_scope
from tapeless.compiler.core.primitive import ops
from tapeless.compiler.core.source import SourceFile
from tapeless.compiler.core.types import DType, TensorType
from tapeless.compiler.passes.levels import optimize
from tapeless.compiler.passes.simplify import simplify_node
from tapeless.compiler.pipeline import ir_stage
from tapeless.compiler.primitives import algebra as B
from tapeless.compiler.primitives.nn import sub_label
from util import force_tiny_blocks

MEAN = "fn f(z: f32[N, C], k: i64[N]) -> f32 { return mean(cross_entropy(z, k)) }\ngrad f wrt z\n"
WEIGHTED = ("fn f(z: f32[N, C], k: i64[N], w: f32[N]) -> f32 { return sum(w * cross_entropy(z, k)) }\n"
            "grad f wrt z\n")
HALF_3D = ("fn f(z: f32[B, T, C], k: i64[B, T]) -> f32 { return 0.5 * sum(cross_entropy(z, k)) }\n"
           "grad f wrt z\n")


def _grad_ir(source, level=1):
    module = optimize(ir_stage(SourceFile.from_text("t.tl", source)), level)
    return {fn.name: fn for fn in module.functions}


def _sub_labels(fn):
    seen, stack, out = set(), list(fn.outputs), []
    while stack:
        n = stack.pop()
        if n.id in seen:
            continue
        seen.add(n.id)
        if n.op is ops.sub_label:
            out.append(n)
        stack.extend(n.inputs)
    return out


@pytest.mark.parametrize("source, amount_shape", [(MEAN, ()), (WEIGHTED, ("N", "1")), (HALF_3D, ())])
def test_the_scale_is_subtracted_by_the_scatter_not_multiplied_after_it(source, amount_shape):
    fns = _grad_ir(source)
    for name in ("f_grad", "f_grad_bwd"):
        (s,) = _sub_labels(fns[name])
        assert len(s.inputs) == 3, name
        assert tuple(str(d) for d in s.inputs[2].shape) == amount_shape
        p = s.inputs[0]  # exp(d) * (a / s): one pass over the [..., C] values
        assert p.op is ops.mul and p.inputs[0].op is ops.exp and p.inputs[1].op is ops.div
        assert d_out(fns[name]) is s  # nothing multiplies the [..., C] values after the scatter
    for name in ("f_grad", "f_grad_bwd"):  # -O0 keeps a (softmax - onehot)
        assert all(len(s.inputs) == 2 for s in _sub_labels(_grad_ir(source, 0)[name]))


def d_out(fn):
    return fn.outputs[-1]


def _softmax_parts(z, shifted=True):
    m = B.apply("finite_or_zero", B.apply("max", z, axes=(1,), keepdims=True))
    e = B.apply("exp", B.sub(z, m) if shifted else z)
    return e, B.apply("sum", e, axes=(1,), keepdims=True)


def test_the_rule_needs_the_shifted_form_and_a_scale_constant_along_the_classes():
    """a / s could overflow where a (e / s) does not unless s >= 1 (the max-shifted form); a
    scale varying along the class axis cannot go into the scatter."""
    with graph_scope():
        z = B.param("z", TensorType(DType.F32, (4, 7)), 0)
        k = B.apply("checked_labels", B.param("k", TensorType(DType.I64, (4,)), 1), depth=7)
        a = B.param("a", TensorType(DType.F32, ()), 2)
        row = B.param("r", TensorType(DType.F32, (4, 7)), 3)
        e, s = _softmax_parts(z)
        hit = simplify_node(B.apply("mul", a, sub_label(B.div(e, s), k)))
        assert hit.op is ops.sub_label and hit.inputs[2] is a
        e0, s0 = _softmax_parts(z, shifted=False)  # exp(z) / sum(exp(z)): s may be tiny
        miss = simplify_node(B.apply("mul", a, sub_label(B.div(e0, s0), k)))
        assert miss.op is ops.mul
        miss = simplify_node(B.apply("mul", row, sub_label(B.div(e, s), k)))
        assert miss.op is ops.mul


def _logits(rng, n, c):
    z = rng.standard_normal((n, c)).astype(np.float32) * 3
    z[1, 2] = np.inf  # one +inf: NaN there, 0 elsewhere in the row
    z[2] = -np.inf  # all -inf: NaN
    z[3, ::2] = -np.inf  # some -inf: exactly 0 there
    z[4, 1] = np.nan
    z[5] = np.float32(3e38) * np.sign(rng.standard_normal(c)).astype(np.float32)  # huge, finite
    z[6, 0], z[6, 3] = np.inf, -np.inf
    z[7] = 0  # all equal
    z[8, 5] = 80  # a confident row: softmax - 1 at the label cancels
    return z


def _reference(z, k, scale):
    """scale * (softmax(z) - onehot(k)) in float64, with the compiled forms' shift (max where
    finite, else 0)."""
    z = z.astype(np.float64)
    with np.errstate(all="ignore"):
        m = z.max(-1, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        e = np.exp(z - m)
        p = e / e.sum(-1, keepdims=True)
        hot = k[..., None] == np.arange(z.shape[-1])
        return np.asarray(scale, dtype=np.float64) * (p - hot)


def _close(got, want, ref):
    """Same NaN places as `want`, values within float32 rounding of it and of the float64 reference."""
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-9, equal_nan=True)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-9, equal_nan=True)


@pytest.mark.parametrize("tiny", [False, True])
def test_mean_cross_entropy_gradient_matches_o0_and_float64_with_infinite_rows(tl, tiny):
    rng = np.random.default_rng(0)
    n, c = 12, 9
    z, k = _logits(rng, n, c), rng.integers(0, c, n)
    k[1], k[3] = 2, 0  # the label on the +inf logit; on a -inf one
    o1, o0 = tl(MEAN, opt_level=1), tl(MEAN, opt_level=0)
    if tiny:
        force_tiny_blocks(o1)  # blocks of a row or two, on threads
    ref = _reference(z, k, 1 / n)
    _close(o1.f_grad(z, k)[1], o0.f_grad(z, k)[1], ref)
    res = o1.f_grad_fwd(z, k)[1]
    for seed in (1.0, -2.5, 1e-30, 0.0):
        want = o0.f_grad_bwd(o0.f_grad_fwd(z, k)[1], seed=seed)[0]
        _close(o1.f_grad_bwd(res, seed=seed)[0], want, _reference(z, k, np.float32(seed) / np.float32(n)))
    buf = np.ones((n, c), np.float32)  # out=: added into
    o1.f_grad(z, k, out=buf)
    _close(buf, o0.f_grad(z, k)[1] + 1, ref + 1)


def test_per_row_weights_and_higher_rank_labels_match_o0_and_float64(tl):
    rng = np.random.default_rng(1)
    n, c = 12, 9
    z, k = _logits(rng, n, c), rng.integers(0, c, n)
    w = rng.standard_normal(n).astype(np.float32)
    w[0] = 0
    o1, o0 = tl(WEIGHTED), tl(WEIGHTED, opt_level=0)
    _close(o1.f_grad(z, k, w)[1], o0.f_grad(z, k, w)[1], _reference(z, k, w[:, None]))
    z3, k3 = z.reshape(3, 4, c), k.reshape(3, 4)  # the helper's path: labels of rank 2
    o1, o0 = tl(HALF_3D), tl(HALF_3D, opt_level=0)
    _close(o1.f_grad(z3, k3)[1], o0.f_grad(z3, k3)[1], _reference(z3, k3, 0.5))


def test_the_helper_subtracts_a_scalar_or_per_row_amount(tl):
    m = tl(HALF_3D)
    z = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    k = np.array([[0, 1, 3], [2, 2, 0]])
    hot = k[..., None] == np.arange(4)
    np.testing.assert_array_equal(m._sub_label(z, k, np.float32(0.5)), z - 0.5 * hot)
    amount = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32)
    np.testing.assert_array_equal(m._sub_label(z, k, amount), z - amount[..., None] * hot)
