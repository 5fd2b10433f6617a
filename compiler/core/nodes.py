"""Making typed IR nodes: `apply` and the leaves.

`apply(op, *inputs, **attrs)` runs the primitive's dtype coercion and type rule, folds
operations on scalar literals, and interns the node (ir.make_node). Everything that creates
IR goes through here: lowering, derivative rules, passes. `op` is a record or, inside
primitives/, a name.

The leaves are made here too: `param` (a function parameter), `const` (a scalar literal)
and `dim` (the value of a size symbol). The smart constructors rules are written with
(`add`, `mul`, `unbroadcast`, ...) are in primitives/algebra.py.
"""
from __future__ import annotations

from operator import attrgetter
from typing import Any

import numpy as np

from .diagnostics import UserError
from .ir import Node, freeze_attrs, make_node, name_of
from .primitive import Primitive, get
from .types import Dim, DimLike, DType, TensorType


def apply(op: Primitive | str, *inputs: Node, span=None, name: str | None = None, **attrs: Any) -> Node:
    prim = get(op) if isinstance(op, str) else op
    args = list(inputs)
    if prim.coerce is not None:
        args = prim.coerce(args, attrs)  # (it may read the operands' values: run every time)
    if attrs:
        return _made(prim, args, freeze_attrs(attrs), _infer(prim, args, attrs), span, name)
    # no attributes (most operations): _infer's and _made's common paths, without their calls
    t = _TYPES.get((prim, tuple(map(_TYPE, args)), ()))
    if t is None:
        t = _infer(prim, args, attrs)
    if prim.fold is not None and t.shape == () and args and all(a.is_const for a in args):
        return const(_fold(prim, args, t), t)
    return make_node(prim, tuple(args), (), t, span, name)


def remake(node: Node, inputs: list[Node]) -> Node:
    """`node` made again over new inputs: apply(node.op, *inputs, **node.attrs), made faster for
    the passes, which remake every node above a rewritten one. Where the coerced inputs have the
    types node's own inputs had (nearly always), the type rule would give node's type again.
    Coercion decides from the operands' types (the one value it reads is a literal's: a negative
    integer exponent), so inputs of the very types coercion gave node's own, each a run-time value
    or the literal that was there, would be left as they are: it is not asked again."""
    prim, attrs = node.op, node.attr_dict
    old = node.inputs
    if len(inputs) == len(old) and all(a is b or ((a.type is b.type or a.type == b.type) and not a.is_literal)
                                       for a, b in zip(inputs, old)):
        return _made(prim, list(inputs), node.attrs, node.type, None, None)
    args = list(inputs)
    if prim.coerce is not None:
        args = prim.coerce(args, attrs)
    same = len(args) == len(node.inputs) and all(a.type is b.type or a.type == b.type
                                                 for a, b in zip(args, node.inputs))
    return _made(prim, args, node.attrs, node.type if same else _infer(prim, args, attrs), None, None)


def _infer(prim: Primitive, args: list[Node], attrs: dict[str, Any]) -> TensorType:
    # (no attributes, the common case: the key without sorting them)
    key = (prim, tuple([a.type for a in args]), ()) if not attrs else _type_key(prim, args, attrs)
    t = _TYPES.get(key) if key is not None else None
    if t is None:
        t = prim.infer([a.type for a in args], attrs)
        t = _ONE_OF_EACH.setdefault(t, t)
        if key is not None:
            if len(_TYPES) > 200_000:
                _TYPES.clear()
                _ONE_OF_EACH.clear()
            _TYPES[key] = t
    return t


def _made(prim: Primitive, args: list[Node], attrs: tuple, t: TensorType, span, name) -> Node:
    """The node of type t, interned; operations on scalar literals folded."""
    if prim.fold is not None and t.shape == () and args and all(a.is_const for a in args):
        return const(_fold(prim, args, t), t)
    return make_node(prim, tuple(args), attrs, t, span, name)


# Type rules are pure functions of the inputs' types and the attributes, and a large program
# asks the same question thousands of times (every pass rebuilds nodes): the answers are kept.
# Attribute values are keyed with their Python type (1, 1.0 and True are equal keys otherwise).
_TYPES: dict = {}
_TYPE = attrgetter("type")
# Equal types as one object (parameters' types too): most type comparisons are then identity
# checks, which containers and `is` make without calling TensorType.__eq__.
_ONE_OF_EACH: dict[TensorType, TensorType] = {}


def _type_key(prim: Primitive, args: list[Node], attrs: dict[str, Any]):
    try:
        key = (prim, tuple(a.type for a in args), tuple(sorted((k, _typed(v)) for k, v in attrs.items())))
        hash(key)
    except TypeError:
        return None
    return key


def _typed(v):
    if isinstance(v, (list, tuple)):
        return (type(v), tuple(_typed(x) for x in v))
    return (type(v), v)


def _fold(prim: Primitive, args: list[Node], t: TensorType):
    vals = [np.asarray(a.attr("value"), dtype=a.dtype.np)[()] for a in args]
    with np.errstate(all="ignore"):
        out = prim.fold(*vals)
    out = np.asarray(out).astype(t.dtype.np)[()].item()
    if t.dtype.kind == "i" and all(a.dtype.kind == "i" for a in args):
        exact = _exact(prim, [a.attr("value") for a in args])
        if exact is not None and exact != out:  # NumPy wrapped around: never a silently wrong constant
            shown = str(exact) if exact.bit_length() < 200 else "far too large"
            raise UserError(f"integer overflow: `{prim.name}` of the constants "
                            f"{', '.join(str(a.attr('value')) for a in args)} is {shown}, which does not fit {t.dtype}")
    return out


def _exact(prim: Primitive, values: list[int]) -> int | None:
    """The exact integer result of a fold, with Python's unbounded ints (None: not integral)."""
    try:
        if prim.fold_exact is not None:
            out = prim.fold_exact(*values)
        else:
            out = prim.fold(*[np.asarray(v, dtype=object) for v in values])
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    out = out.item() if isinstance(out, np.ndarray) else out
    return out if isinstance(out, int) and not isinstance(out, bool) else None


# ---- leaves ------------------------------------------------------------------------------
def const(value, t: TensorType | DType, weak: bool | None = None) -> Node:
    """A scalar literal of type `t` (a scalar type, or a dtype)."""
    if isinstance(t, DType):
        t = TensorType(t, (), bool(weak))
    elif weak is not None:
        t = t.with_(weak=weak)
    assert t.shape == (), "const nodes are scalars; use full() for tensors"
    t = _ONE_OF_EACH.setdefault(t, t)
    return make_node(get("const"), (), (("value", _in_dtype(value, t.dtype)),), t)


def _in_dtype(value, dtype: DType):
    """value as a Python scalar of dtype; an integer that does not fit is an error. Kept: rules
    make the same few literals (0, 1, 0.5) thousands of times, and NumPy's conversion is slow.
    (Not kept for 0.0 and nan: -0.0 == 0.0 and nan != nan as keys.)"""
    key = (type(value), value, dtype)
    exact = isinstance(value, int) or (isinstance(value, float) and value == value and value != 0)
    if exact and key in _IN_DTYPE:
        return _IN_DTYPE[key]
    if isinstance(value, int) and not isinstance(value, bool) and dtype.kind == "i":
        info = np.iinfo(dtype.np)
        if not info.min <= value <= info.max:
            raise UserError(f"integer constant {value} does not fit {dtype} ([{info.min}, {info.max}])")
    with np.errstate(over="ignore"):  # a float beyond the dtype's range is inf there (docs/language.md)
        v = np.asarray(value).astype(dtype.np)[()].item()  # (inf and nan are emitted by name)
    if exact:
        if len(_IN_DTYPE) > 100_000:
            _IN_DTYPE.clear()
        _IN_DTYPE[key] = v
    return v


_IN_DTYPE: dict = {}


def literal(value: bool | int | float) -> Node:
    """A weakly typed literal, as written in source."""
    if isinstance(value, bool):
        return const(value, DType.BOOL, weak=True)
    if isinstance(value, int):
        return const(value, DType.I64, weak=True)
    return const(value, DType.F64, weak=True)


def dim_value(d: DimLike) -> Node:
    """The value of a size symbol (or polynomial in them) as a weak integer scalar."""
    if isinstance(d, int):
        return literal(d)
    return make_node(get("dim"), (), (("dim", d),), TensorType(DType.I64, (), True))


def dim_value_strong(symbol: str) -> Node:
    """The value of one size symbol as a strong i64 scalar (a residual carrying a size)."""
    return retype_leaf(dim_value(Dim.symbol(symbol)), DType.I64, weak=False)


def param(name: str, t: TensorType, position: int, span=None, carries: str | None = None) -> Node:
    """A function parameter; `carries` names the size symbol a size-carrying parameter holds."""
    attrs = (("carries", carries),) if carries else ()
    t = _ONE_OF_EACH.setdefault(t, t)
    return make_node(get("param"), (), attrs + (("name", name), ("position", position)), t, span, name)


def retype_leaf(x: Node, dtype: DType, weak: bool = False) -> Node:
    """A literal or constructor made again as `dtype` (never a cast: it is made so)."""
    if x.is_const:
        return const(x.attr("value"), x.type.with_(dtype=dtype, weak=weak))
    return make_node(x.op, x.inputs, x.attrs, x.type.with_(dtype=dtype, weak=weak), x.span, name_of(x))
