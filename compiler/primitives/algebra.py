"""What derivative rules are written with: smart constructors over `nodes.apply`.

The helpers below (`add`, `mul`, `where`, `unbroadcast`, ...) are what VJP/JVP rules read
like; they drop exact identities (`x * 1`, `x + 0`, `x ** 1`, `--x`) so derivative code
stays readable, and never fold `x * 0` (it is NaN for infinite x). Also here: dtype
coercion (`retype`, `cast`, `common_dtype`), the one place that undoes broadcasting
(`unbroadcast`), and masked cotangents (`masked`, `ct_map`, `add_ct`).

`apply`, `const`, `literal`, `dim_value` and `param` come from core/nodes.py; they are
re-exported so that a rule needs one import (`from . import algebra as B`).
"""
from __future__ import annotations

from typing import Sequence

from ..core import ir
from ..core.diagnostics import UserError
from ..core.ir import Node, make_node, name_of
from ..core.nodes import (  # noqa: F401  (re-exported)
    apply,
    const,
    dim_value,
    dim_value_strong,
    literal,
    param,
    retype_leaf,
)
from ..core.primitive import Kind
from ..core.types import DType, Shape, TensorType, broadcast_shapes, promote


# ---- dtype handling -------------------------------------------------------------------------
def retype(x: Node, dtype: DType, weak: bool = False) -> Node:
    """x as `dtype`. Weak literals and constructors are re-made in the new dtype rather than cast."""
    made = x.is_literal or x.op.kind is Kind.CONSTRUCTOR  # made in the new dtype, never cast
    if x.dtype == dtype:
        if x.type.weak and not weak and made:
            return make_node(x.op, x.inputs, x.attrs, x.type.strong(), x.span, name_of(x))
        return x  # same dtype: nothing to do at run time
    if made:
        return retype_leaf(x, dtype, weak)
    if x.type.weak and x.op.elementwise and x.op.name not in _DTYPE_CHANGING:
        return apply(x.op, *[retype(i, dtype, weak) if i.type.weak else i for i in x.inputs], **x.attr_dict)
    return apply("cast", x, dtype=dtype)


# ops whose result dtype is not their operands' (a weak comparison stays a comparison)
_DTYPE_CHANGING = {"eq", "ne", "lt", "le", "gt", "ge", "cast", "logical_and", "logical_or", "logical_not"}


def common_dtype(args: Sequence[Node]) -> list[Node]:
    """Coerce operands to their promoted dtype (NumPy 2 rules, literals weak)."""
    if args:
        dt = args[0].type.dtype
        for a in args:
            t = a.type
            if t.dtype is not dt or t.weak:
                break
        else:
            return list(args)  # strong operands of one dtype (most operations): nothing to coerce
    dt, weak = promote(*[a.type for a in args])
    return [retype(a, dt, weak) if (a.dtype != dt or (a.type.weak and not weak)) else a for a in args]


def cast(x: Node, dtype: DType) -> Node:
    if x.dtype == dtype and not x.type.weak:
        return x
    return retype(x, dtype)


def to_float(x: Node) -> Node:
    """Integers and bools become f64 (NumPy's default float), keeping weakness."""
    return x if x.dtype.is_float else retype(x, DType.F64, x.type.weak)


# ---- constructors rules use ---------------------------------------------------------------------
def like_const(value, x: Node) -> Node:
    """A scalar of x's dtype."""
    return const(value, TensorType(x.dtype, ()))


def zeros(shape: Shape, dtype: DType) -> Node:
    return apply("full", shape=tuple(shape), value=0.0 if dtype.is_float else 0, dtype=dtype)


def zeros_like(x: Node) -> Node:
    return zeros(x.shape, x.dtype)


def is_const(x: Node | None, value) -> bool:
    return x is not None and x.is_const and x.attr("value") == value


def _keep(x: Node, t: TensorType) -> bool:
    """Dropping an identity is exact only if it leaves the type unchanged."""
    return x.type.shape == t.shape and x.dtype == t.dtype


def implicit_broadcast(a: Node, b: Node) -> tuple[Node, Node]:
    """Drop an explicit broadcast_to/reshape of an operand when NumPy's implicit
    broadcasting against the other operand gives the same result (exact)."""
    if a.op.name not in _VIEWS and b.op.name not in _VIEWS:
        return a, b  # nothing to drop (most operands)
    try:
        full = broadcast_shapes(a.shape, b.shape)
    except UserError:
        return a, b

    def strip(x: Node, other: Node) -> Node:
        while x.op.name in _VIEWS:
            inner = x.inputs[0]
            if x.op.name == "reshape" and not _leading_ones(inner.shape, x.shape):
                break
            try:
                if broadcast_shapes(inner.shape, other.shape) != full:
                    break
            except UserError:
                break
            x = inner
        return x

    a2 = strip(a, b)
    b2 = strip(b, a2)
    return a2, b2


_VIEWS = ("broadcast_to", "reshape")  # what implicit_broadcast may drop


def _leading_ones(inner: Shape, outer: Shape) -> bool:
    """outer is inner with size-1 axes added in front only (so broadcasting aligns them)."""
    k = len(outer) - len(inner)
    return k >= 0 and all(d == 1 for d in outer[:k]) and tuple(outer[k:]) == tuple(inner)


def add(a: Node, b: Node) -> Node:
    a, b = implicit_broadcast(a, b)
    out = apply("add", a, b)
    if not (a.is_const or b.is_const):
        return out  # (no identity to drop: most sums)
    if is_const(b, 0) and _keep(a, out.type):
        return a
    if is_const(a, 0) and _keep(b, out.type):
        return b
    return out


def sub(a: Node, b: Node) -> Node:
    a, b = implicit_broadcast(a, b)
    out = apply("sub", a, b)
    if is_const(b, 0) and _keep(a, out.type):
        return a
    return out


def mul(a: Node, b: Node) -> Node:
    a, b = implicit_broadcast(a, b)
    out = apply("mul", a, b)
    if not (a.is_const or b.is_const):
        return out  # (no identity to drop: most products)
    if is_const(b, 1) and _keep(a, out.type):
        return a
    if is_const(a, 1) and _keep(b, out.type):
        return b
    if is_const(b, -1) and _keep(a, out.type):
        return neg(a)
    if is_const(a, -1) and _keep(b, out.type):
        return neg(b)
    return out


def div(a: Node, b: Node) -> Node:
    a, b = implicit_broadcast(a, b)
    out = apply("div", a, b)
    if is_const(b, 1) and _keep(a, out.type):
        return a
    return out


def neg(a: Node) -> Node:
    if a.op.name == "neg":
        return a.inputs[0]
    return apply("neg", a)


def pow_(a: Node, b: Node) -> Node:
    out = apply("pow", a, b)
    if is_const(b, 1) and _keep(a, out.type):
        return a
    return out


def square(a: Node) -> Node:
    return mul(a, a)


def where(c: Node, a: Node, b: Node) -> Node:
    return apply("where", c, a, b)


def call(op: str, *args: Node, **attrs) -> Node:
    return apply(op, *args, **attrs)


# ---- shapes --------------------------------------------------------------------------------------
def sum_(x: Node, axes: Sequence[int], keepdims: bool = False) -> Node:
    axes = tuple(sorted(a % x.type.rank for a in axes)) if x.type.rank else ()
    if not axes:
        return x
    return apply("sum", x, axes=axes, keepdims=keepdims)


def _single(x: Node) -> bool:
    return all(d == 1 for d in x.shape)


def reshape(x: Node, shape: Shape) -> Node:
    shape = tuple(shape)
    if shape == x.shape:
        return x
    if x.op.name == "reshape":  # reshape of a reshape: one reshape
        return reshape(x.inputs[0], shape)
    if x.op.name == "broadcast_to" and _single(x.inputs[0]):  # a broadcast scalar, re-shaped: broadcast it there
        return broadcast_to(reshape(x.inputs[0], ()), shape)
    return apply("reshape", x, shape=shape)


def broadcast_to(x: Node, shape: Shape) -> Node:
    shape = tuple(shape)
    if shape == x.shape:
        return x
    if x.op.name == "broadcast_to":  # broadcasting twice is broadcasting once
        return broadcast_to(x.inputs[0], shape)
    return apply("broadcast_to", x, shape=shape)


def unbroadcast(ct: Node, target: TensorType) -> Node:
    """Sum a cotangent down to the shape its primal had before broadcasting.

    This is the only place that undoes NumPy broadcasting: leading axes the primal
    lacked are summed away, axes where it had size 1 are summed with keepdims.
    """
    if ct.type is target:
        return ct  # (the common case: nothing was broadcast)
    shape = ct.shape
    lead = len(shape) - target.rank
    kept = [lead + i for i, d in enumerate(target.shape) if d == 1 and shape[lead + i] != 1]
    if lead == 0 and not kept:
        return ct
    if not kept:
        out = sum_(ct, range(lead))
    else:
        out = reshape(sum_(ct, list(range(lead)) + kept, keepdims=True), target.shape)
    return out


def expand_reduced(ct: Node, x: TensorType, axes: Sequence[int], keepdims: bool) -> Node:
    """The cotangent of a reduction, broadcast back over the reduced axes of x."""
    if not keepdims and axes:
        shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
        ct = reshape(ct, shape)
    return broadcast_to(ct, x.shape)


def broadcast_all(*xs: Node) -> Shape:
    return broadcast_shapes(*[x.shape for x in xs])


# ---- masked cotangents (docs/language.md, "Conventions") -------------------------------------
def masked(c: Node, g: Node) -> Node:
    """where(c, g, 0): the cotangent of a path that `where`, `relu`, `clip`, ... cut off."""
    return where(c, g, like_const(0, g))


def mask_of(ct: Node) -> tuple[Node, Node] | None:
    """(mask, unmasked cotangent) if ct is where(mask, g, 0), else None."""
    if ct.op.name == "where" and is_const(ct.inputs[2], 0):
        return ct.inputs[0], ct.inputs[1]
    return None


def ct_map(ct: Node, f) -> Node:
    """f(ct) for an f linear in ct, keeping a mask outside: where(c, f(g), 0).

    That is what makes the branch not taken contribute exactly zero: f may hold
    a derivative that is inf or NaN where the mask is off (sqrt at 0, log at -1),
    and `where` drops it instead of multiplying 0 by it.
    """
    m = mask_of(ct)
    if m is None:
        return f(ct)
    c, g = m
    return masked(c, f(g))


def add_ct(a: Node | None, b: Node | None) -> Node | None:
    """Sum two cotangents of one value (fan-out); None is a symbolic zero."""
    if a is None:
        return b
    if b is None:
        return a
    ma, mb = mask_of(a), mask_of(b)
    total = add(a, b)
    if ma is not None and mb is not None and a.shape == b.shape:
        return masked(apply("logical_or", ma[0], mb[0]), total)
    return total


def span_of(node: Node):
    return ir.current_span() or node.span


def fail(message: str, arg: int | str | None = None):
    raise UserError(message, arg=arg)
