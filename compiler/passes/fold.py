"""Constant folding: operations on constants computed at compile time.

Scalar literals are folded as they are built (build.apply). This pass also folds what
is constant but not a scalar: a `full` constructor (zeros, ones, full) passed through
elementwise ops, casts and views (reshapes, broadcasts, slices) stays a `full` of the computed value,
and a sum over a `full` is its value times the element count when that is known.
"""
from __future__ import annotations

import numpy as np

from ..primitives import algebra as B
from ..core.ir import Module, Node
from ..core.primitive import REGISTRY
from ..core.types import dim_prod
from .common import map_nodes


def _value(n: Node):
    return n.attr("value") if n.op.name in ("const", "full") else None


def _full(value, like: Node) -> Node:
    if like.shape == ():
        return B.const(value, like.type)
    return B.retype(B.apply("full", shape=like.shape, value=value, dtype=like.dtype), like.dtype, like.type.weak)


def fold_node(n: Node) -> Node:
    if n.op.name in ("const", "full", "param", "dim", "eye"):
        return n
    values = [_value(i) for i in n.inputs]
    if not n.inputs or any(v is None for v in values):
        return n
    prim = n.op
    if prim.elementwise and prim.fold is not None:
        args = [np.asarray(v, dtype=i.dtype.np)[()] for v, i in zip(values, n.inputs)]
        with np.errstate(all="ignore"):
            out = np.asarray(prim.fold(*args)).astype(n.dtype.np)[()].item()
        return _full(out, n)
    if n.op.name == "cast":
        return _full(np.asarray(values[0]).astype(n.dtype.np)[()].item(), n)
    if prim.is_view(n):  # any view of a constant-filled array (a slice, a diagonal, ...) is one too
        return _full(values[0], n)
    if n.op.name == "sum":
        count = dim_prod(n.inputs[0].shape[a] for a in n.attr("axes"))
        if isinstance(count, int):
            return _full(np.asarray(values[0] * count).astype(n.dtype.np)[()].item(), n)
    return n


def fold(module: Module) -> Module:
    return map_nodes(module, fold_node)
