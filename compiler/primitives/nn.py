"""Neural-network ops with their own rules (rather than expansions) because
stability and speed ask for it (ARCHITECTURE.md, "keep the core small"):

  softmax, log_softmax    max-shifted forward; VJPs from the output alone
  bce_with_logits         softplus form, no overflow at +-1000; d/dz = sigmoid(z) - y
  binary_cross_entropy    log clamped at -100 and PyTorch's gradient (p - y) / max(p(1-p), 1e-12)
  cross_entropy           lse(logits) - logits[label]; d/dlogits = softmax - onehot

All are unreduced (PyTorch's reduction='none'); the forward code lives in
codegen/helpers.py, the derivatives here.
"""
from __future__ import annotations

import numpy as np

from . import algebra as B
from ..core.diagnostics import UserError
from ..core.types import DType, TensorType
from . import forms
from ..core.primitive import PREC_POSTFIX, Expr, Primitive, register
from .common import elementwise_type, helper_call, need_float, sym_map


def _sympy():
    import sympy

    return sympy


def _float_all(args, attrs):
    return B.common_dtype([B.to_float(a) for a in args])


def _along(node, value):
    """sum over the op's axis, keepdims."""
    return B.apply("sum", value, axes=(node.attr("axis"),), keepdims=True)


def _axis_sympy(fn):
    """Apply fn(list of SymPy scalars) -> list to each 1-D slice along the op's axis."""

    def meaning(args, node):
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
def _softmax_vjp(node, ct, needs):
    y = node
    return [B.mul(y, B.sub(ct, _along(node, B.mul(ct, y))))]


def _softmax_jvp(node, ts):
    y = node
    return B.mul(y, B.sub(ts[0], _along(node, B.mul(ts[0], y))))


def _softmax_meaning(xs):
    sp = _sympy()
    total = sp.Add(*[sp.exp(v) for v in xs])
    return [sp.exp(v) / total for v in xs]


register(Primitive(
    "softmax", "nn", _same_float("softmax"), helper_call("softmax", "axis"), _softmax_vjp, _softmax_jvp,
    _axis_sympy(_softmax_meaning), coerce=lambda a, k: [B.to_float(a[0])],
    doc="exp(x - max) / sum; VJP y * (ct - sum(ct * y))",
    examples=((("f64[2, 3]",), {"axis": 1}, {}), (("f64[3, 2]",), {"axis": 0}, {})),
    costly=True, quiet=True, expand=forms.softmax_form,
))


def _log_softmax_vjp(node, ct, needs):
    p = B.apply("exp", node)
    return [B.sub(ct, B.mul(p, _along(node, ct)))]


def _log_softmax_jvp(node, ts):
    p = B.apply("exp", node)
    return B.sub(ts[0], _along(node, B.mul(p, ts[0])))


def _log_softmax_meaning(xs):
    sp = _sympy()
    lse = sp.log(sp.Add(*[sp.exp(v) for v in xs]))
    return [v - lse for v in xs]


register(Primitive(
    "log_softmax", "nn", _same_float("log_softmax"), helper_call("log_softmax", "axis"),
    _log_softmax_vjp, _log_softmax_jvp, _axis_sympy(_log_softmax_meaning),
    coerce=lambda a, k: [B.to_float(a[0])], doc="x - logsumexp(x); VJP ct - softmax * sum(ct)",
    examples=((("f64[2, 3]",), {"axis": 1}, {}), (("f64[3, 2]",), {"axis": 0}, {})),
    costly=True, quiet=True,
))


# ---- binary cross-entropy -------------------------------------------------------------------------
def _bce_infer(name):
    def infer(types, attrs):
        need_float(types[0], f"`{name}`")
        return elementwise_type(types)

    return infer


def _bce_logits_vjp(node, ct, needs):
    z, y = node.inputs
    out = [None, None]
    if needs[0]:
        out[0] = B.unbroadcast(B.mul(ct, B.sub(B.apply("sigmoid", z), y)), z.type)
    if needs[1]:
        out[1] = B.unbroadcast(B.neg(B.mul(ct, z)), y.type)
    return out


def _bce_logits_jvp(node, ts):
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


register(Primitive(
    "bce_with_logits", "nn", _bce_infer("bce_with_logits"), helper_call("bce_with_logits"),
    _bce_logits_vjp, _bce_logits_jvp, sym_map(_bce_logits_meaning), coerce=_float_all, elementwise=True,
    doc="max(z, 0) - z*y + log1p(exp(-|z|)); d/dz = sigmoid(z) - y, d/dy = -z",
    examples=((("f64[2, 3]", "f64[2, 3]"), {}, {1: "unit"}), (("f64[2, 3]", "f64[3]"), {}, {1: "unit"})),
    costly=True, expand=forms.bce_with_logits_form,
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


def _bce_vjp(node, ct, needs):
    p, y = node.inputs
    out = [None, None]
    if needs[0]:
        out[0] = B.unbroadcast(B.mul(ct, _bce_dp(p, y)), p.type)
    if needs[1]:
        out[1] = B.unbroadcast(B.mul(ct, _bce_dy(p)), y.type)
    return out


def _bce_jvp(node, ts):
    p, y = node.inputs
    parts = []
    if ts[0] is not None:
        parts.append(B.mul(ts[0], _bce_dp(p, y)))
    if ts[1] is not None:
        parts.append(B.mul(ts[1], _bce_dy(p)))
    out = parts[0] if len(parts) == 1 else B.add(*parts)
    return B.broadcast_to(out, node.shape)


def _bce_meaning(p, y):
    sp = _sympy()
    return -(y * sp.log(p) + (1 - y) * sp.log(1 - p))


register(Primitive(
    "binary_cross_entropy", "nn", _bce_infer("binary_cross_entropy"), helper_call("binary_cross_entropy"),
    _bce_vjp, _bce_jvp, sym_map(_bce_meaning), coerce=_float_all, elementwise=True,
    doc="-(y log p + (1-y) log(1-p)), logs clamped at -100; PyTorch's gradient",
    examples=((("f64[2, 3]", "f64[2, 3]"), {}, {0: "unit", 1: "unit"}),),
    quiet=True,
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


def _ce_grad(node):
    logits, labels = node.inputs
    p = B.apply("softmax", logits, axis=logits.type.rank - 1)
    return B.sub(p, B.cast(forms.labels_onehot(labels, logits.shape[-1]), logits.dtype))


def _ce_vjp(node, ct, needs):
    g = B.reshape(ct, ct.shape + (1,))
    return [B.mul(g, _ce_grad(node)), None]


def _ce_jvp(node, ts):
    logits = node.inputs[0]
    return B.apply("sum", B.mul(ts[0], _ce_grad(node)), axes=(logits.type.rank - 1,), keepdims=False)


def _ce_meaning(args, node):
    sp = _sympy()
    logits = np.asarray(args[0], dtype=object)
    labels = np.asarray(args[1], dtype=np.int64)
    out = np.empty(labels.shape, dtype=object)
    for idx in np.ndindex(labels.shape):
        row = logits[idx]
        out[idx] = sp.log(sp.Add(*[sp.exp(v) for v in row])) - row[int(labels[idx])]
    return out


register(Primitive(
    "cross_entropy", "nn", _ce_infer, helper_call("cross_entropy"), _ce_vjp, _ce_jvp, _ce_meaning,
    coerce=lambda a, k: [B.to_float(a[0]), a[1]],
    doc="logsumexp(logits) - logits[label]; labels are checked to lie in [0, C)",
    examples=((("f64[2, 3]", "i64[2]"), {}, {1: "int:0:3"}), (("f64[4]", "i64"), {}, {1: "int:0:4"})),
    costly=True, quiet=True, expand=forms.cross_entropy_form,
))


def _onehot_infer(types, attrs):
    return TensorType(DType.BOOL, types[0].shape + (attrs["depth"],))


def _onehot_emit(ctx, args, node):
    # an out-of-range label is an error, not a row of zeros (or, negative, a row from the end)
    return Expr(f"{ctx.helper('labels_onehot')}({args[0].text}, {ctx.dim(node.attr('depth'))})", PREC_POSTFIX)


def _onehot_meaning(args, node):
    labels = np.asarray(args[0], dtype=np.int64)
    from .shape import _concrete

    depth = _concrete((node.attr("depth"),))[0]
    return (labels[..., None] == np.arange(depth)).astype(object)


register(Primitive(
    "onehot", "nn", _onehot_infer, _onehot_emit, None, None, _onehot_meaning, differentiable=False,
    doc="internal: the bool one-hot rows of cross_entropy's labels, checked to lie in [0, depth)",
))
