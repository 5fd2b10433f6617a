"""`call`: a call of a large fn kept as a call (the generated code calls the fn's function).

Lowering inlines calls of small fns, so a loop fuses across them and derivatives see one
graph. A fn of more than CALL_INLINE_LIMIT operations is called instead: inlining every
call of a chain of calls (g2 calls g1, g3 calls g2, ...) makes the IR and the generated
module grow with the square of the chain's length. A derivative directive still sees one
graph: it expands the calls of the function it differentiates (core/substitute.py,
expand_calls, through the `body` facet) before differentiating it.

The record's rules pull back and push forward through the callee's body over fresh
parameters and then substitute the arguments: the work is the callee's size, never the
caller's (a rule never walks the graph above the call).
"""
from __future__ import annotations

import numpy as np

from ..core.ir import Function, Node, topo_order
from ..core.nodes import apply, param
from ..core.primitive import PREC_POSTFIX, Cost, Expr, Primitive, ops, register
from ..core.substitute import inline, substitute
from ..core.types import TensorType, dim_subst

# a fn of more operations than this is called, not inlined (the largest fn called in the
# examples, tests and benchmarks has 24; fusion across a call matters for small fns)
CALL_INLINE_LIMIT = 64


class Callee:
    """The called fn, as a node attribute: compared by identity, printed as its name."""

    __slots__ = ("fn",)

    def __init__(self, fn: Function):
        self.fn = fn

    def __repr__(self) -> str:
        return self.fn.name


def keeps_call(fn: Function, size: int) -> bool:
    """Whether a call of fn (of `size` operations) stays a call: a plain fn of one result."""
    return fn.derivative is None and not fn.multi and len(fn.outputs) == 1 and size > CALL_INLINE_LIMIT


def call(fn: Function, args: list[Node], env: dict) -> Node:
    """The call of fn with (unified) args, its size symbols bound by env."""
    return apply(ops.call, *args, fn=Callee(fn), env=tuple(sorted(env.items())))


def _infer(types, attrs):
    out = attrs["fn"].fn.outputs[0].type
    env = dict(attrs["env"])
    return TensorType(out.dtype, tuple(dim_subst(d, env) for d in out.shape))


def _over_fresh(node: Node) -> tuple[list[Node], Node]:
    """The callee's result over fresh parameters typed as the call's arguments."""
    fn = node.attr("fn").fn
    fresh = [param(p.attr("name"), i.type, k) for k, (p, i) in enumerate(zip(fn.params, node.inputs))]
    return fresh, inline(fn, fresh, dict(node.attr("env")))[0]


def _body(node: Node) -> list[Node]:
    """The call as IR: the callee's body over the call's inputs (sized as at the call)."""
    fn = node.attr("fn").fn
    return inline(fn, list(node.inputs), dict(node.attr("env")))


def _vjp(ctx, node, ct, needs):
    fresh, y = _over_fresh(node)
    seed = param("ct", ct.type, len(fresh))
    wrt = [f for f, need in zip(fresh, needs) if need]
    cts = ctx.pullback([y], [seed], wrt)
    mapping = {f.id: i for f, i in zip(fresh, node.inputs)} | {seed.id: ct}
    made = iter(substitute([c for c in cts if c is not None], mapping))
    by_fresh = {w.id: (next(made) if c is not None else None) for w, c in zip(wrt, cts)}
    return [by_fresh.get(f.id) for f in fresh]


def _jvp(ctx, node, tangents):
    fresh, y = _over_fresh(node)
    moving = [(f, param(f"t_{f.attr('name')}", t.type, len(fresh) + k), t)
              for k, (f, t) in enumerate(zip(fresh, tangents)) if t is not None]
    (t_y,) = ctx.pushforward([y], [f for f, _, _ in moving], [s for _, s, _ in moving])
    if t_y is None:
        return None
    mapping = {f.id: i for f, i in zip(fresh, node.inputs)} | {s.id: t for _, s, t in moving}
    return substitute([t_y], mapping)[0]


def _sympy(ctx, args, node):
    fresh, y = _over_fresh(node)
    values = {f.id: a for f, a in zip(fresh, args)}
    if ctx.evaluate is not None:  # the checker's evaluator (numeric_meanings.symbolic_evaluate: concrete shapes)
        return ctx.evaluate([y], values)[0]
    for n in topo_order([y]):  # each node's meaning in turn
        if n.id not in values:
            values[n.id] = np.asarray(n.op.sympy(ctx, [values[i.id] for i in n.inputs], n), dtype=object)
    return values[y.id]


def _emit(ctx, args, node):
    return Expr(f"{ctx.function(node.attr('fn').fn.name)}({', '.join(a.text for a in args)})", PREC_POSTFIX)


register(Primitive(
    "call", "subgraph", _infer, _emit, _vjp, _jvp, _sympy, body=_body, cost=Cost.COSTLY,
    doc="a call of a fn of more than CALL_INLINE_LIMIT operations (the generated function is called)"))
