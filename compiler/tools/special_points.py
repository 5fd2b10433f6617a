"""The special points of a function: where one of its primitives is singular or its derivative
is a convention, reached through the parameters.

Random points almost never hit 0 ** 0, a tie of `maximum` or `x == lo` in `clip`, and there
a derivative rule may give NaN or break a convention. A record lists its special points
(`special`: core/primitive.py, Special); for each application in the function the check
makes points that put it there. An operand is reached when each of its elements is a * p + b
for one parameter element p (a reshape, broadcast, transpose, cast, negation or shift of a
parameter: the meanings say so, evaluated over symbols); p is solved for. A point that
leaves its parameter's domain (`# domain x: positive` admits 0, its boundary), or that does
not hit the point exactly (ties through rounding), is not used.
"""
from __future__ import annotations

from dataclasses import dataclass

import mpmath
import numpy as np

from ..core.ir import Function, Node, topo_order
from ..core.primitive import Special, SymContext
from .numeric_meanings import Meanings, concrete_shape

MAX_POINTS = 12


@dataclass
class SpecialPoint:
    label: str  # "pow: base 0 (line 3)"
    env: dict  # param id -> values


def _sp():
    import sympy

    return sympy


def in_domain(value, domain: str) -> bool:
    """Whether a value lies in the closure of a parameter's domain (the boundary is special)."""
    if not mpmath.isfinite(value):
        return False
    if domain == "positive":
        return value >= 0
    if domain == "unit":
        return 0 <= value <= 1
    if domain == "above1":
        return value >= 1
    return True


class _Sources:
    """Each node's elements as a * p + b (p a parameter element's symbol, a and b numbers), or
    None where some element is not of that form."""

    def __init__(self, fn: Function, sizes: dict):
        sp = _sp()
        self.sizes = sizes
        self.ctx = SymContext(sizes)
        self.symbol_of: dict = {}  # symbol -> (param node, flat index)
        self.exprs: dict[int, np.ndarray | None] = {}
        for p in fn.params:
            if not p.dtype.is_float:
                continue
            shape = concrete_shape(p.shape, sizes)
            arr = np.empty(shape, dtype=object)
            for j, idx in enumerate(np.ndindex(shape)):
                s = sp.Symbol(f"p{p.attr('position')}_{j}", real=True)
                arr[idx] = s
                self.symbol_of[s] = (p, j)
            self.exprs[p.id] = arr

    def of(self, n: Node) -> np.ndarray | None:
        if n.id in self.exprs:
            return self.exprs[n.id]
        out = None
        if n.is_const or n.is_dim:
            out = np.asarray(n.op.sympy(self.ctx, [], n), dtype=object).reshape(concrete_shape(n.shape, self.sizes))
        elif not n.is_leaf and n.dtype.is_float and n.inputs:
            args = [self.exprs.get(i.id) for i in n.inputs]
            if all(a is not None for a in args):
                try:
                    v = np.asarray(n.op.sympy(self.ctx, args, n), dtype=object)
                    out = v.reshape(concrete_shape(n.shape, self.sizes)) if self._affine(v) else None
                except Exception:  # noqa: BLE001 - a meaning that needs numbers: not traced
                    out = None
        self.exprs[n.id] = out
        return out

    def _affine(self, v: np.ndarray) -> bool:
        sp = _sp()
        for e in v.flat:
            e = sp.sympify(e)
            syms = e.free_symbols
            if not syms:
                if not e.is_number:
                    return False
                continue
            if len(syms) > 1 or not all(s in self.symbol_of for s in syms):
                return False
            (s,) = syms
            if not e.is_polynomial(s) or sp.degree(e, s) != 1:
                return False
        return True

    def solve(self, e, value):
        """(param, flat index, parameter value) making the element e equal `value`, or None."""
        sp = _sp()
        e = sp.sympify(e)
        syms = e.free_symbols
        if len(syms) != 1:
            return None
        (s,) = syms
        a = e.coeff(s, 1)
        b = e.subs(s, 0)
        p, j = self.symbol_of[s]
        return p, j, (value - _mpf(b)) / _mpf(a)


def _mpf(e):
    sp = _sp()
    e = sp.Rational(e) if isinstance(e, sp.Rational) else e
    if isinstance(e, sp.Rational):
        return mpmath.mpf(e.p) / e.q
    return mpmath.mpf(sp.N(e, 70))


def special_points(fn: Function, meanings: Meanings, base_env: dict, base_vals: dict,
                   domains: dict) -> list[SpecialPoint]:
    """Points near base_env that put an application of a primitive in fn at one of its
    special points (at most MAX_POINTS, in the order of the function's statements)."""
    sources = _Sources(fn, meanings.sizes)
    points: list[SpecialPoint] = []
    seen: set = set()
    for n in topo_order(fn.outputs):
        if n.is_leaf or not n.op.special:
            continue
        for spec in n.op.special:
            if len(points) >= MAX_POINTS:
                return points
            sets = _assignments(n, spec, sources, base_vals, meanings)
            if not sets:
                continue
            env = {k: v.copy() for k, v in base_env.items()}
            ok = True
            for p, j, value in sets:
                if not in_domain(value, domains.get(p.attr("name"), "normal")):
                    ok = False
                    break
                env[p.id].reshape(-1)[j] = value
            if not ok:
                continue
            key = tuple((k, tuple(v.reshape(-1))) for k, v in sorted(env.items()))
            if key in seen:
                continue
            vals = meanings.evaluate(fn.outputs, env)
            if not _hits(n, spec, vals, meanings):
                continue
            seen.add(key)
            line = f" (line {n.span.line})" if n.span is not None else ""
            points.append(SpecialPoint(f"{n.op.name}: {spec.label}{line}", env))
    return points


def _every_other(shape) -> list[tuple]:
    return [idx for k, idx in enumerate(np.ndindex(shape)) if k % 2 == 0]


def _assignments(n: Node, spec: Special, sources: _Sources, vals: dict, m: Meanings) -> list:
    """(param, flat index, value) settings that put node n at the special point."""
    sets = []
    shape = m.shape(n)
    for i, value in spec.values:
        src = sources.of(n.inputs[i])
        if src is None:
            return []
        for idx in _every_other(src.shape):
            hit = sources.solve(src[idx], mpmath.mpf(value))
            if hit is None:
                continue  # a literal operand: it is what it is
            sets.append(hit)
    for i, k in spec.ties:
        src = sources.of(n.inputs[i])
        if src is None:
            return []
        src = np.broadcast_to(src, shape) if src.shape != shape and n.op.elementwise else src
        other = vals[n.inputs[k].id]
        other = np.broadcast_to(other, src.shape) if other.shape != src.shape else other
        for idx in _every_other(src.shape):
            hit = sources.solve(src[idx], other[idx])
            if hit is not None:
                sets.append(hit)
    if spec.slice_ties or spec.slice_zeros:
        src = sources.of(n.inputs[0])
        if src is None:
            return []
        x = vals[n.inputs[0].id]
        for s_src, s_val in zip(_slices(src, n), _slices(x, n)):
            if len(s_src) < 2:
                continue
            if spec.slice_zeros:
                targets = [(e, mpmath.mpf(0)) for e in s_src[:spec.slice_zeros]]
            else:
                pick = max if spec.slice_ties == "largest" else min
                best = pick(range(len(s_val)), key=lambda q: s_val[q])
                other = 1 if best == 0 else 0
                targets = [(s_src[other], s_val[best])]
            for e, value in targets:
                hit = sources.solve(e, value)
                if hit is not None:
                    sets.append(hit)
    return sets


def _slices(arr: np.ndarray, n: Node) -> list[list]:
    """The reduced slices of a reduction's operand (axes from attribute `axes`), or the scanned
    lines of a scan's (attribute `axis`)."""
    axes = tuple(n.attr("axes") or ()) if n.attr("axis") is None else (n.attr("axis"),)
    rest = [a for a in range(arr.ndim) if a not in axes]
    moved = np.transpose(arr, rest + list(axes))
    lead = moved.shape[:len(rest)]
    flat = moved.reshape(lead + (-1,)) if lead else moved.reshape(1, -1)
    return [list(flat[idx]) for idx in np.ndindex(flat.shape[:-1])]


def _hits(n: Node, spec: Special, vals: dict, m: Meanings) -> bool:
    """Whether the node is at its special point somewhere (exactly: a tie through rounding is not)."""
    shape = m.shape(n)
    for i, value in spec.values:
        if not any(v == value for v in np.ravel(vals[n.inputs[i].id])):
            return False
    for i, k in spec.ties:
        a, b = (np.broadcast_to(vals[n.inputs[q].id], shape) if n.op.elementwise else vals[n.inputs[q].id]
                for q in (i, k))
        if not any(x == y for x, y in zip(np.ravel(a), np.ravel(b))):
            return False
    slices = _slices(vals[n.inputs[0].id], n) if spec.slice_zeros or spec.slice_ties else []
    if spec.slice_zeros and not any(sum(v == 0 for v in s) >= spec.slice_zeros for s in slices):
        return False
    pick = max if spec.slice_ties == "largest" else min
    return not spec.slice_ties or any(sum(v == pick(s) for v in s) >= 2 for s in slices if s)
