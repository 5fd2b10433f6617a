"""Derivative directives -> IR functions (LANGUAGE.md §7).

    jvp F wrt a, b    ->  NAME(*args, t_a, t_b)  = (*outputs, *output_tangents)
    hvp F wrt a, b    ->  NAME(*args, v_a, v_b)  = (value, d_a, d_b, Hv_a, Hv_b)
    grad F wrt a, b   ->  NAME(*args)            = (value, d_a, d_b)
                          NAME_fwd(*args)        = (value, residuals)
                          NAME_bwd(residuals, seed=1.0) = (d_a, d_b)
    vjp F wrt a, b    ->  NAME(*args, *cts)      = (*outputs, d_a, d_b)
                          NAME_fwd(*args)        = (outputs, residuals)
                          NAME_bwd(residuals, *cts) = (d_a, d_b)

NAME is built from a sweep with a constant seed 1 (so `* 1` never appears);
NAME_bwd from a sweep with the seed or cotangents as parameters, split from
the forward by residuals.py. All three are ordinary IR functions.
"""
from __future__ import annotations

from ..primitives import algebra as B
from ..core.ir import Function, Node, topo_order
from . import residuals as R
from .context import rule_context


def expand_directive(d, target: Function, wrt: list[int]) -> list[Function]:
    if d.kind in ("grad", "vjp"):
        return reverse(d.kind, d.emitted_name, target, wrt, d.span)
    if d.kind == "jvp":
        return [forward(d.emitted_name, target, wrt, d.span)]
    return [hessian_vector(d.emitted_name, target, wrt, d.span)]


def _zero_or(t: Node | None, like: Node) -> Node:
    return t if t is not None else B.zeros_like(like)


def forward(name: str, target: Function, wrt: list[int], span) -> Function:
    """jvp F wrt a, b -> NAME(*args, t_a, t_b) = (*outputs, *output_tangents)."""
    params = list(target.params)
    wrt_nodes = [params[i] for i in wrt]
    wrt_names = tuple(p.attr("name") for p in wrt_nodes)
    t_names = _fresh_names([p.attr("name") for p in params], [f"t_{n}" for n in wrt_names])
    t_params = [B.param(n, w.type.strong(), len(params) + k) for k, (n, w) in enumerate(zip(t_names, wrt_nodes))]
    outputs = list(target.outputs)
    tangents = [_zero_or(t, o) for t, o in zip(rule_context().pushforward(outputs, wrt_nodes, t_params), outputs)]
    for t, o in zip(tangents, target.outputs):
        if t.name is None and not t.is_leaf:
            t.name = "t_out"
    summary = (f"The outputs of {target.name} and their directional derivatives along the tangents "
               f"{', '.join(t_names)} (forward mode).")
    return Function(name, tuple(params + t_params), tuple(outputs + tangents), span, "jvp", True,
                    (("of", target.name), ("wrt", wrt_names), ("summary", summary)))


def hessian_vector(name: str, target: Function, wrt: list[int], span) -> Function:
    """hvp F wrt a, b -> NAME(*args, v_a, v_b) = (value, d_a, d_b, Hv_a, Hv_b): the gradient's
    directional derivative along v (forward over reverse); no Hessian is ever formed."""
    params = list(target.params)
    wrt_nodes = [params[i] for i in wrt]
    wrt_names = tuple(p.attr("name") for p in wrt_nodes)
    v_names = _fresh_names([p.attr("name") for p in params], [f"v_{n}" for n in wrt_names])
    v_params = [B.param(n, w.type.strong(), len(params) + k) for k, (n, w) in enumerate(zip(v_names, wrt_nodes))]
    value = target.outputs[0]
    ctx = rule_context()
    grads = _gradients(ctx.pullback([value], [B.like_const(1, value)], wrt_nodes), wrt_nodes)
    hv = [_zero_or(t, w) for t, w in zip(ctx.pushforward(grads, wrt_nodes, v_params), wrt_nodes)]
    for h, n in zip(hv, wrt_names):
        if not h.is_leaf and h not in grads:
            h.name = f"hv_{n}"
    summary = (f"The value of {target.name}, its gradient with respect to {', '.join(wrt_names)} and the "
               f"Hessian-vector product with {', '.join(v_names)}.")
    return Function(name, tuple(params + v_params), (value, *grads, *hv), span, "hvp", True,
                    (("of", target.name), ("wrt", wrt_names), ("summary", summary)))


def _fresh_names(taken: list[str], bases: list[str]) -> list[str]:
    out = []
    seen = set(taken)
    for b in bases:
        name, k = b, 1
        while name in seen:
            name, k = f"{b}_{k}", k + 1
        seen.add(name)
        out.append(name)
    return out


def _gradients(grads: list[Node | None], wrt_nodes: list[Node], forward: set[int] = frozenset()) -> list[Node]:
    """Gradients, zeros where none flows, named d_<param> (names are hints on shared nodes:
    a forward value that happens to be a gradient keeps its own name)."""
    out = []
    for g, w in zip(grads, wrt_nodes):
        g = g if g is not None else B.zeros_like(w)
        if g.name is None and not g.is_leaf and g.id not in forward:
            g.name = f"d_{w.attr('name')}"
        out.append(g)
    return out


def reverse(kind: str, name: str, target: Function, wrt: list[int], span) -> list[Function]:
    params = list(target.params)
    wrt_nodes = [params[i] for i in wrt]
    wrt_names = tuple(p.attr("name") for p in wrt_nodes)
    outputs = list(target.outputs)
    base_meta = (("of", target.name), ("wrt", wrt_names))

    # the cotangent parameters: `seed` for grad, ct0, ct1, ... for vjp
    if kind == "grad":
        ct_names = _fresh_names([], ["seed"])
    else:
        ct_names = _fresh_names([p.attr("name") for p in params], [f"ct{i}" for i in range(len(outputs))])
    ct_params = [B.param(n, o.type.strong(), len(params) + i) for i, (n, o) in enumerate(zip(ct_names, outputs))]

    pullback = rule_context().pullback
    # NAME: forward and backward in one function
    forward_ids = {n.id for n in topo_order(outputs)}
    if kind == "grad":
        one = B.like_const(1, outputs[0])
        grads = _gradients(pullback(outputs, [one], wrt_nodes), wrt_nodes, forward_ids)
        main = Function(name, tuple(params), tuple(outputs + grads), span, "grad", True,
                        base_meta + (("summary", f"The value of {target.name} and its gradient with respect to "
                                                 f"{', '.join(wrt_names)}."),))
    else:
        grads = _gradients(pullback(outputs, list(ct_params), wrt_nodes), wrt_nodes, forward_ids)
        main = Function(name, tuple(params + ct_params), tuple(outputs + grads), span, "vjp", True,
                        base_meta + (("summary", f"The outputs of {target.name} and their vector-Jacobian "
                                                 f"product with the cotangents {', '.join(ct_names)}."),))

    # NAME_fwd / NAME_bwd: the same sweep with the cotangents as parameters, cut at the residuals
    bwd_grads = grads if kind == "vjp" else _gradients(pullback(outputs, ct_params, wrt_nodes), wrt_nodes,
                                                       forward_ids)
    cut = R.split(outputs, params, bwd_grads, ct_params)
    fwd_outputs = outputs + list(cut.residuals) + [B.dim_value_strong(s) for s in cut.carriers]
    fwd = Function(name + "_fwd", tuple(params), tuple(fwd_outputs), span, "fwd", True,
                   base_meta + (("n_outputs", len(outputs)), ("multi", target.multi),
                                ("residual_names", tuple(cut.residual_names + [f"size_{s}" for s in cut.carriers])),
                                ("summary", f"The forward pass of {name}: outputs of {target.name} and the "
                                            "residuals its _bwd needs.")))
    bwd_params = list(cut.bwd_params) + list(ct_params)
    bwd_meta = base_meta + (("n_residuals", len(cut.bwd_params)), ("seed", kind == "grad"),
                            ("summary", f"The backward pass of {name}, from the residuals of {name}_fwd."))
    bwd_outputs = [_named(g, f"d_{w}") for g, w in zip(cut.bwd_outputs, wrt_names)]
    bwd = Function(name + "_bwd", tuple(bwd_params), tuple(bwd_outputs), span, "bwd", True, bwd_meta)
    return [main, fwd, bwd]


def _named(g: Node, name: str) -> Node:
    if g.name is None and not g.is_leaf and not g.op.detaches:
        g.name = name
    return g

