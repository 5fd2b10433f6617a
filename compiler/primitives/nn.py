"""Neural-network ops with their own rules (rather than expansions) because
stability and speed ask for it (docs/architecture.md, "Adding a primitive"):

  softmax, log_softmax    max-shifted forward, written into a given block or over a dead
                          input (Loop.into); VJPs from the output alone
  bce_with_logits         softplus form, no overflow at +-1000; d/dz = sigmoid(z) - y
  binary_cross_entropy    log clamped at -100 and PyTorch's gradient (p - y) / max(p(1-p), 1e-12)
  cross_entropy           lse(logits) - logits[label]; d/dlogits = softmax - onehot
  pick_label, sub_label   internal, its parts at -O1: z[..., label] by a gather, and
                          p - a onehot(label) by a scatter of -a (a: 1, or a third input constant
                          along the class axis: a mean's 1/N, primitives/simplification.py) into
                          (a copy of) p, of labels checked once by checked_labels (outside fused loops)
  finite_or_zero          internal: the shift of the -O1 forms, max(z) where finite, else 0

All are unreduced (PyTorch's reduction='none'); the helper functions their emission calls
are in the records (Helper), with the derivatives.
"""
from __future__ import annotations

import numpy as np

from ..core.diagnostics import UserError
from ..core.ir import Node
from ..core.primitive import PREC_POSTFIX, Cost, Expr, Helper, Loop, Primitive, register
from ..core.types import DType, TensorType
from . import algebra as B
from . import axis_maps as AX
from .common import elementwise_type, helper_call, need_float, sym_map
from .reduce import LOGSUMEXP
from .rule_shapes import float_coerce, nondifferentiable, unary


def _sympy():
    import sympy

    return sympy


def _along(node, value):
    """sum over the op's axis, keepdims."""
    return B.apply("sum", value, axes=(node.attr("axis"),), keepdims=True)


def _axis_sympy(fn):
    """Apply fn(list of SymPy scalars) -> list to each 1-D slice along the op's axis."""

    def meaning(ctx, args, node):
        x = np.asarray(args[0], dtype=object)
        moved = np.moveaxis(x, node.attr("axis"), -1)
        out = np.empty(moved.shape, dtype=object)
        for idx in np.ndindex(moved.shape[:-1]):
            out[idx] = fn(list(moved[idx]))
        return np.moveaxis(out, -1, node.attr("axis"))

    return meaning


def _same_float(name):
    def infer(types, attrs):
        need_float(types[0], f"`{name}`")
        return types[0]

    return infer


# ---- softmax / log_softmax ------------------------------------------------------------------
def _softmax_vjp(ctx, node, ct, needs):
    y = node
    return [B.mul(y, B.sub(ct, _along(node, B.mul(ct, y))))]


def _softmax_jvp(ctx, node, ts):
    y = node
    return B.mul(y, B.sub(ts[0], _along(node, B.mul(ts[0], y))))


def _softmax_meaning(xs):
    sp = _sympy()
    total = sp.Add(*[sp.exp(v) for v in xs])
    return [sp.exp(v) / total for v in xs]


# Loop.into: given `out` (a fused loop's block) or inplace (x is a temporary read only here),
# they write there: no fresh block and no copy of it
SOFTMAX = Helper("softmax", '''def _softmax(x, axis, out=None, inplace=False):
    """exp(x - max) / sum(exp(x - max)), into `out` (x itself if inplace, a new array if
    neither); shifted by 0 where the max is not finite, as _logsumexp (the expanded form at
    -O1 computes the same)."""
    m = xp.max(x, axis=axis, keepdims=True)
    out = x if inplace else out
    e = xp.subtract(x, xp.where(xp.isfinite(m), m, 0), out=out)
    xp.exp(e, out=e)
    e /= xp.sum(e, axis=axis, keepdims=True)
    return e
''')
LOG_SOFTMAX = Helper("log_softmax", '''def _log_softmax(x, axis, out=None, inplace=False):
    """x - logsumexp(x) along axis, as (x - max) - log(sum(exp(x - max))), into `out` (x itself
    if inplace, a new array if neither); shifted by 0 where the max is not finite (_logsumexp)."""
    m = xp.max(x, axis=axis, keepdims=True)
    out = x if inplace else out
    d = xp.subtract(x, xp.where(xp.isfinite(m), m, 0), out=out)
    d -= xp.log(xp.sum(xp.exp(d), axis=axis, keepdims=True))
    return d
''')


def _rowwise_emit(helper):
    def emit(ctx, args, node):
        out = ""  # given a buffer (Loop.into): a fused loop's block, or x itself (maybe an expression)
        if len(args) > 1:
            out = ", inplace=True" if args[1].text == args[0].text else f", out={args[1].text}"
        return Expr(f"{ctx.helper(helper)}({args[0].text}, axis={ctx.literal(node.attr('axis'))}{out})",
                    PREC_POSTFIX)

    return emit


ROWWISE = Loop(rowwise=True, into=True)

register(Primitive(
    "softmax", "nn", _same_float("softmax"), _rowwise_emit("softmax"), _softmax_vjp, _softmax_jvp,
    _axis_sympy(_softmax_meaning), coerce=lambda a, k: [B.to_float(a[0])],
    doc="exp(x - max) / sum; VJP y * (ct - sum(ct * y))",
    examples=((("f64[2, 3]",), {"axis": 1}, {}), (("f64[3, 2]",), {"axis": 0}, {})),
    cost=Cost.COSTLY, quiet=True, loop=ROWWISE, helpers=(SOFTMAX,), axis_map=AX.along,
))


def _log_softmax_vjp(ctx, node, ct, needs):
    p = B.apply("exp", node)
    return [B.sub(ct, B.mul(p, _along(node, ct)))]


def _log_softmax_jvp(ctx, node, ts):
    p = B.apply("exp", node)
    return B.sub(ts[0], _along(node, B.mul(p, ts[0])))


def _log_softmax_meaning(xs):
    sp = _sympy()
    lse = sp.log(sp.Add(*[sp.exp(v) for v in xs]))
    return [v - lse for v in xs]


register(Primitive(
    "log_softmax", "nn", _same_float("log_softmax"), _rowwise_emit("log_softmax"),
    _log_softmax_vjp, _log_softmax_jvp, _axis_sympy(_log_softmax_meaning),
    coerce=lambda a, k: [B.to_float(a[0])], doc="x - logsumexp(x); VJP ct - softmax * sum(ct)",
    examples=((("f64[2, 3]",), {"axis": 1}, {}), (("f64[3, 2]",), {"axis": 0}, {})),
    cost=Cost.COSTLY, quiet=True, loop=ROWWISE, helpers=(LOG_SOFTMAX,), axis_map=AX.along,
))


# ---- binary cross-entropy -------------------------------------------------------------------------
def _bce_infer(name):
    def infer(types, attrs):
        need_float(types[0], f"`{name}`")
        return elementwise_type(types)

    return infer


def _bce_logits_vjp(ctx, node, ct, needs):
    z, y = node.inputs
    out = [None, None]
    if needs[0]:
        out[0] = B.unbroadcast(B.mul(ct, B.sub(B.apply("sigmoid", z), y)), z.type)
    if needs[1]:
        out[1] = B.unbroadcast(B.neg(B.mul(ct, z)), y.type)
    return out


def _bce_logits_jvp(ctx, node, ts):
    z, y = node.inputs
    parts = []
    if ts[0] is not None:
        parts.append(B.mul(ts[0], B.sub(B.apply("sigmoid", z), y)))
    if ts[1] is not None:
        parts.append(B.neg(B.mul(ts[1], z)))
    out = parts[0] if len(parts) == 1 else B.add(*parts)
    return B.broadcast_to(out, node.shape)


def _bce_logits_meaning(z, y):
    sp = _sympy()
    s = 1 / (1 + sp.exp(-z))
    return -(y * sp.log(s) + (1 - y) * sp.log(1 - s))


BCE_WITH_LOGITS = Helper("bce_with_logits", '''def _bce_with_logits(z, y):
    """Binary cross-entropy of logits z and targets y; no overflow at |z| = 1000."""
    return xp.maximum(z, 0) - z * y + xp.log1p(xp.exp(-xp.abs(z)))
''')

register(Primitive(
    "bce_with_logits", "nn", _bce_infer("bce_with_logits"), helper_call("bce_with_logits"),
    _bce_logits_vjp, _bce_logits_jvp, sym_map(_bce_logits_meaning), coerce=float_coerce, elementwise=True,
    doc="max(z, 0) - z*y + log1p(exp(-|z|)); d/dz = sigmoid(z) - y, d/dy = -z",
    examples=((("f64[2, 3]", "f64[2, 3]"), {}, {1: "unit"}), (("f64[2, 3]", "f64[3]"), {}, {1: "unit"})),
    cost=Cost.COSTLY, helpers=(BCE_WITH_LOGITS,), scalar="max({0}, 0) - {0} * {1} + log1p(exp(-fabs({0})))",
))


def _clamped_log(x):
    return B.apply("maximum", B.apply("log", x), B.like_const(-100, x))


def _bce_dp(p, y):
    one = B.like_const(1, p)
    denom = B.apply("maximum", B.mul(p, B.sub(one, p)), B.like_const(1e-12, p))
    return B.div(B.sub(p, y), denom)


def _bce_dy(p):
    one = B.like_const(1, p)
    return B.sub(_clamped_log(B.sub(one, p)), _clamped_log(p))


def _bce_vjp(ctx, node, ct, needs):
    p, y = node.inputs
    out = [None, None]
    if needs[0]:
        out[0] = B.unbroadcast(B.mul(ct, _bce_dp(p, y)), p.type)
    if needs[1]:
        out[1] = B.unbroadcast(B.mul(ct, _bce_dy(p)), y.type)
    return out


def _bce_jvp(ctx, node, ts):
    p, y = node.inputs
    parts = []
    if ts[0] is not None:
        parts.append(B.mul(ts[0], _bce_dp(p, y)))
    if ts[1] is not None:
        parts.append(B.mul(ts[1], _bce_dy(p)))
    out = parts[0] if len(parts) == 1 else B.add(*parts)
    return B.broadcast_to(out, node.shape)


_BCE: list = []


def _bce_meaning(p, y):
    """-(y log p + (1 - y) log(1 - p)) with each log clamped at -100 (PyTorch), and as the
    derivative in p sympy.diff takes (`fdiff`) PyTorch's (p - y) / max(p (1 - p), 1e-12): the
    derivative wherever p (1 - p) > 1e-12, finite at p = 0 and 1 where the clamped loss is flat."""
    if not _BCE:
        sp = _sympy()

        def clamped_log(v):
            return sp.Max(sp.log(v), -100)

        class bce(sp.Function):  # noqa: N801 - the name printed in the check's code
            @staticmethod
            def numeric(p, y):
                import mpmath

                def log(v):
                    return mpmath.log(v) if v >= 0 else mpmath.nan

                return -(y * max(log(p), -100) + (1 - y) * max(log(1 - p), -100))

            def fdiff(self, argindex=1):
                p, y = self.args
                if argindex == 1:
                    return (p - y) / sp.Max(p * (1 - p), sp.Rational(1e-12))  # the float, as the rule holds it
                return clamped_log(1 - p) - clamped_log(p)

        _BCE.append(bce)
    return _BCE[0](p, y)


BINARY_CROSS_ENTROPY = Helper("binary_cross_entropy", '''def _binary_cross_entropy(p, y):
    """-(y log p + (1 - y) log(1 - p)), each log clamped at -100 as in PyTorch."""
    with _quiet():
        log_p = xp.maximum(xp.log(p), -100)
        log_q = xp.maximum(xp.log1p(-p), -100)
    return -(y * log_p + (1 - y) * log_q)
''', ("quiet",))

register(Primitive(
    "binary_cross_entropy", "nn", _bce_infer("binary_cross_entropy"), helper_call("binary_cross_entropy"),
    _bce_vjp, _bce_jvp, sym_map(_bce_meaning), coerce=float_coerce, elementwise=True,
    doc="-(y log p + (1-y) log(1-p)), logs clamped at -100; PyTorch's gradient",
    examples=((("f64[2, 3]", "f64[2, 3]"), {}, {0: "unit", 1: "unit"}),),
    quiet=True, helpers=(BINARY_CROSS_ENTROPY,),
    scalar="-({1} * max(log({0}), -100) + (1 - {1}) * max(log1p(-{0}), -100))",
))


# ---- cross-entropy with integer labels -----------------------------------------------------------
def _ce_infer(types, attrs):
    logits, labels = types
    need_float(logits, "`cross_entropy` logits", 0)
    if logits.rank < 1:
        raise UserError(f"`cross_entropy` needs logits of shape [..., C], got {logits}", arg=0)
    if labels.dtype.kind != "i":
        raise UserError(f"`cross_entropy` needs integer class labels, got {labels}", arg=1)
    if labels.shape != logits.shape[:-1]:
        raise UserError(f"`cross_entropy`: labels {labels} do not fit logits {logits}: "
                        f"labels must have the logits' shape without the class axis", arg=1)
    return TensorType(logits.dtype, labels.shape, logits.weak)


def labels_onehot(labels: Node, depth) -> Node:
    """Bool one-hot rows of cross_entropy's labels; the generated code checks they lie in [0, depth)."""
    return B.apply("onehot", labels, depth=depth)


def _checked(labels: Node, depth) -> Node:
    """The labels, checked once to lie in [0, depth) (one call outside any fused loop, shared by
    the loss and its gradient through CSE): pick_label and sub_label index with them unchecked."""
    return labels if labels.op.name == "checked_labels" else B.apply("checked_labels", labels, depth=depth)


def pick_label(z: Node, labels: Node) -> Node:
    """z[..., label] as [..., 1]: a gather of one value a row, the labels checked."""
    return B.apply("pick_label", z, _checked(labels, z.shape[-1]), axis=z.type.rank - 1)


def sub_label(p: Node, labels: Node, amount: Node | None = None) -> Node:
    """p - amount onehot(labels): amount (1 if None; else a scalar or of p's shape with the class
    axis 1) subtracted at the label positions, no [..., C] one-hot made."""
    extra = () if amount is None else (amount,)
    return B.apply("sub_label", p, _checked(labels, p.shape[-1]), *extra, axis=p.type.rank - 1)


def _ce_grad(node):
    logits, labels = node.inputs
    return sub_label(B.apply("softmax", logits, axis=logits.type.rank - 1), labels)


def _ce_vjp(ctx, node, ct, needs):
    g = B.reshape(ct, ct.shape + (1,))
    return [B.mul(g, _ce_grad(node)), None]


def _ce_jvp(ctx, node, ts):
    logits = node.inputs[0]
    return B.apply("sum", B.mul(ts[0], _ce_grad(node)), axes=(logits.type.rank - 1,), keepdims=False)


def _ce_meaning(ctx, args, node):
    sp = _sympy()
    logits = np.asarray(args[0], dtype=object)
    labels = np.asarray(args[1], dtype=np.int64)
    out = np.empty(labels.shape, dtype=object)
    for idx in np.ndindex(labels.shape):
        row = logits[idx]
        out[idx] = sp.log(sp.Add(*[sp.exp(v) for v in row])) - row[int(labels[idx])]
    return out


# `who` names the function and the argument (FnContext.naming): "f(): argument `k`"
CHECK_LABELS = Helper("check_labels", '''def _check_labels(labels, c, who):
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= c):
        raise ValueError(f"{who}: the labels of cross_entropy must lie in [0, {c}), got values from "
                         f"{int(labels.min())} to {int(labels.max())}")
''')
CROSS_ENTROPY = Helper("cross_entropy", '''def _cross_entropy(logits, labels, who):
    """logsumexp(logits) - logits[label] over the last axis; labels must lie in [0, C)."""
    _check_labels(labels, logits.shape[-1], who)
    picked = xp.take_along_axis(logits, xp.asarray(labels)[..., None], axis=-1)[..., 0]
    return _logsumexp(logits, -1, False) - picked
''', ("logsumexp", "check_labels"))
# CuPy's take wraps or clips an index out of range, never raises: both bounds checked first
LABELS_ONEHOT = Helper("labels_onehot", '''def _labels_onehot(labels, c, who):
    """The bool one-hot rows of cross_entropy's labels, which must lie in [0, c): rows of an
    identity matrix, or for many classes a scatter into zeros (both raise IndexError for a
    label >= c; a negative one is checked first). 2-6x faster than comparing with arange(c)."""
    if labels.size and labels.min() < 0:
        _check_labels(labels, c, who)
    try:
        if c <= 256:
            return xp.eye(c, dtype=xp.bool_).take(labels, axis=0)
        out = xp.zeros((labels.size, c), dtype=xp.bool_)
        out[xp.arange(labels.size), labels.reshape(-1)] = True
        return out.reshape(*labels.shape, c)
    except IndexError:
        _check_labels(labels, c, who)
        raise
''', ("check_labels",), variants=(("cupy", '''def _labels_onehot(labels, c, who):
    """The bool one-hot rows of cross_entropy's labels, which must lie in [0, c)."""
    _check_labels(labels, c, who)
    return labels[..., None] == xp.arange(c)
'''),))

def _ce_emit(ctx, args, node):
    # the label check names the function and the argument (or the line the labels come from)
    who = ctx.naming(node.inputs[1])
    return Expr(f"{ctx.helper('cross_entropy')}({args[0].text}, {args[1].text}, {who!r})", PREC_POSTFIX)


register(Primitive(
    "cross_entropy", "nn", _ce_infer, _ce_emit, _ce_vjp, _ce_jvp, _ce_meaning,
    coerce=lambda a, k: [B.to_float(a[0]), a[1]],
    doc="logsumexp(logits) - logits[label]; labels are checked to lie in [0, C)",
    examples=((("f64[2, 3]", "i64[2]"), {}, {1: "int:0:3"}), (("f64[4]", "i64"), {}, {1: "int:0:4"})),
    cost=Cost.COSTLY, quiet=True, helpers=(CROSS_ENTROPY, LOGSUMEXP, CHECK_LABELS), axis_map=AX.labels_last,
))


def _onehot_infer(types, attrs):
    return TensorType(DType.BOOL, types[0].shape + (attrs["depth"],))


def _onehot_emit(ctx, args, node):
    # an out-of-range label is an error, not a row of zeros (or, negative, a row from the end)
    who = ctx.naming(node.inputs[0])
    return Expr(f"{ctx.helper('labels_onehot')}({args[0].text}, {ctx.dim(node.attr('depth'))}, {who!r})",
                PREC_POSTFIX)


def _onehot_meaning(ctx, args, node):
    labels = np.asarray(args[0], dtype=np.int64)
    depth = ctx.dim(node.attr("depth"))
    return (labels[..., None] == np.arange(depth)).astype(object)


register(nondifferentiable(
    "onehot", "nn", _onehot_infer, _onehot_emit, _onehot_meaning, allocates=True, helpers=(LABELS_ONEHOT, CHECK_LABELS),
    axis_map=AX.onehot,
    doc="internal: the bool one-hot rows of cross_entropy's labels, checked to lie in [0, depth)",
))


# ---- the gather and the scatter of cross_entropy's -O1 form and gradient -----------------------
def _label_infer(name, keep):
    def infer(types, attrs):
        z, labels, *amount = types
        if z.rank < 1 or labels.dtype.kind != "i" or labels.shape != z.shape[:-1]:
            raise UserError(f"`{name}` needs values [..., C] and integer labels [...], got {z} and {labels}")
        if amount and (not keep or len(amount) > 1 or amount[0].dtype != z.dtype
                       or amount[0].shape not in ((), labels.shape + (1,))):
            raise UserError(f"`{name}` takes as its amount a scalar or values [..., 1] of the values' dtype, "
                            f"got {amount}")
        return TensorType(z.dtype, z.shape if keep else labels.shape + (1,), z.weak)
    return infer


CHECKED_LABELS = Helper("checked_labels", '''def _checked_labels(labels, c, who):
    """The labels, which must lie in [0, c) (CuPy's indexing wraps or clips, NumPy's wraps a
    negative one: never silently)."""
    _check_labels(labels, c, who)
    return labels
''', ("check_labels",))
# (an index of every position but the last axis, for any rank: a view's reshape could copy)
LABEL_ROWS = Helper("label_rows", '''def _label_rows(labels):
    """Index arrays that, with the labels, pick one place on each row of the last axis."""
    n = labels.ndim
    return tuple(xp.arange(s).reshape((s,) + (1,) * (n - 1 - k)) for k, s in enumerate(labels.shape))
''')
# written into `out` (a fused loop's block) or over p where the caller's p is a temporary
# read only here (inplace), else into a copy; the labels come checked (checked_labels)
SUB_LABEL = Helper("sub_label", '''def _sub_label(p, labels, amount=1, out=None, inplace=False, rows=None):
    """p - amount onehot(labels) along the last axis: p's values (copied into `out` or a new
    array, or p itself if inplace) with `amount` (a scalar or of the labels' shape) subtracted at
    the label positions (`rows`: arange of the rows, given for 1-D labels)."""
    if inplace:
        out = p
    elif out is None:
        out = p.copy()
    else:
        out[...] = p
    out[(rows, labels) if rows is not None else _label_rows(labels) + (labels,)] -= amount
    return out
''', ("label_rows",))


def _pick_emit(ctx, args, node):
    if len(args) > 2:  # in a fused loop, over 1-D labels: an index of the block's rows (Loop.row_index)
        return Expr(f"{args[0].at(PREC_POSTFIX)}[{args[2].text}, {args[1].text}][:, None]", PREC_POSTFIX)
    return Expr(f"{ctx.xp}.take_along_axis({args[0].text}, {args[1].at(PREC_POSTFIX)}[..., None], axis=-1)",
                PREC_POSTFIX)


def _sub_emit(ctx, args, node):
    # the inputs' texts, then maybe a buffer (Loop.into: a fused loop's block, or p itself), then
    # maybe an index of the block's rows (Loop.row_index)
    p, labels = args[0].text, args[1].text
    amount = "1"
    if len(node.inputs) > 2:  # subtracted at one place a row: of the labels' shape ([..., 1] -> [...])
        a = node.inputs[2]
        amount = args[2].text if a.type.rank == 0 else f"{args[2].at(PREC_POSTFIX)}[..., 0]"
    buf, rows = (args[len(node.inputs):] + [None, None])[:2]
    if rows is not None and buf.text == p:
        return Expr(f"{p}[{rows.text}, {labels}] -= {amount}")
    extra = "" if amount == "1" else f", {amount}"
    if buf is not None:
        extra += ", inplace=True" if buf.text == p else f", out={buf.text}"
    if rows is not None:
        extra += f", rows={rows.text}"
    return Expr(f"{ctx.helper('sub_label')}({p}, {labels}{extra})", PREC_POSTFIX)


def _checked_emit(ctx, args, node):
    who = ctx.naming(node.inputs[0])  # "f(): argument `k`", or the line the labels come from
    return Expr(f"{ctx.helper('checked_labels')}({args[0].text}, {ctx.dim(node.attr('depth'))}, {who!r})",
                PREC_POSTFIX)


def _pick_vjp(ctx, node, ct, needs):
    z, labels = node.inputs
    return [B.mul(ct, B.cast(labels_onehot(labels, z.shape[-1]), z.dtype)), None]


def _pick_meaning(ctx, args, node):
    z = np.asarray(args[0], dtype=object)
    labels = np.asarray(args[1], dtype=np.int64)
    out = np.empty(labels.shape + (1,), dtype=object)
    for idx in np.ndindex(labels.shape):
        out[idx + (0,)] = z[idx][int(labels[idx])]
    return out


def _sub_meaning(ctx, args, node):
    p = np.asarray(args[0], dtype=object)
    labels = np.asarray(args[1], dtype=np.int64)
    amount = np.asarray(args[2], dtype=object) if len(args) > 2 else 1
    return p - amount * (labels[..., None] == np.arange(p.shape[-1])).astype(np.int64).astype(object)


def _sub_vjp(ctx, node, ct, needs):
    """d/dp: the cotangent itself; d/damount: minus its values at the labels, summed to amount's shape."""
    out = [ct, None]
    if len(node.inputs) > 2:
        amount = node.inputs[2]
        out.append(B.neg(B.unbroadcast(pick_label(ct, node.inputs[1]), amount.type)) if needs[2] else None)
    return out


def _sub_jvp(ctx, node, ts):
    tp, ta = ts[0], (ts[2] if len(ts) > 2 else None)
    if ta is None:
        return tp
    return sub_label(B.zeros_like(node) if tp is None else tp, node.inputs[1], ta)


LABEL_PICK = Loop(rowwise=True, row_index=True)  # along the class axis: fused loops run it block by block
register(Primitive(
    "pick_label", "nn", _label_infer("pick_label", False), _pick_emit, _pick_vjp,
    lambda ctx, node, ts: pick_label(ts[0], node.inputs[1]), _pick_meaning,
    doc="internal: z[..., label] as [..., 1] by a gather (cross_entropy's -O1 form), of checked labels",
    examples=((("f64[2, 3]", "i64[2]"), {"axis": 1}, {1: "int:0:3"}),),
    loop=LABEL_PICK, axis_map=AX.labels_last,
))
register(Primitive(
    "sub_label", "nn", _label_infer("sub_label", True), _sub_emit, _sub_vjp, _sub_jvp, _sub_meaning,
    doc="internal: p - a onehot(labels) by a scatter of -a (a: 1, or a scalar or [..., 1] third input) "
        "at checked labels (cross_entropy's gradient)",
    examples=((("f64[2, 3]", "i64[2]"), {"axis": 1}, {1: "int:0:3"}),
              (("f64[2, 3]", "i64[2]", "f64"), {"axis": 1}, {1: "int:0:3"}),
              (("f64[2, 3]", "i64[2]", "f64[2, 1]"), {"axis": 1}, {1: "int:0:3"})),
    allocates=True, loop=Loop(rowwise=True, into=True, row_index=True), helpers=(SUB_LABEL, LABEL_ROWS),
    axis_map=AX.labels_last,
))


def _checked_meaning(ctx, args, node):
    return np.asarray(args[0], dtype=object)


register(nondifferentiable(
    "checked_labels", "nn", lambda types, attrs: types[0], _checked_emit, _checked_meaning,
    view=True, helpers=(CHECKED_LABELS, CHECK_LABELS), axis_map=AX.identity,
    doc="internal: cross_entropy's labels as they are, checked to lie in [0, depth) (pick_label, sub_label)",
))


# ---- the shift of the stable forms (primitives/forms.py) -----------------------------------------
# One reduction of m decides: its sum is finite only when every value is (a sum that overflows
# just takes the slow path, to the same values). A fused loop calls it once a block: W14's
# 4-row blocks spent 4 small ufunc calls each on a bitwise select before (3-4% of the time).
FINITE_OR_ZERO = Helper("finite_or_zero", '''def _finite_or_zero(m):
    """m where it is finite, 0 elsewhere: m itself (not a copy) when all of it is finite."""
    if -xp.inf < xp.add.reduce(m, axis=None) < xp.inf:
        return m
    return xp.where(xp.isfinite(m), m, xp.zeros((), dtype=m.dtype))
''', variants=(("cupy", '''def _finite_or_zero(m):
    """m where it is finite, 0 elsewhere (no test on the host: that would wait for the device)."""
    return xp.where(xp.isfinite(m), m, xp.zeros((), dtype=m.dtype))
'''),))


def _finite_mask(x, y):
    return B.apply("lt", B.apply("abs", x), B.like_const(float("inf"), x))


register(unary(
    "finite_or_zero", helper_call("finite_or_zero"), None, lambda x: x,
    lambda x: np.where(np.isfinite(x), x, np.zeros((), dtype=np.asarray(x).dtype)), masked_deriv=_finite_mask,
    doc="internal: x where finite, else 0 (the max a logsumexp, softmax or cross_entropy form shifts by)",
    view=True, quiet=True, helpers=(FINITE_OR_ZERO,), scalar="select({0} - {0} == 0, {0}, 0)",
))
