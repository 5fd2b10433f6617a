"""Scans and order: cumsum and roll (linear), argsort, argmax and argmin (integer results, no
derivative). sort, topk, flip, diff, pad, tile and repeat are expansions over these and the
shape primitives (primitives/builtin_functions.py).

Orders are stable (`kind="stable"`): of tied values the first comes first, so `sort`'s
gradient goes to the tied elements in their order, deterministically, and `argmax` names
the first maximum (NumPy). The SymPy meaning of an order is a function whose `numeric`
sorts the numbers of the check's point (common.sympy_function), so a sort's derivative is
checked through the gather it feeds.
"""
from __future__ import annotations

import numpy as np

from ..core.diagnostics import UserError
from ..core.primitive import PREC_POSTFIX, Expr, Primitive, Special, register
from ..core.types import DType, TensorType
from . import algebra as B
from .common import sympy_function
from .rule_shapes import linear, nondifferentiable


def _obj(a):
    return np.asarray(a, dtype=object)


def _axis_infer(dtype_rule=None):
    def infer(types, attrs):
        t = types[0]
        if t.rank == 0:
            raise UserError(f"needs an array with an axis, got {t}")
        return t.with_(dtype=dtype_rule(t) if dtype_rule else t.dtype)

    return infer


def _along(meaning_of_row):
    """A meaning computed row by row along node's `axis`: meaning_of_row(list) -> list."""

    def meaning(ctx, args, node):
        x = np.moveaxis(_obj(args[0]), node.attr("axis"), -1)
        out = np.empty(x.shape[:-1] + (x.shape[-1],), dtype=object)
        for idx in np.ndindex(x.shape[:-1]):
            out[idx] = meaning_of_row(list(x[idx]))
        return np.moveaxis(out, -1, node.attr("axis"))

    return meaning


# ---- cumsum ---------------------------------------------------------------------------------------
def _cumsum_dtype(t):
    return t.dtype if t.dtype.is_float else DType.I64


def _reversed(x, axis):
    return B.apply("index", x, items=(("s", None, None, 1),) * axis + (("s", None, None, -1),))


def _cumsum_vjp(ctx, node, ct, needs):
    """The transpose of a running sum is the running sum from the end."""
    axis = node.attr("axis")
    return [_reversed(B.apply("cumsum", _reversed(ct, axis), axis=axis), axis)]


def _cumsum_emit(ctx, args, node):
    dtype = f", dtype={ctx.dtype(node.dtype)}" if node.dtype != node.inputs[0].dtype else ""
    return Expr(f"{ctx.xp}.cumsum({args[0].text}, axis={node.attr('axis')}{dtype})", PREC_POSTFIX)


def _running_sum(row):
    out, acc = [], 0
    for v in row:
        acc = acc + v
        out.append(acc)
    return out


register(linear(
    "cumsum", "scan", _axis_infer(_cumsum_dtype), _cumsum_emit, _cumsum_vjp, _along(_running_sum),
    doc="running sum along an axis; integers and bools sum to i64 (NumPy); vjp: the running sum "
        "from the end",
    examples=((("f64[2, 3]",), {"axis": 1}, {}), (("f64[4]",), {"axis": 0}, {})),
))


# ---- cumprod --------------------------------------------------------------------------------------
def _zero_masks(x, axis):
    """(before, at): along the axis, the entries before the first zero, and the first zero."""
    zero = B.apply("eq", x, B.like_const(0, x))
    seen = B.apply("cumsum", B.cast(zero, DType.I64), axis=axis)  # zeros so far, this one included
    before = B.apply("eq", seen, B.like_const(0, seen))
    at = B.apply("logical_and", zero, B.apply("eq", seen, B.like_const(1, seen)))
    return before, at


def _cumprod_vjp(ctx, node, ct, needs):
    """d/dx_i = sum over k >= i of g_k prod_{j <= k, j != i} x_j, exact with zeros: before the
    first zero it is revcumsum(g y)_i / x_i (y_k = 0 past a zero adds nothing); at the first zero
    it is revcumsum(g y')_i with y' the products with that zero read as 1; after it, 0 (every
    product holds the first zero)."""
    x, axis = node.inputs[0], node.attr("axis")
    before, at = _zero_masks(x, axis)
    one, zero = B.like_const(1, x), B.like_const(0, x)
    y_without = B.apply("cumprod", B.where(at, one, x), axis=axis)
    early = B.div(_rev_cumsum(B.mul(ct, node), axis), B.where(before, x, one))
    at_zero = _rev_cumsum(B.mul(ct, y_without), axis)
    return [B.where(before, early, B.where(at, at_zero, zero))]


def _cumprod_jvp(ctx, node, ts):
    """y-dot_k = sum over i <= k of t_i prod_{j <= k, j != i} x_j: y_k cumsum(t / x)_k before the
    first zero; from it on only its own term survives, t_z y'_k."""
    if ts[0] is None:
        return None
    x, axis, t = node.inputs[0], node.attr("axis"), ts[0]
    before, at = _zero_masks(x, axis)
    one, zero = B.like_const(1, x), B.like_const(0, x)
    early = B.mul(node, B.apply("cumsum", B.div(B.where(before, t, zero), B.where(before, x, one)), axis=axis))
    t_z = B.apply("sum", B.where(at, t, zero), axes=(axis,), keepdims=True)
    late = B.mul(t_z, B.apply("cumprod", B.where(at, one, x), axis=axis))
    return B.where(before, early, late)


def _rev_cumsum(x, axis):
    return _reversed(B.apply("cumsum", _reversed(x, axis), axis=axis), axis)


def _running_product(row):
    out, acc = [], 1
    for v in row:
        acc = acc * v
        out.append(acc)
    return out


def _cumprod_emit(ctx, args, node):
    dtype = f", dtype={ctx.dtype(node.dtype)}" if node.dtype != node.inputs[0].dtype else ""
    return Expr(f"{ctx.xp}.cumprod({args[0].text}, axis={node.attr('axis')}{dtype})", PREC_POSTFIX)


register(Primitive(
    "cumprod", "scan", _axis_infer(_cumsum_dtype), _cumprod_emit, _cumprod_vjp, _cumprod_jvp,
    _along(_running_product), special=(Special("a zero in a line", slice_zeros=1),
                                        Special("two zeros in a line", slice_zeros=2)),
    doc="running product along an axis (integers and bools as i64, NumPy); derivatives exact with "
        "zeros in the line",
    examples=((("f64[2, 3]",), {"axis": 1}, {}), (("f64[4]",), {"axis": 0}, {})),
))


# ---- roll -----------------------------------------------------------------------------------------
def _roll_emit(ctx, args, node):
    return Expr(f"{ctx.xp}.roll({args[0].text}, {node.attr('shift')}, axis={node.attr('axis')})", PREC_POSTFIX)


def _roll_vjp(ctx, node, ct, needs):
    return [B.apply("roll", ct, shift=-node.attr("shift"), axis=node.attr("axis"))]


def _roll_meaning(ctx, args, node):
    return np.roll(_obj(args[0]), node.attr("shift"), axis=node.attr("axis"))


register(linear(
    "roll", "shape", _axis_infer(), _roll_emit, _roll_vjp, _roll_meaning,
    doc="numpy.roll along one axis (any shift, also past the axis size); vjp: roll back",
    examples=((("f64[2, 3]",), {"shift": 1, "axis": 1}, {}), (("f64[4]",), {"shift": -5, "axis": 0}, {})),
))


# ---- argsort, argmax, argmin ------------------------------------------------------------------------
def _stable_order(values, descending):
    """Indices that sort the numbers stably; NaN last (NumPy), also when descending."""
    import mpmath

    def key(i):
        v = values[i]
        if mpmath.isnan(v):
            return (1, 0)
        return (0, -v if descending else v)

    return sorted(range(len(values)), key=key)


def _order_numeric(name):
    def numeric(position, descending, *values):
        import mpmath

        order = _stable_order(list(values), bool(descending))
        if name == "argsort":
            return mpmath.mpf(order[int(position)])
        return mpmath.mpf(order[0])

    return numeric


def _order_meaning(name, descending=None):
    """argsort's meaning (descending from the node), or argmax's/argmin's (the first of a
    descending/ascending order)."""

    def meaning(ctx, args, node):
        sp = _order_sp()
        fn = sympy_function(name, _order_numeric(name), lambda _sp, args, i: _sp.Integer(0))
        down = node.attr("descending") if descending is None else descending
        down = sp.Integer(1 if down else 0)
        axis = node.attr("axis")
        x = np.moveaxis(_obj(args[0]), axis, -1)
        if name == "argsort":
            out = np.empty(x.shape, dtype=object)
            for idx in np.ndindex(x.shape[:-1]):
                row = list(x[idx])
                out[idx] = [fn(sp.Integer(p), down, *row) for p in range(len(row))]
            return np.moveaxis(out, -1, axis)
        out = np.empty(x.shape[:-1], dtype=object)
        for idx in np.ndindex(x.shape[:-1]):
            out[idx] = fn(sp.Integer(0), down, *x[idx])
        return np.expand_dims(out, axis) if node.attr("keepdims") else out

    return meaning


def _order_sp():
    import sympy

    return sympy


def _argsort_emit(ctx, args, node):
    x = args[0].text if not node.attr("descending") else f"-{args[0].at(PREC_POSTFIX)}"
    return Expr(f"{ctx.xp}.argsort({x}, axis={node.attr('axis')}, kind=\"stable\")", PREC_POSTFIX)


def _argsort_infer(types, attrs):
    t = types[0]
    if t.rank == 0:
        raise UserError(f"`argsort` needs an array with an axis, got {t}")
    if t.dtype == DType.BOOL:
        raise UserError("`argsort` of bool values: convert first, e.g. with i64(...)")
    return TensorType(DType.I64, t.shape, False)


register(nondifferentiable(
    "argsort", "order", _argsort_infer, _argsort_emit, _order_meaning("argsort"),
    doc="the indices that sort along an axis, stably (ties keep their order; NaN last); "
        "descending=true sorts -x, so ties still keep their order",
    examples=((("f64[2, 3]",), {"axis": 1, "descending": False}, {}),
              (("f64[4]",), {"axis": 0, "descending": True}, {})),
))


def _arg_extreme_infer(name):
    def infer(types, attrs):
        t = types[0]
        if t.rank == 0:
            raise UserError(f"`{name}` needs an array with an axis, got {t}")
        if t.dtype == DType.BOOL:
            raise UserError(f"`{name}` of bool values: convert first, e.g. with i64(...)")
        axis = attrs["axis"]
        shape = tuple(1 if a == axis else d for a, d in enumerate(t.shape)) if attrs["keepdims"] else \
            t.shape[:axis] + t.shape[axis + 1:]
        return TensorType(DType.I64, shape, False)

    return infer


def _arg_extreme_emit(name):
    def emit(ctx, args, node):
        keep = ", keepdims=True" if node.attr("keepdims") else ""
        return Expr(f"{ctx.xp}.{name}({args[0].text}, axis={node.attr('axis')}{keep})", PREC_POSTFIX)

    return emit


for _name, _desc in (("argmax", True), ("argmin", False)):
    register(nondifferentiable(
        _name, "order", _arg_extreme_infer(_name), _arg_extreme_emit(_name), _order_meaning(_name, _desc),
        doc=f"the index of the first {'largest' if _desc else 'smallest'} value along an axis (NumPy)",
        examples=((("f64[2, 3]",), {"axis": 1, "keepdims": False}, {}),
                  (("f64[3, 2]",), {"axis": 0, "keepdims": True}, {})),
    ))

