"""What the passes share: rebuilding every function of a module bottom-up, once per node."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from ..core.ir import Module, Node, current_hints, graph_scope, hint, name_of, reset_span, set_span, topo_order
from ..core.substitute import rebuild


def module_nodes(module: Module) -> list[Node]:
    """Every node of the module's functions, inputs before users, shared nodes once: the order
    each function's own walk would give."""
    return topo_order(o for fn in module.functions for o in fn.outputs)


def map_nodes(module: Module, visit: Callable[[Node], Node]) -> Module:
    """Every node made again from its (already visited) inputs, then passed to `visit`.

    Nodes shared between functions (a grad function and its _fwd share the forward
    graph) are visited once, so they stay shared."""
    memo: dict[Node, Node] = {}  # old node -> new (nodes hash by identity)
    with graph_scope(hints=module.hints):  # the module's names, for the nodes made again
        for n in module_nodes(module):
            if n.is_param:
                memo[n] = n
                continue
            inputs = tuple([memo[i] for i in n.inputs])
            new = n if inputs == n.inputs else rebuild(n, list(inputs), {})  # (== compares nodes by identity)
            token = set_span(new.span or n.span)  # nodes the visit makes point at this one's source
            try:
                out = visit(new)
            finally:
                reset_span(token)
            if out is not new:
                name = name_of(n)
                if name is not None:
                    hint(out, name)  # what a value was called, its simpler form is called too
            memo[n] = out
        return _with_outputs(module, memo)


def _with_outputs(module: Module, memo: dict[Node, Node]) -> Module:
    """The module with each function's outputs replaced as `memo` says, and the current names."""
    functions = tuple(replace(fn, outputs=tuple(memo[o] for o in fn.outputs)) for fn in module.functions)
    return replace(module, functions=functions, hints=current_hints())
