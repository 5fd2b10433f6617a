"""`tapeless check`: every derivative cross-checked against SymPy.

For each derivative function of a module:

1. size symbols get small sizes (default 2, 3, 2, 3, ... in order of appearance;
   `--sizes N=3,M=2` overrides), so every array has a concrete shape;
2. points are drawn: random dyadic rationals inside each input's domain (`# domain x:
   positive` annotations), every other point with the previous one's signs flipped, and
   the function's special points (special_points.py: 0 ** b, ties of maximum and of max
   reductions, clip at its bounds, relu and abs at 0, ...), where conventions and NaNs live;
3. the reference derivative at each point is sympy.diff of every node's SymPy meaning
   (written from the mathematics, independently of the VJP and JVP rules), chained over
   the graph (reference.py): <cotangents, outputs> differentiated for gradients, J t for
   output tangents, forward over backward for Hessian-vector products; `stop_gradient(e)`
   passes nothing back;
4. the compiled derivative (the adjoint IR tapeless generates code from), and its
   `_fwd`/`_bwd` pair, are evaluated at the same points;
5. both are computed with 60 significant digits under NumPy's IEEE rules
   (numeric_meanings.py) and must agree to 30 digits, inf and nan included; a point where
   the reference is not finite is drawn again, except a special point, where a NaN is what
   the check looks for.

Rounded constants: the compiler folds operations on literals (1 / 6 in f32, log(2.0)) in
the dtype of the program, so a derivative may hold 0.16666667 where the reference has
exactly 1/6. Where the strict comparison fails, the check bounds how far the rounding of
the constants the derivative holds can move each value (to first order, from their dtype's
unit roundoff: 2^-24 for f32, or half the smallest subnormal near 0) and accepts a
difference within twice that bound, saying so in the report. Any constant may be rounded,
even a round one (b - 1 is exactly -1.0 in f32 for b = 1e-8). A wrong rule is off by far
more. Two values that both lie beyond the range of the result's dtype (1e60 and inf in f32)
agree: the dtype holds both as inf; so do two below half its smallest subnormal (both 0).

A size cap stops the check from exploding: a function with more input elements than
`max_elements` is reported as skipped, with the reason.
"""
from __future__ import annotations

import math
import random
import re
import time
from dataclasses import dataclass, field, replace

import mpmath
import numpy as np

from ..core.derivative import Part, Slot
from ..core.ir import Function, Module, topo_order
from ..core.primitive import REGISTRY
from ..core.substitute import with_calls_expanded
from ..core.types import Dim, DType
from ..primitives.loops import unroll
from . import reference
from .numeric_meanings import DIGITS, Meanings, concrete_shape, symbolic_evaluate
from .special_points import special_points

REL_TOL = mpmath.mpf(10) ** -30
ABS_TOL = mpmath.mpf(10) ** -45
UNIT_ROUNDOFF = {DType.F16: 2.0 ** -11, DType.F32: 2.0 ** -24, DType.F64: 2.0 ** -53}
# half the smallest subnormal: how far a result rounded to (or near) 0 may be off
HALF_TINY = {DType.F16: 2.0 ** -25, DType.F32: 2.0 ** -150, DType.F64: 2.0 ** -1075}
DRAWS = 12  # tries for a point where the reference is finite


# a meaning made of a graph (a test's sub-function primitive) evaluates it over SymPy values
evaluate = symbolic_evaluate


# ---- sampling points --------------------------------------------------------------------------
_DOMAIN = re.compile(r"^#\s*domain\s+(\w+)\s*:\s*(\S+)", re.M)
_SIZE = re.compile(r"^#\s*size\s+(\w+)\s*:\s*(\d+)", re.M)


def annotations(text: str) -> tuple[dict[str, str], dict[str, int]]:
    return dict(_DOMAIN.findall(text)), {k: int(v) for k, v in _SIZE.findall(text)}


def _rational(rng: random.Random, domain: str, sign: int = 0):
    """A random dyadic rational in the domain (exact in binary); for `normal`, |x| in [1/4, 2]
    with the given sign (random when 0)."""
    if domain == "positive":
        return mpmath.mpf(rng.randint(4, 32)) / 16
    if domain == "unit":
        return mpmath.mpf(rng.randint(1, 15)) / 16
    if domain == "above1":
        return 1 + mpmath.mpf(rng.randint(1, 32)) / 16
    sign = sign or rng.choice((-1, 1))
    return sign * mpmath.mpf(rng.randint(4, 32)) / 16


def spd(arr: np.ndarray) -> np.ndarray:
    """Each matrix m of the last two axes made m m^T + n I: symmetric positive definite, exact in
    dyadic rationals (the domain `spd`, for cholesky and logdet)."""
    if arr.ndim < 2 or arr.shape[-1] != arr.shape[-2]:
        return arr
    n = arr.shape[-1]
    out = np.matmul(arr, np.swapaxes(arr, -1, -2))
    for i in range(n):
        out[..., i, i] += n
    return out


def _int_value(rng: random.Random, domain: str) -> int:
    if domain.startswith("int:"):
        lo, hi = map(int, domain.split(":")[1:])
        return rng.randrange(lo, hi)
    return rng.randrange(0, 2)


# ---- comparing numbers ------------------------------------------------------------------------
def _finite(v) -> bool:
    return not isinstance(v, mpmath.mpf) or mpmath.isfinite(v)


def _agree(want, have, slack=0) -> bool:
    if isinstance(want, bool) or isinstance(have, bool):
        return bool(want) == bool(have)
    want, have = mpmath.mpf(want), mpmath.mpf(have)
    if mpmath.isnan(want) or mpmath.isnan(have):
        return bool(mpmath.isnan(want) and mpmath.isnan(have))
    if mpmath.isinf(want) or mpmath.isinf(have):
        return want == have
    return abs(want - have) <= REL_TOL * (abs(want) + abs(have)) + ABS_TOL + slack


def _show(v) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    v = mpmath.mpf(v)
    if not mpmath.isfinite(v):
        return str(v)
    if v == mpmath.nint(v) and abs(v) < 10 ** 15:
        return str(int(v))
    return mpmath.nstr(v, 17)


# ---- checking one derivative ------------------------------------------------------------------
@dataclass
class Result:
    function: str
    status: str  # pass | FAIL | skipped | error (the checker could not evaluate it: never a pass)
    method: str = ""
    elements: int = 0
    seconds: float = 0.0
    detail: str = ""


@dataclass
class _Point:
    label: str  # "" for a random point
    env: dict  # param id -> values (the target's parameters and the derivative's own)


@dataclass
class Checker:
    module: Module
    sizes: dict = field(default_factory=dict)
    domains: dict = field(default_factory=dict)
    max_elements: int = 400
    max_value_elements: int = 100_000  # any one value of the function or its derivative
    points: int = 4
    seed: int = 0
    # where the functions differentiated are taken from (default: the module itself); an
    # optimized module is checked against its unoptimized one, whose kinks are the source's
    reference: Module | None = None

    def symbol_sizes(self, fn: Function) -> dict:
        sizes, k = {}, 0
        for p in fn.params:
            for d in p.shape:
                if isinstance(d, Dim):
                    for s in sorted(d.symbols):
                        if s not in sizes:
                            sizes[s] = self.sizes.get(s, (2, 3)[k % 2])
                            k += 1
        return sizes

    def check(self, deriv: Function) -> Result:
        t0 = time.perf_counter()
        target = (self.reference or self.module).function(deriv.derivative.of)
        sizes = self.symbol_sizes(target)
        # (math.prod: Python integers, where np.prod wraps round past 2 ** 63)
        total = sum(math.prod(concrete_shape(p.shape, sizes)) for p in deriv.params)
        if total > self.max_elements:
            return Result(deriv.name, "skipped", elements=total, seconds=time.perf_counter() - t0,
                          detail=f"{total} input elements at sizes {sizes or '{}'} exceed the cap of "
                                 f"{self.max_elements}; give smaller --sizes (literal dimensions cannot shrink)")
        big = self.largest_value(target, deriv, sizes)
        if big is not None:
            n, size = big
            line = f" (line {n.span.line})" if n.span is not None else ""
            return Result(deriv.name, "skipped", elements=total, seconds=time.perf_counter() - t0,
                          detail=f"a value of {size} elements{line} at sizes {sizes or '{}'} exceeds the cap of "
                                 f"{self.max_value_elements} for one value; give smaller --sizes (literal "
                                 f"dimensions cannot shrink)")
        opaque = sorted({n.op.name for n in topo_order(deriv.outputs) if n.op.sympy is None and n.op.sympy_note})
        if opaque:
            note = REGISTRY[opaque[0]].sympy_note
            return Result(deriv.name, "skipped", elements=total, seconds=time.perf_counter() - t0,
                          detail=f"it uses an operation with no SymPy meaning: {note}")
        with mpmath.workdps(DIGITS):
            result = _Check(self, deriv, target, sizes).run()
        result.seconds = time.perf_counter() - t0
        return result

    def largest_value(self, target: Function, deriv: Function, sizes: dict):
        """(node, elements) of a value too large to evaluate element by element (a broadcast to
        [2147483647, 2] asked for 32 GiB), or None."""
        fns = [target, deriv] + list(self.module.pair(deriv) or ())
        for n in topo_order([o for f in fns for o in f.outputs]):
            size = math.prod(concrete_shape(n.shape, sizes))
            if size > self.max_value_elements:
                return n, size
        return None


class _Check:
    """One derivative function checked at one set of sizes."""

    def __init__(self, checker: Checker, deriv: Function, target: Function, sizes: dict):
        if any(n.op.body is not None for n in topo_order(target.outputs)):
            target = with_calls_expanded(target)  # as the directive differentiated it
        if any(n.op.group_vjp is not None for n in topo_order(target.outputs)):
            # loops written out at these sizes: the reference is sympy.diff of the body, unrolled
            target = replace(target, outputs=tuple(unroll(list(target.outputs), sizes)))
        self.c, self.deriv, self.target, self.sizes = checker, deriv, target, sizes
        self.d = deriv.derivative
        self.m = Meanings(sizes)
        self.rng = random.Random(checker.seed)
        self.order = topo_order(target.outputs)
        self.pair = checker.module.pair(deriv)
        self.extra = list(zip(deriv.params[len(target.params):], self.d.params[len(target.params):]))
        self.rounding = {"dtypes": set(), "difference": mpmath.mpf(0), "bound": mpmath.mpf(0), "range": set()}
        self.out_dtypes = _by_key(self.d.outputs, [o.dtype for o in deriv.outputs])
        self.shapes: dict = {}  # what -> the shape the reference gives it

    # ---- points ----------------------------------------------------------------------------
    def draw(self, signs: list[int] | None) -> dict:
        env = {}
        k = 0
        for p in self.target.params:
            shape = self.m.shape(p)
            arr = np.empty(shape, dtype=object)
            dom = self.c.domains.get(p.attr("name"), "normal")
            for idx in np.ndindex(shape):
                if p.dtype.is_float:
                    arr[idx] = _rational(self.rng, "normal" if dom == "spd" else dom, signs[k] if signs else 0)
                    k += 1
                elif p.dtype == DType.BOOL:
                    arr[idx] = self.rng.random() < 0.5
                else:
                    arr[idx] = _int_value(self.rng, dom)
            env[p.id] = spd(arr) if dom == "spd" and p.dtype.is_float else arr
        return env

    def n_float_elements(self) -> int:
        return sum(int(np.prod(self.m.shape(p))) for p in self.target.params if p.dtype.is_float)

    def with_extras(self, env: dict) -> dict:
        """The derivative's own parameters (cotangents, tangents, vectors) drawn for a point."""
        env = dict(env)
        outs = self.target.outputs
        k = 0
        for p, port in self.extra:
            arr = np.empty(self.m.shape(p), dtype=object)
            real = True
            if port.slot is Slot.COTANGENT:
                real = outs[k].dtype.is_float
                k += 1
            for idx in np.ndindex(arr.shape):
                arr[idx] = _rational(self.rng, "normal") if real else 0
            env[p.id] = arr
        return env

    # ---- what the derivative should give -----------------------------------------------------
    def expected(self, env: dict) -> tuple[dict, dict]:
        """(the reference's value for each output of the derivative, the target's values)."""
        d, m, target = self.d, self.m, self.target
        vals = m.evaluate(target.outputs, env)
        slots = {p.slot for p in d.outputs}
        out: dict = {}
        for k, o in enumerate(target.outputs):
            self.shapes[f"value of output {k}"] = vals[o.id].shape
            for idx in np.ndindex(vals[o.id].shape):
                out[(f"value of output {k}", idx)] = vals[o.id][idx]
        wrt = [target.params[target.param_names.index(w)] for w in d.wrt]
        cts = [env[p.id] for p, port in self.extra if port.slot is Slot.COTANGENT]
        if not cts:  # grad, hvp: F is a scalar, its seed 1
            cts = [np.asarray(mpmath.mpf(1), dtype=object)]
        seeds: dict = {}
        for o, ct in zip(target.outputs, cts):
            if o.dtype.is_float:
                # (np.array: a sum of two 0-d arrays is a scalar)
                seeds[o.id] = np.array(ct if o.id not in seeds else seeds[o.id] + ct, dtype=object)
        directions = {w.id: env[p.id] for w, (p, port) in
                      zip(wrt, [(p, port) for p, port in self.extra if port.slot in (Slot.TANGENT, Slot.VECTOR)])}
        if Slot.GRADIENT in slots:
            adj = reference.backward(m, self.order, vals, seeds)
            for w in wrt:
                self._fill(out, f"d/d{w.attr('name')}", adj.get(w.id), m.shape(w))
        if Slot.OUTPUT_TANGENT in slots:
            tan = reference.forward(m, self.order, vals, directions)
            for k, o in enumerate(target.outputs):
                self._fill(out, f"tangent of output {k}", tan.get(o.id), m.shape(o))
        if Slot.HV in slots:
            xdot = reference.forward(m, self.order, vals, directions)
            hv = reference.backward_over_forward(m, self.order, vals, xdot, seeds)
            for w in wrt:
                self._fill(out, f"Hv for {w.attr('name')}", hv.get(w.id), m.shape(w))
        return out, vals

    def _fill(self, out: dict, what: str, arr, shape) -> None:
        self.shapes[what] = tuple(shape)
        for idx in np.ndindex(shape):
            v = None if arr is None else arr[idx]
            out[(what, idx)] = mpmath.mpf(0) if v is None else v

    # ---- what tapeless gives ------------------------------------------------------------------
    def got(self, env: dict, target_vals: dict) -> list[tuple[str, dict, dict]]:
        """[(label, values by output, every node's value)] for the function and its _fwd/_bwd pair
        (the nodes they share with the function, its parameters among them, are evaluated once)."""
        d = self.d
        denv = dict(target_vals)
        denv.update({p.id: env[tp.id] for p, tp in zip(self.deriv.params, self.target.params)})
        denv.update({p.id: env[p.id] for p, _ in self.extra})
        vals = self.m.evaluate(self.deriv.outputs, {}, denv)
        outs = [vals[o.id] for o in self.deriv.outputs]
        cands = [("", _by_key(d.outputs, outs), vals)]
        if self.pair is not None:
            fwd, bwd = self.pair
            fenv = dict(target_vals)
            fenv.update({p.id: env[tp.id] for p, tp in zip(fwd.params, self.target.params)})
            fvals = self.m.evaluate(fwd.outputs, {}, fenv)
            residuals = [fvals[o.id] for o in fwd.outputs[fwd.derivative.n_primal_outputs:]]
            benv = {p.id: r for p, r in zip(bwd.params, residuals)}
            cts = [env[p.id] for p, port in self.extra if port.slot is Slot.COTANGENT] or \
                [np.asarray(mpmath.mpf(1), dtype=object)]
            for p, ct in zip(bwd.params[len(residuals):], cts):
                benv[p.id] = ct
            bvals = self.m.evaluate(bwd.outputs, benv)
            cands.append(("_fwd/_bwd", _by_key(bwd.derivative.outputs, [bvals[o.id] for o in bwd.outputs]),
                          {"fwd": fvals, "bwd": bvals}))
        return cands

    # ---- the rounding of folded constants ----------------------------------------------------------
    def rounding_bound(self, label: str, vals: dict, env: dict) -> dict:
        """How far the rounding of the float constants the derivative holds can move each of its
        outputs, to first order (by key, as _by_key). The function's own constants count, by their
        relative rounding only: a folded b - 1 that rounds to b is b's node (x ** 123456789.0 in
        f32), and a subnormal literal is the program's own value, not an approximation."""
        own = {n.id for n in self.order if n.is_const}
        if label == "":
            errs = self._propagate(self.deriv.outputs, vals, own, {})
            return _by_key(self.d.outputs, [errs.get(o.id) for o in self.deriv.outputs])
        fwd, bwd = self.pair
        ferr = self._propagate(fwd.outputs, vals["fwd"], own, {})
        res = fwd.outputs[fwd.derivative.n_primal_outputs:]
        seeds = {p.id: ferr[r.id] for p, r in zip(bwd.params, res) if ferr.get(r.id) is not None}
        berr = self._propagate(bwd.outputs, vals["bwd"], own, seeds)
        return _by_key(bwd.derivative.outputs, [berr.get(o.id) for o in bwd.outputs])

    def _propagate(self, outputs, vals: dict, own: set, seeds: dict) -> dict:
        seeds = dict(seeds)
        for n in topo_order(outputs):
            if n.is_const and n.dtype.is_float:
                v = vals[n.id].reshape(-1)[0]
                if mpmath.isfinite(v):
                    self.rounding["dtypes"].add(n.dtype)
                    seeds[n.id] = np.asarray(_rounding_error(v, n.dtype, n.id in own), dtype=object)
        if not seeds:
            return {}
        return reference.forward(self.m, topo_order(outputs), vals, seeds, absolute=True)

    def random_points(self) -> tuple[list, tuple | None]:
        """([(point, reference values, the target's values)], the first non-finite value met).

        Every other point flips the previous one's signs: each input is tried on both sides of
        0, where a lost mask or a wrong branch shows. A point where the reference is not
        finite (a pole: x / (x - 1) at a drawn 1) is drawn again, DRAWS times at most."""
        bases, not_finite, previous = [], None, None
        n = self.n_float_elements()
        for k in range(self.c.points):
            for attempt in range(DRAWS):
                flip = k % 2 and previous is not None and attempt == 0
                signs = [-s for s in previous] if flip else [self.rng.choice((-1, 1)) for _ in range(n)]
                env = self.with_extras(self.draw(signs))
                want, vals = self.expected(env)
                bad = next(((what, idx) for (what, idx), v in want.items() if not _finite(v)), None)
                if bad is None:
                    bases.append((_Point("", env), want, vals))
                    previous = signs
                    break
                not_finite = not_finite or (bad, want[bad], env, want)
        return bases, not_finite

    # ---- the whole check ----------------------------------------------------------------------
    def run(self) -> Result:
        d = self.d
        checkable = {Slot.PRIMAL, Slot.GRADIENT, Slot.HV, Slot.OUTPUT_TANGENT}
        unknown = [f"output {k} ({p.slot.value} {p.name})" for k, p in enumerate(d.outputs) if p.slot not in checkable]
        if unknown:  # never a pass for what was not compared
            return self.unknown(unknown)
        bases, not_finite = self.random_points()
        if not bases:
            (what, idx), v, env, want = not_finite
            return Result(self.deriv.name, "skipped", elements=self.n_compared(want), detail=(
                f"not finite at any point drawn at sizes {self.sizes or '{}'} ({_key(what, idx)} is {_show(v)} "
                f"at {self._where(env)}): a division by zero or a log of a negative number? "
                f"Give a `# domain NAME: positive` annotation or other --sizes"))
        covered = {what for what, _ in bases[0][1]}
        first = self.got(bases[0][0].env, bases[0][2])
        names = set().union(*[c[1].keys() for c in first])
        # a result with no elements (x: f32[0]) has nothing to compare but its shape
        empty = {k: np.shape(v) for c in first for k, v in c[1].items() if np.size(v) == 0}
        missing = sorted(names - covered - empty.keys())
        if missing:
            return self.unknown(missing)
        wrong = [f"{k} has shape {s}, sympy.diff gives shape {self.shapes[k]}" for k, s in sorted(empty.items())
                 if self.shapes.get(k, s) != s]
        if wrong:
            return Result(self.deriv.name, "FAIL", self.method(len(bases), 0), 0, detail="; ".join(wrong))
        special = special_points(self.target, self.m, {p.id: bases[0][0].env[p.id] for p in self.target.params},
                                 bases[0][2], self.c.domains)
        checks = [(pt, want, vals) for pt, want, vals in bases]
        for sp_point in special:
            env = self.with_extras(sp_point.env)
            checks.append((_Point(sp_point.label, env), *self.expected(env)))
        for k, (point, want, vals) in enumerate(checks):
            bad = self.compare(point, want, first if k == 0 else self.got(point.env, vals))
            if bad is not None:
                return Result(self.deriv.name + bad[0], "FAIL", self.method(len(bases), len(special)),
                              self.n_compared(want), detail=bad[1])
        detail = ""
        if empty:
            detail = f"{', '.join(sorted(empty))} with no elements at these sizes (their shapes agree)"
        r = self.rounding
        if r["dtypes"] and r["difference"] > 0:
            dts = "/".join(sorted(str(t) for t in r["dtypes"]))
            detail += ("; " if detail else "") + (
                f"agrees within the rounding of its folded {dts} constants: largest difference "
                f"{mpmath.nstr(r['difference'], 3)}, allowed {mpmath.nstr(r['bound'], 3)} "
                f"(twice their first-order error bound)")
        if r["range"]:
            dts = "/".join(sorted(str(t) for t in r["range"]))
            detail += ("; " if detail else "") + (f"values beyond the range of {dts} agree as the dtype holds "
                                                  f"them (inf, or 0 below half its smallest subnormal)")
        return Result(self.deriv.name, "pass", self.method(len(bases), len(special)), self.n_compared(bases[0][1]),
                      detail=detail)

    @staticmethod
    def n_compared(want: dict) -> int:
        """The derivative entries compared at each point (the values are compared too)."""
        return sum(not what.startswith("value of") for what, _ in want)

    def unknown(self, what: list[str]) -> Result:
        return Result(self.deriv.name, "error", detail=f"the check does not know what {', '.join(what)} should be")

    def method(self, n_random: int, n_special: int) -> str:
        text = f"{DIGITS}-digit values at {n_random} points" + (f" + {n_special} special" if n_special else "")
        if (self.rounding["dtypes"] and self.rounding["difference"] > 0) or self.rounding["range"]:
            text += ", within rounding"
        return text

    def compare(self, point: _Point, want: dict, got: list) -> tuple[str, str] | None:
        """None, or (label, the first disagreement described)."""
        for label, have, vals in got:
            bounds = None
            for (what, idx), w in want.items():
                if what not in have:
                    continue
                h = have[what][idx]
                if _agree(w, h):
                    continue
                if _finite(w) and _finite(h) and not isinstance(w, bool):
                    if bounds is None:
                        bounds = self.rounding_bound(label, vals, point.env)
                    b = bounds.get(what)
                    e = None if b is None else b[idx]
                    if e is not None and mpmath.isfinite(e) and _agree(w, h, 2 * e):
                        self.rounding["difference"] = max(self.rounding["difference"], abs(w - h))
                        self.rounding["bound"] = max(self.rounding["bound"], 2 * e)
                        continue
                dtype = self.out_dtypes.get(what)
                if dtype in UNIT_ROUNDOFF and _same_in_dtype(w, h, dtype):
                    self.rounding["range"].add(dtype)
                    continue
                at = f"at the special point {point.label}: " if point.label else "at "
                return label, (f"{_key(what, idx)}: sympy.diff gives {_show(w)}\n"
                               f"    tapeless gives {_show(h)}\n    {at}{self._where(point.env)}")
        return None

    def _where(self, env: dict) -> str:
        parts = []
        for p in list(self.target.params) + [p for p, _ in self.extra if p.id in env]:
            vals = [_show(v) for v in np.ravel(env[p.id])]
            shown = ", ".join(vals[:8]) + (", ..." if len(vals) > 8 else "")
            parts.append(f"{p.attr('name')} = {shown if np.ndim(env[p.id]) == 0 else '[' + shown + ']'}")
        return ", ".join(parts)


def _key(what: str, idx: tuple) -> str:
    return what + (f"[{', '.join(map(str, idx))}]" if idx else "")


def _rounding_error(v, dtype: DType, own: bool = False):
    """How far a constant of the derivative may lie from the exact value it stands for."""
    rel = abs(v) * mpmath.mpf(UNIT_ROUNDOFF[dtype])
    return rel if own else max(rel, mpmath.mpf(HALF_TINY[dtype]))


def _same_in_dtype(want, have, dtype: DType) -> bool:
    """Whether two numbers round to the same inf, or both to 0, in dtype (IEEE round to nearest:
    inf from the largest finite number plus half its spacing on, 0 below half the smallest
    subnormal)."""
    if isinstance(want, bool) or mpmath.isnan(want) or mpmath.isnan(have):
        return False
    info = np.finfo(dtype.np)
    huge = mpmath.ldexp(1, int(info.maxexp)) * (1 - mpmath.ldexp(1, -int(info.nmant) - 2))
    if abs(want) >= huge and abs(have) >= huge:
        return (want > 0) == (have > 0)
    tiny = mpmath.mpf(HALF_TINY[dtype])
    return abs(want) < tiny and abs(have) < tiny


def check_module(module: Module, text: str = "", sizes: dict | None = None, max_elements: int = 400,
                 reference: Module | None = None, on_start=None) -> list[Result]:
    """Every derivative of the module checked. `reference`: the module the differentiated
    functions come from, when `module` is an optimized one (its derivatives are checked against
    sympy.diff of the functions as written). `on_start(name, k, n)` is called as the k-th of the
    n functions starts (the command's progress)."""
    domains, annotated = annotations(text)
    checker = Checker(module, {**annotated, **(sizes or {})}, domains, max_elements, reference=reference)
    todo = [f for f in module.functions if whole(f)]
    results = []
    for k, f in enumerate(todo, 1):
        if on_start is not None:
            on_start(f.name, k, len(todo))
        results.append(_guarded(checker, f))
    return results


def _by_key(ports, values) -> dict:
    """A derivative function's results under the names `expected` uses, by their ports."""
    out, k, t = {}, 0, 0
    for port, v in zip(ports, values):
        if port.slot is Slot.GRADIENT:
            out[f"d/d{port.name}"] = v
        elif port.slot is Slot.HV:
            out[f"Hv for {port.name}"] = v
        elif port.slot is Slot.OUTPUT_TANGENT:
            out[f"tangent of output {t}"] = v
            t += 1
        elif port.slot is Slot.PRIMAL:
            out[f"value of output {k}"] = v
            k += 1
    return out


def whole(fn: Function) -> bool:
    """A directive's own function (NAME): what is checked (its _fwd/_bwd pair along with it)."""
    return fn.derivative is not None and fn.derivative.part is Part.WHOLE


def _guarded(checker, fn) -> Result:
    """One function's check; what the checker cannot evaluate at these sizes (an index past a
    small N, a size that comes out negative, ...) is reported for that function, not a crash."""
    try:
        return checker.check(fn)
    except Exception as e:  # noqa: BLE001 - reported in the table, and the exit status is 1
        return Result(fn.name, "error", detail=f"could not evaluate it at these sizes ({type(e).__name__}: "
                                               f"{str(e)[:200]}); try other sizes with --sizes")


__all__ = ["Checker", "Result", "check_module", "evaluate", "whole"]
