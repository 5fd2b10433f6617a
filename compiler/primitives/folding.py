"""The constant-folding rules -O1 applies (passes/fold.py runs them), each named.

Scalar literals are folded as they are built (nodes.apply). These rules fold what is
constant but not a scalar: a `full` constructor (zeros, ones, full) passed through
elementwise ops, casts and views (reshapes, broadcasts, slices) stays a `full` of the
computed value, and a sum over a `full` is its value times the element count when that is
known.

No rule folds finite constants into inf or NaN (`in_range`): the run-time code computes the
same value anyway, and a rewrite that gathered constants first (`5 * 1e308 * 1e-308`,
simplification.py) must not turn a finite result into inf, as -O1 once did.
"""
from __future__ import annotations

import numpy as np

from ..core.ir import Node
from ..core.primitive import Kind
from ..core.rewrite import RuleSet
from ..core.types import dim_prod
from . import algebra as B

FOLD = RuleSet("fold")


def _value(n: Node):
    return n.attr("value") if n.op.name in ("const", "full") else None


def constant_inputs(n: Node) -> list | None:
    """The values of n's inputs when every one is a literal or a constant fill (else None)."""
    if not n.inputs or n.is_leaf or n.op.kind is Kind.CONSTRUCTOR:
        return None
    values = []
    for i in n.inputs:
        v = _value(i)
        if v is None:
            return None
        values.append(v)
    return values


def in_range(value, dtype, inputs=(), product: bool = False) -> bool:
    """May a constant folded from `inputs` stand in the program? Not when it is inf or NaN from
    finite inputs (overflow, in `dtype`), nor, for a product or quotient (`product`), when it
    underflowed: below the normal range, or 0 from nonzero factors. The program, computing in
    its own order, may have stayed in range; and a lost constant is lost for every input."""
    try:
        v = np.asarray(value).astype(dtype.np)[()].item()
    except (OverflowError, ValueError):
        return False
    if not isinstance(v, float):
        return True  # integers: nodes.apply refuses every overflow already
    finite_in = all(np.isfinite(np.asarray(i, dtype=float)) for i in inputs)
    if not np.isfinite(v):
        return not finite_in
    if product and finite_in:
        if v == 0:
            return any(i == 0 for i in inputs)
        return abs(v) >= np.finfo(dtype.np).tiny
    return True


def _full(value, like: Node) -> Node:
    if like.shape == ():
        return B.const(value, like.type)
    return B.retype(B.apply("full", shape=like.shape, value=value, dtype=like.dtype), like.dtype, like.type.weak)


@FOLD.rule("an elementwise op of constant fills is a constant fill")
def elementwise_of_fills(m):
    n, values = m.node, constant_inputs(m.node)
    if values is None or not n.op.elementwise or n.op.fold is None:
        return None
    args = [np.asarray(v, dtype=i.dtype.np)[()] for v, i in zip(values, n.inputs)]
    with np.errstate(all="ignore"):
        out = np.asarray(n.op.fold(*args)).astype(n.dtype.np)[()].item()
    return _full(out, n) if in_range(out, n.dtype, values) else None


@FOLD.rule("a cast of a constant fill is a constant fill")
def cast_of_fill(m):
    n, values = m.node, constant_inputs(m.node)
    if values is None or n.op.name != "cast":
        return None
    with np.errstate(all="ignore"):
        out = np.asarray(values[0]).astype(n.dtype.np)[()].item()
    return _full(out, n) if in_range(out, n.dtype, values) else None


@FOLD.rule("a view of a constant fill (a slice, a diagonal, ...) is a constant fill")
def view_of_fill(m):
    n, values = m.node, constant_inputs(m.node)
    if values is None or not n.op.is_view(n):
        return None
    return _full(values[0], n)


@FOLD.rule("sum(full(c)) = c times the element count, when the sizes are known")
def sum_of_fill(m):
    n, values = m.node, constant_inputs(m.node)
    if values is None or n.op.name != "sum":
        return None
    count = dim_prod(n.inputs[0].shape[a] for a in n.attr("axes"))
    if not isinstance(count, int):
        return None
    with np.errstate(all="ignore"):
        out = np.asarray(values[0] * count).astype(n.dtype.np)[()].item()
    return _full(out, n) if in_range(out, n.dtype, values) else None
