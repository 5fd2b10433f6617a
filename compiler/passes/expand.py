"""Expansion (-O1): each composite with a form in primitives/forms.py (sigmoid, softplus,
bce_with_logits, softmax, cross_entropy) is spelled in
primitives after differentiation, so the elementwise kernels run it as plain ufuncs and a
loss and its gradient share work through CSE.
"""
from __future__ import annotations

from ..core.ir import Module
from ..primitives.forms import FORMS
from .common import map_nodes, module_nodes


def expand(module: Module, keep: frozenset = frozenset()) -> Module:
    """keep: composites the backend computes whole (numba's kernels have a form of sigmoid and
    softplus each, faster than the spelled form); they stay as they are. Each form sees the ops of the whole module: in the combined gradient function CSE then
    shares exp(-|z|) and 1 + e (exp(z - max) and its sum), and NAME_bwd, which sees z as a
    residual, computes the same values bit for bit (the split and the combined functions
    agree exactly)."""
    ops = frozenset(n.op.name for n in module_nodes(module))
    heads = FORMS.heads()
    if keep:
        return map_nodes(module, lambda n: n if n.op.name in keep else FORMS.rewrite(n, env=ops))
    if heads is not None and not ops & heads:
        return module  # no composite to expand: the rebuild would make the module again as it is
    return map_nodes(module, lambda n: FORMS.rewrite(n, env=ops))
