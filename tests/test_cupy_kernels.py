"""The CuPy backend's kernels (compiler/codegen/kernels/), run on the CPU by the g++ harness
(tests/cupy_kernels_cpu.py): each primitive's scalar expression as CUDA C++, and whole
generated modules against the NumPy backend."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import cupy_kernels_cpu as ck
from tapeless.compiler.codegen.kernels import cuda
from tapeless.compiler.codegen.kernels import program as P
from tapeless.compiler.core.primitive import REGISTRY
from tapeless.compiler.core.types import DType

needs_gxx = pytest.mark.skipif(ck.compiler() is None, reason="no C++ compiler (g++) to run CuPy kernels on the CPU")
TOLERANCE = {DType.F32: 1e-6, DType.F64: 1e-12}


# ---- each primitive's scalar expression as CUDA C++ --------------------------------------------------------
def _arity(template: str) -> int:
    holes = [int(d) for d in re.findall(r"\{(\d)\}", template)]
    return 1 + max(holes) if holes else 0


def _samples(name: str, arity: int, dt: DType):
    rng = np.random.default_rng(0)
    wide = np.array([-800.0, -80.0, -2.5, -0.5, 0.0, 0.25, 1.5, 80.0, 800.0, np.nan])
    if name.startswith("logical"):
        return [rng.random(10) < 0.5 for _ in range(arity)], ["bool"] * arity
    if name == "where":
        return [rng.random(10) < 0.5, wide.astype(dt.np), rng.uniform(-3, 3, 10).astype(dt.np)], ["bool", None, None]
    if name in ("log", "sqrt", "log1p", "log2", "log10", "lgamma", "logit", "acosh", "binary_cross_entropy"):
        lo, hi = {"acosh": (1, 4), "logit": (0.02, 0.98), "binary_cross_entropy": (0.02, 0.98)}.get(name, (0.01, 3))
        values = [rng.uniform(lo, hi, 10) for _ in range(arity)]
    elif name in ("arcsin", "arccos", "arctanh"):
        values = [rng.uniform(-0.99, 0.99, 10)]
    elif name in ("div", "mod", "fmod", "pow", "xlogy", "xlog1py"):
        values = [np.append(rng.uniform(-3, 3, 9), 0.0), rng.uniform(0.5, 3, 10)]
    elif arity == 1:
        values = [wide]
    else:
        values = [np.append(wide[:7], [1.5, -3.0, 2.0])] + [rng.uniform(-3, 3, 10) for _ in range(arity - 1)]
    return [v.astype(dt.np) for v in values], [None] * arity


@needs_gxx
@pytest.mark.parametrize("dt", [DType.F32, DType.F64], ids=str)
@pytest.mark.parametrize("name", sorted(n for n, p in REGISTRY.items() if p.scalar))
def test_each_scalar_expression_in_cuda_computes_what_numpy_does(name, dt, tmp_path):
    """Every record whose scalar facet has a CUDA form, as an ElementwiseKernel in float32 and
    float64, equals the NumPy backend's code for it (1e-6 relative in f32, 1e-12 in f64), at
    the extremes too (exp(800) = inf, softplus(-800), NaN); those without one are named."""
    from util import compile_module

    prim = REGISTRY[name]
    arity = _arity(prim.scalar)
    values, kinds = _samples(name, arity, dt)
    attrs = {"dtype": DType.F32 if dt is DType.F64 else DType.F64} if name == "cast" else {}
    in_dtypes = [DType.BOOL if k == "bool" else dt for k in kinds]
    if not cuda.renderable(P.calls(prim.scalar), in_dtypes):
        pytest.skip(f"{name}: no CUDA C++ form (a cupyx.scipy.special call outside kernels)")
    params = ", ".join(f"a{i}: {d.short}[10]" for i, d in enumerate(in_dtypes))
    call = {"neg": "-a0", "add": "a0 + a1", "sub": "a0 - a1", "mul": "a0 * a1", "div": "a0 / a1",
            "pow": "a0 ** a1", "eq": "a0 == a1", "ne": "a0 != a1", "lt": "a0 < a1", "le": "a0 <= a1",
            "gt": "a0 > a1", "ge": "a0 >= a1", "cast": f"{attrs.get('dtype', dt).short}(a0)", "mod": "a0 % a1"}.get(name)
    body = call or f"{name}({', '.join(f'a{i}' for i in range(arity))})"
    if name.startswith("logical") or name == "finite_or_zero":  # internal (rules and forms make them): no spelling
        want = np.asarray(prim.fold(*values))
    else:
        m = compile_module(f"fn f({params}) {{\n    return {body}\n}}\n", tmp_path)
        with np.errstate(all="ignore"):
            want = np.asarray(m.f(*values))
    used: set[str] = set()
    text = cuda.expr(_typed(prim.scalar, in_dtypes, DType.from_numpy(want.dtype), attrs), lambda e: e.name, used)
    out_type = np.dtype(want.dtype).name
    kernel = ck.ElementwiseKernel(", ".join(f"{d.np.name} a{i}" for i, d in enumerate(in_dtypes)),
                                  f"{out_type} y", f"y = {text}", f"scalar_{name}", preamble=cuda.preamble(used))
    got = kernel(*values)
    assert got.dtype == want.dtype
    if want.dtype == bool:
        np.testing.assert_array_equal(got, want)
    else:
        # (atol: NumPy's float32 logaddexp gives softplus(-80) = 0, the kernel its true 1.8e-35)
        np.testing.assert_allclose(got, want, rtol=TOLERANCE[dt], atol=1e-30, equal_nan=True, err_msg=text)


def _typed(template: str, dtypes, result: DType, attrs=None):
    """The template as program.py types it for a node of `result` over operands a0, a1, ..."""
    attrs = attrs or {}
    fill = lambda key: P.Ref(f"a{key}", dtypes[int(key)]) if key.isdigit() else attrs[key].short  # noqa: E731
    e = P.typed(P.parse(template, fill), result, cast_to=attrs.get("dtype"))
    return e if e.dtype == result else P.Call("cast", (e,), result)


def _c(template: str, dt: DType, n: int = 1) -> str:
    return cuda.expr(_typed(template, [dt] * n, dt), lambda e: "abc"[int(e.name[1:])])


def test_float32_kernels_compute_in_float32():
    """A number in the text is a literal of the kernel's dtype and each function CUDA's for it:
    a float32 chain never goes through double."""
    assert _c("max({0}, 0) + log1p(exp(-fabs({0}))) * 0.5", DType.F32) == "_tl_max(a, 0.0f) + log1pf(expf(-fabsf(a))) * 0.5f"
    assert _c("max({0}, 0) + log1p(exp(-fabs({0}))) * 0.5", DType.F64) == "_tl_max(a, 0.0) + log1p(exp(-fabs(a))) * 0.5"
    assert cuda.literal(0.1, DType.F32) == "0.1f" and cuda.literal(1e-7, DType.F64) == "1e-07"
    assert cuda.literal(float("-inf"), DType.F32) == "-INFINITY" and cuda.literal(3, DType.F32) == "3.0f"


def test_precedence_is_kept_and_shown_where_a_reader_needs_it():
    assert _c("{0} - ({1} - {2})", DType.F64, 3) == "a - (b - c)"
    assert _c("({0} - {1}) - {2}", DType.F64, 3) == "a - b - c"
    assert _c("-(-{0})", DType.F64) == "- -a"
    assert _c("({0} + {1}) * {2}", DType.F64, 3) == "(a + b) * c"
    assert _c("select({0} < 0, {1}, {2}) * 2", DType.F64, 3) == "(a < 0.0 ? b : c) * 2.0"
    assert cuda.expr(_typed("({0} < 0) != ({1} < 0)", [DType.F64] * 2, DType.BOOL),
                     lambda e: e.name) == "(a0 < 0.0) != (a1 < 0.0)"


# ---- whole generated modules, against the NumPy backend -------------------------------------------------------
def _tolerance(value: np.ndarray):
    """rtol by dtype (1e-6 f32, 1e-12 f64), and as atol the same times the larger of 1 and the
    result's largest magnitude: the inputs are of order 1, and a value computed from them (a sum
    that cancels, a gradient through softmax) carries their absolute rounding, not one relative
    to itself. (Measured on attention's f32 gradient: the NumPy backend and the kernels are both
    6-8e-8 from the float64 result, 9e-8 from each other, on values up to 0.064.)"""
    rtol = 1e-6 if value.dtype == np.float32 else 1e-12
    scale = float(np.max(np.abs(value[np.isfinite(value)]), initial=0.0)) if value.dtype.kind == "f" else 0.0
    return {"rtol": rtol, "atol": rtol * max(scale, 1.0)}


def _run_both(text: str, path: str, tmp_path, tl, which: str = "standin", seed: int = 0):
    """Every fn, grad and vjp of the program on the CuPy backend (kernels through the harness, or
    a GPU) and the NumPy backend; returns the number of CuPy kernels the module makes."""
    from test_cupy_backend import _to_device, _to_host, import_cupy_module
    from corpus import inputs_for
    from tapeless.compiler import compile_source

    numpy_mod = tl(text, path=path)
    source = compile_source(text, backend="cupy", path=path)
    cupy_mod = import_cupy_module(source, tmp_path, which)
    for name, info in numpy_mod.__tapeless__.items():
        if info["kind"] not in ("fn", "grad", "vjp"):
            continue
        base = info.get("of", name)
        args = inputs_for(numpy_mod, base, text, seed)
        if info["kind"] == "vjp":
            outs = numpy_mod.__dict__[base](*args)
            outs = outs if isinstance(outs, tuple) else (outs,)
            args = args + [np.ones_like(np.asarray(o)) for o in outs]
        with np.errstate(all="ignore"):
            want = getattr(numpy_mod, name)(*args)
            got = _to_host(getattr(cupy_mod, name)(*[_to_device(a, which) for a in args]), which)
        want = want if isinstance(want, tuple) else (want,)
        got = got if isinstance(got, tuple) else (got,)
        assert len(got) == len(want)
        for w, g in zip(want, got):
            w, g = np.asarray(w), np.asarray(g)
            assert g.dtype == w.dtype and g.shape == w.shape, (name, g.dtype, w.dtype, g.shape, w.shape)
            np.testing.assert_allclose(g, w, equal_nan=True, err_msg=f"{path} {name}\n{text}", **_tolerance(w))
    return len(re.findall(r"^_k\d+ = cp\.(?:Elementwise|Reduction)Kernel\(", source, re.M))


GOLDEN_CASES = sorted((Path(__file__).parent / "cases").glob("*.tl"))


@needs_gxx
@pytest.mark.parametrize("path", GOLDEN_CASES, ids=lambda p: p.stem)
def test_every_golden_program_on_cupy_kernels_equals_numpy(path, tmp_path, tl):
    """Each program of the golden corpus compiled with --backend cupy, its kernels compiled by g++
    and run on the CPU, gives the NumPy backend's values (1e-6 relative in f32, 1e-12 in f64)."""
    kernels = _run_both(path.read_text(), f"cases/{path.name}", tmp_path, tl)
    source = path.read_text()
    if re.search(r"\[[A-Z]", source) and path.stem not in ("names", "shapes"):
        assert kernels > 0, f"{path.name}: no kernels made; the test would compare per-op code only"


# a random program: a chain over x[N, C], y[C], z[N, 1] with broadcasting, reductions along C
# (whose results are used again) and a total; its gradient too
_UNARY = ["tanh({})", "sigmoid({})", "softplus({})", "sin({})", "abs({})", "relu({})", "({}) * ({})",
          "exp(-abs({}))", "log1p(abs({}))", "sqrt(abs({}) + 1.0)", "cos({}) * 0.5"]
_BINARY = ["{} + {}", "{} - {}", "{} * {}", "maximum({}, {})", "minimum({}, {})", "where({0} > {1}, {0}, {1} * 2.0)",
           "{} / (abs({}) + 1.0)"]
_REDUCE = ["sum({}, axis=1, keepdims=true)", "max({}, axis=1, keepdims=true)", "mean({}, axis=1, keepdims=true)",
           "min({}, axis=1, keepdims=true)"]


def random_program(seed: int, dtype: str) -> str:
    import random

    rng = random.Random(seed)
    shapes = {"x": "NC", "y": "C", "z": "N1"}  # each value's shape: [N, C], [C] or [N, 1]

    def joint(a: str, b: str) -> str:
        return a if a == b else "NC"

    lines = []
    for k in range(rng.randint(3, 7)):
        kind = rng.random()
        a = rng.choice(list(shapes))
        if kind < 0.35:
            text, shape = rng.choice(_UNARY).format(a, a), shapes[a]
        elif kind < 0.8:
            b = rng.choice(list(shapes))
            text, shape = rng.choice(_BINARY).format(a, b), joint(shapes[a], shapes[b])
        else:  # along C; a [C] value is first broadcast against x
            text, shape = rng.choice(_REDUCE).format(a if shapes[a] != "C" else f"{a} * x"), "N1"
        lines.append(f"    v{k} = {text}")
        shapes[f"v{k}"] = shape
    last = [n for n in shapes if n.startswith("v")][-2:]
    total = " + ".join(f"sum({n})" for n in last)
    body = "\n".join(lines)
    return (f"fn f(x: {dtype}[N, C], y: {dtype}[C], z: {dtype}[N, 1]) -> {dtype} {{\n{body}\n    return {total}\n}}\n\n"
            "grad f wrt x, y, z\n# size N: 7\n# size C: 5\n")


@needs_gxx
@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_random_programs_on_cupy_kernels_equal_numpy(dtype, tmp_path, tl):
    """Random elementwise chains with broadcasting and reductions, and their gradients: the CuPy
    backend's kernels (run by the harness) give the NumPy backend's values."""
    from hypothesis import HealthCheck, given, settings, strategies as st

    made = []

    @settings(max_examples=12, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(st.integers(0, 2 ** 31 - 1))
    def check(seed):
        made.append(_run_both(random_program(seed, dtype), f"random_{seed}.tl", tmp_path, tl, seed=seed % 7))

    check()
    assert sum(made) > 0


def test_special_functions_stay_cupyx_calls_outside_kernels():
    """erfcx has no CUDA C++ form here: the chain around it is fused, erfcx itself is a
    cupyx.scipy.special call between kernels; erf, which CUDA has, is inside a kernel."""
    from tapeless.compiler import compile_source

    src = "fn f(x: f32[N, C]) -> f32 {\n    return sum(erfcx(tanh(x) * 2.0) + erf(x * 3.0))\n}\n"
    text = compile_source(src, backend="cupy")
    assert "erfcx(" in text.split("# The fused chains' CUDA kernels")[0]
    assert "erff(" in text and "erfcxf" not in text


REAL = None
try:  # a CUDA device with cupy: the same modules run on it
    import cupy as _cupy

    if _cupy.cuda.runtime.getDeviceCount() > 0:
        REAL = _cupy
except Exception:  # no cupy, no driver, no device
    REAL = None


@pytest.mark.parametrize("path", GOLDEN_CASES[:4], ids=lambda p: p.stem)
def test_golden_programs_on_a_gpu(path, tmp_path, tl):
    if REAL is None:
        pytest.skip("no CUDA device or no cupy installed: the kernels run through the g++ harness only")
    _run_both(path.read_text(), f"cases/{path.name}", tmp_path, tl, which="gpu")
