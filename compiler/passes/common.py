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
    graph) are visited once, so they stay shared. `reintern` rebuilds even unchanged
    nodes, in one intern table, which merges structurally equal ones (CSE)."""
    memo: dict[int, Node] = {}
    with graph_scope(hints=module.hints):  # the module's names, for the nodes made again
        functions = []
        for fn in module.functions:
            for n in topo_order(fn.outputs):
                if n.id in memo:
                    continue
                if n.is_param:
                    memo[n.id] = n
                    continue
                inputs = [memo[i.id] for i in n.inputs]
                if n.is_literal:
                    new = _reintern_leaf(n) if reintern else n
                elif reintern or any(a is not b for a, b in zip(inputs, n.inputs)):
                    new = rebuild(n, inputs, {})
                else:
                    new = n
                with span_scope(new.span or n.span):
                    out = visit(new)
                name = name_of(n)
                if out is not new and name is not None:
                    hint(out, name)  # what a value was called, its simpler form is called too
                memo[n.id] = out
            functions.append(replace(fn, outputs=tuple(memo[o.id] for o in fn.outputs)))
        return replace(module, functions=tuple(functions), hints=current_hints())


def _reintern_leaf(n: Node) -> Node:
    return make_node(n.op, (), n.attrs, n.type, n.span)


def function_nodes(fn: Function) -> list[Node]:
    return topo_order(fn.outputs)
