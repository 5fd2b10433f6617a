"""Scans and order: cumsum and roll (linear), cumprod and logcumsumexp (their derivatives are
linscans: the internal linear recurrence, closed under differentiation), argsort, argmax and
argmin (integer results, no derivative). sort, topk, flip, diff, pad, tile and repeat are expansions over these and the
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
from ..core.primitive import PREC_POSTFIX, Cost, Expr, Helper, Primitive, Special, register
from ..core.types import DType, TensorType
from . import algebra as B
from . import axis_maps as AX
from .common import need_float, sympy_function
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
    examples=((("f64[2, 3]",), {"axis": 1}, {}), (("f64[4]",), {"axis": 0}, {})), axis_map=AX.along,
))


# ---- linscan: the linear recurrence (internal) ---------------------------------------------------------
def _shift(x, axis, fill, later):
    """x moved one place along axis, `fill` entering: later (h_(i-1) at i) or earlier (h_(i+1) at
    i). concat then slice, so the slice's bound stays in range for every size, 0 included."""
    slab = B.broadcast_to(B.like_const(fill, x), tuple(1 if a == axis else d for a, d in enumerate(x.shape)))
    joined = B.apply("concat", *((slab, x) if later else (x, slab)), axis=axis)
    cut = ("s", None, -1, 1) if later else ("s", 1, None, 1)
    return B.apply("index", joined, items=(("s", None, None, 1),) * axis + (cut,))


def linscan(a, b, axis, reverse=False):
    return B.apply("linscan", a, b, axis=axis, reverse=reverse)


def _linscan_infer(types, attrs):
    a, b = types
    for i, t in enumerate(types):
        need_float(t, "`linscan`", arg=i)
    if a.rank == 0 or a.shape != b.shape or a.dtype != b.dtype:
        raise UserError(f"`linscan` needs two arrays of one shape and dtype with an axis, got {a} and {b}")
    return b


def _linscan_vjp(ctx, node, ct, needs):
    """Forward h_i = a_i h_(i-1) + b_i: the adjoint l runs from the end, l_i = g_i + a_(i+1) l_(i+1)
    (the reverse scan), d/db = l, d/da_i = l_i h_(i-1). Reverse: the adjoint m runs from the start,
    d/db = m, d/da_i = m_(i-1) h_i. Both are linscans again: closed under differentiation."""
    a, axis, reverse = node.inputs[0], node.attr("axis"), node.attr("reverse")
    adj = linscan(a, ct, axis, not reverse)
    if not needs[0]:
        return [None, adj]
    da = B.mul(adj, _shift(node, axis, 0, True)) if not reverse else B.mul(_shift(adj, axis, 0, True), node)
    return [da, adj]


def _linscan_jvp(ctx, node, ts):
    """h-dot follows the same recurrence, driven by b-dot plus a-dot times the h it multiplies."""
    a, axis, reverse = node.inputs[0], node.attr("axis"), node.attr("reverse")
    ta, tb = ts
    drive = None
    if ta is not None:
        drive = B.mul(ta, _shift(node, axis, 0, True)) if not reverse else _shift(B.mul(ta, node), axis, 0, False)
    drive = B.add_ct(drive, tb)
    return None if drive is None else linscan(a, drive, axis, reverse)


def _linscan_emit(ctx, args, node):
    name = ctx.helper("linscan")
    return Expr(f"{name}({args[0].text}, {args[1].text}, {node.attr('axis')}, {node.attr('reverse')})",
                PREC_POSTFIX)


def _linscan_sympy(ctx, args, node):
    axis, reverse = node.attr("axis"), node.attr("reverse")
    a, b = (np.moveaxis(_obj(v), axis, -1) for v in args)
    out = np.empty(b.shape, dtype=object)
    n = b.shape[-1]
    for idx in np.ndindex(b.shape[:-1]):
        h, row_a, row_b = 0, a[idx], b[idx]
        for i in (range(n - 1, -1, -1) if reverse else range(n)):
            coefficient = (row_a[i + 1] if i + 1 < n else 0) if reverse else row_a[i]
            h = coefficient * h + row_b[i]
            out[idx + (i,)] = h
    return np.moveaxis(out, -1, axis)


LINSCAN = Helper("linscan", '''def _linscan(a, b, axis, reverse):
    """h_i = a_i h_(i-1) + b_i along axis from the start (reverse: h_i = a_(i+1) h_(i+1) + b_i
    from the end): one vector step per position, over the other axes."""
    h = b.copy()
    at = (slice(None),) * axis
    n = h.shape[axis]
    if reverse:
        for i in range(n - 2, -1, -1):
            h[at + (i,)] += a[at + (i + 1,)] * h[at + (i + 1,)]
    else:
        for i in range(1, n):
            h[at + (i,)] += a[at + (i,)] * h[at + (i - 1,)]
    return h
''')

register(Primitive(
    "linscan", "scan", _linscan_infer, _linscan_emit, _linscan_vjp, _linscan_jvp, _linscan_sympy,
    doc="internal: the linear recurrence h_i = a_i h_(i-1) + b_i along an axis (reverse: h_i = "
        "a_(i+1) h_(i+1) + b_i from the end); its derivatives are linscans again, with no "
        "division, so the rules written with it (cumprod's, logcumsumexp's) are exact to every order",
    examples=((("f64[2, 3]", "f64[2, 3]"), {"axis": 1, "reverse": False}, {}),
              (("f64[4]", "f64[4]"), {"axis": 0, "reverse": True}, {})),
    cost=Cost.COSTLY, helpers=(LINSCAN,), axis_map=AX.along,
))


# ---- cumprod --------------------------------------------------------------------------------------
def _cumprod_vjp(ctx, node, ct, needs):
    """d/dx_i = sum over k >= i of g_k prod_{j <= k, j != i} x_j = (prod_{j < i} x_j) s_i with
    s_i = g_i + x_(i+1) s_(i+1): a product and a reverse linscan, no division, so exact with
    zeros in the line, and so are its own derivatives (every order)."""
    x, axis = node.inputs[0], node.attr("axis")
    return [B.mul(_shift(node, axis, 1, True), linscan(x, ct, axis, reverse=True))]


def _cumprod_jvp(ctx, node, ts):
    """y-dot_k = x_k y-dot_(k-1) + t_k y_(k-1) (y_(-1) = 1): a linscan."""
    if ts[0] is None:
        return None
    x, axis = node.inputs[0], node.attr("axis")
    return linscan(x, B.mul(ts[0], _shift(node, axis, 1, True)), axis)


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
        "zeros in the line, to every order (written with linscan, no division)",
    examples=((("f64[2, 3]",), {"axis": 1}, {}), (("f64[4]",), {"axis": 0}, {})), axis_map=AX.along,
))


# ---- logcumsumexp ----------------------------------------------------------------------------------
def _lcse_weights(x, out, axis):
    """(exp(x_i - out_i), a) with a_i = exp(out_(i-1) - out_i): both in [0, 1] (out is a running
    logsumexp, so it rises and bounds x), so the rules never overflow. An all -inf prefix has
    out = -inf: there out is read as 0, so its weights exp(-inf - 0) and the links from it are
    0, never NaN (nor a warning) from -inf - -inf."""
    neg_inf = B.like_const(-np.inf, out)
    safe = B.where(B.apply("eq", out, neg_inf), B.like_const(0, out), out)
    link = B.apply("exp", B.sub(_shift(out, axis, -np.inf, True), safe))
    return B.apply("exp", B.sub(x, safe)), link


def _lcse_vjp(ctx, node, ct, needs):
    """d/dx_i = sum over j >= i of g_j exp(x_i - out_j) = exp(x_i - out_i) s_i, with
    s_i = g_i + exp(out_i - out_(i+1)) s_(i+1): a reverse linscan."""
    axis = node.attr("axis")
    weight, link = _lcse_weights(node.inputs[0], node, axis)
    return [B.mul(weight, linscan(link, ct, axis, reverse=True))]


def _lcse_jvp(ctx, node, ts):
    """out-dot_j = sum over i <= j of t_i exp(x_i - out_j) = exp(out_(j-1) - out_j) out-dot_(j-1)
    + t_j exp(x_j - out_j): a linscan."""
    if ts[0] is None:
        return None
    axis = node.attr("axis")
    weight, link = _lcse_weights(node.inputs[0], node, axis)
    return linscan(link, B.mul(ts[0], weight), axis)


def _lcse_infer(types, attrs):
    t = types[0]
    need_float(t, "`logcumsumexp`")
    if t.rank == 0:
        raise UserError(f"`logcumsumexp` needs an array with an axis, got {t}")
    return t


def _lcse_emit(ctx, args, node):
    return Expr(f"{ctx.helper('logcumsumexp')}({args[0].text}, {node.attr('axis')})", PREC_POSTFIX)


def _log_running_sum(row):
    sp = _order_sp()
    return [sp.log(sp.Add(*[sp.exp(v) for v in row[:k + 1]])) for k in range(len(row))]


LOGCUMSUMEXP = Helper("logcumsumexp", '''def _logcumsumexp(x, axis):
    """log(cumsum(exp(x))) along axis, exact at any magnitude (an all -inf prefix gives -inf)."""
    return xp.logaddexp.accumulate(x, axis=axis)
''', variants=(("cupy", '''def _logcumsumexp(x, axis):
    """log(cumsum(exp(x))) along axis, exact at any magnitude (an all -inf prefix gives -inf):
    CuPy has no logaddexp.accumulate, so one logaddexp per position, over the other axes."""
    out = x.copy()
    at = (slice(None),) * axis
    for i in range(1, out.shape[axis]):
        out[at + (i,)] = xp.logaddexp(out[at + (i - 1,)], out[at + (i,)])
    return out
'''),))

register(Primitive(
    "logcumsumexp", "scan", _lcse_infer, _lcse_emit, _lcse_vjp, _lcse_jvp, _along(_log_running_sum),
    coerce=lambda args, attrs: [B.to_float(args[0])],
    doc="log(cumsum(exp(x))) along an axis, as torch.logcumsumexp: no overflow or underflow at any "
        "magnitude (logaddexp.accumulate); an all -inf prefix gives -inf with gradient 0; vjp and "
        "jvp are linscans weighted by exp(x_i - out_j) <= 1",
    examples=((("f64[2, 3]",), {"axis": 1}, {}), (("f64[4]",), {"axis": 0}, {})),
    cost=Cost.COSTLY, helpers=(LOGCUMSUMEXP,), axis_map=AX.along,
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
    axis_map=AX.along,
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
              (("f64[4]",), {"axis": 0, "descending": True}, {})), axis_map=AX.along,
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
                  (("f64[3, 2]",), {"axis": 0, "keepdims": True}, {})), axis_map=AX.along,
    ))

