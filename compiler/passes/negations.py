"""Negations into scalar factors (-O1, after cse): -(s a) b = (-s) a b, where s is a scalar or a
constant, so the sign costs no pass over the array (the -(e / (1 + e) s) sign(x) of a softplus
written by hand: one ufunc fewer). After cse because it needs to know which products are
shared: one read elsewhere is not made again (primitives/simplification.negated_free)."""
from __future__ import annotations

from collections import Counter

from ..core.ir import Module, Node
from ..primitives.simplification import negation_into_factor
from .common import map_nodes, module_nodes


def negations(module: Module) -> Module:
    uses: Counter = Counter()
    for n in module_nodes(module):
        uses.update(n.inputs)
    for fn in module.functions:
        uses.update(fn.outputs)

    def visit(n: Node) -> Node:
        out = negation_into_factor(n, lambda m: uses[m] == 1)  # (a node made again here: 0 uses, kept)
        return n if out is None else out

    return map_nodes(module, visit)
