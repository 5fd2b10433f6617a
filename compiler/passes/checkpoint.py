"""-O2: a VJP's loops keep O(sqrt(n)) carries instead of stacks of n iterations.

A loop's VJP (primitives/loops.py) stacks, for every iteration, the values its backward loop
reads: memory n x (those values). Here, where a function holds both loops and nothing but
the backward loop reads the stacks, they become one `ckpt_loop` group: the forward pass
saves the carries every sqrt(n) iterations, and the backward pass runs each segment forward
again (stacking its sqrt(n) iterations) before going back through it. One more forward
pass for memory sqrt(n) (carries) + sqrt(n) (one segment's stacks). A `_fwd`/`_bwd` pair
keeps its stacks: they are its residuals, in another function.
"""
from __future__ import annotations

from dataclasses import replace

from ..core.ir import Module, current_hints, graph_scope, topo_order
from ..core.primitive import Kind
from ..core.substitute import substitute
from ..primitives.loops import checkpointed, group_of


def checkpoint(module: Module) -> Module:
    with graph_scope(hints=module.hints):
        functions = tuple(replace(fn, outputs=tuple(_function(list(fn.outputs)))) for fn in module.functions)
        return replace(module, functions=functions, hints=current_hints())


def _function(outputs):
    order = topo_order(outputs)
    users: dict[int, set] = {}
    for n in order:
        for i in n.inputs:
            users.setdefault(i.id, set()).add(group_of(n) if n.op.kind is Kind.SUBGRAPH else n.id)
    members: dict[tuple, dict] = {}
    for n in order:
        if n.op.group_vjp is not None:
            members.setdefault(group_of(n), {})[n.attr("out")] = n
    mapping = {}
    for key, bwd_members in members.items():
        bwd = next(iter(bwd_members.values()))
        if not bwd.attr("stacked"):
            continue
        first, count = bwd.attr("stacked")
        nbc = bwd.attr("n_carries")
        stacks = bwd.inputs[nbc + first:nbc + first + count]
        if not stacks or stacks[0].op is not bwd.op:
            continue
        fwd = stacks[0]
        fkey = group_of(fwd)
        nc = fwd.attr("n_carries") - len(fwd.attr("stacks") or ())
        ok = fwd.attr("stacks") and all(s.op is fwd.op and group_of(s) == fkey and s.attr("out") == nc + i
                                        for i, s in enumerate(stacks))
        ok = ok and all(users.get(s.id, set()) <= {key} for s in members[fkey].values() if s.attr("out") >= nc)
        if not ok:
            continue
        group = checkpointed(fwd, bwd)
        for j, m in members[fkey].items():
            if j < nc:
                mapping[m.id] = group[j]
        for j, m in bwd_members.items():
            mapping[m.id] = group[nc + j]
    return substitute(outputs, mapping) if mapping else outputs
