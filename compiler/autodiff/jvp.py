"""The forward sweep: tangents of the outputs from tangents of the inputs.

One pass in topological order; each primitive's JVP rule maps the tangents of
its inputs (None: zero) to the tangent of its output. The result is ordinary
IR. Composed with the reverse sweep (vjp.py) it gives Hessian-vector
products: the JVP of a gradient graph (forward over reverse), which never
materialises a Hessian: for a loss built from a matrix product it comes out
as one more product forward and one back.
"""
from __future__ import annotations

from ..core.diagnostics import UserError
from ..core.ir import Node, hint, name_of, span_scope, topo_order
from ..core.primitive import RuleContext
from .vjp import active_set


def pushforward(outputs: list[Node], wrt: list[Node], tangents: list[Node], ctx: RuleContext) -> list[Node | None]:
    """The directional derivative of each output along `tangents` (None where it is zero)."""
    active = active_set(outputs, wrt)
    t_of: dict[int, Node] = {w.id: t for w, t in zip(wrt, tangents)}
    order = topo_order(outputs)
    primal = {n.id for n in order}
    for n in order:
        if n.id in t_of or n.id not in active or n.is_param:
            continue
        ts = [t_of.get(i.id) if i.id in active else None for i in n.inputs]
        if all(t is None for t in ts):
            continue
        if n.op.jvp is None:
            raise UserError(f"tapeless has no forward-mode rule for `{n.op}` yet", n.span)
        with span_scope(n.span):
            t = n.op.jvp(ctx, n, ts)
        if t is None:
            continue
        if t.shape != n.shape or t.dtype != n.dtype:  # pragma: no cover - a bug in a rule
            raise AssertionError(f"JVP of {n.op}: tangent {t.type} for output {n.type}")
        name = name_of(n)
        if name and t.id not in primal:  # (a forward value that is also a tangent keeps its own name)
            hint(t, f"t_{name}")
        t_of[n.id] = t
    return [t_of.get(o.id) for o in outputs]
