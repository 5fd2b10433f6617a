"""Splitting a derivative into NAME_fwd and NAME_bwd: what the forward must save.

The backward graph (everything the gradients need) is cut where it meets the
forward graph (everything the outputs need). A forward value used by a
backward-only node is a *residual*: NAME_fwd returns it, NAME_bwd takes it as
a parameter. Values the forward does not compute anyway (cos(x) for the VJP of
sin, say) are computed in NAME_bwd from residuals, so NAME_fwd does no work
that only a backward pass would need and saves no more than it must.

Size symbols the backward needs but cannot read off a residual's or a
cotangent's shape travel as plain integer residuals ("carriers").
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.ir import Node, group_key, name_of, topo_order
from ..core.substitute import substitute
from ..core.types import Dim, DType, TensorType, symbols_in
from ..primitives import algebra as B


@dataclass
class Split:
    residuals: list[Node]  # forward values, in a deterministic order
    residual_names: list[str]
    bwd_params: list[Node]  # one per residual, then the symbol carriers
    bwd_outputs: list[Node]  # the gradients over bwd_params (+ the cotangent params)
    carriers: list[str]  # size symbols passed as integers


def split(fwd_outputs: list[Node], fwd_params: list[Node], grads: list[Node], ct_params: list[Node]) -> Split:
    fwd_ids = {n.id for n in topo_order(list(fwd_outputs) + list(fwd_params))}
    ct_ids = {c.id for c in ct_params}
    bwd_order = topo_order(grads)
    # a node of several results (a loop's carries) is computed whole: a member the backward reads
    # of a group the forward computes (a loop's stacks) is a forward value, saved, not computed again
    groups = {group_key(n) for n in topo_order(list(fwd_outputs)) if n.op.group_vjp is not None}
    if groups:
        extra = [n for n in bwd_order if n.op.group_vjp is not None and n.id not in fwd_ids and group_key(n) in groups]
        if extra:
            fwd_outputs = list(fwd_outputs) + extra
            fwd_ids |= {n.id for n in topo_order(extra)}
    # nodes that need the backward pass: they depend on a cotangent, or are not computed forward
    bwd_only = [n for n in bwd_order if n.id not in fwd_ids and n.id not in ct_ids]
    needed: dict[int, Node] = {}
    for n in bwd_only:
        for i in n.inputs:
            if i.id in fwd_ids and not i.is_literal:
                needed.setdefault(i.id, i)
    for g in grads:  # a gradient that is a forward value itself (rare: d/dx of x*y is y)
        if g.id in fwd_ids and not g.is_literal:
            needed.setdefault(g.id, g)
    residuals = [n for n in topo_order(list(fwd_outputs) + list(fwd_params)) if n.id in needed]
    names, params, used = [], [], set()
    for k, r in enumerate(residuals):
        base = name_of(r) or f"r{k}"
        name, j = base, 1
        while name in used:
            name, j = f"{base}_{j}", j + 1
        used.add(name)
        names.append(name)
        params.append(B.param(name, r.type.strong(), k, r.span))
    outputs = substitute(grads, {r.id: p for r, p in zip(residuals, params)})
    # the cotangents' sizes too: they are checked against the forward pass's, never bound from a cotangent
    carriers = _missing_symbols(outputs + list(ct_params), params)
    for s in carriers:
        params.append(B.param(f"size_{s}", TensorType(DType.I64, ()), len(params), carries=s))
    return Split(residuals, names, params, outputs, carriers)


def _missing_symbols(outputs: list[Node], params: list[Node]) -> list[str]:
    """Size symbols the nodes use that no parameter's shape carries."""
    used: set[str] = set()
    order = topo_order(outputs)
    for t in {n.type for n in order}:  # (a program has few distinct types: each asked once)
        used |= symbols_in(tuple(t.shape))
    for n in order:
        for _, v in n.attrs:
            used |= symbols_in(v)
    have = {d.symbol_name for p in params for d in p.shape if isinstance(d, Dim) and d.symbol_name}
    return sorted(used - have)


