"""Common-subexpression elimination.

Nodes are interned by (op, inputs, attributes, type), so one walk that keeps the first node of
each structure and points every later equal one at it merges structurally equal ones, across
a module's functions too (a derivative's forward part and the function it differentiates
share their nodes).
"""
from __future__ import annotations

from ..core.ir import Module, Node, graph_scope, hint, make_node, name_of
from .common import _with_outputs, module_nodes


def cse(module: Module) -> Module:
    first: dict[tuple, Node] = {}  # structure -> the node that stands for it
    memo: dict[Node, Node] = {}
    with graph_scope(hints=module.hints):
        for n in module_nodes(module):
            if n.is_param:  # two parameters of one type are two values
                memo[n] = n
                continue
            inputs = tuple([memo[i] for i in n.inputs])
            key = (n.op, inputs, n.attrs, n.type)  # (nodes hash and compare by identity)
            new = first.get(key)
            if new is None:
                # the node itself while its inputs stand for themselves, else made again over the
                # nodes they merged into (equal structure, so equal type: no type rule runs)
                new = first[key] = n if inputs == n.inputs else make_node(n.op, inputs, n.attrs, n.type, n.span)
            if new is not n:
                name = name_of(n)
                if name is not None:
                    hint(new, name)  # the first name a merged value had stays
            memo[n] = new
        return _with_outputs(module, memo)
