"""Algebraic simplification (-O1): the named rules of primitives/simplification.py, applied
to every node bottom-up (its inputs already simplified), each node to a fixed point.
"""
from __future__ import annotations

from ..core.ir import Module, Node
from ..primitives.simplification import SIMPLIFY, same_type
from .common import map_nodes


def simplify_node(n: Node) -> Node:
    return SIMPLIFY.fixed_point(n, accept=same_type)


def simplify(module: Module) -> Module:
    return map_nodes(module, simplify_node)
