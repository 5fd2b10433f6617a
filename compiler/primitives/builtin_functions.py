"""The built-in functions and operators of the language (docs/language.md) and how each lowers to IR.

Each entry names its parameters (so arguments may be given by position or
keyword) and says which are *static*: known at compile time, like `axis=`,
shapes, `dtype=` and the einsum spec. Most entries apply one primitive; the
rest are expansions (mean, var, std, trace, outer, stack, the constructors)
and need no rule of their own.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from ..core.diagnostics import UserError
from ..core.ir import Node
from ..core.primitive import ops
from ..core.types import (
    DimLike,
    DType,
    dim_add,
    dim_div,
    dim_mul,
    dim_prod,
    dim_sub,
    dim_text,
    shape_text,
)
from . import algebra as B
from .common import normalize_axes, normalize_axis
from .linalg import full_spec, parse_spec

# parameter kinds
TENSOR = "tensor"  # any expression
AXES = "axes"  # int, list of ints or absent (None)
AXIS = "axis"  # one int
BOOL = "bool"  # true / false
SHAPE = "shape"  # [d, ...] of ints and size symbols (and -1 where allowed)
DTYPE = "dtype"  # a dtype name
INT = "int"  # a static integer
DIM = "dim"  # a static size: int or symbol
SPEC = "spec"  # the einsum string
LIST = "list"  # [e1, e2, ...] of tensor expressions
REST = "rest"  # the remaining positional arguments (einsum operands)
NESTED = "nested"  # an int, or a list of ints and lists of ints (pad widths, tensordot axes)
ORD = "ord"  # a number, inf, -inf or a string (norm's ord)

REQUIRED = object()


@dataclass(frozen=True)
class P:
    name: str
    kind: str
    default: Any = REQUIRED


@dataclass(frozen=True)
class Builtin:
    name: str
    params: tuple[P, ...]
    lower: Callable[..., Node]
    doc: str = ""


BUILTINS: dict[str, Builtin] = {}


def builtin(name: str, *params: P, doc: str = ""):
    def deco(fn):
        BUILTINS[name] = Builtin(name, params, fn, doc)
        return fn

    return deco


# ---- elementwise ----------------------------------------------------------------------------------
for _op in ("exp log log1p expm1 sqrt abs sign sin cos tan tanh sigmoid relu softplus stop_gradient "
            "arcsin arccos arctan sinh cosh arcsinh arccosh arctanh log2 log10 exp2 cbrt square reciprocal "
            "floor ceil round trunc "
            "erf erfc erfinv erfcx lgamma digamma logit ndtr log_ndtr i0 i1 i0e i1e j0 j1").split():
    builtin(_op, P("x", TENSOR))(lambda x, _op=_op: B.apply(_op, x))

for _op in ("maximum", "minimum", "bce_with_logits", "binary_cross_entropy", "arctan2", "hypot", "mod", "fmod",
            "xlogy", "xlog1py"):
    _names = {"bce_with_logits": ("logits", "targets"), "binary_cross_entropy": ("p", "targets"),
              "arctan2": ("y", "x"), "xlogy": ("x", "y"), "xlog1py": ("x", "y")}.get(_op, ("a", "b"))
    builtin(_op, P(_names[0], TENSOR), P(_names[1], TENSOR))(lambda a, b, _op=_op: B.apply(_op, a, b))


@builtin("polygamma", P("n", INT), P("x", TENSOR))
def _polygamma(n, x):
    return B.apply("digamma", x) if n == 0 else B.apply("polygamma", x, n=n)


@builtin("where", P("cond", TENSOR), P("a", TENSOR), P("b", TENSOR))
def _where(cond, a, b):
    return B.apply("where", cond, a, b)


@builtin("clip", P("x", TENSOR), P("lo", TENSOR), P("hi", TENSOR))
def _clip(x, lo, hi):
    return B.apply("clip", x, lo, hi)


for _dt in DType:
    builtin(_dt.short, P("x", TENSOR), doc=f"cast to {_dt.short}")(lambda x, _dt=_dt: B.cast(x, _dt))


# ---- reductions -------------------------------------------------------------------------------------
def _axes(x: Node, axis) -> tuple[int, ...]:
    return normalize_axes(axis, x.type.rank)


def _reduce(op):
    def lower(x, axis=None, keepdims=False):
        axes = _axes(x, axis)
        if not axes:  # a scalar, or axis=[]: nothing to reduce
            return B.to_float(x) if op == "logsumexp" else x
        return B.apply(op, x, axes=axes, keepdims=keepdims)

    return lower


for _op in ("sum", "prod", "max", "min", "logsumexp"):
    builtin(_op, P("x", TENSOR), P("axis", AXES, None), P("keepdims", BOOL, False))(_reduce(_op))


def _count(x: Node, axes) -> DimLike:
    return dim_prod(x.shape[a] for a in axes)


@builtin("mean", P("x", TENSOR), P("axis", AXES, None), P("keepdims", BOOL, False))
def _mean(x, axis=None, keepdims=False):
    x = B.to_float(x)
    axes = _axes(x, axis)
    if not axes:
        return x
    return B.div(B.apply("sum", x, axes=axes, keepdims=keepdims), B.dim_value(_count(x, axes)))


@builtin("var", P("x", TENSOR), P("axis", AXES, None), P("keepdims", BOOL, False), P("ddof", INT, 0))
def _var(x, axis=None, keepdims=False, ddof=0):
    x = B.to_float(x)
    axes = _axes(x, axis)
    n = _count(x, axes)
    if axes:
        mu = B.div(B.apply("sum", x, axes=axes, keepdims=True), B.dim_value(n))
        d = B.sub(x, mu)
        total = B.apply("sum", B.mul(d, d), axes=axes, keepdims=keepdims)
    else:  # nothing reduced (a scalar, or axis=[]): each value is its own mean, exactly 0 apart,
        # a constant: (x - x)^2 would give std's sqrt an operand that is 0 with derivative 0,
        # and sqrt'(0) * 0 = NaN where the derivative is 0
        total = B.zeros_like(x)
    # NumPy divides by max(n - ddof, 0): a ddof of n or more gives inf (nan for 0 / 0), never a
    # negative divisor
    count = dim_sub(n, ddof)
    if isinstance(count, int):
        return B.div(total, B.dim_value(max(count, 0)))
    divisor = B.dim_value(count)
    if ddof > 0:
        divisor = B.apply("maximum", divisor, B.dim_value(0))
    return B.div(total, divisor)


@builtin("std", P("x", TENSOR), P("axis", AXES, None), P("keepdims", BOOL, False), P("ddof", INT, 0))
def _std(x, axis=None, keepdims=False, ddof=0):
    """sqrt(var(...)); the derivative where the slice is constant (var == 0) is 0, PyTorch's
    (torch.std), not sqrt'(0) * 0 = NaN. A NaN or inf variance stays NaN or inf."""
    v = _var(x, axis, keepdims, ddof)
    zero = B.apply("eq", v, B.like_const(0, v))
    return B.where(zero, B.like_const(0, v), B.apply("sqrt", B.where(zero, B.like_const(1, v), v)))


# ---- scans and order --------------------------------------------------------------------------------
def _one_axis(x: Node, axis, name: str) -> int:
    if x.type.rank == 0:
        raise UserError(f"`{name}` needs an array with an axis, got {x.type}", arg=0)
    return normalize_axis(axis, x.type.rank)


def _ordered(x: Node, name: str) -> None:
    """Orders (sort, topk) say so themselves, not through the argsort they expand to."""
    if x.dtype == DType.BOOL:
        raise UserError(f"`{name}` of bool values: convert first, e.g. with i64(...)", arg=0)


def _whole(x: Node, axis, name: str) -> int:
    """axis=None (NumPy: over the flattened array) is taken for a 1-D array only."""
    if axis is None:
        if x.type.rank != 1:
            raise UserError(f"`{name}` of {x.type} needs `axis=` (NumPy would flatten it first)", arg="axis")
        return 0
    return _one_axis(x, axis, name)


def _along(x: Node, axis: int, item) -> Node:
    return B.apply("index", x, items=(("s", None, None, 1),) * axis + (item,))


@builtin("cumsum", P("x", TENSOR), P("axis", AXIS, None))
def _cumsum(x, axis=None):
    return B.apply("cumsum", x, axis=_whole(x, axis, "cumsum"))


@builtin("cumprod", P("x", TENSOR), P("axis", AXIS, None))
def _cumprod(x, axis=None):
    return B.apply("cumprod", x, axis=_whole(x, axis, "cumprod"))


@builtin("logcumsumexp", P("x", TENSOR), P("axis", AXIS, None))
def _logcumsumexp(x, axis=None):
    return B.apply("logcumsumexp", x, axis=_whole(x, axis, "logcumsumexp"))


@builtin("diff", P("x", TENSOR), P("n", INT, 1), P("axis", AXIS, -1))
def _diff(x, n=1, axis=-1):
    axis = _one_axis(x, axis, "diff")
    if n < 0:
        raise UserError(f"`diff` needs n >= 0, got {n}", arg="n")
    d = x.shape[axis]
    if isinstance(d, int) and n > d:
        raise UserError(f"`diff` with n={n} on axis {axis} of {x.type} (size {d}): n must be at most {d}", arg="n")
    for _ in range(n):
        x = B.sub(_along(x, axis, ("s", 1, None, 1)), _along(x, axis, ("s", None, -1, 1)))
    return x


@builtin("flip", P("x", TENSOR), P("axis", AXES, None))
def _flip(x, axis=None):
    axes = _axes(x, axis)
    if not axes:
        return x
    items = tuple(("s", None, None, -1 if a in axes else 1) for a in range(max(axes) + 1))
    return B.apply("index", x, items=items)


@builtin("roll", P("x", TENSOR), P("shift", INT), P("axis", AXIS, None))
def _roll(x, shift, axis=None):
    if axis is None and x.type.rank != 1:  # NumPy: roll the flattened array, then restore the shape
        flat = B.reshape(x, (dim_prod(x.shape),))
        return B.reshape(B.apply("roll", flat, shift=shift, axis=0), x.shape)
    axis = _whole(x, axis, "roll")
    d = x.shape[axis]
    if isinstance(d, int) and (d == 0 or shift % d == 0):
        return x
    return B.apply("roll", x, shift=shift % d if isinstance(d, int) else shift, axis=axis)


@builtin("pad", P("x", TENSOR), P("widths", NESTED), P("value", TENSOR, 0))
def _pad(x, widths, value=0):
    """numpy.pad(x, widths, constant_values=value): widths an int (every side), [before, after]
    (every axis) or one [before, after] per axis.

    Derivative: linear: the cotangent's interior to x, the sum of its border to value."""
    r = x.type.rank
    if isinstance(widths, int):
        pairs = ((widths, widths),) * r
    elif all(isinstance(w, int) for w in widths) and len(widths) == 2 and r != 2:
        pairs = (tuple(widths),) * r
    else:
        pairs = tuple((w, w) if isinstance(w, int) else tuple(w) for w in widths)
    if len(pairs) != r or any(len(p) != 2 for p in pairs):
        given = str([list(w) if isinstance(w, tuple) else w for w in widths])
        raise UserError(f"`pad` of {x.type} needs {r} [before, after] pairs, got {given}", arg="widths")
    if any(w < 0 for p in pairs for w in p):
        raise UserError("`pad` widths must not be negative", arg="widths")
    if not isinstance(value, Node):
        value = B.like_const(value, x)
    if value.type.rank != 0:
        raise UserError(f"`pad` takes a scalar value, got {value.type}", arg="value")
    x, value = B.common_dtype([x, value])
    for axis, (before, after) in enumerate(pairs):
        parts = []
        for width in (before, after):
            shape = tuple(width if a == axis else d for a, d in enumerate(x.shape))
            parts.append(B.broadcast_to(value, shape) if width else None)
        pieces = [p for p in (parts[0], x, parts[1]) if p is not None]
        if len(pieces) > 1:
            x = B.apply("concat", *pieces, axis=axis)
    return x


@builtin("tile", P("x", TENSOR), P("reps", SHAPE))
def _tile(x, reps):
    """numpy.tile: x repeated reps[i] times along axis i (reps aligned to the right).

    Derivative: linear: the sum of the cotangent's copies."""
    reps = tuple(reps)
    if any(not isinstance(k, int) or k < 0 for k in reps):
        raise UserError(f"`tile` takes non-negative literal repetitions, got {list(reps)}", arg="reps")
    r = max(len(reps), x.type.rank)
    reps = (1,) * (r - len(reps)) + reps
    if x.type.rank < r:
        x = B.reshape(x, (1,) * (r - x.type.rank) + x.shape)
    if all(k == 1 for k in reps):
        return x
    # [k0, d0, k1, d1, ...] by broadcasting, then merged pairwise
    expanded = B.reshape(x, tuple(v for d in x.shape for v in (1, d)))
    spread = B.broadcast_to(expanded, tuple(v for k, d in zip(reps, x.shape) for v in (k, d)))
    return B.reshape(spread, tuple(dim_mul(k, d) for k, d in zip(reps, x.shape)))


@builtin("repeat", P("x", TENSOR), P("repeats", INT), P("axis", AXIS, None))
def _repeat(x, repeats, axis=None):
    """numpy.repeat with one count: each element `repeats` times in a row along axis (without
    axis, of the flattened array).

    Derivative: linear: the sum of the cotangent over each run."""
    if repeats < 0:
        raise UserError(f"`repeat` needs repeats >= 0, got {repeats}", arg="repeats")
    if axis is None:
        x, axis = B.reshape(x, (dim_prod(x.shape),)), 0
    axis = _one_axis(x, axis, "repeat")
    if repeats == 1:
        return x
    shape = x.shape
    inner = B.reshape(x, shape[:axis + 1] + (1,) + shape[axis + 1:])
    spread = B.broadcast_to(inner, shape[:axis + 1] + (repeats,) + shape[axis + 1:])
    return B.reshape(spread, shape[:axis] + (dim_mul(shape[axis], repeats),) + shape[axis + 1:])


@builtin("argsort", P("x", TENSOR), P("axis", AXIS, -1), P("descending", BOOL, False))
def _argsort(x, axis=-1, descending=False):
    return B.apply("argsort", x, axis=_one_axis(x, axis, "argsort"), descending=descending)


@builtin("sort", P("x", TENSOR), P("axis", AXIS, -1), P("descending", BOOL, False))
def _sort(x, axis=-1, descending=False):
    _ordered(x, "sort")
    axis = _one_axis(x, axis, "sort")
    order = B.apply("argsort", x, axis=axis, descending=descending)
    return B.apply("take_along_axis", x, order, axis=axis)


@builtin("topk", P("x", TENSOR), P("k", INT), P("axis", AXIS, -1))
def _topk(x, k, axis=-1):
    """(values, indices) of the k largest along axis, largest first; ties by position (first
    first), as a stable descending sort (torch.topk leaves that order open).

    Derivative: each value's gradient goes back to the element it came from; none to the i64
    indices."""
    _ordered(x, "topk")
    axis = _one_axis(x, axis, "topk")
    d = x.shape[axis]
    if k < 0 or (isinstance(d, int) and k > d):
        raise UserError(f"`topk` with k={k} on axis {axis} of {x.type}: k must lie in [0, {dim_text(d)}]", arg="k")
    order = B.apply("argsort", x, axis=axis, descending=True)
    if not isinstance(d, int) or k < d:  # (on a symbolic axis, a run-time check that N >= k)
        order = _along(order, axis, ("s", None, k, 1))
    return B.apply("take_along_axis", x, order, axis=axis), order


def _arg_extreme(name):
    def lower(x, axis=None, keepdims=False):
        if axis is None:  # NumPy: the index into the flattened array
            flat = B.reshape(x, (dim_prod(x.shape),))
            out = B.apply(name, flat, axis=0, keepdims=False)
            return B.reshape(out, (1,) * x.type.rank) if keepdims else out
        return B.apply(name, x, axis=_one_axis(x, axis, name), keepdims=keepdims)

    return lower


for _op in ("argmax", "argmin"):
    builtin(_op, P("x", TENSOR), P("axis", AXIS, None), P("keepdims", BOOL, False))(_arg_extreme(_op))


# ---- convolution and pooling (torch.nn.functional semantics, NCHW) ---------------------------------
def _pairs(value, n: int, what: str, fname: str, least: int) -> tuple[int, ...]:
    """An int or a list of n ints (stride=2 or stride=[2, 1]), each >= least."""
    values = (value,) * n if isinstance(value, int) else tuple(value)
    given = value if isinstance(value, int) else list(value)
    if len(values) != n or not all(isinstance(v, int) for v in values):
        raise UserError(f"`{fname}` takes `{what}` as an int or a list of {n} ints, got {given}", arg=what)
    if any(v < least for v in values):
        raise UserError(f"`{fname}` needs `{what}` >= {least}, got {given}", arg=what)
    return values


def _zero_pad(x: Node, pads: tuple[int, ...]) -> Node:
    """Zeros around the last len(pads) axes."""
    lead = x.type.rank - len(pads)
    for a, p in enumerate(pads):
        if p:
            axis = lead + a
            side = B.broadcast_to(B.like_const(0, x), tuple(p if k == axis else d for k, d in enumerate(x.shape)))
            x = B.apply("concat", side, x, side, axis=axis)
    return x


def _conv(n: int):
    name = f"conv{n}d"

    def lower(x, w, stride=1, padding=0, dilation=1, groups=1):
        if x.type.rank != n + 2:
            raise UserError(f"`{name}` takes x as [N, C, {', '.join('HW'[2 - n:] if n < 3 else 'DHW')}], got {x.type}",
                            arg=0)
        if w.type.rank != n + 2:
            raise UserError(f"`{name}` takes weights as [O, C / groups, kernel...], got {w.type}", arg=1)
        stride, padding, dilation = (_pairs(v, n, k, name, least) for v, k, least in
                                     ((stride, "stride", 1), (padding, "padding", 0), (dilation, "dilation", 1)))
        if groups < 1:
            raise UserError(f"`{name}` needs groups >= 1, got {groups}", arg="groups")
        kernel = w.shape[2:]
        if not all(isinstance(k, int) for k in kernel):
            raise UserError(f"`{name}` needs a kernel of literal size, got {w.type}", arg=1)
        c, o = x.shape[1], w.shape[0]
        if dim_mul(w.shape[1], groups) != c:
            raise UserError(f"`{name}`: x has {dim_text(c)} channels but the weights {w.type} with groups={groups} "
                            f"take {dim_text(dim_mul(w.shape[1], groups))}", arg=1)
        if isinstance(o, int) and o % groups:
            raise UserError(f"`{name}`: {o} output channels do not divide into groups={groups}", arg="groups")
        x, w = B.common_dtype([B.to_float(x), B.to_float(w)])
        return B.apply("conv", _zero_pad(x, padding), w, kernel=tuple(kernel), stride=stride, dilation=dilation,
                       groups=groups)

    return lower


for _n in (1, 2):
    builtin(f"conv{_n}d", P("x", TENSOR), P("w", TENSOR), P("stride", NESTED, 1), P("padding", NESTED, 0),
            P("dilation", NESTED, 1), P("groups", INT, 1))(_conv(_n))


def _pool(op: str):
    name = f"{op}_pool2d"

    def lower(x, k, stride=None):
        if x.type.rank < 2:
            raise UserError(f"`{name}` pools the last two axes; got {x.type}", arg=0)
        kernel = _pairs(k, 2, "k", name, 1)
        stride = kernel if stride is None else _pairs(stride, 2, "stride", name, 1)
        win = B.apply("windows", x if op == "max" else B.to_float(x), kernel=kernel, stride=stride, dilation=(1, 1))
        r = win.type.rank
        if op == "max":
            return B.apply("max", win, axes=(r - 2, r - 1), keepdims=False)
        return B.div(B.apply("sum", win, axes=(r - 2, r - 1), keepdims=False), B.like_const(kernel[0] * kernel[1], win))

    return lower


for _op in ("max", "avg"):
    builtin(f"{_op}_pool2d", P("x", TENSOR), P("k", NESTED), P("stride", NESTED, None))(_pool(_op))


# ---- linear algebra ---------------------------------------------------------------------------------
@builtin("einsum", P("spec", SPEC), P("operands", REST))
def _einsum(spec, *operands):
    subs, out, _ = parse_spec(spec, len(operands))
    return B.apply("einsum", *operands, spec=full_spec(subs, out))


@builtin("transpose", P("x", TENSOR), P("axes", AXES, None))
def _transpose(x, axes=None):
    r = x.type.rank
    if axes is None:
        perm = tuple(range(r))[::-1]
    else:
        axes = (axes,) if isinstance(axes, int) else tuple(axes)
        if len(axes) != r:
            raise UserError(f"`transpose` of {x.type} needs {r} axes, got {len(axes)}", arg="axes")
        perm = tuple(normalize_axis(a, r, "axes") for a in axes)
    if perm == tuple(range(r)):
        return x
    return B.apply("transpose", x, perm=perm)


@builtin("diagonal", P("x", TENSOR))
def _diagonal(x):
    return B.apply("diagonal", x)


@builtin("trace", P("x", TENSOR))
def _trace(x):
    d = B.apply("diagonal", x)
    return B.apply("sum", d, axes=(d.type.rank - 1,), keepdims=False)


@builtin("tril", P("x", TENSOR), P("k", INT, 0))
def _tril(x, k=0):
    return B.apply("tril", x, k=k)


@builtin("triu", P("x", TENSOR), P("k", INT, 0))
def _triu(x, k=0):
    return B.apply("triu", x, k=k)


@builtin("kron", P("a", TENSOR), P("b", TENSOR))
def _kron(a, b):
    """numpy.kron: blocks a[i, j, ...] * b; the operand of lower rank gains leading axes of 1.

    Derivative: that of the product a[i, j, ...] * b it is: the cotangent's blocks times the
    other operand, summed."""
    r = max(a.type.rank, b.type.rank)
    if r == 0:
        return B.mul(a, b)
    sa = (1,) * (r - a.type.rank) + a.shape
    sb = (1,) * (r - b.type.rank) + b.shape
    blocks = B.mul(B.reshape(a, tuple(v for d in sa for v in (d, 1))), B.reshape(b, tuple(v for d in sb for v in (1, d))))
    return B.reshape(blocks, tuple(dim_mul(p, q) for p, q in zip(sa, sb)))


@builtin("tensordot", P("a", TENSOR), P("b", TENSOR), P("axes", NESTED, 2))
def _tensordot(a, b, axes=2):
    """numpy.tensordot: axes=k contracts a's last k axes with b's first k; [[i, ...], [j, ...]]
    contracts a's axis i with b's axis j. Lowered to one einsum.

    Derivative: that einsum's: einsums of the cotangent with the other operand."""
    ra, rb = a.type.rank, b.type.rank
    if isinstance(axes, int):
        if not 0 <= axes <= min(ra, rb):
            raise UserError(f"`tensordot` of {a.type} and {b.type} cannot contract {axes} axes", arg="axes")
        pairs = [(ra - axes + i, i) for i in range(axes)]
    else:
        if len(axes) != 2 or not all(isinstance(s, tuple) for s in axes) or len(axes[0]) != len(axes[1]):
            raise UserError("`tensordot` axes are an int or two lists of one length, as in [[1], [0]]", arg="axes")
        pairs = [(normalize_axis(i, ra, "axes"), normalize_axis(j, rb, "axes")) for i, j in zip(*axes)]
    for i, j in pairs:
        if a.shape[i] != b.shape[j]:
            raise UserError(f"`tensordot` contracts axis {i} of {a.type} with axis {j} of {b.type}, but their "
                            f"sizes differ ({dim_text(a.shape[i])} vs {dim_text(b.shape[j])})", arg="axes")
    letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    sa = [next(letters) for _ in range(ra)]
    sb = [next(letters) for _ in range(rb)]
    for i, j in pairs:
        sb[j] = sa[i]
    out = [s for k, s in enumerate(sa) if k not in {i for i, _ in pairs}] + \
          [s for k, s in enumerate(sb) if k not in {j for _, j in pairs}]
    return B.apply("einsum", a, b, spec=f"{''.join(sa)},{''.join(sb)}->{''.join(out)}")


def _safe_sqrt(s):
    """sqrt(s) with derivative 0 where s == 0 (a norm's subgradient at 0, as torch.linalg's)."""
    pos = B.apply("gt", s, B.like_const(0, s))
    return B.where(pos, B.apply("sqrt", B.where(pos, s, B.like_const(1, s))), B.like_const(0, s))


_MATRIX_ORDS = {None, "fro", 1.0, -1.0, math.inf, -math.inf}
_SINGULAR_ORDS = {2.0, -2.0, "nuc"}


@builtin("norm", P("x", TENSOR), P("ord", ORD, None), P("axis", AXES, None), P("keepdims", BOOL, False))
def _norm(x, ord=None, axis=None, keepdims=False):
    """numpy.linalg.norm: vector norms (ord None/2, 1, inf, -inf, p > 1) along one axis, matrix
    norms (None/'fro', 1, -1, inf, -inf; 2, -2, 'nuc' from the singular values) over two; without
    axis, ord=None is the 2-norm of every element.

    Derivative: **decided:** 0 at 0 for the 2-, p- and Frobenius norms (torch.linalg.vector_norm),
    not 0/0; u diag(s-bar) vh for 2, -2 and 'nuc', finite also at equal or zero singular values
    (a subgradient; a tie of the largest shares it, as max does)."""
    x = B.to_float(x)
    r = x.type.rank
    if axis is None:
        if ord is None:  # the 2-norm of everything (NumPy's ravel)
            return _keep_shape(_safe_sqrt(B.sum_(B.mul(x, x), range(r))), x, tuple(range(r)), keepdims)
        if r not in (1, 2):
            raise UserError(f"`norm` with ord={_ord_text(ord)} of {x.type} needs `axis=` (NumPy: 1-D or 2-D only)",
                            arg="ord")
        axis = tuple(range(r))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    axes = tuple(normalize_axis(a, r, "axis") for a in axes)
    if len(axes) == 1:
        return _keep_shape(_vector_norm(x, axes[0], ord), x, axes, keepdims)
    if len(axes) != 2 or axes[0] == axes[1]:
        raise UserError(f"`norm` takes one axis (a vector norm) or two (a matrix norm), got {list(axes)}", arg="axis")
    if ord in _SINGULAR_ORDS:
        return _keep_shape(_singular_norm(x, axes, ord), x, axes, keepdims)
    if ord not in _MATRIX_ORDS:
        raise UserError(f"`norm` takes ord None, 'fro', 'nuc', 1, -1, 2, -2, inf or -inf over two axes, got "
                        f"{_ord_text(ord)}", arg="ord")
    return _keep_shape(_matrix_norm(x, axes, ord), x, axes, keepdims)


def _ord_text(ord):
    return repr(ord) if isinstance(ord, str) else ("inf" if ord == math.inf else "-inf" if ord == -math.inf
                                                   else f"{ord:g}")


def _vector_norm(x, axis, ord):
    a = B.apply("abs", x)
    if ord in (None, 2.0):
        return _safe_sqrt(B.sum_(B.mul(x, x), (axis,)))
    if ord == 1.0:
        return B.sum_(a, (axis,))
    if ord in (math.inf, -math.inf):
        return B.apply("max" if ord > 0 else "min", a, axes=(axis,), keepdims=False)
    if isinstance(ord, float) and ord > 1:
        s = B.sum_(B.apply("pow", a, B.like_const(ord, a)), (axis,))
        pos = B.apply("gt", s, B.like_const(0, s))
        root = B.apply("pow", B.where(pos, s, B.like_const(1, s)), B.like_const(1 / ord, s))
        return B.where(pos, root, B.like_const(0, s))
    raise UserError(f"`norm` takes ord None, 1, 2, inf, -inf or a number p > 1 for vectors, got {_ord_text(ord)}",
                    arg="ord")


def _matrix_norm(x, axes, ord):
    if ord in (None, "fro"):
        return _safe_sqrt(B.sum_(B.mul(x, x), axes))
    a = B.apply("abs", x)
    rows, cols = axes
    summed, over = (rows, cols) if ord in (1.0, -1.0) else (cols, rows)  # 1: max column sum; inf: max row sum
    sums = B.apply("sum", a, axes=(summed,), keepdims=True)
    ext = B.apply("max" if ord > 0 else "min", sums, axes=(over,), keepdims=True)
    return B.reshape(ext, tuple(d for k, d in enumerate(x.shape) if k not in axes))


def _singular_norm(x, axes, ord):
    """2 / -2: the largest / smallest singular value, 'nuc': their sum (svd's s over the two axes)."""
    from .svd import parts

    perm = tuple(k for k in range(x.type.rank) if k not in axes) + tuple(axes)
    if perm != tuple(range(x.type.rank)):
        x = B.apply("transpose", x, perm=perm)
    _, s, _ = parts(B.apply("svd_triple", x), x.shape[-2])
    last = (s.type.rank - 1,)
    if ord == "nuc":
        return B.sum_(s, last)
    return B.apply("max" if ord > 0 else "min", s, axes=last, keepdims=False)


def _keep_shape(value, x, axes, keepdims):
    if not keepdims:
        return value
    return B.reshape(value, tuple(1 if k in axes else d for k, d in enumerate(x.shape)))


@builtin("solve", P("a", TENSOR), P("b", TENSOR))
def _solve(a, b):
    return B.apply("solve", a, b)


@builtin("inv", P("a", TENSOR))
def _inv(a):
    return B.apply("inv", a)


@builtin("det", P("a", TENSOR))
def _det(a):
    return B.apply("det", a)


@builtin("slogdet", P("a", TENSOR))
def _slogdet(a):
    """(sign, log |det a|), numpy.linalg.slogdet's two results.

    Derivative: inv(a)^T for logabsdet (NumPy's LinAlgError at an exactly singular a); none for
    sign."""
    return B.apply("signdet", a), B.apply("logabsdet", a)


@builtin("eigh", P("a", TENSOR))
def _eigh(a):
    """(w, v): eigenvalues ascending and eigenvectors (columns) of a symmetric a, from its lower
    triangle (numpy.linalg.eigh); eigenvectors are defined up to sign.

    Derivative: Giles', symmetric; where two eigenvalues are equal the eigenvectors' is inf/NaN
    (as PyTorch's), a loss of w alone stays finite."""
    from .eigen import parts

    return parts(B.apply("eigh_pair", a))


@builtin("svd", P("a", TENSOR))
def _svd(a):
    """(u, s, vh): numpy.linalg.svd(a, full_matrices=False), s descending; signs LAPACK's.

    Derivative: Townsend 2016; u and vh have an inf/NaN one where two singular values are equal
    (or one is 0 and a is not square), as PyTorch's; a loss of s alone gets u diag(s-bar) vh."""
    from .svd import parts

    return parts(B.apply("svd_triple", a), a.shape[-2])


@builtin("qr", P("a", TENSOR))
def _qr(a):
    """(q, r): numpy.linalg.qr(a) (reduced): q orthonormal columns, r upper triangular; signs
    LAPACK's.

    Derivative: Walter and Lehmann 2018, with triangular solves (a wide a through its square
    leading block); inf/NaN where r's diagonal has a 0."""
    from .qr import parts

    return parts(B.apply("qr_pair", a), a.shape[-2])


@builtin("cholesky", P("a", TENSOR))
def _cholesky(a):
    return B.apply("cholesky", a)


@builtin("logdet", P("a", TENSOR))
def _logdet(a):
    """log det a of a symmetric positive definite a: 2 sum(log(diag(cholesky(a)))); LinAlgError
    for an a that is not positive definite.

    Derivative: a^-1 from the Cholesky factor (primitives/spd.py), never an LU inverse; symmetric,
    as cholesky's (PyTorch's convention)."""
    from .factorized import _square

    a = B.to_float(a)
    _square(a.type, "logdet")  # (before cholesky's own check, which would name cholesky)
    return B.apply("spd_logdet", a, B.apply("cholesky", a))


@builtin("solve_triangular", P("a", TENSOR), P("b", TENSOR), P("lower", BOOL, True))
def _solve_triangular(a, b, lower=True):
    return B.apply("solve_triangular", a, b, lower=lower)


@builtin("cho_solve", P("l", TENSOR), P("b", TENSOR))
def _cho_solve(l, b):
    """(l l^T)^-1 b from the lower Cholesky factor l (scipy.linalg.cho_solve). When l is
    cholesky(a) in this program, a solve with a (primitives/spd.py), whose derivative goes to a
    directly; else two triangular solves.

    Derivative: of cho_solve(cholesky(a), b), -sym(u x^T) to a with u one more solve; else that of
    the two triangular solves, to l."""
    if l.op is ops.cholesky:
        return B.apply("spd_solve", l.inputs[0], l, b)
    r = l.type.rank
    vector = b.type.rank == 1
    col = B.reshape(b, b.shape + (1,)) if vector else b  # (a batch of vectors would read as matrices)
    y = B.apply("solve_triangular", l, col, lower=True)
    x = B.apply("solve_triangular", B.apply("transpose", l, perm=tuple(range(r - 2)) + (r - 1, r - 2)), y,
                lower=False)
    return B.reshape(x, x.shape[:-1]) if vector else x


@builtin("outer", P("a", TENSOR), P("b", TENSOR))
def _outer(a, b):
    for i, v in enumerate((a, b)):
        if v.type.rank != 1:
            raise UserError(f"`outer` takes 1-D operands, got {v.type}", arg=i)
    return B.mul(B.apply("expand_dims", a, axes=(1,)), b)


# ---- shapes ---------------------------------------------------------------------------------------
@builtin("reshape", P("x", TENSOR), P("shape", SHAPE))
def _reshape(x, shape):
    shape = list(shape)
    holes = [i for i, d in enumerate(shape) if d == -1]
    if len(holes) > 1:
        raise UserError("`reshape` allows at most one -1", arg="shape")
    for d in shape:
        if isinstance(d, int) and d < -1:
            raise UserError(f"`reshape` size {d} is negative", arg="shape")
    if holes:
        known = dim_prod(d for d in shape if d != -1)
        total = dim_prod(x.shape)
        rest = dim_div(total, known) if known != 0 else None
        if rest is None:
            raise UserError(f"cannot reshape {x.type} to {shape_text(tuple(shape))}: "
                            f"{total} elements do not divide into {known}", arg="shape")
        shape[holes[0]] = rest
    return B.reshape(x, tuple(shape))


@builtin("broadcast_to", P("x", TENSOR), P("shape", SHAPE))
def _broadcast_to(x, shape):
    return B.broadcast_to(x, tuple(shape))


@builtin("squeeze", P("x", TENSOR), P("axis", AXES, None))
def _squeeze(x, axis=None):
    if axis is None:
        axes = tuple(i for i, d in enumerate(x.shape) if d == 1)
    else:
        axes = normalize_axes(axis, x.type.rank)
    return B.apply("squeeze", x, axes=axes) if axes else x


@builtin("expand_dims", P("x", TENSOR), P("axis", AXES))
def _expand_dims(x, axis):
    n = len((axis,) if isinstance(axis, int) else axis)
    axes = normalize_axes(axis, x.type.rank + n)
    return B.apply("expand_dims", x, axes=axes)


@builtin("concat", P("xs", LIST), P("axis", AXIS, 0))
def _concat(xs, axis=0):
    if not xs:
        raise UserError("`concat` needs at least one value", arg="xs")
    axis = normalize_axis(axis, xs[0].type.rank)
    return xs[0] if len(xs) == 1 else B.apply("concat", *xs, axis=axis)


@builtin("stack", P("xs", LIST), P("axis", AXIS, 0))
def _stack(xs, axis=0):
    if not xs:
        raise UserError("`stack` needs at least one value", arg="xs")
    axis = normalize_axis(axis, xs[0].type.rank + 1)
    for i, x in enumerate(xs):
        if x.shape != xs[0].shape:
            raise UserError(f"`stack` needs values of one shape: {xs[0].type} and {x.type}", arg="xs")
    parts = [B.apply("expand_dims", x, axes=(axis,)) for x in xs]
    return parts[0] if len(parts) == 1 else B.apply("concat", *parts, axis=axis)


@builtin("take", P("x", TENSOR), P("idx", TENSOR), P("axis", AXIS, 0))
def _take(x, idx, axis=0):
    return B.apply("take", x, idx, axis=normalize_axis(axis, x.type.rank))


@builtin("take_along_axis", P("x", TENSOR), P("idx", TENSOR), P("axis", AXIS))
def _take_along_axis(x, idx, axis):
    return B.apply("take_along_axis", x, idx, axis=normalize_axis(axis, x.type.rank))


# ---- constructors ----------------------------------------------------------------------------------
def _check_shape(shape):
    for d in shape:
        if isinstance(d, int) and d < 0:
            raise UserError(f"sizes must not be negative, got {d}", arg="shape")
    return tuple(shape)


def _full(shape, value, dtype):
    shape = _check_shape(shape)
    if dtype is None:
        return B.apply("full", shape=shape, value=value, dtype=DType.F64 if isinstance(value, float) else (
            DType.BOOL if isinstance(value, bool) else DType.I64), weak=True)
    return B.apply("full", shape=shape, value=value, dtype=dtype)


@builtin("zeros", P("shape", SHAPE), P("dtype", DTYPE, None))
def _zeros(shape, dtype=None):
    return _full(shape, 0.0, dtype)


@builtin("ones", P("shape", SHAPE), P("dtype", DTYPE, None))
def _ones(shape, dtype=None):
    return _full(shape, 1.0, dtype)


@builtin("full", P("shape", SHAPE), P("value", TENSOR), P("dtype", DTYPE, None))
def _full_builtin(shape, value, dtype=None):
    if value.type.rank != 0:
        raise UserError(f"`full` takes a scalar value, got {value.type}", arg="value")
    if value.is_const:
        v = value.attr("value")
        if dtype is None and not value.type.weak:
            return _full(shape, v, value.dtype)
        return _full(shape, v, dtype)
    if dtype is not None:
        value = B.cast(value, dtype)
    return B.broadcast_to(value, _check_shape(shape))


@builtin("eye", P("n", DIM), P("dtype", DTYPE, None))
def _eye(n, dtype=None):
    if dtype is None:
        return B.apply("eye", n=n, m=n, dtype=DType.F64, weak=True)
    return B.apply("eye", n=n, m=n, dtype=dtype)


def _like(value):
    def lower(x, dtype=None):
        return B.apply("full", shape=x.shape, value=value, dtype=dtype or x.dtype)

    return lower


builtin("zeros_like", P("x", TENSOR), P("dtype", DTYPE, None))(_like(0.0))
builtin("ones_like", P("x", TENSOR), P("dtype", DTYPE, None))(_like(1.0))


# ---- neural-network ops -----------------------------------------------------------------------------
def _axis_op(op):
    def lower(x, axis=-1):
        if x.type.rank == 0:
            raise UserError(f"`{op}` needs a value of rank 1 or more, got the scalar {x.type}", arg=0)
        return B.apply(op, x, axis=normalize_axis(axis, x.type.rank))

    return lower


builtin("softmax", P("x", TENSOR), P("axis", AXIS, -1))(_axis_op("softmax"))
builtin("log_softmax", P("x", TENSOR), P("axis", AXIS, -1))(_axis_op("log_softmax"))


@builtin("cross_entropy", P("logits", TENSOR), P("labels", TENSOR))
def _cross_entropy(logits, labels):
    return B.apply("cross_entropy", logits, labels)


NAMED_CONSTANTS = {"inf": math.inf, "pi": math.pi}


# ---- operators and other syntax ---------------------------------------------------------------------
OPERATORS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "%": "mod", "**": "pow", "@": "matmul",
             "==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
NEGATE = "neg"  # unary minus
INDEX = "index"  # x[...] with constant integers, slices and None (the items built by lowering)


def transpose_all(x: Node) -> Node:
    """`x.T`: the axes reversed (nothing to do below rank 2)."""
    r = x.type.rank
    return x if r < 2 else B.apply("transpose", x, perm=tuple(range(r))[::-1])


def static_dim(node: Node) -> DimLike | None:
    """A node of literals and size symbols (`N * 2 - 1`) as a static dimension; None otherwise."""
    if node.is_const and node.dtype.kind == "i":
        return int(node.attr("value"))
    if node.is_dim:
        return node.attr("dim")
    if node.op.name in ("add", "sub", "mul") and node.dtype.kind == "i":
        a, b = (static_dim(i) for i in node.inputs)
        if a is None or b is None:
            return None
        return {"add": dim_add, "sub": dim_sub, "mul": dim_mul}[node.op.name](a, b)
    if node.op.name == "neg":
        a = static_dim(node.inputs[0])
        return None if a is None else dim_sub(0, a)
    return None
