"""The constant-folding rules -O1 applies (passes/fold.py runs them), each named.

Scalar literals are folded as they are built (nodes.apply). These rules fold what is
constant but not a scalar: a `full` constructor (zeros, ones, full) passed through
elementwise ops, casts and views (reshapes, broadcasts, slices) stays a `full` of the
computed value, and a sum over a `full` is its value times the element count when that is
known.
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
    return _full(out, n)


@FOLD.rule("a cast of a constant fill is a constant fill")
def cast_of_fill(m):
    n, values = m.node, constant_inputs(m.node)
    if values is None or n.op.name != "cast":
        return None
    return _full(np.asarray(values[0]).astype(n.dtype.np)[()].item(), n)


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
    return _full(np.asarray(values[0] * count).astype(n.dtype.np)[()].item(), n)
