"""Leaves (param, const, dim), constructors (full, eye) and stop_gradient."""
from __future__ import annotations

import numpy as np

from ..core.primitive import PREC_ATOM, PREC_POSTFIX, Cost, Expr, Helper, Primitive, register
from ..core.types import TensorType
from . import axis_maps as AX
from .rule_shapes import constructor, leaf


def _exact(v):
    """A literal as an exact SymPy number (0.1 as 1/10): a Float would make 1/3 + 0.0 inexact."""
    import sympy as sp

    if isinstance(v, bool):
        return sp.true if v else sp.false
    if isinstance(v, int):
        return sp.Integer(v)
    if v != v:
        return sp.nan
    if v in (float("inf"), float("-inf")):
        return sp.oo if v > 0 else -sp.oo
    return sp.Rational(repr(v)) if "e" not in repr(v) else sp.Rational(v)


register(leaf("param", "leaf", lambda ctx, a, n: Expr(ctx.name(n), PREC_ATOM), lambda ctx, args, node: None,
              doc="a function parameter; its type is the declared one"))
register(leaf("const", "literal", lambda ctx, a, n: ctx.literal_expr(n),
              lambda ctx, args, node: np.asarray(_exact(node.attr("value")), dtype=object), doc="a scalar literal"))
register(leaf("dim", "literal", lambda ctx, a, n: ctx.dim_expr(n),
              lambda ctx, args, node: np.asarray(ctx.dim(node.attr("dim")), dtype=object),
              doc="the value of a size symbol"))


# ---- constructors -------------------------------------------------------------------------------------
def _full_infer(types, attrs):
    return TensorType(attrs["dtype"], tuple(attrs["shape"]), bool(attrs.get("weak")))


FILLED = Helper("filled", '''def _filled(out, value):
    """out, an array nothing reads any more, filled with value (its pages are in memory already)."""
    out.fill(value)
    return out
''')


def _full_emit(ctx, args, node):
    value = node.attr("value")
    if args:  # (out_arg: a dead array of the result's type, codegen/dead_arrays.py)
        return Expr(f"{ctx.helper('filled')}({args[0].text}, {ctx.literal(value)})", PREC_POSTFIX)
    dt = ctx.dtype(node.dtype)
    shape = ctx.shape(node.shape)
    if value == 0 and not np.signbit(value):
        return Expr(f"{ctx.xp}.zeros({shape}, dtype={dt})", PREC_POSTFIX)
    if value == 1:
        return Expr(f"{ctx.xp}.ones({shape}, dtype={dt})", PREC_POSTFIX)
    return Expr(f"{ctx.xp}.full({shape}, {ctx.literal(value)}, dtype={dt})", PREC_POSTFIX)


def _full_sympy(ctx, args, node):
    return np.full(ctx.shape(node.shape), _exact(node.attr("value")), dtype=object)


register(constructor(
    "full", _full_infer, _full_emit, _full_sympy, helpers=(FILLED,), out_arg=lambda node: node.type.rank >= 1,
    doc="zeros/ones/full/zeros_like/ones_like; weak (takes the dtype it meets) without dtype=",
))


def _eye_infer(types, attrs):
    return TensorType(attrs["dtype"], (attrs["n"], attrs["m"]), bool(attrs.get("weak")))


def _eye_emit(ctx, args, node):
    n, m = node.shape
    size = ctx.dim(n) if n == m else f"{ctx.dim(n)}, {ctx.dim(m)}"
    return Expr(f"{ctx.xp}.eye({size}, dtype={ctx.dtype(node.dtype)})", PREC_POSTFIX)


def _eye_sympy(ctx, args, node):
    n, m = ctx.shape(node.shape)
    return np.eye(n, m, dtype=int).astype(object)


register(constructor("eye", _eye_infer, _eye_emit, _eye_sympy))


# ---- gradient control ---------------------------------------------------------------------------------
register(Primitive(
    "stop_gradient", "misc", lambda types, attrs: types[0], lambda ctx, a, n: a[0],
    lambda ctx, node, ct, needs: [None], lambda ctx, node, ts: None, lambda ctx, args, node: args[0],
    doc="the value of x, a constant to every derivative (detach / no_grad)",
    examples=((("f64[3]",), {}, {}),),
    detaches=True, view=True, relabels=True, cost=Cost.FREE, axis_map=AX.identity,
))
