"""-O2: a VJP's loops keep O(sqrt(n)) carries instead of stacks of n iterations.

A loop's VJP (primitives/loops.py) stacks, for every iteration, the values its backward loop
reads: memory n x (those values). Here, where a function holds both loops and nothing but
the backward loop reads the stacks, they become one `ckpt_loop` group: the forward pass
saves the carries every sqrt(n) iterations, and the backward pass runs each segment forward
again (stacking its sqrt(n) iterations) before going back through it: `ckpt_fwd` and
`ckpt_bwd` (primitives/loops.py), two groups, so that what the backward starts from (a loss's
seed, computed from the forward's result) sits between them. One more forward pass, for
memory sqrt(n) carries + one segment's stacks. A `_fwd`/`_bwd` pair
keeps its stacks: they are its residuals, in another function.
"""
from __future__ import annotations

from dataclasses import replace

from ..core.ir import Module, current_hints, graph_scope, topo_order
from ..core.primitive import Kind
from ..core.substitute import substitute
from ..primitives.loops import checkpoint_backward, checkpoint_forward, group_of


def checkpoint(module: Module) -> Module:
    with graph_scope(hints=module.hints):
        functions = tuple(replace(fn, outputs=tuple(_function(list(fn.outputs)))) for fn in module.functions)
        return replace(module, functions=functions, hints=current_hints())


def _function(outputs):
    """The pairs (forward loop, backward loop reading its stacks) checkpointed: the forward loops
    replaced first, so that the backward loops are found again over their new inputs (the seed
    of a gradient reads the forward's result)."""
    pairs = _pairs(outputs)
    if not pairs:
        return outputs
    mapping, saved = {}, {}
    for fwd_key, (fwd, members, _) in pairs.items():
        forward = checkpoint_forward(fwd)
        nc = len(forward) - 1
        for j, m in members.items():
            if j < nc:
                mapping[m.id] = forward[j]
        saved[fwd_key] = forward[nc]
    outputs = substitute(outputs, mapping)
    mapping = {}
    for fwd_key, (fwd, fwd_members, bwd_key) in pairs.items():
        for bwd, bwd_members in _bwd_groups(outputs, fwd_members):
            backward = checkpoint_backward(fwd, bwd, saved[fwd_key])
            for j, m in bwd_members.items():
                mapping[m.id] = backward[j]
    return substitute(outputs, mapping) if mapping else outputs


def _members(order) -> dict[tuple, dict]:
    members: dict[tuple, dict] = {}
    for n in order:
        if n.op.group_vjp is not None:
            members.setdefault(group_of(n), {})[n.attr("out")] = n
    return members


def _stack_inputs(bwd):
    first, count = bwd.attr("stacked")
    nbc = bwd.attr("n_carries")
    return bwd.inputs[nbc + first:nbc + first + count]


def _pairs(outputs) -> dict:
    """forward group key -> (a member, its members by out, the backward group's key), for each
    backward loop whose stacks come from one forward loop that nothing else reads them from."""
    order = topo_order(outputs)
    users: dict[int, set] = {}
    for n in order:
        for i in n.inputs:
            users.setdefault(i.id, set()).add(group_of(n) if n.op.kind is Kind.SUBGRAPH else n.id)
    members = _members(order)
    pairs = {}
    for key, bwd_members in members.items():
        bwd = next(iter(bwd_members.values()))
        if not bwd.attr("stacked"):
            continue
        stacks = _stack_inputs(bwd)
        if not stacks or stacks[0].op is not bwd.op or not stacks[0].attr("stacks"):
            continue
        fwd = stacks[0]
        fkey = group_of(fwd)
        nc = fwd.attr("n_carries") - len(fwd.attr("stacks"))
        if not all(s.op is fwd.op and group_of(s) == fkey and s.attr("out") == nc + i for i, s in enumerate(stacks)):
            continue
        if not all(users.get(s.id, set()) <= {key} for s in members[fkey].values() if s.attr("out") >= nc):
            continue
        pairs[fkey] = (fwd, members[fkey], key)
    return pairs


def _bwd_groups(outputs, fwd_members):
    """The backward loops (over their new inputs) that read these forward stacks."""
    stack_ids = {m.id for m in fwd_members.values()}
    for key, members in _members(topo_order(outputs)).items():
        bwd = next(iter(members.values()))
        if bwd.attr("stacked") and _stack_inputs(bwd) and all(s.id in stack_ids for s in _stack_inputs(bwd)):
            yield bwd, members
