"""Common-subexpression elimination.

Nodes are interned by (op, inputs, attributes, type), so rebuilding every node in one
intern table merges structurally equal ones, across a module's functions too (a
derivative's forward part and the function it differentiates share their nodes).
"""
from __future__ import annotations

from ..core.ir import Module
from .common import map_nodes


def cse(module: Module) -> Module:
    return map_nodes(module, lambda n: n, reintern=True)
