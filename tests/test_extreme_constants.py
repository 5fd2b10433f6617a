"""-O1 and -O2 never turn a finite -O0 result into inf or NaN (issue #15: `5 * 1e308 * 1e-308`
was folded to `inf * x`).

Random programs (hypothesis) of +, -, *, / and powers whose literals are the extremes of their
dtype (1e308 and 1e-308 in f64, 3e38 and 1e-45 in f32, 0 and -0.0) and whose inputs are
ordinary numbers, so every rule that gathers or folds constants meets constants it must not
fold. Wherever -O0's value or gradient is finite, the other levels' are too, and they are
close: within the rounding bound of the evaluation, which the test computes as the polynomial
test does (tests/test_properties.py), from the same program with every literal made positive,
every `-` made `+` and each operation adding the smallest normal number (its underflow).
Some programs also pass a value through a function of the property tests' generator (exp,
sin, softplus, ...): those are only held to the first promise, finite stays finite.
"""
from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapeless.compiler.core.source import SourceFile
from tapeless.compiler.pipeline import ir_stage, optimize_stage, source_stage
from tapeless.compiler.codegen.emit import Options
from test_properties import UNARY

EXAMPLES = int(os.environ.get("TAPELESS_PROPERTY_EXAMPLES", "40"))
LITERALS = {
    "f64": ["1e308", "1.7e308", "1e-308", "2.2250738585072014e-308", "5e-324", "1e154", "1e-154",
            "0.0", "-0.0", "0.5", "2.0", "3.0", "2.0 ** 1000"],
    "f32": ["1e38", "3e38", "1e-38", "1e-45", "1e19", "1e-19", "0.0", "-0.0", "0.5", "2.0", "3.0", "2.0 ** 100"],
}
TINY = {"f64": np.finfo(np.float64).tiny, "f32": np.finfo(np.float32).tiny}
EPS = {"f64": 2.0 ** -53, "f32": 2.0 ** -24}


def _magnitude(text: str) -> str:
    return "(" + repr(abs(eval(text.replace("-0.0", "0.0")))) + ")"  # literals only: text from LITERALS


@st.composite
def programs(draw):
    """(program, bound program or None, operation count, dtype): the two texts side by side."""
    dtype = draw(st.sampled_from(["f64", "f32"]))
    ops, bounded = [0], [True]

    def literal():
        text = draw(st.sampled_from(LITERALS[dtype]))
        return f"({text})", _magnitude(text)

    def expr(depth):
        if depth == 0 or draw(st.integers(0, 4)) == 0:
            name = draw(st.sampled_from(["x", "y"]))
            return name, f"a{name}"
        (e, b), (lit, mag) = expr(depth - 1), literal()
        ops[0] += 1
        kind = draw(st.sampled_from(["mul", "lmul", "div", "add", "sub", "rsub", "neg", "mul2", "add2", "pow",
                                     "sum_mul", "sum_add", "function"]))
        if kind == "function":  # no rounding bound through it: the program keeps only the first promise
            bounded[0] = False
            function = draw(st.sampled_from(UNARY))
            return f"({function.format(e)})", f"({function.format(b)})"
        if kind in ("mul2", "add2"):
            e2, b2 = expr(depth - 1)
            return ((f"({e} * {e2})", f"({b} * {b2} + T)") if kind == "mul2" else
                    (f"({e} + {e2})", f"({b} + {b2} + T)"))
        if kind == "pow":
            k = draw(st.sampled_from([2, 3, 4]))
            ops[0] += k
            return f"({e} ** {k})", f"({b} ** {k} + {k} * T)"
        if kind in ("sum_mul", "sum_add"):  # constants taken out of sums (x has 3 elements)
            ops[0] += 3
            op = "*" if kind == "sum_mul" else "+"
            return f"sum(({e} + zeros([3])) {op} {lit})", f"(sum(({b} + zeros([3])) {op} {mag} + T) + 3 * T)"
        return {
            "mul": (f"({e} * {lit})", f"({b} * {mag} + T)"),
            "lmul": (f"({lit} * {e})", f"({mag} * {b} + T)"),
            "div": (f"({e} / {lit})", f"({b} / {mag} + T)"),  # (a zero literal: inf and nan at -O0 too)
            "add": (f"({e} + {lit})", f"({b} + {mag} + T)"),
            "sub": (f"({e} - {lit})", f"({b} + {mag} + T)"),
            "rsub": (f"({lit} - {e})", f"({mag} + {b} + T)"),
            "neg": (f"(-{e})", b),
        }[kind]

    body, bound = expr(draw(st.integers(1, 5)))
    ops[0] += 4  # the final sum and the gradient's own operations
    text = (f"fn f(x: {dtype}[3], y: {dtype}) -> {dtype} {{\n    return sum({body} + zeros([3]))\n}}\n"
            "grad f wrt x, y\n")
    tiny = repr(float(TINY[dtype]))
    bound_text = (f"fn f(ax: {dtype}[3], ay: {dtype}) -> {dtype} {{\n    T = {dtype}({tiny})\n"
                  f"    return sum({bound} + zeros([3])) + 3 * T\n}}\ngrad f wrt ax, ay\n")
    return text, bound_text if bounded[0] else None, ops[0], dtype


def _modules(text: str, levels) -> dict:
    """The module at each level: the front end and derivatives once, then each level's passes."""
    module = ir_stage(SourceFile.from_text("extreme.tl", text))
    out = {}
    for level in levels:
        namespace: dict = {}
        code = source_stage(optimize_stage(module, level), Options(opt_level=level))
        exec(compile(code, f"extreme_O{level}.py", "exec"), namespace)
        out[level] = namespace
    return out


INPUTS = [(np.array([0.5, -1.25, 2.0]), 0.75), (np.array([0.0, -0.0, 1.0]), -1.5), (np.array([3.0, -2.0, 0.1]), 0.0)]


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs())
def test_levels_keep_finite_results_finite_and_close(program):
    text, bound_text, n_ops, dtype = program
    made = _modules(text, (0, 1, 2))
    bound = _modules(bound_text, (0,))[0] if bound_text else None
    npt = np.float32 if dtype == "f32" else np.float64
    gamma = 4 * n_ops * EPS[dtype]  # twice the bound of each of the two evaluations
    with np.errstate(all="ignore"):
        for x, y in INPUTS:
            x, y = x.astype(npt), npt(y)
            want = [np.asarray(v) for v in made[0]["f_grad"](x, y)]
            scale = [np.abs(np.asarray(v)) for v in bound["f_grad"](np.abs(x), np.abs(y))] if bound else [None] * 3
            for level in (1, 2):
                got = [np.asarray(v) for v in made[level]["f_grad"](x, y)]
                for what, w, g, s in zip(("value", "d x", "d y"), want, got, scale):
                    assert w.dtype == g.dtype and w.shape == g.shape
                    finite = np.isfinite(w)
                    assert np.all(np.isfinite(g[finite])), (f"-O{level} made the {what} non-finite where -O0's is "
                                                            f"finite: {g} vs {w} at x={x}, y={y}\n{text}")
                    if s is None:
                        continue
                    # within the rounding bound wherever that is finite (near the largest float it is not)
                    close = finite & np.isfinite(s)
                    err = np.abs(g.astype(float) - w.astype(float))[close]
                    tol = gamma * (s[close].astype(float) + TINY[dtype]) * 2
                    assert np.all(err <= tol), (f"-O{level} {what} {g} differs from -O0's {w} by more than the "
                                                f"rounding bound {tol} at x={x}, y={y}\n{text}")


def test_an_infinite_exponent_under_a_hessian_vector_product_compiles_at_every_level():
    """`(y ** 3) ** inf` with an hvp: -O1 and -O2 stopped with an OverflowError (the polynomial
    rule asked int(inf)); 1e308 in f32 is that inf too (long fuzz run, input #3401). Each level
    gives -O0's values: finite where -O0's are, the same non-finite ones elsewhere."""
    for dtype, exponent in (("f64", "inf"), ("f32", "1e308")):
        text = f"fn f(y: {dtype}) -> {dtype} {{\n    return (y ** 3) ** {exponent}\n}}\nhvp f wrt y\n"
        made = _modules(text, (0, 1, 2))
        npt = np.float32 if dtype == "f32" else np.float64
        with np.errstate(all="ignore"):
            for y in (0.5, 1.0, 1.5, 0.0, -0.5):
                want = [np.asarray(v) for v in made[0]["f_hvp"](npt(y), npt(1.0))]
                for level in (1, 2):
                    got = [np.asarray(v) for v in made[level]["f_hvp"](npt(y), npt(1.0))]
                    for w, g in zip(want, got):
                        assert w.dtype == g.dtype
                        np.testing.assert_allclose(g, w, rtol=1e-6, err_msg=f"-O{level} at y={y}\n{text}")


def test_a_float_literal_beyond_its_dtype_is_inf_without_a_python_warning(tmp_path, capsys):
    """1e308 met by an f32 (and 1e5 by an f16) is inf in that dtype, as NumPy converts it; the
    conversion printed NumPy's RuntimeWarning from compiler/core/nodes.py (fuzz finding #2)."""
    import warnings

    from tapeless.compiler.tools.cli import main

    path = tmp_path / "big.tl"
    path.write_text("fn f(x: f32) -> f32 {\n    return x - 1e308\n}\nfn g(x: f16) -> f16 {\n    return x * 1e5\n}\n"
                    "grad g wrt x\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["compile", str(path), "-o", str(tmp_path / "big.py")]) == 0
        made = _modules(path.read_text(), (0, 1))
    assert capsys.readouterr().err == ""
    for level in (0, 1):
        assert made[level]["f"](np.float32(2.0)) == -np.inf
        value, grad = made[level]["g_grad"](np.float16(2.0))
        assert value == np.inf and grad == np.inf and grad.dtype == np.float16
