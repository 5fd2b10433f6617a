"""Graph substitution, shared by inlining, differentiation and passes.

`substitute` makes a graph again with some nodes replaced (parameters by arguments,
residuals by `_bwd` parameters), re-running the type rules and substituting size
symbols, so the result is typed as if written directly (a node whose operands kept their
types is interned again as it was: its rule would give the same answer). `inline` is substitution of a
function's parameters by a call's arguments.
"""
from __future__ import annotations

from dataclasses import replace
from operator import is_

from .ir import Function, Node, keep_name, make_node, name_of, span_scope, topo_order
from .nodes import apply, dim_value, remake, retype_leaf
from .primitive import Kind
from .types import Dim, DimLike, dim_subst


def inline(fn: Function, args: list[Node], env: dict[str, DimLike]) -> list[Node]:
    """fn's outputs with its parameters replaced by args and its size symbols by env."""
    return substitute(fn.outputs, {p.id: a for p, a in zip(fn.params, args)}, env)


def substitute(outputs, mapping: dict[int, Node], env: dict[str, DimLike] | None = None) -> list[Node]:
    """outputs made again with mapping[node.id] in place of each mapped node."""
    env = env or {}
    sizes = {} if _identity(env) else env  # (for rebuild, the same env: {} lets it take its shortcut)
    mapping = dict(mapping)
    for node in topo_order(outputs):
        if node.id in mapping:
            continue
        inputs = [mapping[i.id] for i in node.inputs]
        if not env and all(map(is_, inputs, node.inputs)):
            mapping[node.id] = node  # untouched: keep the very node
        else:
            mapping[node.id] = rebuild(node, inputs, sizes)
    return [mapping[o.id] for o in outputs]


def rebuild(node: Node, inputs: list[Node], env: dict[str, DimLike]) -> Node:
    """The node made again from new inputs (types re-inferred, size symbols substituted)."""
    op = node.op
    if op.name == "const":
        return node
    if op.name == "dim":
        return retype_leaf(dim_value(dim_subst(node.attr("dim"), env)), node.dtype, node.type.weak)
    if not env and node.span is not None and op.kind is not Kind.CONSTRUCTOR and _same_operands(node, inputs):
        # what `apply` would make again: its coercion, type rule and folding see the same
        # types (and the same literals) as when node was made, so only the inputs differ
        new = make_node(node.op, tuple(inputs), node.attrs, node.type, node.span)
    else:
        new = _reapply(node, inputs, env)
    keep_name(node, new)  # the rebuilt value keeps the name (unless it had one)
    return new


def _same_operands(node: Node, inputs: list[Node]) -> bool:
    """Each new input of the old one's type, and a literal only where the very literal was."""
    for new, old in zip(inputs, node.inputs):
        if new is not old and ((new.type is not old.type and new.type != old.type)
                               or new.op.name == "const" or old.op.name == "const"):
            return False
    return True


def _identity(env: dict[str, DimLike]) -> bool:
    """An env that maps each size symbol to itself (a call with the callee's own sizes)."""
    return all(isinstance(v, Dim) and v == Dim.symbol(k) for k, v in env.items())


def _reapply(node: Node, inputs: list[Node], env: dict[str, DimLike]) -> Node:
    with span_scope(node.span):
        if not env and node.op.kind is not Kind.CONSTRUCTOR:
            return remake(node, inputs)  # no sizes to substitute: its attributes as they are
        attrs = {k: _subst_attr(v, env) for k, v in node.attrs}
        if node.op.kind is Kind.CONSTRUCTOR:  # its dtype and weakness are the node's, not the attributes'
            new = apply(node.op, **attrs)
            # as the node was: its dtype, and strong if it was (a weak one made strong stays strong)
            if new.dtype != node.dtype or (new.type.weak and not node.type.weak):
                new = make_node(new.op, (), new.attrs, new.type.with_(dtype=node.dtype, weak=node.type.weak),
                                new.span, name_of(new))
        else:
            new = apply(node.op, *inputs, **attrs)
    return new


def _subst_attr(v, env):
    if isinstance(v, Dim):
        return dim_subst(v, env)
    if hasattr(v, "with_sizes"):  # an attribute holding a graph of its own (a loop's body)
        return v.with_sizes(env)
    if isinstance(v, tuple):
        return tuple(_subst_attr(x, env) for x in v)
    return v


def with_calls_expanded(fn: Function) -> Function:
    """fn as one graph to differentiate: its calls kept as calls (primitives/call.py) expanded.
    What a directive differentiates, and so what the check differentiates as reference."""
    return replace(fn, outputs=tuple(expand_calls(list(fn.outputs))))


def expand_calls(outputs: list[Node]) -> list[Node]:
    """outputs with every node that has a `body` (a call kept as a call) replaced by that body,
    recursively: one graph a derivative can be taken of. Each node is visited once, and a body
    is built over inputs already expanded, so a chain of n calls expands in time linear in
    the result (a recursive walk from each call would revisit everything above it)."""
    if not any(n.op.body is not None for n in topo_order(outputs)):
        return list(outputs)  # no call kept as a call (most graphs); the order is kept for the sweeps
    done: dict[int, Node] = {}
    after_body: dict[int, Node] = {}  # call id -> its body's output, being expanded
    stack: list[Node] = list(reversed(outputs))
    while stack:
        n = stack[-1]
        if n.id in done:
            stack.pop()
            continue
        if n.id in after_body:  # its body is expanded now
            stack.pop()
            done[n.id] = done[after_body.pop(n.id).id]
            continue
        todo = [i for i in n.inputs if i.id not in done]
        if todo:
            stack.extend(reversed(todo))
            continue
        inputs = [done[i.id] for i in n.inputs]
        if n.op.body is not None:
            made = rebuild(n, inputs, {}) if any(a is not b for a, b in zip(inputs, n.inputs)) else n
            with span_scope(n.span):
                (out,) = n.op.body(made)
            for i in inputs:
                done.setdefault(i.id, i)  # expanded already: the walk of the body stops there
            after_body[n.id] = out
            stack.append(out)
            continue
        stack.pop()
        done[n.id] = n if all(a is b for a, b in zip(inputs, n.inputs)) else rebuild(n, inputs, {})
    return [done[o.id] for o in outputs]
