"""What the passes share: rebuilding every function of a module bottom-up, once per node."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from ..core.ir import (
    Function,
    Module,
    Node,
    current_hints,
    graph_scope,
    hint,
    make_node,
    name_of,
    span_scope,
    topo_order,
)
from ..core.substitute import rebuild


def map_nodes(module: Module, visit: Callable[[Node], Node], reintern: bool = False) -> Module:
    """Every node made again from its (already visited) inputs, then passed to `visit`.

    Nodes shared between functions (a grad function and its _fwd share the forward
    graph) are visited once, so they stay shared. `reintern` makes every node
    again as it was (no type rule runs: its inputs are equal to its old ones), in one intern
    table, which merges structurally equal ones (CSE)."""
    memo: dict[int, Node] = {}
    with graph_scope(hints=module.hints):  # the module's names, for the nodes made again
        # one walk over every function's outputs: the order each function's own walk would
        # give, shared nodes once
        for n in topo_order(o for fn in module.functions for o in fn.outputs):
            if n.is_param:
                memo[n.id] = n
                continue
            inputs = [memo[i.id] for i in n.inputs]
            if n.is_literal:
                new = _reintern_leaf(n) if reintern else n
            elif reintern:
                # inputs made again as they were (equal structure, so equal types): the node made
                # again as it was, in this pass's intern table, which merges equal ones (CSE)
                new = make_node(n.op, tuple(inputs), n.attrs, n.type, n.span)
                if name_of(n) is not None:
                    hint(new, name_of(n))
            elif any(a is not b for a, b in zip(inputs, n.inputs)):
                new = rebuild(n, inputs, {})
            else:
                new = n
            with span_scope(new.span or n.span):
                out = visit(new)
            if out is not new:
                name = name_of(n)
                if name is not None:
                    hint(out, name)  # what a value was called, its simpler form is called too
            memo[n.id] = out
        functions = tuple(replace(fn, outputs=tuple(memo[o.id] for o in fn.outputs)) for fn in module.functions)
        return replace(module, functions=functions, hints=current_hints())


def _reintern_leaf(n: Node) -> Node:
    return make_node(n.op, (), n.attrs, n.type, n.span)


def function_nodes(fn: Function) -> list[Node]:
    return topo_order(fn.outputs)
