"""Leaves (param, const, dim), constructors (full, eye) and stop_gradient."""
from __future__ import annotations

import numpy as np

from ..core.types import TensorType
from ..core.primitive import PREC_ATOM, PREC_POSTFIX, Expr, Primitive, register


def _leaf_infer(types, attrs):  # pragma: no cover - leaves are made by build.param/const/dim
    raise AssertionError("leaf nodes are not made by apply()")


def _no_inputs(node, ct, needs):
    return []


def _no_tangent(node, ts):
    return None


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


register(Primitive(
    "param", "leaf", _leaf_infer, lambda ctx, a, n: Expr(ctx.name(n), PREC_ATOM), _no_inputs, _no_tangent,
    lambda args, node: None, doc="a function parameter; its type is the declared one",
))
register(Primitive(
    "const", "leaf", _leaf_infer, lambda ctx, a, n: ctx.literal_expr(n), _no_inputs, _no_tangent,
    lambda args, node: np.asarray(_exact(node.attr("value")), dtype=object), doc="a scalar literal",
))
register(Primitive(
    "dim", "leaf", _leaf_infer, lambda ctx, a, n: ctx.dim_expr(n), _no_inputs, _no_tangent,
    lambda args, node: np.asarray(_dim_value(node), dtype=object), doc="the value of a size symbol",
))


def _dim_value(node):
    from ..tools.sympy_check import current_sizes
    from ..core.types import dim_subst

    return int(dim_subst(node.attr("dim"), current_sizes()))


# ---- constructors -------------------------------------------------------------------------------------
def _full_infer(types, attrs):
    return TensorType(attrs["dtype"], tuple(attrs["shape"]), bool(attrs.get("weak")))


def _full_emit(ctx, args, node):
    value = node.attr("value")
    dt = ctx.dtype(node.dtype)
    shape = ctx.shape(node.shape)
    if value == 0 and not np.signbit(value):
        return Expr(f"{ctx.xp}.zeros({shape}, dtype={dt})", PREC_POSTFIX)
    if value == 1:
        return Expr(f"{ctx.xp}.ones({shape}, dtype={dt})", PREC_POSTFIX)
    return Expr(f"{ctx.xp}.full({shape}, {ctx.literal(value)}, dtype={dt})", PREC_POSTFIX)


def _full_sympy(args, node):
    from .shape import _concrete

    return np.full(_concrete(node.shape), _exact(node.attr("value")), dtype=object)


register(Primitive(
    "full", "constructor", _full_infer, _full_emit, _no_inputs, _no_tangent, _full_sympy,
    doc="zeros/ones/full/zeros_like/ones_like; weak (takes the dtype it meets) without dtype=",
))


def _eye_infer(types, attrs):
    return TensorType(attrs["dtype"], (attrs["n"], attrs["m"]), bool(attrs.get("weak")))


def _eye_emit(ctx, args, node):
    n, m = node.shape
    size = ctx.dim(n) if n == m else f"{ctx.dim(n)}, {ctx.dim(m)}"
    return Expr(f"{ctx.xp}.eye({size}, dtype={ctx.dtype(node.dtype)})", PREC_POSTFIX)


def _eye_sympy(args, node):
    from .shape import _concrete

    n, m = _concrete(node.shape)
    return np.eye(n, m, dtype=int).astype(object)


register(Primitive("eye", "constructor", _eye_infer, _eye_emit, _no_inputs, _no_tangent, _eye_sympy))


# ---- gradient control ---------------------------------------------------------------------------------
register(Primitive(
    "stop_gradient", "misc", lambda types, attrs: types[0], lambda ctx, a, n: a[0],
    lambda node, ct, needs: [None], lambda node, ts: None, lambda args, node: args[0],
    doc="the value of x, a constant to every derivative (detach / no_grad)",
    examples=((("f64[3]",), {}, {}),),
    view=True,
))
