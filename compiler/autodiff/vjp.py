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
from ..core.ir import Node, hint, name_of, reset_span, set_span, topo_order
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
    for n in reversed(order):
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
