"""Derivative directives -> IR functions (docs/language.md, "Derivative directives").

    jvp F wrt a, b    ->  NAME(*args, t_a, t_b)  = (*outputs, *output_tangents)
    hvp F wrt a, b    ->  NAME(*args, v_a, v_b)  = (value, d_a, d_b, Hv_a, Hv_b)
    grad F wrt a, b   ->  NAME(*args)            = (value, d_a, d_b)
                          NAME_fwd(*args)        = (value, residuals)
                          NAME_bwd(residuals, seed=1.0) = (d_a, d_b)
    vjp F wrt a, b    ->  NAME(*args, *cts)      = (*outputs, d_a, d_b)
                          NAME_fwd(*args)        = (outputs, residuals)
                          NAME_bwd(residuals, *cts) = (d_a, d_b)

DIRECTIVES is the table: one entry per directive word of the grammar, with the facts the
driver checks (F must return one floating scalar; NAME_fwd and NAME_bwd are made too) and
its derive function. Every function made carries its Derivative record (core/derivative.py).
A new directive is one entry here, one derive function and one word in grammar/tapeless.lark.

NAME is built from a sweep with a constant seed 1 (so `* 1` never appears); NAME_bwd from a
sweep with the seed or cotangents as parameters, split from the forward by residuals.py.
All three are ordinary IR functions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..core.derivative import Derivative, Part, Slot, ports
from ..core.ir import Function, Node, hint, rename, topo_order
from ..primitives import algebra as B
from ..primitives.loops import merge_loops
from . import residuals as R
from .context import rule_context


@dataclass(frozen=True)
class Directive:
    word: str  # as written in a .tl file (a word of the grammar)
    derive: Callable[..., list[Function]]  # (NAME, F, wrt parameter indices, span) -> functions
    scalar_only: bool  # F must return one floating-point scalar
    split: bool  # NAME_fwd and NAME_bwd are made as well
    scalar_hint: str = ""  # said when F is not scalar


def part_names(name: str, directive: Directive) -> list[str]:
    """The functions a directive emits: NAME, and NAME_fwd, NAME_bwd when it splits."""
    return [name, f"{name}_fwd", f"{name}_bwd"] if directive.split else [name]


def _zero_or(t: Node | None, like: Node) -> Node:
    return t if t is not None else B.zeros_like(like)


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


def _extra_params(target: Function, nodes: list[Node], bases: list[str], names: list[str] | None = None):
    """Parameters after F's, of the types of `nodes` (strong), named from `bases` unless given."""
    params = list(target.params)
    names = names or _fresh_names([p.attr("name") for p in params], bases)
    return names, [B.param(n, w.type.strong(), len(params) + k) for k, (n, w) in enumerate(zip(names, nodes))]


def forward(name: str, target: Function, wrt: list[int], span) -> list[Function]:
    """jvp F wrt a, b -> NAME(*args, t_a, t_b) = (*outputs, *output_tangents)."""
    params = list(target.params)
    wrt_nodes = [params[i] for i in wrt]
    wrt_names = tuple(p.attr("name") for p in wrt_nodes)
    t_names, t_params = _extra_params(target, wrt_nodes, [f"t_{n}" for n in wrt_names])
    outputs = list(target.outputs)
    tangents = [_zero_or(t, o) for t, o in zip(rule_context().pushforward(outputs, wrt_nodes, t_params), outputs)]
    outputs, tangents = _split_at(merge_loops(outputs + tangents), len(outputs))
    forward_ids = {n.id for n in topo_order(outputs)}
    for t in tangents:
        if t.id not in forward_ids:
            hint(t, "t_out")
    record = Derivative(
        "jvp", Part.WHOLE, name, target.name, wrt_names,
        ports(Slot.PRIMAL, target.param_names) + ports(Slot.TANGENT, t_names),
        ports(Slot.PRIMAL, _output_names(target)) + ports(Slot.OUTPUT_TANGENT, _output_names(target)),
        target.multi, summary=f"The outputs of {target.name} and their directional derivatives along the tangents "
                              f"{', '.join(t_names)} (forward mode).")
    return [Function(name, tuple(params + t_params), tuple(outputs + tangents), span, True, record)]


def hessian_vector(name: str, target: Function, wrt: list[int], span) -> list[Function]:
    """hvp F wrt a, b -> NAME(*args, v_a, v_b) = (value, d_a, d_b, Hv_a, Hv_b): the gradient's
    directional derivative along v (forward over reverse); no Hessian is ever formed."""
    params = list(target.params)
    wrt_nodes = [params[i] for i in wrt]
    wrt_names = tuple(p.attr("name") for p in wrt_nodes)
    v_names, v_params = _extra_params(target, wrt_nodes, [f"v_{n}" for n in wrt_names])
    value = target.outputs[0]
    ctx = rule_context()
    forward_ids = {n.id for n in topo_order(target.outputs)}
    grads = _gradients(ctx.pullback([value], [B.like_const(1, value)], wrt_nodes), wrt_nodes, forward_ids)
    # one forward loop before differentiating again (a gradient's loop also computes the value)
    (value,), grads = _split_at(merge_loops([value] + grads), 1)
    hv = [_zero_or(t, w) for t, w in zip(ctx.pushforward(grads, wrt_nodes, v_params), wrt_nodes)]
    (value,), rest = _split_at(merge_loops([value] + grads + hv), 1)
    grads, hv = _split_at(rest, len(grads))
    for h, n in zip(hv, wrt_names):
        if h not in grads:
            rename(h, f"hv_{n}")  # (over the t_d_w the forward sweep gave it)
    record = Derivative(
        "hvp", Part.WHOLE, name, target.name, wrt_names,
        ports(Slot.PRIMAL, target.param_names) + ports(Slot.VECTOR, v_names),
        ports(Slot.PRIMAL, _output_names(target)) + ports(Slot.GRADIENT, wrt_names) + ports(Slot.HV, wrt_names),
        summary=f"The value of {target.name}, its gradient with respect to {', '.join(wrt_names)} and the "
                f"Hessian-vector product with {', '.join(v_names)}.")
    return [Function(name, tuple(params + v_params), (value, *grads, *hv), span, True, record)]


def _output_names(target: Function) -> list[str]:
    """What F's outputs are called in a record: `value` for one, `out0`, `out1`, ... for several."""
    if len(target.outputs) == 1 and not target.multi:
        return ["value"]
    return [f"out{k}" for k in range(len(target.outputs))]


def _gradients(grads: list[Node | None], wrt_nodes: list[Node], forward: set[int] = frozenset()) -> list[Node]:
    """Gradients, zeros where none flows, named d_<param> (names are hints on shared nodes:
    a forward value that happens to be a gradient keeps its own name)."""
    out = []
    for g, w in zip(grads, wrt_nodes):
        g = g if g is not None else B.zeros_like(w)
        if g.id not in forward:
            hint(g, f"d_{w.attr('name')}")
        out.append(g)
    return out


def reverse(directive: str, name: str, target: Function, wrt: list[int], span) -> list[Function]:
    """grad or vjp: NAME, NAME_fwd and NAME_bwd."""
    params = list(target.params)
    wrt_nodes = [params[i] for i in wrt]
    wrt_names = tuple(p.attr("name") for p in wrt_nodes)
    outputs = list(target.outputs)
    pair = (f"{name}_fwd", f"{name}_bwd")
    out_names = _output_names(target)

    # the cotangent parameters: `seed` for grad, ct0, ct1, ... for vjp
    if directive == "grad":
        ct_names = _fresh_names([], ["seed"])
        ct_slot = Slot.SEED
    else:
        ct_names = _fresh_names([p.attr("name") for p in params], [f"ct{i}" for i in range(len(outputs))])
        ct_slot = Slot.COTANGENT
    ct_params = [B.param(n, o.type.strong(), len(params) + i) for i, (n, o) in enumerate(zip(ct_names, outputs))]

    pullback = rule_context().pullback
    # NAME: forward and backward in one function
    forward_ids = {n.id for n in topo_order(outputs)}
    if directive == "grad":
        one = B.like_const(1, outputs[0])
        grads = _gradients(pullback(outputs, [one], wrt_nodes), wrt_nodes, forward_ids)
        main_params = params
        main_ports = ports(Slot.PRIMAL, target.param_names)
        summary = f"The value of {target.name} and its gradient with respect to {', '.join(wrt_names)}."
    else:
        grads = _gradients(pullback(outputs, list(ct_params), wrt_nodes), wrt_nodes, forward_ids)
        main_params = params + ct_params
        main_ports = ports(Slot.PRIMAL, target.param_names) + ports(Slot.COTANGENT, ct_names)
        summary = (f"The outputs of {target.name} and their vector-Jacobian product with the cotangents "
                   f"{', '.join(ct_names)}.")
    record = Derivative(directive, Part.WHOLE, name, target.name, wrt_names, main_ports,
                        ports(Slot.PRIMAL, out_names) + ports(Slot.GRADIENT, wrt_names), target.multi, pair,
                        accumulates=True, summary=summary)
    main = Function(name, tuple(main_params), tuple(merge_loops(outputs + grads)), span, True, record)

    # NAME_fwd / NAME_bwd: the same sweep with the cotangents as parameters, cut at the residuals
    bwd_grads = grads if directive == "vjp" else _gradients(pullback(outputs, ct_params, wrt_nodes), wrt_nodes,
                                                            forward_ids)
    outputs, bwd_grads = _split_at(merge_loops(outputs + bwd_grads), len(outputs))
    cut = R.split(outputs, params, bwd_grads, ct_params)
    saved = ports(Slot.RESIDUAL, cut.residual_names) + ports(Slot.SIZE, [f"size_{s}" for s in cut.carriers])
    fwd_outputs = outputs + list(cut.residuals) + [B.dim_value_strong(s) for s in cut.carriers]
    fwd = Function(pair[0], tuple(params), tuple(fwd_outputs), span, True, Derivative(
        directive, Part.FWD, name, target.name, wrt_names, ports(Slot.PRIMAL, target.param_names),
        ports(Slot.PRIMAL, out_names) + saved, target.multi, pair,
        summary=f"The forward pass of {name}: outputs of {target.name} and the residuals its _bwd needs."))
    bwd_outputs = [_named(g, f"d_{w}") for g, w in zip(cut.bwd_outputs, wrt_names)]
    bwd = Function(pair[1], tuple(list(cut.bwd_params) + list(ct_params)), tuple(bwd_outputs), span, True, Derivative(
        directive, Part.BWD, name, target.name, wrt_names, saved + ports(ct_slot, ct_names),
        ports(Slot.GRADIENT, wrt_names), target.multi, pair, accumulates=True,
        summary=f"The backward pass of {name}, from the residuals of {name}_fwd."))
    return [main, fwd, bwd]


def _split_at(nodes: list[Node], k: int) -> tuple[list[Node], list[Node]]:
    return list(nodes[:k]), list(nodes[k:])


def _named(g: Node, name: str) -> Node:
    if not g.op.detaches:
        hint(g, name)
    return g


def _grad(name, target, wrt, span):
    return reverse("grad", name, target, wrt, span)


def _vjp(name, target, wrt, span):
    return reverse("vjp", name, target, wrt, span)


DIRECTIVES: dict[str, Directive] = {d.word: d for d in (
    Directive("grad", _grad, scalar_only=True, split=True, scalar_hint="; use `vjp` for other outputs"),
    Directive("vjp", _vjp, scalar_only=False, split=True),
    Directive("jvp", forward, scalar_only=False, split=False),
    Directive("hvp", hessian_vector, scalar_only=True, split=False),
)}
