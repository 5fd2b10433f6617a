"""Reductions over a set of axes: sum, prod, max, min, logsumexp.

Attributes: `axes` (sorted tuple of non-negative axes, never empty) and
`keepdims`. mean, var and std are expansions (builtin_functions.py). Every VJP first
broadcasts the cotangent back over the reduced axes (algebra.expand_reduced).
"""
from __future__ import annotations

import numpy as np

from ..core.primitive import PREC_POSTFIX, Cost, Expr, Helper, Loop, Primitive, Special, register
from ..core.types import DType, TensorType, dim_prod
from . import algebra as B
from . import axis_maps as AX
from .common import Combine, axis_kw, need_float
from .rule_shapes import linear


def _sympy():
    import sympy

    return sympy


def _reduced_shape(t: TensorType, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(t.shape))
    return tuple(d for i, d in enumerate(t.shape) if i not in axes)


def _infer(dtype_rule):
    def infer(types, attrs):
        t = types[0]
        return TensorType(dtype_rule(t), _reduced_shape(t, attrs["axes"], attrs.get("keepdims", False)), t.weak)

    return infer


def _sum_dtype(t):
    return t.dtype if t.dtype.is_float else DType.I64


def _emit(fn):
    def emit(ctx, args, node):
        dtype = f", dtype={ctx.dtype(node.dtype)}" if node.dtype != node.inputs[0].dtype else ""
        if _short_last_axis(ctx, node):
            x, rank = args[0].at(PREC_POSTFIX), node.inputs[0].type.rank
            moved = f"{x}.T" if rank == 2 else f"{x}.transpose({', '.join(map(str, [rank - 1, *range(rank - 1)]))})"
            kept = "[..., None]" if node.attr("keepdims") else ""
            return Expr(f"{ctx.xp}.{fn}({moved}.copy(), axis=0{dtype}){kept}", PREC_POSTFIX)
        kw = axis_kw(ctx, node)
        kw = ", ".join(p for p in (kw, dtype[2:]) if p)
        return Expr(f"{ctx.xp}.{fn}({args[0].text}{', ' + kw if kw else ''})", PREC_POSTFIX)

    return emit


def _short_last_axis(ctx, node) -> bool:
    """A reduction over only a short last axis (cross_entropy's 10 classes), done across a
    transposed copy: NumPy reduces a contiguous 10-element axis row by row, 3-4x slower than
    it copies 512x10 values and reduces them down the columns (measured: max 29 -> 7 us)."""
    x = node.inputs[0].type
    if x.rank < 2 or node.attr("axes") != (x.rank - 1,):
        return False
    if node.op.name == "sum" and x.dtype == DType.F16:
        return False  # NumPy sums a contiguous float16 axis in float32 and rounds once; down rows, every add rounds
    last, lead = x.shape[-1], dim_prod(x.shape[:-1])
    return (isinstance(last, int) and 2 <= last <= ctx.backend.caps.short_last_axis
            and (not isinstance(lead, int) or lead >= 64))


def _keep(node, value):
    """A reduction result (or its cotangent) with the reduced axes kept as size 1."""
    x = node.inputs[0]
    if node.attr("keepdims"):
        return value
    return B.reshape(value, _reduced_shape(x.type, node.attr("axes"), True))


def _spread(node, ct):
    x = node.inputs[0]
    return B.expand_reduced(ct, x.type, node.attr("axes"), node.attr("keepdims", False))


def _reduce_sympy(fn):
    """Apply fn(list of SymPy scalars) over the reduced axes of an object array."""

    def meaning(ctx, args, node):
        x = np.asarray(args[0], dtype=object)
        axes = node.attr("axes")
        rest = [i for i in range(x.ndim) if i not in axes]
        moved = np.transpose(x, rest + list(axes))
        lead = moved.shape[: len(rest)]
        flat = moved.reshape(lead + (-1,))
        out = np.empty(lead, dtype=object)
        for idx in np.ndindex(lead):
            out[idx] = fn(list(flat[idx]))
        if node.attr("keepdims"):
            out = np.expand_dims(out, tuple(axes))
        return out

    return meaning


# ---- sum ---------------------------------------------------------------------------------------
def _sum_vjp(ctx, node, ct, needs):
    return [_spread(node, ct)]


register(linear(
    "sum", "reduce", _infer(_sum_dtype), _emit("sum"), _sum_vjp,
    _reduce_sympy(lambda xs: _sympy().Add(*xs)), doc="integers and bools sum to i64 (NumPy)",
    loop=Loop(reducer="add", combine=Combine.SUM), axis_map=AX.reduced,
    examples=((("f64[2, 3]",), {"axes": (1,), "keepdims": False}, {}),
              (("f64[2, 3, 2]",), {"axes": (0, 2), "keepdims": True}, {})),
))


# ---- prod --------------------------------------------------------------------------------------
def _prod_others(node):
    """d prod / d x_i = product of the other entries, also where entries are zero.

    No zero in the slice: prod / x. One zero: the product of the non-zero entries at
    the zero, 0 elsewhere. Two or more: 0 everywhere (as PyTorch's prod_backward).
    """
    x = node.inputs[0]
    axes = node.attr("axes")
    one, zero = B.like_const(1, x), B.like_const(0, x)
    is_zero = B.apply("eq", x, zero)
    nonzero = B.where(is_zero, one, x)
    p = B.broadcast_to(B.apply("prod", nonzero, axes=axes, keepdims=True), x.shape)
    zeros = B.broadcast_to(B.apply("sum", B.cast(is_zero, DType.I64), axes=axes, keepdims=True), x.shape)
    i64 = lambda v: B.const(v, DType.I64)  # noqa: E731
    none = B.apply("eq", zeros, i64(0))
    single = B.apply("logical_and", B.apply("eq", zeros, i64(1)), is_zero)
    return B.where(none, B.div(p, nonzero), B.where(single, p, zero))


def _prod_vjp(ctx, node, ct, needs):
    return [B.mul(_spread(node, ct), _prod_others(node))]


def _prod_jvp(ctx, node, ts):
    axes, keep = node.attr("axes"), node.attr("keepdims", False)
    return B.apply("sum", B.mul(ts[0], _prod_others(node)), axes=axes, keepdims=keep)


register(Primitive(
    "prod", "reduce", _infer(_sum_dtype), _emit("prod"), _prod_vjp, _prod_jvp,
    _reduce_sympy(lambda xs: _sympy().Mul(*xs)), doc="exact gradient also with zeros in the slice",
    loop=Loop(reducer="multiply"), axis_map=AX.reduced,
    special=(Special("a zero in a slice", slice_zeros=1), Special("two zeros in a slice", slice_zeros=2)),
    examples=((("f64[2, 3]",), {"axes": (1,), "keepdims": False}, {}),
              (("f64[2, 3, 2]",), {"axes": (0, 2), "keepdims": True}, {})),
))


# ---- max / min: ties share the cotangent equally (torch.amax) ---------------------------------------
_TIED: dict = {}


def _tied(name, pick):
    """The meaning of a max (min) reduction over SymPy scalars: the extreme, and as the
    derivative sympy.diff takes (`fdiff`) the convention: 1/count to each entry equal to it, 0
    to the others. (SymPy's own Max differentiates to Heaviside products, 1/4 to each of three
    tied entries; and building Max of many symbols is quadratic.)"""
    if name not in _TIED:
        sp = _sympy()

        def fdiff(self, argindex=1):
            hits = [sp.Piecewise((1, sp.Eq(x, self)), (0, True)) for x in self.args]
            return sp.Piecewise((1 / sp.Add(*hits), sp.Eq(self.args[argindex - 1], self)), (0, True))

        def numeric(*xs):
            return pick(xs)

        def eval_(cls, *xs):
            if all(x.is_number and x.is_real for x in xs):
                return pick(xs)
            return xs[0] if len(xs) == 1 else None

        _TIED[name] = type(f"tied_{name}", (sp.Function,), {
            "fdiff": fdiff, "numeric": staticmethod(numeric), "eval": classmethod(eval_)})
    return _TIED[name]


def _extreme(name, pick, reducer, combine):
    def winners(node):
        x = node.inputs[0]
        hit = B.apply("eq", x, B.broadcast_to(_keep(node, node), x.shape))
        count = B.apply("sum", B.cast(hit, x.dtype), axes=node.attr("axes"), keepdims=True)
        return hit, B.broadcast_to(count, x.shape)

    def vjp(ctx, node, ct, needs):
        hit, count = winners(node)
        return [B.masked(hit, B.div(_spread(node, ct), count))]

    def jvp(ctx, node, ts):
        hit, count = winners(node)
        share = B.masked(hit, B.div(ts[0], count))
        return B.apply("sum", share, axes=node.attr("axes"), keepdims=node.attr("keepdims", False))

    def infer(types, attrs):
        t = types[0]
        return TensorType(t.dtype, _reduced_shape(t, attrs["axes"], attrs.get("keepdims", False)), t.weak)

    register(Primitive(name, "reduce", infer, _emit(name), vjp, jvp,
                       _reduce_sympy(lambda xs: _tied(name, pick)(*xs)),
                       doc="ties share the gradient equally, as torch.amax/amin",
                       special=(Special(f"a tie at the {name}", slice_ties="largest" if pick is max else "smallest"),),
                       loop=Loop(reducer=reducer, combine=combine), axis_map=AX.reduced,
                       examples=((("f64[2, 3]",), {"axes": (1,), "keepdims": False}, {}),
                                 (("f64[2, 3, 2]",), {"axes": (0, 2), "keepdims": True}, {})),))


_extreme("max", max, "maximum", Combine.MAX)
_extreme("min", min, "minimum", Combine.MIN)


# ---- logsumexp ----------------------------------------------------------------------------------------
def _lse_infer(types, attrs):
    t = types[0]
    need_float(t, "`logsumexp`")
    return TensorType(t.dtype, _reduced_shape(t, attrs["axes"], attrs.get("keepdims", False)), t.weak)


def lse_weights(x, lse_kept):
    """softmax weights exp(x - lse), with an all -inf slice giving 0 instead of NaN."""
    neg_inf = B.like_const(-np.inf, x)
    safe = B.where(B.apply("eq", lse_kept, neg_inf), B.like_const(0, x), lse_kept)
    return B.apply("exp", B.sub(x, B.broadcast_to(safe, x.shape)))


def _lse_vjp(ctx, node, ct, needs):
    x = node.inputs[0]
    return [B.mul(_spread(node, ct), lse_weights(x, _keep(node, node)))]


def _lse_jvp(ctx, node, ts):
    x = node.inputs[0]
    w = lse_weights(x, _keep(node, node))
    return B.apply("sum", B.mul(ts[0], w), axes=node.attr("axes"), keepdims=node.attr("keepdims", False))


def _lse_emit(ctx, args, node):
    name = ctx.helper("logsumexp")
    axes = node.attr("axes")
    return Expr(f"{name}({args[0].text}, {tuple(axes)}, {bool(node.attr('keepdims'))})", PREC_POSTFIX)


def _lse_coerce(args, attrs):
    return [B.to_float(args[0])]


LOGSUMEXP = Helper("logsumexp", '''def _logsumexp(x, axis, keepdims):
    """log(sum(exp(x))) shifted by the max; a slice of all -inf gives -inf, not nan."""
    m = xp.max(x, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    with _quiet():
        out = xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True)) + m
    if not keepdims:
        out = xp.squeeze(out, axis=axis)
    return out[()]
''', ("quiet",))

register(Primitive(
    "logsumexp", "reduce", _lse_infer, _lse_emit, _lse_vjp, _lse_jvp,
    _reduce_sympy(lambda xs: _sympy().log(_sympy().Add(*[_sympy().exp(v) for v in xs]))),
    coerce=_lse_coerce,
    doc="stable (max-shifted); all -inf gives -inf with gradient 0; gradient = softmax",
    examples=((("f64[2, 3]",), {"axes": (1,), "keepdims": False}, {}),
              (("f64[2, 3, 2]",), {"axes": (0, 2), "keepdims": True}, {})),
    cost=Cost.COSTLY, quiet=True, helpers=(LOGSUMEXP,), axis_map=AX.reduced,
))
