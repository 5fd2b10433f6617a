"""The numba kernel math forms (compiler/codegen/kernels/numba_math.py): their accuracy in ulps on a
deterministic sweep of bit patterns, the extremes libm gets right, that they vectorise, and the
table's interface. Timings are benchmarks' business (tools/ulp_report.py), never asserted here."""
from __future__ import annotations

import re

import numpy as np
import pytest

numba = pytest.importorskip("numba", reason="numba is an optional extra (tapeless[numba]); the forms are numba source")

from tapeless.compiler.codegen.kernels import numba_math as M  # noqa: E402
from tapeless.compiler.tools import ulp_report as U  # noqa: E402

# Measured max ulp over every 97th float32 pattern / 4M float64 patterns + dense ranges
# (tools/ulp_report.py); the bounds allow 1 ulp more. tanh float32 is Eigen's rational form.
MAX_ULP = {"float32": {"exp": 1.03, "expm1": 1.63, "log": 0.79, "log1p": 0.82, "tanh": 4.52,
                       "sigmoid": 2.62, "softplus": 1.57},
           "float64": {"exp": 0.98, "expm1": 1.76, "log": 0.77, "log1p": 0.77, "tanh": 2.48,
                       "sigmoid": 2.50, "softplus": 1.64}}


@pytest.fixture(scope="module")
def kernels():
    return U.compile_forms()


@pytest.fixture(scope="module")
def samples():
    return {"float32": U.f32_sample(stride=4099), "float64": U.f64_sample(400_000)}


def run(kernels, key, x):
    x = np.asarray(x, dtype=key[1])
    y = np.empty_like(x)
    kernels[key](x, y)
    return y


@pytest.mark.parametrize("key", list(M.FORMS), ids=lambda k: f"{k[0]}-{k[1]}")
def test_form_is_within_its_measured_ulps(kernels, samples, key):
    x = samples[key[1]]
    err = U.ulp_errors(key[0], x, run(kernels, key, x))
    worst = int(np.argmax(err))
    assert err[worst] <= MAX_ULP[key[1]][key[0]] + 1, f"{err[worst]:.2f} ulp at x = {x[worst]!r}"
    # inside half the tolerance the project's tests use: 1e-6 (f32) and 1e-12 (f64) relative
    y = run(kernels, key, x)
    with np.errstate(all="ignore"):
        ref = U.reference(key[0])(x.astype(np.longdouble))
        inside = np.isfinite(ref.astype(key[1])) & (np.abs(ref) >= np.finfo(key[1]).tiny)
        rel = np.abs((y - ref) / ref)[inside]
    assert rel.max() < (1e-6 if key[1] == "float32" else 1e-12) / 2


def test_the_ulp_measure_can_fail():
    """A result one ulp off reads as one ulp; a wrong inf as inf."""
    x = np.array([1.0, 2.0, 1000.0], np.float32)
    y = np.exp(x.astype(np.float64)).astype(np.float32)
    y[0] = np.nextafter(y[0], np.float32(np.inf))
    y[2] = np.float32(3.0)  # exp(1000) is inf in float32
    err = U.ulp_errors("exp", x, y)
    assert 0.5 <= err[0] <= 1.5 and err[1] <= 0.5 and err[2] == np.inf


INF, NAN = np.inf, np.nan
# (fname, x, expected) for both dtypes; None: the dtype's own value computed below
SPECIAL = [
    ("exp", [INF, -INF, NAN, 0.0, -0.0, 1000.0, -1000.0], [INF, 0.0, NAN, 1.0, 1.0, INF, 0.0]),
    ("expm1", [INF, -INF, NAN, 0.0, -0.0, 1000.0, -1000.0], [INF, -1.0, NAN, 0.0, -0.0, INF, -1.0]),
    ("log", [0.0, -0.0, -1.0, -INF, INF, NAN, 1.0], [-INF, -INF, NAN, NAN, INF, NAN, 0.0]),
    ("log1p", [-1.0, -2.0, -INF, INF, NAN, 0.0, -0.0], [-INF, NAN, NAN, INF, NAN, 0.0, -0.0]),
    ("tanh", [INF, -INF, NAN, 0.0, -0.0, 30.0, -30.0], [1.0, -1.0, NAN, 0.0, -0.0, 1.0, -1.0]),
    ("sigmoid", [INF, -INF, NAN, 0.0, -800.0, 800.0], [1.0, 0.0, NAN, 0.5, 0.0, 1.0]),
    ("softplus", [INF, -INF, NAN, 800.0, -800.0, 0.0], [INF, 0.0, NAN, 800.0, 0.0, float(np.log(2.0))]),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fname, xs, want", SPECIAL, ids=[s[0] for s in SPECIAL])
def test_special_values_and_extremes(kernels, dtype, fname, xs, want):
    got = run(kernels, (fname, dtype), xs)
    want = np.asarray(want, dtype)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    same &= (np.signbit(got) == np.signbit(want)) | np.isnan(want)  # -0.0 where libm gives it
    if fname == "softplus":  # log 2 to the ulp, not bit for bit
        same[-1] = abs(got[-1] - want[-1]) <= 2 * np.spacing(want[-1])
    assert same.all(), list(zip(xs, got, want))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exp_goes_through_the_subnormals_and_overflows_where_libm_does(kernels, dtype):
    fi = np.finfo(dtype)
    lo, hi = np.log(fi.smallest_subnormal.astype(np.float64)) - 1, np.log(fi.max.astype(np.float64)) + 1
    x = np.linspace(lo, hi, 200_001).astype(dtype)
    with np.errstate(over="ignore"):
        want = np.exp(x.astype(np.longdouble)).astype(dtype)
    got = run(kernels, ("exp", dtype), x)
    assert np.array_equal(got == 0, want == 0) and np.array_equal(np.isinf(got), np.isinf(want))
    sub = (want != 0) & (np.abs(want) < fi.tiny)
    assert sub.any() and np.all(np.abs(got[sub] - want[sub]) <= fi.smallest_subnormal)
    # sigmoid keeps its subnormal tail (e / (1 + e)), where 1 / (1 + exp(-x)) gives 0
    s = run(kernels, ("sigmoid", dtype), x[sub][:1000])
    assert np.all(s > 0)
    # log of a subnormal
    t = np.array([fi.smallest_subnormal, fi.tiny / 3], dtype)
    assert np.allclose(run(kernels, ("log", dtype), t), np.log(t.astype(np.float64)), rtol=4 * fi.eps)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_log1p_and_expm1_keep_tiny_arguments(kernels, dtype):
    x = np.array([1e-30, -1e-30, 3e-9, -3e-9, np.finfo(dtype).smallest_subnormal], dtype)
    for fname in ("log1p", "expm1"):
        got = run(kernels, (fname, dtype), x)
        want = U.reference(fname)(x.astype(np.longdouble)).astype(dtype)
        assert np.all(np.abs(got - want) <= np.spacing(np.abs(want))), (fname, got, want)


@pytest.mark.parametrize("key", [("exp", "float32"), ("log", "float64"), ("tanh", "float64"),
                                 ("softplus", "float64")], ids=lambda k: f"{k[0]}-{k[1]}")
def test_a_loop_calling_a_form_vectorises(key):
    """Packed arithmetic in the loop: the point of the forms (a libm call keeps it scalar).
    tanh and softplus float64 call a second form, which only numba's inlining got vectorised."""
    src = (U._HEADER + M.source([M.FORMS[key].name])
           + U._kernel_source("k", M.FORMS[key].name + "(x[i])", parallel=False))
    ns: dict = {}
    exec(compile(src, "<vectorise>", "exec"), ns)
    x = np.ones(64, key[1])
    ns["k"](x, np.empty_like(x))
    asm = "\n".join(ns["k"].inspect_asm().values())
    packed = "ps" if key[1] == "float32" else "pd"
    assert re.search(rf"\bv(mul|fmadd\d+|add){packed}\s+%[yz]mm", asm), "no packed ymm/zmm arithmetic"


def test_call_and_source_give_what_the_table_says():
    for (fname, dtype), use in M.USE.items():
        text = M.call(fname, dtype, ["a"])
        if use == "form":
            assert text == f"{M.FORMS[(fname, dtype)].name}(a)"
        elif use == "libm":
            assert text == f"np.{fname}(a)"
        else:
            assert text is None
    assert M.call("no such function", "float32", ["a"]) is None
    src = M.source([M.FORMS[("softplus", "float64")].name])
    # callees first, each once, the intrinsics before all
    order = [src.index(f"def {n}(") for n in ("_tl_pow2", "_tl_exp_f64", "_tl_log1p_f64", "_tl_softplus_f64")]
    assert order == sorted(order) and src.count("def _tl_exp_f64(") == 1
    assert "_tl_f32" in src and "import" not in src  # the module's own imports are numpy and numba
