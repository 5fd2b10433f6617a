"""What the passes share: rebuilding every function of a module bottom-up, once per node."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from ..core.ir import Function, Module, Node, graph_scope, span_scope, topo_order
from ..core.substitute import rebuild


def map_nodes(module: Module, visit: Callable[[Node], Node], reintern: bool = False) -> Module:
    """Every node made again from its (already visited) inputs, then passed to `visit`.

    Nodes shared between functions (a grad function and its _fwd share the forward
    graph) are visited once, so they stay shared. `reintern` rebuilds even unchanged
    nodes, in one intern table, which merges structurally equal ones (CSE)."""
    memo: dict[int, Node] = {}
    with graph_scope():
        functions = []
        for fn in module.functions:
            for n in topo_order(fn.outputs):
                if n.id in memo:
                    continue
                if n.op.name == "param":
                    memo[n.id] = n
                    continue
                inputs = [memo[i.id] for i in n.inputs]
                if n.op.name in ("const", "dim"):
                    new = _reintern_leaf(n) if reintern else n
                elif reintern or any(a is not b for a, b in zip(inputs, n.inputs)):
                    new = rebuild(n, inputs, {})
                else:
                    new = n
                with span_scope(new.span or n.span):
                    out = visit(new)
                if out is not new and out.name is None and n.name is not None and out.op.name not in (
                        "param", "const", "dim"):
                    out.name = n.name
                memo[n.id] = out
            functions.append(replace(fn, outputs=tuple(memo[o.id] for o in fn.outputs)))
    return Module(module.source, tuple(functions))


def _reintern_leaf(n: Node) -> Node:
    from ..core.ir import make_node

    return make_node(n.op, (), n.attrs, n.type, n.span, n.name)


def fixed_point(rules, node: Node, limit: int = 50) -> Node:
    """Apply the first matching rule until none matches."""
    for _ in range(limit):
        for rule in rules:
            out = rule(node)
            if out is not None and out is not node:
                node = out
                break
        else:
            return node
    return node


def function_nodes(fn: Function) -> list[Node]:
    return topo_order(fn.outputs)
