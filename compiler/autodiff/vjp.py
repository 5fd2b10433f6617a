"""The reverse sweep: cotangents of the inputs from cotangents of the outputs.

One pass over the graph in reverse topological order. Each node's cotangent is
the sum of what its users sent it (fan-out is addition, build.add_ct), and
its primitive's VJP rule turns it into one cotangent per input. The result is
ordinary IR, so a derivative can be differentiated again.

Three things are kept apart (docs/architecture.md):
  * not differentiable: integer/bool values, `stop_gradient`, comparisons -> no
    cotangent flows, silently (a symbolic zero);
  * mathematically undefined points: the rules pick PyTorch's conventions;
  * a rule missing: a located error naming the op (never a silent zero).
"""
from __future__ import annotations

from ..core.diagnostics import UserError
from ..core.ir import Node, group_key, hint, name_of, reset_span, set_span, topo_order
from ..core.primitive import RuleContext
from ..primitives import algebra as B


def active_set(outputs: list[Node], wrt: list[Node]) -> set[int]:
    """Nodes through which a derivative flows from `wrt` to the outputs."""
    active = {w.id for w in wrt}
    for n in topo_order(outputs):
        if n.id in active or not n.dtype.is_float:
            continue
        if not n.op.differentiable or n.op.detaches:
            continue
        if any(i.id in active for i in n.inputs):
            active.add(n.id)
    return active


def pullback(outputs: list[Node], cotangents: list[Node | None], wrt: list[Node],
             ctx: RuleContext) -> list[Node | None]:
    """d(<cotangents, outputs>)/d(wrt), one entry per wrt node; None where it is zero. The rules
    get `ctx` (autodiff/context.py), through which a rule may pull back a sub-function."""
    active = active_set(outputs, wrt)
    order = topo_order(outputs)
    primal = {n.id for n in order}
    ct_of: dict[int, Node] = {}
    for o, c in zip(outputs, cotangents):
        if c is not None and o.id in active:
            ct_of[o.id] = B.add_ct(ct_of.get(o.id), c)
    wrt_ids = {w.id for w in wrt}
    results: dict[int, Node] = {}
    add_ct = B.add_ct
    groups = _groups(order)
    for n in reversed(order):
        if n.op.group_vjp is not None:
            _group(n, groups, ct_of, active, ctx)
            continue
        ct = ct_of.pop(n.id, None)
        if ct is None:
            continue
        if n.id in wrt_ids:
            results[n.id] = ct
        if n.is_param:
            continue
        needs = [i.id in active for i in n.inputs]
        if True not in needs:
            continue
        if n.op.vjp is None:
            raise UserError(f"tapeless has no derivative rule for `{n.op}` yet", n.span)
        name = name_of(n)
        if name and ct.id not in primal:  # (a forward value that is also a cotangent keeps its own name)
            hint(ct, f"d_{name}")
        token = set_span(n.span)  # (the rule's nodes and the sums of what it sends point at n)
        try:
            in_cts = n.op.vjp(ctx, n, ct, needs)
            for i, c, need in zip(n.inputs, in_cts, needs):
                if c is None or not need:
                    continue
                if c.type is not i.type and (c.shape != i.shape or c.dtype != i.dtype):  # pragma: no cover - a bug in a rule
                    raise AssertionError(f"VJP of {n.op}: cotangent {c.type} for input {i.type}")
                ct_of[i.id] = add_ct(ct_of.get(i.id), c)
        finally:
            reset_span(token)
    return [results.get(w.id) for w in wrt]


def _groups(order: list[Node]) -> dict[tuple, list[Node]]:
    """The members of each group of several-result nodes (primitive.group_vjp), in order."""
    groups: dict[tuple, list[Node]] = {}
    for n in order:
        if n.op.group_vjp is not None:
            groups.setdefault(group_key(n), []).append(n)
    return groups


def _group(n: Node, groups, ct_of: dict[int, Node], active: set[int], ctx: RuleContext) -> None:
    """A group's rule runs once, at its first member in order (the last the reverse sweep
    meets): by then every member's users have sent their cotangents."""
    members = groups[group_key(n)]
    if n is not members[0]:
        return
    cts = {m.attr("out"): ct_of.pop(m.id) for m in members if m.id in ct_of}
    if not cts:
        return
    needs = [i.id in active for i in n.inputs]
    if True not in needs:
        return
    token = set_span(n.span)
    try:
        in_cts = n.op.group_vjp(ctx, {m.attr("out"): m for m in members}, cts, needs)
        for i, c, need in zip(n.inputs, in_cts, needs):
            if c is not None and need:
                ct_of[i.id] = B.add_ct(ct_of.get(i.id), c)
    finally:
        reset_span(token)
