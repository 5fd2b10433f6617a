"""The CuPy backend's kernels (compiler/codegen/kernels/), run on the CPU by the g++ harness
(tests/cupy_kernels_cpu.py): each primitive's scalar expression as CUDA C++, and whole
generated modules against the NumPy backend."""
from __future__ import annotations

import re

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
    if name.startswith("logical"):  # internal (masks in rules): the language has no spelling for them
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
