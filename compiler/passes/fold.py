"""Constant folding (-O1): the named rules of primitives/folding.py, once per node, bottom-up."""
from __future__ import annotations

from ..core.ir import Module, Node
from ..primitives.folding import FOLD, constant_inputs
from .common import map_nodes, module_nodes


def fold_node(n: Node) -> Node:
    if constant_inputs(n) is None:
        return n  # every rule folds a node whose inputs are all constants: the rest are left at once
    return FOLD.rewrite(n)


def fold(module: Module) -> Module:
    if all(constant_inputs(n) is None for n in module_nodes(module)):
        return module  # nothing a rule could fold: the rebuild would make the module again as it is
    return map_nodes(module, fold_node)
