"""The reference derivatives of the SymPy check: sympy.diff of each node's meaning, chained.

tapeless's derivative functions come from the records' VJP and JVP rules; the reference
comes from their SymPy meanings alone. For each node, sympy.diff of its meaning with
respect to each input element (numeric_meanings.Compiled.jacobian) is evaluated at the
point and chained over the graph: backwards for gradients (<cotangents, outputs> by the
chain rule), forwards for output tangents (J t), forwards then backwards over pairs of
numbers for Hessian-vector products (with each meaning's second derivatives). This is the
chain rule sympy.diff of the whole scalarized function would apply, done on the graph: a
value used twice is differentiated once, so a chain of 1,000 statements stays linear.

Arrays hold numbers or None, where nothing flows (an element no path reaches). A local
derivative that is MASKED (a cut path) passes nothing on, even inf or nan.
"""
from __future__ import annotations

import numpy as np

from ..core.ir import Node
from .numeric_meanings import Masked, Meanings


def _acc(arr: np.ndarray, j: int, v) -> None:
    flat = arr.reshape(-1)
    flat[j] = v if flat[j] is None else flat[j] + v


def _flows(n: Node) -> bool:
    """Whether derivatives flow through n (a float value that is not a literal or stop_gradient)."""
    return n.dtype.is_float and not n.is_leaf and not n.op.detaches


def _jacobian(m: Meanings, n: Node, vals: dict):
    args = [vals[i.id] for i in n.inputs]
    c = m.compiled(n, args)
    index, fn = c.jacobian()
    return c, args, index, (fn(*c.flat_args(args)) if index else [])


def backward(m: Meanings, order: list[Node], vals: dict, seeds: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Adjoints: d<seeds, outputs>/d(every node), seeds given per output node."""
    adj = {k: v.copy() for k, v in seeds.items()}
    for n in reversed(order):
        a = adj.get(n.id)
        if a is None or not _flows(n):
            continue
        _, _, index, J = _jacobian(m, n, vals)
        flat_a = a.reshape(-1)
        for (k, i, j), v in zip(index, J):
            g = flat_a[k]
            inp = n.inputs[i]
            if g is None or isinstance(v, Masked) or inp.is_const or inp.is_dim:
                continue
            if inp.id not in adj:
                adj[inp.id] = np.full(m.shape(inp), None, dtype=object)
            _acc(adj[inp.id], j, g * v)
    return adj


def forward(m: Meanings, order: list[Node], vals: dict, seeds: dict[int, np.ndarray],
            absolute: bool = False) -> dict[int, np.ndarray]:
    """Tangents J t of every node, seeds given per parameter (or literal). With `absolute`,
    sum(|J| |t|): how far an error in the seeds can move each value, to first order."""
    tan = dict(seeds)
    for n in order:
        if n.id in tan or not _flows(n):
            continue
        ins = [tan.get(i.id) for i in n.inputs]
        if all(t is None for t in ins):
            continue
        _, _, index, J = _jacobian(m, n, vals)
        out = np.full(m.shape(n), None, dtype=object)
        for (k, i, j), v in zip(index, J):
            t = ins[i]
            tv = None if t is None else t.reshape(-1)[j]
            if tv is None or isinstance(v, Masked):
                continue
            _acc(out, k, abs(v) * abs(tv) if absolute else v * tv)
        tan[n.id] = out
    return tan


def backward_over_forward(m: Meanings, order: list[Node], vals: dict, xdot: dict[int, np.ndarray],
                          seeds: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """d/de of the adjoints at x + e xdot (xdot: forward tangents): H v for a scalar output."""
    adj0 = {k: v.copy() for k, v in seeds.items()}
    adj1: dict[int, np.ndarray] = {}
    for n in reversed(order):
        a0, a1 = adj0.get(n.id), adj1.get(n.id)
        if (a0 is None and a1 is None) or not _flows(n):
            continue
        c, args, index, J = _jacobian(m, n, vals)
        if not index:
            continue
        J1 = [None] * len(index)
        h_index, h_fn = c.hessian()
        if h_index:
            for (mm, i2, j2), hv in zip(h_index, h_fn(*c.flat_args(args))):
                t = xdot.get(n.inputs[i2].id)
                tv = None if t is None else t.reshape(-1)[j2]
                if tv is None or isinstance(hv, Masked):
                    continue
                J1[mm] = hv * tv if J1[mm] is None else J1[mm] + hv * tv
        f0 = None if a0 is None else a0.reshape(-1)
        f1 = None if a1 is None else a1.reshape(-1)
        for mm, ((k, i, j), v) in enumerate(zip(index, J)):
            inp = n.inputs[i]
            if isinstance(v, Masked) or inp.is_const or inp.is_dim:
                continue
            g0 = None if f0 is None else f0[k]
            g1 = None if f1 is None else f1[k]
            if g0 is not None:
                if inp.id not in adj0:
                    adj0[inp.id] = np.full(m.shape(inp), None, dtype=object)
                _acc(adj0[inp.id], j, g0 * v)
            parts = [p for p in (None if g1 is None else g1 * v,
                                 None if g0 is None or J1[mm] is None else g0 * J1[mm]) if p is not None]
            if parts:
                if inp.id not in adj1:
                    adj1[inp.id] = np.full(m.shape(inp), None, dtype=object)
                _acc(adj1[inp.id], j, parts[0] if len(parts) == 1 else parts[0] + parts[1])
    return adj1
