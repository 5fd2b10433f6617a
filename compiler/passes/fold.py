"""Constant folding (-O1): the named rules of primitives/folding.py, once per node, bottom-up."""
from __future__ import annotations

from ..core.ir import Module, Node
from ..primitives.folding import FOLD
from .common import map_nodes


def fold_node(n: Node) -> Node:
    return FOLD.rewrite(n)


def fold(module: Module) -> Module:
    return map_nodes(module, fold_node)
