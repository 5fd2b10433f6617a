"""Random, valid `.tl` programs for comparing backends (tests/test_cross_backend.py).

A program is an elementwise chain over 1-3 inputs that broadcast against `x: [N, C]`
(`[N, C]`, `[C]`, `[N, 1]` or a scalar), with unary and binary ops, where/maximum/clip,
reductions over an axis or everything, logsumexp and softmax, ending in a scalar loss and
`grad loss wrt` some of its inputs. N * C is at least 16384, so -O1 writes fused loops
(compiler/codegen/fused/plan.py MIN_ELEMENTS); the sizes are symbols or, sometimes, literals
(the planner judges literal sizes itself).

Every value carries an interval that holds all its elements, worked out from the inputs'
range [-2, 2]: an op is only drawn where it is safe (exp of at most 8, log and sqrt of at
least 0.05, division by at least 0.1), so no program makes an inf or a nan.

The scale of a comparison (tests/test_cross_backend.py) comes from `scale_source`: the same
body, each value followed by its rounding magnitude m_v = |v| + sum of |d v / d a| * m_a over
its operands a (first-order error propagation: what rounding at each step can add up to),
from the inputs' magnitudes m_x = |x|. Its value is the loss's scale; its gradient with
respect to m_x (of `gscale`, where each |derivative| is the magnitude of its rule's terms:
1 + t^2 for tanh's 1 - t^2) is, entry by entry, the sum over paths of the products of those
magnitudes: the magnitude of the terms the reverse sweep adds into each gradient entry.

Where an op has a kink (relu, abs, maximum, minimum, clip, a where's condition, a max
reduction), its value or gradient jumps when its argument crosses the kink. In f32, two
backends may round an argument computed by a chain one ulp apart, and over 30,000 elements
a crossing is then likely enough to fail a run for no fault of either backend: so in f32
a kink only sees inputs (the same bits on every backend); in f64 it sees any value.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

LO, HI = -2.0, 2.0  # every input's values lie here
BIG = 1e4  # no value may exceed this in magnitude

# shapes as tuples of axis names; "1" is a literal 1, "Nm" and "Cm" are N - 1 and C - 1 (a slice)
NC, C, N1, ROW, S = ("N", "C"), ("C",), ("N", "1"), ("1", "C"), ()
ROWS = ("N",)  # one value a row: cross_entropy's
R0, R1 = ("Nm", "C"), ("N", "Cm")  # x[1:] or x[:-1]; x[:, 1:] or x[:, :-1]
INPUT_SHAPES = [NC, C, N1, S]
SHAPES = {NC, C, N1, ROW, S, ROWS, R0, R1}
MATRICES = (NC, R0, R1)
SLICES = {  # text, the shape it makes from [N, C]
    "[1:]": R0, "[:-1]": R0, "[1:, :]": R0, "[:, 1:]": R1, "[:, :-1]": R1,
}
LABELS = "k"  # the labels input's name: i64[N], drawn in [0, C)


def _broadcast(a: tuple, b: tuple) -> tuple | None:
    """The shape of a op b, or None where they do not broadcast (or make a shape not in SHAPES)."""
    if len(a) < len(b):
        a, b = b, a
    b = ("1",) * (len(a) - len(b)) + b
    if any(x != y and "1" not in (x, y) for x, y in zip(a, b)):
        return None
    out = tuple(y if x == "1" else x for x, y in zip(a, b))
    return out if out in SHAPES else None


@dataclass(frozen=True)
class Value:
    name: str
    shape: tuple
    lo: float
    hi: float
    leaf: bool = False  # an input: the same bits on every backend

    @property
    def mag(self) -> float:
        return max(abs(self.lo), abs(self.hi))


@dataclass(frozen=True)
class Program:
    source: str
    scale_source: str  # fn scale(inputs, their magnitudes): the loss's rounding magnitude (module docstring)
    dtype: str
    params: tuple  # (name, shape)
    wrt: tuple
    n: int
    c: int
    seed: int
    labels: bool = False  # a last input `k: i64[N]` (not in params), read by cross_entropy

    def inputs(self) -> list[np.ndarray]:
        rng = np.random.default_rng(self.seed)
        sizes = {"N": self.n, "C": self.c, "1": 1}
        out = []
        for _, shape in self.params:
            a = rng.uniform(LO, HI, size=[sizes[d] for d in shape]).astype(self.dtype)
            out.append(a if shape else np.asarray(a, dtype=self.dtype)[()])
        if self.labels:
            out.append(rng.integers(0, self.c, size=self.n, dtype=np.int64))
        return out

    def float64_source(self) -> str:
        """The same program in f64 (a reference for an f32 one): its types' f32 read as f64."""
        return self.source.replace("f32", "f64")

    def __repr__(self) -> str:  # hypothesis prints this for a failing example: the whole program
        return f"Program(N={self.n}, C={self.c}, seed={self.seed}):\n{self.source}"


def _type(dtype: str, shape: tuple, literal: dict | None) -> str:
    if not shape:
        return dtype
    dims = [str(literal[d]) if literal and d in literal else d for d in shape]
    return f"{dtype}[{', '.join(dims)}]"


class _Builder:
    def __init__(self, draw, dtype: str, n: int, c: int):
        self.draw, self.dtype, self.n, self.c = draw, dtype, n, c
        self.lines: list[str] = []
        self.mags: list[str] = []  # the scale fn's lines: one magnitude per value
        self.gmags: list[str] = []  # the gscale fn's
        self.pool: list[Value] = []
        self.has_labels = False
        self.forced: Value | None = None  # the next pick's value, where it fits (fanout)
        self.read: set[str] = set()  # names some statement reads

    def pick(self, pred=lambda v: True) -> Value | None:
        v = self._pick(pred)
        if v is not None:
            self.read.add(v.name)
        return v

    def _pick(self, pred) -> Value | None:
        if self.forced is not None and pred(self.forced):
            v, self.forced = self.forced, None
            return v
        options = [v for v in self.pool if pred(v)]
        if not options:
            return None
        # recent values more often: chains grow long, older values fan out now and then
        weights = list(range(1, len(options) + 1))
        i = self.draw(st.integers(0, sum(weights) - 1))
        for v, w in zip(options, weights):
            if i < w:
                return v
            i -= w
        return options[-1]  # pragma: no cover

    def kinkable(self, v: Value) -> bool:
        return v.leaf or self.dtype == "f64"

    def emit(self, expr: str, shape: tuple, lo: float, hi: float, mag: str, gmag: str = "") -> Value | None:
        """Bind `expr`, whose rounding magnitude (module docstring) is |value| + `mag`; in `mag`,
        {v} is the value and m_NAME the magnitude of the value NAME. `gmag`, where it differs,
        is the same with each |derivative| replaced by the magnitudes of the terms its rule adds
        (1 + t^2 for tanh's 1 - t^2): the gradients' scale reads those."""
        if not (math.isfinite(lo) and math.isfinite(hi)) or max(abs(lo), abs(hi)) > BIG:
            return None
        v = Value(f"a{len(self.lines)}", shape, lo, hi)
        self.lines.append(f"    {v.name} = {expr}")
        self.mags.append(f"    m_{v.name} = abs({v.name}) + {mag.format(v=v.name)}")
        self.gmags.append(f"    m_{v.name} = abs({v.name}) + {(gmag or mag).format(v=v.name)}")
        self.pool.append(v)
        return v

    def count(self, shape: tuple, axis) -> int:
        sizes = {"N": self.n, "C": self.c, "1": 1, "Nm": self.n - 1, "Cm": self.c - 1}
        axes = range(len(shape)) if axis is None else [axis]
        return math.prod(sizes[shape[a]] for a in axes)

    # ---- one statement ------------------------------------------------------------------
    def step(self) -> None:
        kind = self.draw(st.sampled_from(["unary"] * 4 + ["binary"] * 3 + ["kink"] * 2
                                         + ["reduce", "softmax", "slice", "cross_entropy"] + ["fanout"] * 2))
        getattr(self, kind)()

    def fanout(self) -> None:
        """Two or three statements reading one value (at -O0 one-use values are inlined into
        their reader, so reuse decides what is inlined and what may be written over in place)."""
        v = self.pick()
        for _ in range(self.draw(st.integers(2, 3))):
            self.forced = v
            # most often an op that may write over its input or whose gradient does (in place)
            self.draw(st.sampled_from([self.unary, self.binary, self.kink, self.reduce] + [self.softmax, self.slice,
                                                                                         self.cross_entropy] * 2))()
        self.forced = None

    def unary(self) -> None:
        a = self.pick()
        op = self.draw(st.sampled_from(["tanh", "sigmoid", "softplus", "exp", "log", "sqrt", "square", "neg",
                                        "log1p", "scale"]))
        x, m, lo, hi = a.name, f"m_{a.name}", a.lo, a.hi
        if op == "sigmoid":
            self.emit(f"sigmoid({x})", a.shape, _sig(lo), _sig(hi), f"{{v}} * (1 - {{v}}) * {m}",
                      f"{{v}} * (1 + {{v}}) * {m}")
        elif op == "softplus":
            self.emit(f"softplus({x})", a.shape, _softplus(lo), _softplus(hi), f"sigmoid({x}) * {m}")
        elif op == "exp" and hi <= 8:
            self.emit(f"exp({x})", a.shape, math.exp(lo), math.exp(hi), f"{{v}} * {m}")
        elif op == "log" and lo >= 0.05:
            self.emit(f"log({x})", a.shape, math.log(lo), math.log(hi), f"{m} / {x}")
        elif op == "log1p" and lo >= -0.9:
            self.emit(f"log1p({x})", a.shape, math.log1p(lo), math.log1p(hi), f"{m} / (1 + {x})")
        elif op == "sqrt" and lo >= 0.05:
            self.emit(f"sqrt({x})", a.shape, math.sqrt(lo), math.sqrt(hi), f"0.5 * {m} / {{v}}")
        elif op == "square":
            self.emit(f"square({x})", a.shape, 0.0 if lo <= 0 <= hi else min(lo * lo, hi * hi), a.mag ** 2,
                      f"2 * abs({x}) * {m}")
        elif op == "neg":
            self.emit(f"-{x}", a.shape, -hi, -lo, m)
        elif op == "scale":
            k = self.draw(st.sampled_from([0.5, 2.0, -1.5, 3.0]))
            lo2, hi2 = sorted((k * lo, k * hi))
            self.emit(f"{x} * {k}", a.shape, lo2, hi2, f"{abs(k)} * {m}")
        else:  # tanh, or the op drawn was unsafe here: squash the value instead
            self.emit(f"tanh({x})", a.shape, math.tanh(lo), math.tanh(hi), f"(1 - {{v}} * {{v}}) * {m}",
                      f"(1 + {{v}} * {{v}}) * {m}")

    def binary(self) -> None:
        a = self.pick()
        b = self.pick(lambda v: _broadcast(a.shape, v.shape) is not None)
        op = self.draw(st.sampled_from(["+", "-", "*", "/"]))
        shape = _broadcast(a.shape, b.shape)
        x, y, mx, my = a.name, b.name, f"m_{a.name}", f"m_{b.name}"
        if op == "+":
            self.emit(f"{x} + {y}", shape, a.lo + b.lo, a.hi + b.hi, f"{mx} + {my}")
        elif op == "-":
            self.emit(f"{x} - {y}", shape, a.lo - b.hi, a.hi - b.lo, f"{mx} + {my}")
        elif op == "*" or b.lo < 0.1:
            ps = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
            self.emit(f"{x} * {y}", shape, min(ps), max(ps), f"{mx} * abs({y}) + abs({x}) * {my}")
        else:
            qs = [a.lo / b.lo, a.lo / b.hi, a.hi / b.lo, a.hi / b.hi]
            self.emit(f"{x} / {y}", shape, min(qs), max(qs), f"{mx} / {y} + abs({x}) * {my} / ({y} * {y})")

    def kink(self) -> None:
        a = self.pick(self.kinkable)
        if a is None:
            return self.unary()
        op = self.draw(st.sampled_from(["relu", "abs", "maximum", "minimum", "clip", "where"]))
        x, m = a.name, f"m_{a.name}"
        if op == "relu":
            self.emit(f"relu({x})", a.shape, max(a.lo, 0.0), max(a.hi, 0.0), m)
        elif op == "abs":
            self.emit(f"abs({x})", a.shape, 0.0 if a.lo <= 0 <= a.hi else min(abs(a.lo), abs(a.hi)), a.mag, m)
        elif op == "clip":
            lo, hi = self.draw(st.sampled_from([(-0.5, 0.5), (-1.0, 1.5), (0.0, 1.0)]))
            self.emit(f"clip({x}, {lo}, {hi})", a.shape, min(max(a.lo, lo), hi), max(min(a.hi, hi), lo), m)
        elif op in ("maximum", "minimum"):
            b = self.pick(lambda v: self.kinkable(v) and _broadcast(a.shape, v.shape) is not None)
            if b is None:
                b = a
            lo = (max if op == "maximum" else min)(a.lo, b.lo)
            hi = (max if op == "maximum" else min)(a.hi, b.hi)
            self.emit(f"{op}({x}, {b.name})", _broadcast(a.shape, b.shape), lo, hi, f"{m} + m_{b.name}")
        else:
            b = self.pick(lambda v: self.kinkable(v) and _broadcast(a.shape, v.shape) is not None) or a
            threshold = self.draw(st.sampled_from(["0.0", "0.5", b.name]))
            shape = _broadcast(a.shape, b.shape if threshold == b.name else S)
            t = self.pick(lambda v: _broadcast(shape, v.shape) is not None)
            shape = _broadcast(shape, t.shape)
            f = self.pick(lambda v: _broadcast(shape, v.shape) is not None)
            shape = _broadcast(shape, f.shape)
            cond = f"{x} > {threshold}"
            self.emit(f"where({cond}, {t.name}, {f.name})", shape, min(t.lo, f.lo), max(t.hi, f.hi),
                      f"where({cond}, m_{t.name}, m_{f.name})")

    def reduce(self) -> None:
        a = self.pick(lambda v: v.shape != S)
        op = self.draw(st.sampled_from(["sum", "mean", "max", "logsumexp"]))
        if op == "max" and not self.kinkable(a):
            op = "logsumexp"
        options = {NC: [(0, False, C), (0, True, ROW), (1, True, N1), (None, False, S)],
                   R0: [(0, False, C), (0, True, ROW), (None, False, S)],  # back to full-size terms
                   R1: [(1, True, N1), (None, False, S)],
                   ROWS: [(0, False, S), (None, False, S)]}.get(a.shape, [(None, False, S)])
        axis, keep, shape = self.draw(st.sampled_from(options))
        k = self.count(a.shape, axis)
        how = ("" if axis is None else f", axis={axis}") + (", keepdims=true" if keep else "")
        m = f"m_{a.name}{how}"
        if op == "sum":
            self.emit(f"sum({a.name}{how})", shape, k * a.lo, k * a.hi, f"sum({m})")
        elif op == "mean":
            self.emit(f"mean({a.name}{how})", shape, a.lo, a.hi, f"mean({m})")
        elif op == "max":
            self.emit(f"max({a.name}{how})", shape, a.lo, a.hi, f"max({m})")
        else:  # its derivative w = exp(a - v) is a softmax: the magnitudes' mean weighted by it (not
            # their max, whose gradient would give every path's magnitude to one entry); w is
            # rounded relative to |a| + |v| (the shift a - v), which exp carries into w
            keep = ("" if axis is None else f", axis={axis}") + ", keepdims=true"
            x, lse = a.name, f"logsumexp({a.name}{keep})"
            w, shift = f"exp({x} - {lse})", f"(abs({x}) + abs({lse}))"
            self.emit(f"logsumexp({x}{how})", shape, a.lo, a.hi + math.log(k), f"sum({w} * (m_{x} + {shift}){how})",
                      f"sum({w} * (1 + {shift}) * m_{x}{how})")

    def softmax(self) -> None:
        a = self.pick(lambda v: v.shape in MATRICES)
        if a is None:
            return self.unary()
        axis = self.draw(st.sampled_from([1, 1, 1, 0]))
        k = self.count(a.shape, axis)
        m = f"m_{a.name}"
        x, how = a.name, f"axis={axis}, keepdims=true"
        # both shift by the max or the logsumexp along the axis: exp carries that rounding,
        # relative to |a| + |shift|, into their values and their gradients' terms
        if self.draw(st.booleans()):
            # d softmax = y * (da - sum(y * da)): y * (m + sum(y * m))
            shift = f"(abs({x}) + max(abs({x}), {how}))"
            self.emit(f"softmax({x}, axis={axis})", a.shape, math.exp(a.lo - a.hi) / k, 1.0,
                      f"{{v}} * ({m} + sum({{v}} * {m}, {how}) + {shift})",
                      f"{{v}} * (1 + {shift}) * ({m} + sum({{v}} * {m}, {how}))")
        else:  # d log_softmax = da - sum(y * da), y = softmax: m + sum(y * m)
            y, shift = f"softmax({x}, axis={axis})", f"(abs({x}) + abs(logsumexp({x}, {how})))"
            self.emit(f"log_softmax({x}, axis={axis})", a.shape, a.lo - a.hi - math.log(k), 0.0,
                      f"{m} + sum({y} * {m}, {how}) + {shift}",
                      f"{m} + sum({y} * (1 + {shift}) * {m}, {how})")

    def slice(self) -> None:
        """A slice along either axis, or a difference of two (as a smoothness penalty): the
        gradient adds into views of the full one (index_grads_onto, in place)."""
        a = self.pick(lambda v: v.shape == NC)
        if a is None:
            return self.unary()
        s1 = self.draw(st.sampled_from(sorted(SLICES)))
        shape = SLICES[s1]
        b = self.pick(lambda v: v.shape == NC) if self.draw(st.booleans()) else None
        if b is None:
            return self.emit(f"{a.name}{s1}", shape, a.lo, a.hi, f"m_{a.name}{s1}")
        s2 = self.draw(st.sampled_from(sorted(t for t, sh in SLICES.items() if sh == shape)))
        op = self.draw(st.sampled_from(["+", "-", "*"]))
        x, y, mx, my = f"{a.name}{s1}", f"{b.name}{s2}", f"m_{a.name}{s1}", f"m_{b.name}{s2}"
        if op == "*":
            ps = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
            self.emit(f"{x} * {y}", shape, min(ps), max(ps), f"{mx} * abs({y}) + abs({x}) * {my}")
        else:
            lo, hi = (a.lo + b.lo, a.hi + b.hi) if op == "+" else (a.lo - b.hi, a.hi - b.lo)
            self.emit(f"{x} {op} {y}", shape, lo, hi, f"{mx} + {my}")

    def cross_entropy(self) -> None:
        """cross_entropy(z, k) with the labels input (its gradient subtracts a one-hot in place)."""
        a = self.pick(lambda v: v.shape == NC)
        if a is None:
            return self.unary()
        self.has_labels = True
        # logsumexp(z) - z[k]: in [0, spread + log C]; its derivative y - onehot (y = softmax(z)),
        # so its magnitude sum(y * m) + m[k], with m[k] = logsumexp(m) - cross_entropy(m, k),
        # and the shift's rounding as for logsumexp
        x, m = a.name, f"m_{a.name}"
        y, pick = f"softmax({x}, axis=1)", f"logsumexp({m}, axis=1) - cross_entropy({m}, {LABELS})"
        shift = f"(abs({x}) + abs(logsumexp({x}, axis=1, keepdims=true)))"
        self.emit(f"cross_entropy({x}, {LABELS})", ROWS, 0.0, a.hi - a.lo + math.log(self.c),
                  f"sum({y} * ({m} + {shift}), axis=1) + {pick}",
                  f"sum({y} * (1 + {shift}) * {m}, axis=1) + {pick}")

def _inline(draw, lines: list[str], loss: str) -> tuple[str, str]:
    """The body's text with some values read once written inside their reader's expression
    instead of bound to a name (the scale fns keep every name). -O0 places a nested expression
    where its reader is evaluated, later than its own statement would be: what an op writing
    over its input in place must respect (tests/test_in_place_order.py)."""
    stmts = [tuple(line.strip().split(" = ", 1)) for line in lines] + [("", loss)]
    for i in range(len(stmts) - 1):
        name, expr = stmts[i]  # as earlier inlining left it
        readers = [j for j in range(i + 1, len(stmts)) if re.search(rf"\b{name}\b", stmts[j][1])]
        if len(readers) == 1 and len(re.findall(rf"\b{name}\b", stmts[readers[0]][1])) == 1 and draw(st.integers(0, 3)) > 0:
            j = readers[0]
            stmts[j] = (stmts[j][0], re.sub(rf"\b{name}\b", lambda _: f"({expr})", stmts[j][1]))
            stmts[i] = None, None
    body = "".join(f"    {n} = {e}\n" for n, e in stmts[:-1] if n is not None)
    return body, stmts[-1][1]


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _softplus(x: float) -> float:
    return math.log1p(math.exp(-abs(x))) + max(x, 0.0)


@st.composite
def programs(draw, dtypes=("f32", "f64")) -> Program:
    dtype = draw(st.sampled_from(dtypes))
    c = draw(st.sampled_from([8, 16, 24]))
    n = draw(st.sampled_from([2048, 2047, 3000])) if c == 8 else draw(st.sampled_from([1024, 1031, 2048]))
    literal = {"N": n, "C": c} if draw(st.integers(0, 3)) == 0 else None
    shapes = [NC] + draw(st.lists(st.sampled_from(INPUT_SHAPES), max_size=2))
    params = tuple((name, shape) for name, shape in zip("xyz", shapes))
    b = _Builder(draw, dtype, n, c)
    b.pool = [Value(name, shape, LO, HI, leaf=True) for name, shape in params]
    for _ in range(draw(st.integers(2, 9))):
        b.step()
    # the loss: a reduction of the last value, sometimes of one more (fan-out to two ends), and
    # of one to three values nothing reads (so that their statements count)
    last = b.pool[-1]
    terms = [last] + ([b.pick()] if draw(st.booleans()) else [])
    unread = [v for v in b.pool if not v.leaf and v.name not in b.read and v not in terms]
    for _ in range(draw(st.integers(min(1, len(unread)), min(3, len(unread))))):
        terms.append(unread.pop(draw(st.integers(0, len(unread) - 1))))
    reds = [draw(st.sampled_from(["sum", "mean"])) for _ in terms]
    loss = " + ".join(f"{r}({t.name})" for r, t in zip(reds, terms))
    scale = " + ".join(f"{r}(m_{t.name})" for r, t in zip(reds, terms))
    wrt = [p for p in params if draw(st.booleans())] or [params[0]]
    sig = ", ".join(f"{name}: {_type(dtype, shape, literal)}" for name, shape in params)
    if b.has_labels:
        sig += f", {LABELS}: {_type('i64', ROWS, literal)}"
    body, loss_text = _inline(draw, b.lines, loss)
    source = (f"fn loss({sig}) -> {dtype} {{\n{body}    return {loss_text}\n}}\n\n"
              f"grad loss wrt {', '.join(p[0] for p in wrt)}\n")
    msig = ", ".join(f"m_{name}: {_type(dtype, shape, literal)}" for name, shape in params)
    mags = "\n".join(x for pair in zip(b.lines, b.mags) for x in pair)
    gmags = "\n".join(x for pair in zip(b.lines, b.gmags) for x in pair)
    scale_source = (f"fn scale({sig}, {msig}) -> {dtype} {{\n{mags}\n    return {scale}\n}}\n\n"
                    f"fn gscale({sig}, {msig}) -> {dtype} {{\n{gmags}\n    return {scale}\n}}\n\n"
                    f"grad gscale wrt {', '.join('m_' + p[0] for p in wrt)}\n")
    seed = draw(st.integers(0, 2**32 - 1))
    return Program(source, scale_source, {"f32": "float32", "f64": "float64"}[dtype], params,
                   tuple(p[0] for p in wrt), n, c, seed, b.has_labels)
