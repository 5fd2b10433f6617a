"""Fewer residuals (-O2): _bwd recomputes cheap values instead of _fwd saving them.

A residual computed by a cheap elementwise op (one not marked costly in the primitive
table: a comparison, a product, relu, ...) from other residuals and constants is dropped
from what NAME_fwd returns; NAME_bwd computes it again from those residuals. Saving it
would cost as much memory as an argument and save next to no time. Transcendental
functions (exp, tanh, sigmoid, ...) are costly and stay saved.
"""
from __future__ import annotations

from dataclasses import replace

from ..core.derivative import Part
from ..core.ir import Function, Module, Node, current_hints, graph_scope, topo_order
from ..core.primitive import Cost, Kind
from ..core.substitute import rebuild, substitute


def cheap(op) -> bool:
    """A few cycles per element (elementwise and cheap in the primitive table), or stop_gradient,
    which is the value itself."""
    return op.detaches or (op.kind is Kind.ELEMENTWISE and op.cost is Cost.CHEAP)


def fewer_residuals(module: Module) -> Module:
    replaced: dict[str, Function] = {}
    with graph_scope(hints=module.hints):
        for fn in module.functions:
            if fn.derivative is None or fn.derivative.part is not Part.FWD:
                continue
            trimmed = _trim(*module.pair(fn))
            if trimmed is not None:
                for new in trimmed:
                    replaced[new.name] = new
        return replace(module, functions=tuple(replaced.get(f.name, f) for f in module.functions),
                       hints=current_hints())


def _trim(fwd: Function, bwd: Function):
    n_out = fwd.derivative.n_primal_outputs
    residuals = list(fwd.outputs[n_out:])  # the arrays, then the sizes they carry
    saved = fwd.derivative.outputs[n_out:]
    params = list(bwd.params[:bwd.derivative.n_residuals])
    index = {r.id: k for k, r in enumerate(residuals)}
    dropped: set[int] = set()
    # in dependency order, not the order _fwd returns them: after simplification a residual may
    # be computed from one saved after it (Horner's form), and a value recomputed from a dropped
    # residual would read a parameter _bwd no longer has
    for r in topo_order(residuals):
        k = index.get(r.id)
        if k is None:
            continue
        if cheap(r.op) and all(i.is_literal or (i.id in index and index[i.id] not in dropped
                                                and i is not r) for i in r.inputs):
            dropped.add(k)
    if not dropped:
        return None
    # _bwd: the dropped parameters become recomputations from the kept ones
    mapping: dict[int, Node] = {}
    for k in sorted(dropped):
        r = residuals[k]
        inputs = [i if i.is_literal else params[index[i.id]] for i in r.inputs]
        mapping[params[k].id] = rebuild(r, inputs, {})
    new_outputs = substitute(bwd.outputs, mapping)
    keep = [k for k in range(len(residuals)) if k not in dropped]
    kept = tuple(saved[k] for k in keep)
    new_bwd = replace(bwd, params=tuple([params[k] for k in keep] + list(bwd.params[len(params):])),
                      outputs=tuple(new_outputs), derivative=bwd.derivative.with_residuals(kept))
    new_fwd = replace(fwd, outputs=tuple(list(fwd.outputs[:n_out]) + [residuals[k] for k in keep]),
                      derivative=fwd.derivative.with_residuals(kept))
    return new_fwd, new_bwd
