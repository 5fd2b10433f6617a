"""Each primitive's SymPy meaning as a function of numbers: the arithmetic of the SymPy check.

A node's meaning (its record's `sympy` facet) is built once over symbols, one per input
element, for each signature (primitive, attributes, input and output types), and compiled
with lambdify to mpmath with DIGITS significant digits, under NumPy's IEEE rules: 1/0 = inf,
0 * inf = nan, 0 ** -1 = inf, log(0) = -inf, sqrt(-1) = nan (mpmath alone raises
ZeroDivisionError or returns complex numbers). A whole graph is then evaluated node by node,
so a chain of 1,000 statements costs 1,000 small calls, never one expression of depth 1,000.

The local derivatives, sympy.diff of the meaning with respect to each input element (and
the second derivatives, for Hessian-vector products), are compiled the same way on demand;
reference.py chains them over the graph. In a derivative, a branch of a Piecewise that is a
literal 0 (the branch `where`, relu, clip, maximum or a max reduction does not take: a cut
path) evaluates to MASKED, a zero that stays zero when multiplied by inf or nan, as the
generated code's masks do (docs/language.md, "Conventions"); a local derivative that is 0
wherever it is defined (sign's DiracDelta) is left out, as the generated code has no path there.

A meaning may use a SymPy Function subclass of its own to state a convention (pow's
`numpy_pow`: NumPy's value at 0 ** b, PyTorch's derivatives there): its `fdiff` is the
derivative sympy.diff uses, and its classmethod `numeric(*args)` computes it here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import mpmath
import numpy as np

from ..core.ir import Node, topo_order
from ..core.primitive import SymContext
from ..core.types import DType
from ..primitives.common import numpy_pow_number
from ..primitives.loops import group_of as loop_group
from ..primitives.loops import iterate as iterate_loop

DIGITS = 60


def _sp():
    import sympy

    return sympy


def concrete_shape(shape, sizes) -> tuple[int, ...]:
    return SymContext(sizes).shape(shape)


# ---- IEEE numbers over mpmath ------------------------------------------------------------------
class Masked(mpmath.mpf):
    """The derivative along a cut path: 0, and still 0 times inf or nan."""

    def __mul__(self, other):
        return self

    __rmul__ = __mul__

    def __add__(self, other):
        return other

    __radd__ = __add__

    def __neg__(self):
        return self

    def __repr__(self) -> str:
        return "MASKED"


MASKED = Masked(0)


def _real(v):
    """A complex result (log or a power of a negative number) is nan, as in NumPy."""
    if isinstance(v, mpmath.mpc):
        return v.real if v.imag == 0 else mpmath.nan
    return v


ieee_pow = numpy_pow_number  # a ** b as NumPy computes it for floats


def ieee_log(x):
    x = mpmath.mpf(x)
    if x < 0 or mpmath.isnan(x):
        return mpmath.nan
    return mpmath.log(x)  # log(0) = -inf


def to_number(v):
    """A SymPy (or Python) scalar as the check computes with: int, bool, or mpf."""
    sp = _sp()
    if isinstance(v, (bool, np.bool_)) or v is sp.true or v is sp.false:
        return bool(v)
    if isinstance(v, (int, np.integer, sp.Integer)):
        return int(v)
    if isinstance(v, mpmath.mpf):
        return v
    if isinstance(v, (float, np.floating)):
        return mpmath.mpf(float(v))
    if v is sp.oo or v is sp.S.NegativeInfinity:
        return mpmath.inf if v is sp.oo else -mpmath.inf
    if v is sp.nan or v is sp.zoo:
        return mpmath.nan
    if isinstance(v, sp.Rational):
        return mpmath.mpf(v.p) / v.q
    return mpmath.mpf(sp.N(v, DIGITS + 5))


# ---- printing SymPy expressions as IEEE code ------------------------------------------------------
def _printer(masked: bool):
    from sympy.printing.pycode import MpmathPrinter

    class Printer(MpmathPrinter):
        """mpmath code without `/` (1/0 raises there; here it is inf) and with the masks."""

        def _print_Pow(self, expr, rational=False):
            return f"_pow({self._print(expr.base)}, {self._print(expr.exp)})"

        def _print_Mul(self, expr):
            return "*".join(f"({self._print(a)})" for a in expr.args)

        def _print_log(self, expr):
            return f"_log({self._print(expr.args[0])})"

        def _print_Piecewise(self, expr):
            sp = _sp()
            code, closed = "", False
            for value, cond in expr.args:
                text = "_MASKED" if masked and value == 0 else self._print(value)
                if cond == sp.true:
                    code, closed = code + f"({text})", True
                    break
                code += f"({text}) if ({self._print(cond)}) else "
            return f"({code}{'' if closed else 'nan'})"

        def _print_Function(self, expr):
            if hasattr(expr.func, "numeric"):
                return f"_fn_{expr.func.__name__}({', '.join(self._print(a) for a in expr.args)})"
            return super()._print_Function(expr)

    return Printer({"fully_qualified_modules": False, "inline": True, "allow_unknown_functions": True})


def _namespace(exprs) -> dict:
    sp = _sp()
    ns = {"_pow": ieee_pow, "_log": ieee_log, "_MASKED": MASKED, "nan": mpmath.nan, "inf": mpmath.inf}
    for e in exprs:
        if isinstance(e, sp.Basic):
            for f in e.atoms(sp.Function):
                if hasattr(f.func, "numeric"):
                    ns[f"_fn_{f.func.__name__}"] = f.func.numeric
    return ns


def compile_exprs(symbols, exprs, masked: bool = False) -> Callable:
    """A function of numbers (one per symbol) returning the list of the expressions' values."""
    sp = _sp()
    exprs = [numeric_form(sp.sympify(e)) for e in exprs]
    if not exprs:
        return lambda *args: []
    fn = sp.lambdify(list(symbols), exprs, modules=[_namespace(exprs), "mpmath"], printer=_printer(masked),
                     cse=len(exprs) > 1, docstring_limit=0)
    return fn


def numeric_form(e):
    """What lambdify can print: DiracDelta (the derivative of sign) is 0; Heaviside a Piecewise
    with SymPy's value 1/2 at 0."""
    sp = _sp()
    if not isinstance(e, sp.Basic):
        return e
    if e.has(sp.DiracDelta):
        e = e.replace(sp.DiracDelta, lambda *a: sp.Integer(0))
    if e.has(sp.Heaviside):
        e = e.replace(sp.Heaviside, lambda x, h0=sp.S.Half: sp.Piecewise((1, x > 0), (h0, sp.Eq(x, 0)), (0, True)))
    return e


def _flows(d) -> bool:
    """Whether a local derivative passes anything on: not one that is 0 wherever it is
    defined (sign's 2 DiracDelta(x)), which is no path at all, as in the generated code, so an
    inf or nan arriving there stays out (0 * inf would be nan)."""
    return d != 0 and numeric_form(d) != 0


# ---- one node's meaning, compiled -------------------------------------------------------------------
def _symbol(name: str, dtype: DType):
    sp = _sp()
    if dtype.is_float:
        return sp.Symbol(name, real=True)
    if dtype == DType.BOOL:
        return sp.Symbol(name)
    return sp.Symbol(name, integer=True)


@dataclass
class Compiled:
    """A node's meaning at fixed sizes. `symbolic[i]`: input i enters as numbers (else its
    integer values were built in). `jac_index`: (output element, input, input element) of each
    local derivative that is not identically 0."""

    node: Node
    symbolic: tuple[bool, ...]
    symbols: list
    outputs: list  # SymPy expressions, one per output element
    value: Callable
    by_symbol: dict = field(default_factory=dict)  # symbol -> (input, element)
    _jac: tuple | None = None
    _hess: tuple | None = None

    def flat_args(self, args: list[np.ndarray]) -> list:
        return [v for a, s in zip(args, self.symbolic) if s for v in np.ravel(a)]

    def jacobian(self) -> tuple[list, Callable]:
        """([(k, i, j)], fn): the local derivatives d out[k] / d in_i[j] of float inputs."""
        if self._jac is None:
            sp = _sp()
            index, exprs = [], []
            if self.node.dtype.is_float:
                for k, e in enumerate(self.outputs):
                    if not isinstance(e, sp.Basic):
                        continue
                    for s in sorted(e.free_symbols & self.by_symbol.keys(), key=self.by_symbol.get):
                        i, j = self.by_symbol[s]
                        if not self.node.inputs[i].dtype.is_float:
                            continue
                        d = sp.diff(e, s)
                        if _flows(d):
                            index.append((k, i, j))
                            exprs.append(d)
            self._jac = (index, exprs, compile_exprs(self.symbols, exprs, masked=True))
        return self._jac[0], self._jac[2]

    def hessian(self) -> tuple[list, Callable]:
        """([(m, i2, j2)], fn): d J[m] / d in_i2[j2] for each local derivative J[m]."""
        if self._hess is None:
            sp = _sp()
            self.jacobian()
            index, exprs = [], []
            for m, d in enumerate(self._jac[1]):
                for s in sorted(d.free_symbols & self.by_symbol.keys(), key=self.by_symbol.get):
                    i, j = self.by_symbol[s]
                    if not self.node.inputs[i].dtype.is_float:
                        continue
                    dd = sp.diff(d, s)
                    if _flows(dd):
                        index.append((m, i, j))
                        exprs.append(dd)
            self._hess = (index, compile_exprs(self.symbols, exprs, masked=True))
        return self._hess


def symbolic_evaluate(outputs, env: dict[int, np.ndarray], sizes: dict) -> list[np.ndarray]:
    """The outputs as object arrays of SymPy expressions, given values for the params in env:
    how a meaning made of a graph (a call) is built over symbols."""
    ctx = SymContext(sizes, evaluate=lambda outs, values: symbolic_evaluate(outs, values, sizes))
    vals: dict[int, np.ndarray] = dict(env)
    for n in topo_order(outputs):
        if n.id in vals:
            continue
        if n.is_param:
            raise KeyError(f"no value for parameter {n.attr('name')}")
        out = n.op.sympy(ctx, [vals[i.id] for i in n.inputs], n)
        vals[n.id] = np.asarray(out, dtype=object).reshape(concrete_shape(n.shape, sizes))
    return [vals[o.id] for o in outputs]


class Meanings:
    """The compiled meanings of the nodes of one check (fixed sizes), shared by signature."""

    def __init__(self, sizes: dict):
        self.sizes = sizes
        self.ctx = SymContext(sizes, evaluate=lambda outs, values: symbolic_evaluate(outs, values, sizes))
        self._cache: dict = {}
        self._concrete: set = set()  # signatures whose meaning needs its integer inputs' values
        self._by_node: dict[int, Compiled] = {}
        self._shapes: dict[int, tuple[int, ...]] = {}

    def shape(self, node: Node) -> tuple[int, ...]:
        hit = self._shapes.get(node.id)
        if hit is None:
            hit = self._shapes[node.id] = concrete_shape(node.shape, self.sizes)
        return hit

    def compiled(self, node: Node, args: list[np.ndarray]) -> Compiled:
        hit = self._by_node.get(node.id)
        if hit is not None:
            return hit
        sig = (node.op, node.attrs, node.type, tuple(i.type for i in node.inputs))
        if sig in self._concrete:
            sig = sig + (tuple(tuple(np.ravel(a)) for a, i in zip(args, node.inputs) if not i.dtype.is_float
                               and i.dtype != DType.BOOL),)
            hit = self._cache.get(sig)
            if hit is None:
                hit = self._cache[sig] = self._build(node, args)
            return hit
        hit = self._cache.get(sig)
        if hit is None:
            try:
                hit = self._cache[sig] = self._build(node, None)
            except (TypeError, ValueError, IndexError, KeyError, AttributeError):
                # an integer input decides the shape of the meaning (indices, labels): built anew
                # for each set of values
                self._concrete.add(sig)
                return self.compiled(node, args)
        self._by_node[node.id] = hit
        return hit

    def _build(self, node: Node, args: list[np.ndarray] | None) -> Compiled:
        sp = _sp()
        arrays, symbols, by_symbol, symbolic = [], [], {}, []
        for i, inp in enumerate(node.inputs):
            shape = self.shape(inp)
            if args is not None and not inp.dtype.is_float and inp.dtype != DType.BOOL:
                arrays.append(np.vectorize(sp.Integer, otypes=[object])(np.asarray(args[i], dtype=object))
                              if np.size(args[i]) else np.empty(shape, dtype=object))
                symbolic.append(False)
                continue
            arr = np.empty(shape, dtype=object)
            for j, idx in enumerate(np.ndindex(shape)):
                s = _symbol(f"in{i}_{j}", inp.dtype)
                arr[idx] = s
                symbols.append(s)
                by_symbol[s] = (i, j)
            arrays.append(arr)
            symbolic.append(True)
        out = node.op.sympy(self.ctx, arrays, node)
        out = np.asarray(out, dtype=object).reshape(self.shape(node))
        # (a 0-d array stored as an element of an object array is its one value)
        outputs = [sp.sympify(e[()] if isinstance(e, np.ndarray) and e.ndim == 0 else e) for e in out.flat]
        return Compiled(node, tuple(symbolic), symbols, outputs, compile_exprs(symbols, outputs), by_symbol)

    # ---- evaluating graphs ----------------------------------------------------------------------
    def loop(self, node: Node, args: list[np.ndarray]) -> list[np.ndarray]:
        """The carries after a loop (primitives/loops.py), its body evaluated numerically at each
        iteration (a loop's meaning as one SymPy expression would grow with every iteration)."""
        def run(outputs, values):
            got = self.evaluate(outputs, values)
            return [got[o.id] for o in outputs]

        return iterate_loop(node, args, self.ctx.dim, lambda i: np.asarray(i, dtype=object), run)

    def leaf(self, node: Node) -> np.ndarray:
        value = node.op.sympy(self.ctx, [], node)
        arr = np.asarray(value, dtype=object).reshape(self.shape(node))
        return np.vectorize(to_number, otypes=[object])(arr) if arr.size else arr

    def evaluate(self, outputs, env: dict[int, np.ndarray], vals: dict | None = None) -> dict[int, np.ndarray]:
        """Every node's value (object arrays of numbers), given the parameters' values in env."""
        vals = dict(env) if vals is None else vals
        vals.update(env)
        loops: dict = {}  # a loop group -> its carries (every member computed at once)
        for n in topo_order(outputs):
            if n.id in vals:
                continue
            if n.is_param:
                raise KeyError(f"no value for parameter {n.attr('name')}")
            if n.is_leaf:
                vals[n.id] = self.leaf(n)
                continue
            args = [vals[i.id] for i in n.inputs]
            if n.op.group_vjp is not None:  # a loop: its body evaluated, iteration by iteration
                key = loop_group(n)
                if key not in loops:
                    loops[key] = self.loop(n, args)
                vals[n.id] = loops[key][n.attr("out")]
                continue
            c = self.compiled(n, args)
            out = np.empty(len(c.outputs), dtype=object)
            out[:] = [_plain(v, n.dtype) for v in c.value(*c.flat_args(args))]
            vals[n.id] = out.reshape(self.shape(n))
        return vals


def _plain(v: Any, dtype: DType):
    """A computed value as a number of the check: an mpf for a float dtype, an int for an
    integer one, a bool for bool."""
    if dtype == DType.BOOL:
        return bool(v)
    v = _real(v) if isinstance(v, mpmath.mpc) else v
    v = v if isinstance(v, (int, mpmath.mpf)) and not isinstance(v, bool) else to_number(v)
    if dtype.is_float:
        return v if isinstance(v, mpmath.mpf) else mpmath.mpf(v)
    return int(v) if isinstance(v, int) or mpmath.isfinite(v) else v
