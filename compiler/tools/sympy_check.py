"""`tapeless check`: every derivative cross-checked against SymPy.

For each derivative function of a module:

1. size symbols get small sizes (default 2, 3, 2, 3, ... in order of appearance;
   `--sizes N=3,M=2` overrides), so every array has a concrete shape;
2. the function it differentiates is *scalarized*: evaluated over object arrays
   of SymPy expressions, one real symbol per input element, each primitive by its
   SymPy meaning (written from the mathematics, independently of its VJP rule);
   `stop_gradient(e)` becomes fresh symbols standing for `e`, so `sympy.diff`
   treats it as the constant it is;
3. the expected derivative is `sympy.diff` of <cotangents, outputs> with respect
   to every input element;
4. the compiled derivative (the adjoint IR tapeless generates code from) is
   evaluated over the same SymPy values, and so is its `_fwd`/`_bwd` pair;
5. equality is decided symbolically when the difference simplifies to 0, and
   otherwise by exact evaluation at random rational points (50-digit
   floating point where transcendental functions appear), sampled inside each
   input's domain (`# domain x: positive` annotations) and away from kinks
   (points where a relu, abs, where, clip or max chooses another branch).

A size cap stops scalarization from exploding: a function with more input
elements than `max_elements` is reported as skipped, with the reason.
"""
from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field

import numpy as np

from ..core.derivative import Part, Slot
from ..core.ir import Function, Module, topo_order
from ..core.primitive import SymContext
from ..core.types import Dim, DType, dim_subst


def _sp():
    import sympy

    return sympy


# ---- evaluation of IR graphs over SymPy values -----------------------------------------------
def concrete_shape(shape, sizes) -> tuple[int, ...]:
    return tuple(int(dim_subst(d, sizes)) for d in shape)


def evaluate(outputs, env: dict[int, np.ndarray], sizes: dict, stop: dict | None = None) -> list[np.ndarray]:
    """The outputs as object arrays of SymPy expressions, given values for the params in env.

    `stop`, when given, collects stop_gradient nodes: each is replaced by fresh symbols,
    and stop[symbol] is the expression it stands for.
    """
    sp = _sp()
    ctx = SymContext(sizes)
    vals: dict[int, np.ndarray] = dict(env)
    for n in topo_order(outputs):
        if n.id in vals:
            continue
        if n.is_param:
            raise KeyError(f"no value for parameter {n.attr('name')}")
        if n.is_dim:
            vals[n.id] = np.asarray(sp.Integer(int(dim_subst(n.attr("dim"), sizes))), dtype=object)
            continue
        args = [vals[i.id] for i in n.inputs]
        if n.op.detaches and stop is not None:
            x = np.asarray(args[0], dtype=object)
            fresh = np.empty(x.shape, dtype=object)
            for idx in np.ndindex(x.shape):
                s = sp.Symbol(f"sg{len(stop)}", real=True)
                stop[s] = x[idx]
                fresh[idx] = s
            vals[n.id] = fresh
            continue
        out = n.op.sympy(ctx, args, n)
        vals[n.id] = np.asarray(out, dtype=object).reshape(concrete_shape(n.shape, sizes))
    return [vals[o.id] for o in outputs]


# ---- sampling points --------------------------------------------------------------------------
_DOMAIN = re.compile(r"^#\s*domain\s+(\w+)\s*:\s*(\S+)", re.M)
_SIZE = re.compile(r"^#\s*size\s+(\w+)\s*:\s*(\d+)", re.M)


def annotations(text: str) -> tuple[dict[str, str], dict[str, int]]:
    return dict(_DOMAIN.findall(text)), {k: int(v) for k, v in _SIZE.findall(text)}


def _rational(rng: random.Random, domain: str, sign: int = 0):
    """A random rational in the domain; for `normal`, |x| in [1/4, 2] with the given sign
    (random when 0)."""
    sp = _sp()
    if domain == "positive":
        return sp.Rational(rng.randint(4, 32), 16)
    if domain == "unit":
        return sp.Rational(rng.randint(2, 18), 20)
    sign = sign or rng.choice((-1, 1))
    return sign * sp.Rational(rng.randint(4, 32), 16)


def _int_value(rng: random.Random, domain: str) -> int:
    if domain.startswith("int:"):
        lo, hi = map(int, domain.split(":")[1:])
        return rng.randrange(lo, hi)
    return rng.randrange(0, 2)


def kinks(exprs) -> list:
    """Expressions whose sign picks a branch: where a sample point must not be near 0."""
    sp = _sp()
    out = set()
    for e in exprs:
        if not isinstance(e, sp.Basic):
            continue
        for sub in sp.preorder_traversal(e):
            if isinstance(sub, sp.core.relational.Relational) and not isinstance(sub, (sp.Eq, sp.Ne)):
                # (an equality such as x[i] == max(x) holds exactly at the argmax, by structure,
                # and nowhere else at a generic point: it is not a kink to stay away from)
                out.add(sub.lhs - sub.rhs)
            elif isinstance(sub, (sp.Abs, sp.sign, sp.Heaviside)):
                out.add(sub.args[0])
            elif isinstance(sub, (sp.Max, sp.Min)):
                args = sub.args
                out.update(a - b for i, a in enumerate(args) for b in args[i + 1:])
    return [k for k in out if k.free_symbols]


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
class Checker:
    module: Module
    sizes: dict = field(default_factory=dict)
    domains: dict = field(default_factory=dict)
    max_elements: int = 400
    points: int = 4
    seed: int = 0

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
        target = self.module.function(deriv.derivative.of)
        sizes = self.symbol_sizes(target)
        total = sum(int(np.prod(concrete_shape(p.shape, sizes))) for p in deriv.params)
        if total > self.max_elements:
            return Result(deriv.name, "skipped", elements=total, seconds=time.perf_counter() - t0,
                          detail=f"{total} input elements at sizes {sizes or '{}'} exceed the cap of "
                                 f"{self.max_elements}; give smaller --sizes (literal dimensions cannot shrink)")
        try:
            return self._check(deriv, target, sizes, t0)
        except _TooBig as e:
            return Result(deriv.name, "skipped", seconds=time.perf_counter() - t0, detail=str(e))

    def _check(self, deriv: Function, target: Function, sizes: dict, t0: float) -> Result:
        sp = _sp()
        rng = random.Random(self.seed)
        env, symbols = {}, {}
        for p in target.params:
            shape = concrete_shape(p.shape, sizes)
            arr = np.empty(shape, dtype=object)
            dom = self.domains.get(p.attr("name"), "normal")
            for idx in np.ndindex(shape):
                if p.dtype.is_float:
                    s = sp.Symbol(f"{p.attr('name')}[{','.join(map(str, idx))}]", real=True)
                    arr[idx] = s
                    symbols.setdefault(p.attr("name"), []).append((idx, s))
                elif p.dtype == DType.BOOL:
                    arr[idx] = sp.true if rng.random() < 0.5 else sp.false
                else:
                    arr[idx] = sp.Integer(_int_value(rng, dom))
            env[p.id] = arr
        extra = deriv.params[len(target.params):]
        stop: dict = {}
        outs = evaluate(target.outputs, {p.id: env[p.id] for p in target.params}, sizes, stop)

        def fresh(prefix: str, shape, real: bool = True) -> np.ndarray:
            # <ct0>, <v_x>, ...: angle brackets never occur in a .tl name, so these symbols never
            # coincide with a parameter's (a parameter may well be called v_x)
            arr = np.empty(shape, dtype=object)
            for idx in np.ndindex(shape):
                arr[idx] = sp.Symbol(f"<{prefix}>[{','.join(map(str, idx))}]", real=True) if real else sp.Integer(0)
            return arr

        def frozen(e):
            return e.xreplace(stop) if stop else e  # stop_gradient symbols back to what they stand for

        # values for the derivative's own parameters, by what each holds (its record's ports)
        d = deriv.derivative
        extras, cts, by_wrt = [], [], {}
        for port in d.params[len(target.params):]:
            if port.slot is Slot.COTANGENT:
                k = len(cts)
                cts.append(fresh(f"ct{k}", outs[k].shape, target.outputs[k].dtype.is_float))
                extras.append(cts[-1])
            else:  # a tangent or a vector, one per wrt argument (symbols <t_x>, <v_x>)
                w = d.wrt[len(by_wrt)]
                prefix = "t" if port.slot is Slot.TANGENT else "v"
                by_wrt[w] = fresh(f"{prefix}_{w}", np.shape(env[target.params[target.param_names.index(w)].id]))
                extras.append(by_wrt[w])
        cts = cts or [np.asarray(sp.Integer(1), dtype=object)]  # grad, hvp: F is a scalar, its seed 1
        expected = self._expected(d, outs, cts, by_wrt, symbols, frozen)
        # the compiled derivative over the same values
        denv = {p.id: env[tp.id] for p, tp in zip(deriv.params, target.params)}
        for p, x in zip(extra, extras):
            denv[p.id] = x
        got = evaluate(deriv.outputs, denv, sizes)
        checkable = {Slot.PRIMAL, Slot.GRADIENT, Slot.HV, Slot.OUTPUT_TANGENT}
        covered = {what for what, _ in expected}
        unknown = [f"output {k} ({p.slot.value} {p.name})" for k, p in enumerate(d.outputs)
                   if p.slot not in checkable] + sorted(set(_by_key(d.outputs, got)) - covered)
        if unknown:  # never a pass for what was not compared
            return Result(deriv.name, "error", elements=len(expected), seconds=time.perf_counter() - t0,
                          detail=f"the check does not know what {', '.join(unknown)} should be")
        candidates = [("", _by_key(d.outputs, got))]
        if self.module.pair(deriv) is not None:
            bwd_ports = self.module.pair(deriv)[1].derivative.outputs
            candidates.append(("_fwd/_bwd", _by_key(bwd_ports, self._fwd_bwd(deriv, env, target, cts, sizes))))
        sample_syms = {s: self.domains.get(name, "normal") for name in symbols for _, s in symbols[name]}
        sample_syms.update({s: "normal" for x in extras for s in np.ravel(x) if isinstance(s, sp.Symbol)})
        branch = kinks([v for o in outs for v in np.ravel(o)])
        pairs = []
        for label, have in candidates:
            for (what, idx), want in expected.items():
                pairs.append((label, what, idx, sp.sympify(want), sp.sympify(have[what][idx])))
        bad, method = self.compare(pairs, sample_syms, branch, rng)
        if bad is not None:
            label, what, idx, want, have = bad
            where = f"[{', '.join(map(str, idx))}]" if idx else ""
            return Result(deriv.name + label, "FAIL", method, len(expected), time.perf_counter() - t0,
                          f"{what}{where}: sympy.diff gives {want}\n    tapeless gives {have}")
        return Result(deriv.name, "pass", method, len(expected), time.perf_counter() - t0)

    @staticmethod
    def _expected(d, outs, cts, by_wrt, symbols, frozen) -> dict:
        """sympy.diff's answer for each output of the derivative, by what the output holds:
        a gradient is d<cotangents, outputs>/d(wrt) (the cotangent 1 for a scalar F), an output
        tangent the directional derivative along the tangents, an Hv the derivative of
        <gradient, v>. A new directive made of these slots is checked with no change here."""
        sp = _sp()
        expected: dict = {}
        slots = {p.slot for p in d.outputs}
        if Slot.GRADIENT in slots or Slot.HV in slots:
            inner = sp.Add(*[c * v for o, ct in zip(outs, cts) for c, v in zip(np.ravel(ct), np.ravel(o))])
            grads = {(name, idx): sp.diff(inner, sym) for name in d.wrt for idx, sym in symbols[name]}
            if Slot.GRADIENT in slots:
                expected.update({(f"d/d{name}", idx): frozen(g) for (name, idx), g in grads.items()})
            if Slot.HV in slots:
                vhv = sp.Add(*[g * by_wrt[name][idx] for (name, idx), g in grads.items()])
                expected.update({(f"Hv for {name}", idx): frozen(sp.diff(vhv, sym))
                                 for name in d.wrt for idx, sym in symbols[name]})
        if Slot.OUTPUT_TANGENT in slots:
            for k, o in enumerate(outs):
                for idx in np.ndindex(o.shape):
                    total = sp.Add(*[sp.diff(o[idx], sym) * by_wrt[name][i] for name in d.wrt
                                     for i, sym in symbols[name]])
                    expected[(f"tangent of output {k}", idx)] = frozen(total)
        return expected

    def _fwd_bwd(self, deriv, env, target, cts, sizes):
        fwd, bwd = self.module.pair(deriv)
        fenv = {p.id: env[tp.id] for p, tp in zip(fwd.params, target.params)}
        fout = evaluate(fwd.outputs, fenv, sizes)
        residuals = fout[fwd.derivative.n_primal_outputs:]
        benv = {p.id: r for p, r in zip(bwd.params, residuals)}
        for p, ct in zip(bwd.params[len(residuals):], cts):
            benv[p.id] = ct
        return evaluate(bwd.outputs, benv, sizes)

    def compare(self, pairs, syms: dict, branch, rng):
        """-> (first mismatching pair or None, how equality was decided).

        A pair is proved equal when the difference is 0 after SymPy's simplification
        (tried only on small, branch-free differences). The rest are evaluated at random
        rational points: exactly when the values are rational numbers, else with 60
        significant digits (all remaining expressions compiled together, sharing
        subexpressions, so large programs stay fast).
        """
        sp = _sp()
        open_pairs, methods = [], set()
        for pair in pairs:
            diff = pair[3] - pair[4]
            if diff == 0 or (sp.count_ops(diff) < 60 and not diff.has(sp.Piecewise, sp.Max, sp.Min)
                             and _simplifies_to_zero(diff)):
                methods.add("symbolic")
            else:
                open_pairs.append(pair)
        if open_pairs:
            import mpmath

            names = list(syms)
            # zoo (1/0) only appears in branches never taken; lambdify cannot print it
            exprs = [_numeric_form(e) for e in [p[3] for p in open_pairs] + [p[4] for p in open_pairs]]
            shared = sp.lambdify(names, exprs, modules="mpmath", cse=True)
            lazy = []

            def folded():
                # masked derivatives as sympy.diff writes them: indicator * f'(x), which is
                # 0 * inf where the mask is off; piecewise_fold turns that into a Piecewise whose
                # branch not taken is never evaluated (the mathematical value: 0)
                if not lazy:
                    lazy.append(sp.lambdify(names, [sp.piecewise_fold(e) for e in exprs], modules="mpmath",
                                            cse=False))
                return lazy[0]

            def f(*point):
                try:
                    vals = shared(*point)
                    if not any(mpmath.isnan(complex(v).real) or mpmath.isnan(complex(v).imag) for v in vals):
                        return vals
                except (ZeroDivisionError, ValueError, OverflowError, TypeError):
                    pass
                return folded()(*point)

            g = sp.lambdify(names, branch, modules="mpmath", cse=True) if branch else None
            n = len(open_pairs)
            rational = [_is_rational(e) for e in exprs[:n]]
            with mpmath.workdps(60):
                signs = None
                for k in range(self.points):
                    # every other point flips the previous one's signs: each input is tried on
                    # both sides of 0, where a lost mask or a wrong branch shows
                    signs = [-v for v in signs] if k % 2 and signs else [rng.choice((-1, 1)) for _ in names]
                    point = self.sample(names, syms, g, rng, signs)
                    vals = f(*point)
                    for k, pair in enumerate(open_pairs):
                        a, b = vals[k], vals[n + k]
                        if not abs(complex(a) - complex(b)) <= 1e-40 * (1 + abs(complex(a))) or \
                                (mpmath.isnan(a) != mpmath.isnan(b)):
                            return pair, "60-digit values"
            methods.add("exact" if all(rational) else "60-digit values")
            methods = {m if m == "symbolic" else f"{m} at {self.points} points" for m in methods}
        return None, " + ".join(sorted(methods))

    def sample(self, names, syms: dict, branch_fn, rng, signs):
        """A random rational point inside each symbol's domain, away from every kink."""
        import mpmath

        for attempt in range(500):
            use = signs if attempt < 50 else [0] * len(names)  # then give up on the signs
            point = [_rational(rng, syms[s], sg) for s, sg in zip(names, use)]
            values = [mpmath.mpf(v.p) / v.q for v in point]
            if branch_fn is None or all(abs(complex(k)) > 1 / 40 for k in branch_fn(*values)):
                return values
        raise _TooBig("could not sample a point away from the kinks of this function")


def _is_rational(e) -> bool:
    """Whether e is a rational function of its symbols (piecewise, with kinks): then values at
    rational points are exact. Any other function (exp, log, tanh, ... and whatever a new
    primitive's meaning uses) or a fractional power makes it transcendental."""
    sp = _sp()
    rational = (sp.Piecewise, sp.Abs, sp.sign, sp.Max, sp.Min, sp.Heaviside, sp.floor, sp.ceiling)
    return all(isinstance(f, rational) for f in e.atoms(sp.Function)) and \
        all(p.exp.is_integer for p in e.atoms(sp.Pow))


def _numeric_form(e):
    """What lambdify can evaluate, equal to e at every point away from the kinks:
    DiracDelta (d sign) is 0 there, Heaviside a step, zoo (1/0) only sits in branches
    never taken."""
    sp = _sp()
    e = e.replace(sp.DiracDelta, lambda *a: sp.Integer(0))
    e = e.replace(sp.Heaviside, lambda x, *a: sp.Piecewise((1, x > 0), (0, True)))
    return e.xreplace({sp.zoo: sp.oo})


def _simplifies_to_zero(diff) -> bool:
    try:
        return _sp().simplify(diff) == 0
    except Exception:  # pragma: no cover - simplify can fail on exotic input
        return False


class _TooBig(Exception):
    pass


def check_module(module: Module, text: str = "", sizes: dict | None = None, max_elements: int = 400) -> list[Result]:
    domains, annotated = annotations(text)
    checker = Checker(module, {**annotated, **(sizes or {})}, domains, max_elements)
    return [_guarded(checker, f) for f in module.functions if whole(f)]


def _by_key(ports, values) -> dict:
    """A derivative function's results under the names `expected` uses, by their ports."""
    out, k = {}, 0
    for port, v in zip(ports, values):
        if port.slot is Slot.GRADIENT:
            out[f"d/d{port.name}"] = v
        elif port.slot is Slot.HV:
            out[f"Hv for {port.name}"] = v
        elif port.slot is Slot.OUTPUT_TANGENT:
            out[f"tangent of output {k}"] = v
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
