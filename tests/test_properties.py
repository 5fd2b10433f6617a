"""Property tests (hypothesis): random well-typed programs and random text.

* Programs: random shapes that broadcast, chains of primitives, inputs kept inside
  each op's domain. Their compiled gradients (grad, vjp, jvp, hvp) agree with finite
  differences in f64 (gradcheck), and small ones with SymPy (tools/sympy_check.py).
* Fused loops: random programs over x[N, C] (symbolic N, so elementwise chains become
  fused loops) compute at -O1, in tiny blocks on threads too, what -O0 computes: values,
  gradients, NaN positions, dtypes.
* Text: random token soup and mutated programs only ever give located diagnostics:
  never an internal error or a traceback.

The number of examples is bounded for CI; set TAPELESS_PROPERTY_EXAMPLES for a longer
run (the closing note of the SymPy-check work reports one).
"""
from __future__ import annotations

import importlib
import os
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapeless.compiler import CompileError, compile_source
from tapeless.compiler.pipeline import ir_stage
from tapeless.compiler.core.source import SourceFile
from tapeless.compiler.tools.sympy_check import check_module
from tapeless.runtime import gradcheck

EXAMPLES = int(os.environ.get("TAPELESS_PROPERTY_EXAMPLES", "40"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
STATS = {"programs": 0, "sympy": 0, "seconds": 0.0}

# ---- a generator of well-typed programs ----------------------------------------------------------
# Every subexpression has the full shape S (parameters broadcast to it); unary ops are total on
# the reals (log and sqrt only see 1 + x^2), so any input is inside every op's domain. No two
# entries are equal as functions (log(1 + u) next to log1p(u) would make `where` compare
# rounding noise, a kink at every point that finite differences cannot cross).
UNARY = [
    "exp(0.3 * {0})", "sin({0})", "cos({0})", "tanh({0})", "sigmoid({0})", "softplus({0})", "log(2 + {0} * {0})",
    "sqrt(1 + {0} * {0})", "-{0}", "{0} ** 2", "abs({0}) + 1", "relu({0})", "expm1(0.2 * {0})", "log1p({0} * {0})",
]
BINARY = [
    "{0} + {1}", "{0} - {1}", "{0} * {1}", "{0} / (1 + {1} * {1})", "maximum({0}, {1})", "minimum({0}, {1})",
    "where({0} > {1}, {0}, 2 * {1})", "clip({0}, -0.5, {1} * {1} + 0.5)",
]
REDUCE = ["sum({0}, axis={a}, keepdims=true)", "max({0}, axis={a}, keepdims=true)",
          "logsumexp({0}, axis={a}, keepdims=true)", "softmax({0}, axis={a})", "mean({0}, axis={a}, keepdims=true)"]


@st.composite
def programs(draw):
    shape = draw(st.sampled_from([(3,), (2, 3), (2, 1, 3), ()]))
    n_params = draw(st.integers(1, 3))
    params = []
    for i in range(n_params):
        pshape = tuple(d if draw(st.booleans()) else 1 for d in shape) if shape else ()
        cut = draw(st.integers(0, len(pshape)))  # drop leading axes: broadcasting aligns from the right
        params.append((f"p{i}", pshape[cut:]))
    names = [p for p, _ in params]

    def expr(depth):
        if depth == 0 or draw(st.integers(0, 3)) == 0:
            return draw(st.sampled_from(names))
        kind = draw(st.sampled_from(["unary", "binary", "binary", "reduce"] if shape else ["unary", "binary"]))
        if kind == "unary":
            return "(" + draw(st.sampled_from(UNARY)).format(expr(depth - 1)) + ")"
        if kind == "binary":
            return "(" + draw(st.sampled_from(BINARY)).format(expr(depth - 1), expr(depth - 1)) + ")"
        axis = draw(st.integers(0, len(shape) - 1))
        inner = expr(depth - 1)
        full = f"({inner} + zeros([{', '.join(map(str, shape))}]))"  # broadcast first, then reduce
        return "(" + draw(st.sampled_from(REDUCE)).format(full, a=axis) + ")"

    body = expr(draw(st.integers(1, 4)))
    sig = ", ".join(f"{p}: f64[{', '.join(map(str, s))}]" if s else f"{p}: f64" for p, s in params)
    full_shape = ", ".join(map(str, shape))
    vec = f"{body} + zeros([{full_shape}])" if shape else f"{body} + 0"
    wrt = ", ".join(names)
    text = (f"fn g({sig}) -> f64 {{\n    return sum({vec})\n}}\n"
            f"fn h({sig}) {{\n    return {vec}\n}}\n"
            f"grad g wrt {wrt}\nvjp h wrt {wrt}\njvp h wrt {wrt}\nhvp g wrt {wrt}\n")
    seed = draw(st.integers(0, 2 ** 16))
    return text, params, seed


@SETTINGS
@given(programs())
def test_random_programs_have_right_derivatives(tmp_path_factory, program):
    from util import compile_module, force_tiny_blocks

    text, params, seed = program
    t0 = time.perf_counter()
    m = compile_module(text, tmp_path_factory.mktemp("prop"), path="prop.tl")
    rng = np.random.default_rng(seed)
    args = [rng.uniform(-1.5, 1.5, s) for _, s in params]
    for name in ("g_grad", "h_vjp", "h_jvp", "g_hvp"):
        assert gradcheck(getattr(m, name), *args, seed=seed), name
    # the fused loops in many tiny blocks, on threads, against the plain code (-O0)
    plain = compile_module(text, tmp_path_factory.mktemp("prop0"), path="prop.tl", opt_level=0)
    force_tiny_blocks(m, block_bytes=2)
    extra = [np.full(np.shape(a), 0.5) for a in args]
    for name, more in (("g_grad", []), ("h_vjp", [np.full(np.shape(plain.h(*args)), 0.5)]), ("h_jvp", extra),
                       ("g_hvp", extra)):
        for w, g in zip(getattr(plain, name)(*args, *more), getattr(m, name)(*args, *more)):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-9, atol=1e-12, err_msg=name)
    elements = sum(int(np.prod(s)) for _, s in params)
    if elements <= 8 and text.count("(") < 40:  # small enough to scalarize quickly
        results = check_module(ir_stage(SourceFile.from_text("prop.tl", text)), text)
        assert all(r.status != "FAIL" for r in results), [r.detail for r in results if r.status == "FAIL"]
        STATS["sympy"] += 1
    STATS["programs"] += 1
    STATS["seconds"] += time.perf_counter() - t0


# ---- fused loops against the plain code --------------------------------------------------------------
# Programs over x[N, C] with a symbolic N, so elementwise chains become fused loops whatever the
# size: short class axes (C <= 16, reduced down a transposed copy), wide float32 rows (C >= 64,
# where maximum/minimum get a constant row), row-wise reductions, sums down the rows (ones @ block).
ROWWISE = ["sum({0}, axis=-1, keepdims=true)", "max({0}, axis=1, keepdims=true)", "min({0}, axis=-1, keepdims=true)",
           "mean({0}, axis=-1, keepdims=true)", "logsumexp({0}, axis=-1, keepdims=true)", "softmax({0}, axis=-1)"]
FUSED_UNARY = ["relu({0})", "maximum({0}, 0.25)", "minimum({0}, -0.5)", "maximum(0.0, {0})"] + UNARY


@st.composite
def fused_programs(draw):
    c = draw(st.sampled_from([3, 10, 16, 64, 100]))
    dtype = draw(st.sampled_from(["f32", "f64"]))

    def expr(depth):
        if depth == 0 or draw(st.integers(0, 3)) == 0:
            return draw(st.sampled_from(["x", "y", "b"]))
        kind = draw(st.sampled_from(["unary", "binary", "rowwise"]))
        if kind == "unary":
            return "(" + draw(st.sampled_from(FUSED_UNARY)).format(expr(depth - 1)) + ")"
        if kind == "binary":
            return "(" + draw(st.sampled_from(BINARY)).format(expr(depth - 1), expr(depth - 1)) + ")"
        return "(" + draw(st.sampled_from(ROWWISE)).format(f"({expr(depth - 1)} + x)") + ")"

    outer = draw(st.sampled_from(["relu({0})", "minimum({0}, -0.5)", "{0}", "maximum(0.25, {0})"]))
    body = f"({outer.format(expr(draw(st.integers(1, 4))))} + x)"
    total = draw(st.sampled_from(["sum({0})", "sum(sum({0}, axis=0) * b)", "mean(sum({0}, axis=1))",
                                  "sum(max({0}, axis=0))"]))
    text = (f"fn g(x: {dtype}[N, {c}], y: {dtype}[N, {c}], b: {dtype}[{c}]) -> {dtype} {{\n"
            f"    return {total.format(body)}\n}}\ngrad g wrt x, y, b\n")
    return text, c, dtype, draw(st.sampled_from([0, 1, 37, 300])), draw(st.integers(0, 2 ** 16))


@settings(max_examples=max(60, EXAMPLES), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(fused_programs())
def test_fused_loops_compute_what_the_plain_code_does(tmp_path_factory, program):
    """-O1 (fused loops in tiny blocks on threads, with the NumPy fast paths) against -O0, values
    and gradients, NaN positions included."""
    from util import compile_module, force_tiny_blocks

    text, c, dtype, n, seed = program
    fused = compile_module(text, tmp_path_factory.mktemp("fused"), path="fused.tl")
    plain = compile_module(text, tmp_path_factory.mktemp("plain"), path="fused.tl", opt_level=0)
    assert hasattr(fused, "_blocks")  # the loops this test is about exist
    rng = np.random.default_rng(seed)
    npt = np.float32 if dtype == "f32" else np.float64
    args = [rng.uniform(-1.5, 1.5, (n, c)).astype(npt), rng.uniform(-1.5, 1.5, (n, c)).astype(npt),
            rng.uniform(-1.5, 1.5, c).astype(npt)]
    if n > 5:
        args[0][3, 1], args[1][5, 0] = np.inf, np.nan
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == "f32" else dict(rtol=1e-9, atol=1e-12)
    for tiny in (False, True):
        if tiny:
            force_tiny_blocks(fused)
        try:
            want = plain.g_grad(*args)
        except ValueError as e:  # max over zero rows: the same error at every level
            with pytest.raises(ValueError, match="zero-size array"):
                fused.g_grad(*args)
            assert "zero-size array" in str(e)
            continue
        for w, g in zip(want, fused.g_grad(*args)):
            w, g = np.asarray(w), np.asarray(g)
            assert w.shape == g.shape and w.dtype == g.dtype
            np.testing.assert_allclose(g, w, equal_nan=True, **tol)


# ---- polynomials (the Horner rule) ------------------------------------------------------------------
# Sums of c x^k written every way the language allows (x ** k, x * x * ..., coefficient on either
# side), sometimes a product of two such sums (kept: a factored form is not expanded).
COEFS = ["0.5", "1", "2", "3", "5", "1.5", "7"]


@st.composite
def polynomials(draw):
    def term(k):
        c = draw(st.sampled_from(COEFS))
        power = draw(st.sampled_from([f"x ** {k}", " * ".join(["x"] * k)])) if k else ""
        if not power:
            return c
        return draw(st.sampled_from([f"{c} * {power}", f"{power} * {c}", power]))

    def poly():  # each degree once: no x^k - x^k, whose NaN at inf the rule keeps
        degrees = draw(st.lists(st.integers(0, 5), min_size=1, max_size=5, unique=True))
        return "".join((draw(st.sampled_from([" + ", " - "])) if i else "") + term(k) for i, k in enumerate(degrees))

    body, single = poly() + " + 2 * x", True  # a term in x, so the sum has the shape of x
    if draw(st.integers(0, 3)) == 0:
        body, single = f"({body}) * ({poly()})", False
    elif draw(st.booleans()):
        body, single = f"x * ({body}) + {term(draw(st.integers(0, 5)))}", False
    return body, single, draw(st.integers(0, 2 ** 16))


@SETTINGS
@given(polynomials())
def test_polynomials_keep_their_values_and_derivatives_at_every_level(tmp_path_factory, program):
    """-O1 (Horner form where it is cheaper) against -O0, within the rounding bound of the
    evaluation: eps times the polynomial with every sign made + (evaluated at |x|)."""
    from tapeless.compiler.core.ir import topo_order
    from tapeless.compiler.passes.levels import optimize
    from util import compile_module

    from tapeless.compiler.primitives.simplification import SIMPLIFY, horner

    body, single, seed = program
    text = "fn f(x: f64[N]) -> f64 {{\n    return sum({0})\n}}\ngrad f wrt x\n"
    made = {}
    for name, b, level in (("o1", body, 1), ("o0", body, 0), ("bound", body.replace("-", "+"), 0)):
        made[name] = compile_module(text.format(b), tmp_path_factory.mktemp("poly"), path="poly.tl",
                                    opt_level=level)
    x = np.random.default_rng(seed).uniform(-2.5, 2.5, 64)
    x[:3] = (0.0, 1.0, -1.0)
    want, got = made["o0"].f_grad(x), made["o1"].f_grad(x)
    for k in (0, 1):
        bound = np.abs(made["bound"].f_grad(np.abs(x))[k])
        assert np.all(np.abs(np.asarray(got[k]) - np.asarray(want[k])) <= 1e-13 * (bound + 1)), body
    module = ir_stage(SourceFile.from_text("p.tl", text.format(body)))

    def work(with_horner: bool):  # elementwise arithmetic at -O1, with and without the Horner rule
        off = () if with_horner else [r.name for r in SIMPLIFY.rules if r.apply is horner]
        with SIMPLIFY.without(*off):
            nodes = topo_order(optimize(module, 1).functions[0].outputs)
        return sum(n.shape != () and n.op.name in ("add", "sub", "mul", "neg") for n in nodes)

    ops = {True: work(True), False: work(False)}
    if single:  # (the rule sees one sum at a time: elsewhere a rewritten sum may have shared x * x)
        assert ops[True] <= ops[False], body  # never more elementwise work than without the rule


# ---- text that is not a program -----------------------------------------------------------------
TOKENS = ["fn", "f", "g", "x", "y", "N", "(", ")", "[", "]", "{", "}", ",", ":", ";", "\n", "->", "=", "+", "-",
          "*", "/", "@", "**", "<", ">=", "==", "return", "grad", "vjp", "jvp", "hvp", "wrt", "as", "f32",
          "f64[N]", "i64", "bool", "sum", "exp", "where", "einsum", '"ij,jk->ik"', "1", "2.5", ".5", "1e-3",
          "inf", "pi", "true", "None", "...", "axis", "keepdims", "x[0]", "x.T", "$", "'", "#c\n", "\t", " "]
SEED = ("fn f(x: f64[N], w: f64[N]) -> f64 {\n    y = x * w + 1\n    return sum(exp(y) * y)\n}\n"
        "grad f wrt x, w\n")


def _compiles_or_reports(text: str) -> None:
    try:
        compile_source(text, path="fuzz.tl")
    except CompileError as e:
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        assert e.diagnostics
        for d in e.diagnostics:
            assert d.span is not None and 1 <= d.span.line <= len(lines), d
            assert 1 <= d.span.col <= len(lines[d.span.line - 1]) + 1, d
        assert "Traceback" not in e.render()


@settings(max_examples=EXAMPLES * 5, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join))
def test_token_soup_gives_located_diagnostics(text):
    _compiles_or_reports(text)


@settings(max_examples=EXAMPLES * 5, deadline=None, derandomize=True)
@given(st.integers(0, len(SEED)), st.integers(0, 6), st.text(alphabet="()[]{},:;=+-*/@<>.0123456789xNfw \n\"'",
                                                            max_size=6))
def test_mutated_programs_give_located_diagnostics(at, cut, insert):
    _compiles_or_reports(SEED[:at] + insert + SEED[at + cut:])


def teardown_module(module):
    if STATS["programs"]:
        print(f"\nproperty tests: {STATS['programs']} random programs (gradcheck of grad, vjp, jvp, hvp), "
              f"{STATS['sympy']} also SymPy-checked, in {STATS['seconds']:.1f} s")
