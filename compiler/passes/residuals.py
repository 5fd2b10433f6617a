"""Fewer residuals (-O2): _bwd recomputes cheap values instead of _fwd saving them.

A residual computed by a cheap elementwise op (one not marked costly in the primitive
table: a comparison, a product, relu, ...) from other residuals and constants is dropped
from what NAME_fwd returns; NAME_bwd computes it again from those residuals. Saving it
would cost as much memory as an argument and save next to no time. Transcendental
functions (exp, tanh, sigmoid, ...) are costly and stay saved.
"""
from __future__ import annotations

from dataclasses import replace

from ..core.ir import Function, Module, Node, graph_scope
from ..core.primitive import Cost
from ..core.substitute import rebuild, substitute


def cheap(op) -> bool:
    """A few cycles per element (elementwise and cheap in the primitive table), or stop_gradient,
    which is the value itself."""
    return op.detaches or (op.kind == "elementwise" and op.cost is Cost.CHEAP)


def fewer_residuals(module: Module) -> Module:
    by_name = {f.name: f for f in module.functions}
    replaced: dict[str, Function] = {}
    with graph_scope():
        for fwd in module.functions:
            if fwd.kind != "fwd":
                continue
            bwd = by_name.get(fwd.name[: -len("_fwd")] + "_bwd")
            if bwd is None:
                continue
            pair = _trim(fwd, bwd)
            if pair is not None:
                replaced[fwd.name], replaced[bwd.name] = pair
    return Module(module.source, tuple(replaced.get(f.name, f) for f in module.functions))


def _trim(fwd: Function, bwd: Function):
    n_out = fwd.get("n_outputs")
    residuals = list(fwd.outputs[n_out:])
    n_res = bwd.get("n_residuals")
    names = list(fwd.get("residual_names"))
    params = list(bwd.params[:n_res])
    carriers = len(residuals) - len(params)  # size carriers sit after the array residuals
    if carriers:
        residuals, tail_names = residuals[: len(params)], names[len(params):]
        names = names[: len(params)]
    else:
        tail_names = []
    index = {r.id: k for k, r in enumerate(residuals)}
    dropped: set[int] = set()
    for k, r in enumerate(residuals):
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
    new_params = [params[k] for k in keep] + list(bwd.params[n_res:])
    meta_b = tuple((key, len(keep) if key == "n_residuals" else v) for key, v in bwd.meta)
    new_bwd = replace(bwd, params=tuple(new_params), outputs=tuple(new_outputs), meta=meta_b)
    kept_names = tuple(names[k] for k in keep) + tuple(tail_names)
    meta_f = tuple((key, kept_names if key == "residual_names" else v) for key, v in fwd.meta)
    tail = list(fwd.outputs[n_out + len(residuals):])
    new_fwd = replace(fwd, outputs=tuple(list(fwd.outputs[:n_out]) + [residuals[k] for k in keep] + tail),
                      meta=meta_f)
    return new_fwd, new_bwd
