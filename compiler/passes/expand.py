"""Expansion (-O1): each composite with an `expand` facet in the primitive table (sigmoid,
softplus, bce_with_logits, softmax, cross_entropy; primitives/forms.py) is spelled in
primitives after differentiation, so the elementwise kernels run it as plain ufuncs and a
loss and its gradient share work through CSE.
"""
from __future__ import annotations

from ..core.ir import Module, Node
from ..core.primitive import REGISTRY
from .common import function_nodes, map_nodes


def expand(module: Module) -> Module:
    """Each form sees the ops of the whole module: in the combined gradient function CSE then
    shares exp(-|z|) and 1 + e (exp(z - max) and its sum), and NAME_bwd, which sees z as a
    residual, computes the same values bit for bit (the split and the combined functions
    agree exactly)."""
    ops = frozenset(n.op for fn in module.functions for n in function_nodes(fn))

    def visit(n: Node) -> Node:
        form = REGISTRY[n.op].expand
        return form(n, ops) if form is not None else n

    return map_nodes(module, visit)
