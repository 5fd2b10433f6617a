"""The optimiser: passes are functions from module to module, verified after each one, and every
corpus program gives the same results, passes gradcheck and the SymPy check at -O0, -O1 and -O2."""
from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

from corpus import PROGRAMS, inputs_for
from tapeless.compiler.primitives import algebra as B
from tapeless.compiler.core.ir import graph_scope
from tapeless.compiler.passes.levels import PIPELINE, optimize
from tapeless.compiler.passes.simplify import simplify_node
from tapeless.compiler.primitives.simplification import SIMPLIFY
from tapeless.compiler.passes.verify import VerifyError, verify
from tapeless.compiler.pipeline import ir_stage
from tapeless.compiler.core.source import SourceFile
from tapeless.compiler.tools.sympy_check import check_module
from tapeless.compiler.core.types import DType, TensorType
from tapeless.runtime import gradcheck
from util import force_tiny_blocks


def _module(path):
    return ir_stage(SourceFile.from_text(path.name, path.read_text()))


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.name)
def test_every_pass_keeps_the_ir_valid(path):
    for level in PIPELINE:
        optimize(_module(path), level, check=True)  # verify() after each pass


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.name)
def test_every_level_computes_the_same_and_passes_gradcheck(path, tl):
    text = path.read_text()
    mods = {level: tl(text, path=path.name, opt_level=level) for level in PIPELINE}
    base = mods[0]
    for name, info in base.__tapeless__.items():
        if info["kind"] in ("fwd", "bwd"):
            continue
        args = inputs_for(base, info.get("of", name) if info["kind"] != "fn" else name, text)
        extra = []
        if info["kind"] == "vjp":
            outs = getattr(base, info["of"])(*args)
            extra = [np.ones_like(np.asarray(o)) for o in (outs if isinstance(outs, tuple) else (outs,))]
        elif info["kind"] in ("jvp", "hvp"):
            names = base.__tapeless__[info["of"]]["params"]
            extra = [np.ones_like(np.asarray(args[names.index(w)])) for w in info["wrt"]]
        want = getattr(base, name)(*args, *extra)
        for level in (1, 2):
            got = getattr(mods[level], name)(*args, *extra)
            for w, g in zip(want if isinstance(want, tuple) else (want,), got if isinstance(got, tuple) else (got,)):
                tol = 1e-4 if np.asarray(w).dtype == np.float32 else 1e-9
                np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=tol, atol=tol)
            if info["kind"] != "fn" and not base.__tapeless__[info["of"]].get("uses_stop_gradient"):
                assert gradcheck(getattr(mods[level], name), *args)


SMALL = [p for p in PROGRAMS if p.stem not in ("mlp", "layer", "attention")]


@pytest.mark.parametrize("path", SMALL, ids=lambda p: p.name)
def test_sympy_check_passes_at_every_optimisation_level(path):
    text = path.read_text()
    for level in (1, 2):
        source = _module(path)  # the functions as written: the reference differentiates them
        bad = [r for r in check_module(optimize(source, level), text, reference=source) if r.status == "FAIL"]
        assert not bad, [r.detail for r in bad]


def test_fwd_bwd_pairs_survive_o2_with_fewer_residuals(tl):
    text = "fn f(x: f64[N]) -> f64 { return sum(exp(x) * (x * x)) }\ngrad f wrt x\n"
    o1, o2 = tl(text, opt_level=1), tl(text, opt_level=2)
    x = np.array([0.5, -1.0, 2.0])
    r1, r2 = o1.f_grad_fwd(x)[1], o2.f_grad_fwd(x)[1]
    assert len(r2) < len(r1)                                    # x * x is recomputed, not saved
    np.testing.assert_allclose(o2.f_grad_bwd(r2)[0], o1.f_grad_bwd(r1)[0])


def test_o2_drops_residuals_in_dependency_order(tl):
    """After the Horner rule a saved value may be computed from one _fwd saves after it; -O2 must
    not recompute it from a residual it drops as well (found by a random polynomial: the -O2
    module read a parameter its _bwd no longer had, an internal error at compile time)."""
    text = ("fn f(x: f64[N]) -> f64 {\n    return sum(5 * x * x * x * x * x + x * x * x * x * 1.5 - x * x * 1.5 "
            "- 5 * x ** 3 - x ** 1 * 3 + 2 * x)\n}\ngrad f wrt x\n")
    o0, o2 = tl(text, opt_level=0), tl(text, opt_level=2)
    x = np.array([0.5, -1.0, 2.0, 1.25])
    np.testing.assert_allclose(o2.f_grad(x)[1], o0.f_grad(x)[1], rtol=1e-12)
    np.testing.assert_allclose(o2.f_grad_bwd(o2.f_grad_fwd(x)[1])[0], o0.f_grad(x)[1], rtol=1e-12)


def test_verifier_names_a_parameter_of_another_function():
    from tapeless.compiler.core.ir import Function, Module

    with graph_scope():
        x = B.param("x", TensorType(DType.F64, (3,)), 0)
        other = B.param("r5", TensorType(DType.F64, (3,)), 0)
        fn = Function("f", (x,), (B.apply("add", x, other),), None)
    with pytest.raises(VerifyError, match="reads parameter `r5` of another function") as e:
        verify(Module(SourceFile("t.tl", ""), (fn,)), after="test")
    assert "add(x, r5)" in str(e.value)  # the IR around it, printed


def test_verifier_reports_a_broken_node():
    from dataclasses import replace

    from tapeless.compiler.core.ir import Function, Module, make_node
    from tapeless.compiler.core.primitive import ops

    with graph_scope():
        x = B.param("x", TensorType(DType.F64, (3,)), 0)
        bad = make_node(ops.exp, (x,), (), TensorType(DType.F64, (4,)), None)  # wrong shape
        fn = Function("f", (x,), (bad,), None)
    with pytest.raises(VerifyError, match="has type f64\\[4\\] but its rule gives f64\\[3\\]"):
        verify(Module(SourceFile("t.tl", ""), (fn,)), after="test")
    del replace


@pytest.mark.parametrize("text, want", [
    ("x ** 2", ["mul(x, x)"]), ("x ** 3", ["mul(x, x)", "mul(%0, x)"]), ("x * 1", []), ("x + 0", []),
    ("-(-x)", []), ("2 * (3 * x)", ["mul(6.0:f64, x)"]), ("log(exp(x))", []), ("x / 4", ["mul(0.25:f64, x)"]),
    ("(-x) * (-x)", ["mul(x, x)"]), ("transpose(transpose(x))", []), ("x ** 0.5", ["sqrt(x)"]),
    ("x + ones(4)[1:] * 2", ["add(2.0:f64, x)"]),  # fold: a slice of a constant-filled array
    ("5 * x ** 3 + 2 * x ** 2 + 4 * x + 8",  # Horner: 6 ops instead of 8
     ["mul(5.0:f64, x)", "add(%0, 2.0:f64)", "mul(%1, x)", "add(%2, 4.0:f64)", "mul(%3, x)", "add(8.0:f64, %4)"]),
    ("3 * x ** 3 - 2 * x ** 2", ["mul(3.0:f64, x)", "sub(%0, 2.0:f64)", "mul(%1, x)", "mul(%2, x)"]),
    ("(2 * x - 1) * (3 * x - 2)",  # a factored form is kept: near its roots it is the accurate one
     ["mul(2.0:f64, x)", "sub(%0, 1.0:f64)", "mul(3.0:f64, x)", "sub(%2, 2.0:f64)", "mul(%1, %3)"]),
    ("x * x + 1 - x * x", ["mul(x, x)", "add(1.0:f64, %0)", "sub(%1, %0)"]),  # x^2 cancels: NaN at inf stays
    ("1 - x * x", ["mul(x, x)", "sub(1.0:f64, %0)"]),  # Horner would not be cheaper
])
def test_named_rules(text, want):
    """Each rewrite, seen in the optimized IR: the statements left, in order."""
    from tapeless.compiler.core.ir_text import format_function

    src = f"fn f(x: f64[3]) -> f64[3] {{ return {text} }}\n"
    module = optimize(ir_stage(SourceFile.from_text("t.tl", src)), 1)
    lines = format_function(module.functions[0], module.hints).splitlines()[1:-1]
    assert [line.split(" = ")[1].split("  #")[0].strip() for line in lines] == want
    assert len(SIMPLIFY.rules) >= 10 and simplify_node


@pytest.mark.parametrize("body, shape, threaded", [
    ("mean(bce_with_logits(x, 1 - x))", (1024, 256), False),  # as W3: blocks of 73 rows of 256, 19K elements
    ("sum(tanh(x))", (256, 8192), True),                       # blocks of 5 rows of 8192: 40K elements
])
def test_fused_loops_use_threads_only_for_big_blocks(tl, body, shape, threaded):
    """Threads pay only when each ufunc call in a block is big: on 16K-element calls handing
    the GIL from thread to thread costs more than the second core gives (measured on W3)."""
    m = tl(f"fn f(x: f32[{shape[0]}, {shape[1]}]) -> f32 {{ return {body} }}\ngrad f wrt x\n")
    plain = tl(f"fn f(x: f32[{shape[0]}, {shape[1]}]) -> f32 {{ return {body} }}\ngrad f wrt x\n", opt_level=0)
    submitted = []

    class Pool:
        def submit(self, fn, *args):
            submitted.append(args)
            return type("Done", (), {"result": staticmethod(lambda r=fn(*args): r)})()

    m._THREADS, m._POOL[:] = 2, [Pool()]
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    for got, want in zip(m.f_grad(x), plain.f_grad(x)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)
    assert bool(submitted) == threaded


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.name)
def test_fused_loops_in_many_blocks_and_threads_compute_the_same(path, tl):
    text = path.read_text()
    plain, fused = tl(text, path=path.name, opt_level=0), tl(text, path=path.name, opt_level=1)
    force_tiny_blocks(fused)
    for name, info in plain.__tapeless__.items():
        if info["kind"] in ("fwd", "bwd"):
            continue
        base = info.get("of", name) if info["kind"] != "fn" else name
        args = inputs_for(plain, base, text, seed=3)
        extra = []
        if info["kind"] == "vjp":
            outs = getattr(plain, info["of"])(*args)
            extra = [np.full(np.shape(o), 0.5) for o in (outs if isinstance(outs, tuple) else (outs,))]
        elif info["kind"] in ("jvp", "hvp"):
            names = plain.__tapeless__[info["of"]]["params"]
            extra = [np.full(np.shape(args[names.index(w)]), 0.25) for w in info["wrt"]]
        want = getattr(plain, name)(*args, *extra)
        got = getattr(fused, name)(*args, *extra)
        for w, g in zip(want if isinstance(want, tuple) else (want,), got if isinstance(got, tuple) else (got,)):
            tol = 1e-4 if np.asarray(w).dtype == np.float32 else 1e-10
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=tol, atol=tol, err_msg=name)


LENDING = """
fn layer(x: f32[N, 16], y: f32[N, 8], w: f32[16, 8], b: f32[8]) -> f32 {
    return mean(bce_with_logits(x @ w + b, y))
}
grad layer wrt w, b
fn late(x: f32[N, 16], y: f32[N, 8], w: f32[16, 8]) -> f32[N, 8] {
    a = x @ w
    return tanh(exp(y) * 2 + 1) * a
}
fn pick(x: f32[N, 8], y: f32[N, 8]) -> f32[N, 8] {
    return where(x > 0, exp(x) * 2, y)
}
"""


def test_fused_loop_values_live_in_rows_of_outputs_not_yet_written(tl):
    """Memory planning inside a block: a value may live in the rows of an output the loop
    writes later (W3: the sigmoid's mask, then the sigmoid, in the rows of d_z, which takes
    z's memory; with the members in lean_order.py's order, 5 -> 3 scratch buffers), never
    while those rows hold a value still to be read (late: the result takes the memory of `a`,
    read last), nor when the output is a select, which reads its inputs after writing (pick)."""
    from util import force_tiny_blocks

    fused, plain = tl(LENDING), tl(LENDING, opt_level=0)
    grad = inspect.getsource(fused.layer_grad)
    mask = re.search(r"np\.greater_equal\(\w+, 0, out=(\w+)\)", grad)
    assert mask and not re.fullmatch(r"b\d+", mask.group(1)), grad  # an output's rows, not scratch
    assert grad.count("np.empty((min(") == 3
    assert inspect.getsource(fused.late).count("np.empty((min(") == 1  # exp(y) ... in scratch
    pick = inspect.getsource(fused.pick)
    assert re.search(r"np\.multiply\(2, \w+, out=b\d+\)", pick), pick  # read by the select: scratch
    rng = np.random.default_rng(7)
    n = 37
    x, y = rng.standard_normal((n, 16)).astype(np.float32), rng.random((n, 8)).astype(np.float32)
    w, b = rng.standard_normal((16, 8)).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    x8 = rng.standard_normal((n, 8)).astype(np.float32)
    calls = [("layer_grad", (x, y, w, b)), ("late", (x, y, w)), ("pick", (x8, y))]
    for tiny in (False, True):
        if tiny:
            force_tiny_blocks(fused)
        for name, args in calls:
            want, got = getattr(plain, name)(*args), getattr(fused, name)(*args)
            for w_, g_ in zip(want if isinstance(want, tuple) else (want,), got if isinstance(got, tuple) else (got,)):
                np.testing.assert_allclose(g_, w_, rtol=1e-5, atol=1e-6, err_msg=name)


SELECTS = """
fn pick(x: f64[N, 8], w: f64[8, 8], v: f64[8, 8]) -> f64[N, 8] {
    a = x @ w
    b = x @ v
    return where(x > 0, a, b)
}
fn pick_zero(x: f64[N, 8], w: f64[8, 8]) -> f64[N, 8] {
    a = x @ w
    return where(x > 0, a, 0.0)
}
fn pick_same(x: f64[N, 8], w: f64[8, 8]) -> f64[N, 8] {
    a = x @ w
    return where(x > 0, a, -a)
}
"""


@pytest.mark.parametrize("name", ["pick", "pick_zero", "pick_same"])
def test_a_select_written_over_its_first_value_is_right(name, tl):
    """A where in a fused loop may take over the memory of the value it picks first (a
    temporary of the function), never of the one it reads after writing."""
    plain, fused = tl(SELECTS, opt_level=0), tl(SELECTS, opt_level=1)
    force_tiny_blocks(fused)
    rng = np.random.default_rng(1)
    x, w, v = rng.standard_normal((37, 8)), rng.standard_normal((8, 8)), rng.standard_normal((8, 8))
    args = (x, w, v) if name == "pick" else (x, w)
    src = inspect.getsource(getattr(fused, name))
    assert "its memory is free from here on" in src
    np.testing.assert_array_equal(getattr(fused, name)(*args), getattr(plain, name)(*args))


RELABELLED = """
fn owned(x: f64[N, 8], w: f64[8, 8]) -> f64[N, 8] {
    a = transpose(reshape(x @ w, [N, 4, 2]), [0, 2, 1])
    return reshape(exp(a) * 2.0, [N, 8]) @ w
}
fn shared(x: f64[N, 8], w: f64[8, 8]) -> f64[N, 8] {
    m = x @ w
    a = transpose(reshape(m, [N, 4, 2]), [0, 2, 1])
    return reshape(exp(a) * 2.0, [N, 8]) @ w + m
}
"""


def test_a_fused_loop_writes_over_a_reshaped_temporary_only_it_reads(tl):
    """A reshape or transpose of a temporary (a convolution's GEMM result as [N, O, H, W]) lends
    its memory to a fused loop's output when nothing else reads the temporary; not when
    something does (`shared` reads m after the loop)."""
    plain, fused = tl(RELABELLED, opt_level=0), tl(RELABELLED, opt_level=1)
    assert "t = a  # its memory is free from here on" in inspect.getsource(fused.owned)
    assert "its memory is free" not in inspect.getsource(fused.shared)
    force_tiny_blocks(fused)
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((37, 8)), rng.standard_normal((8, 8)) / 3
    for name in ("owned", "shared"):
        np.testing.assert_allclose(getattr(fused, name)(x, w), getattr(plain, name)(x, w), rtol=1e-13, err_msg=name)


ROW_CONSTANTS = """
fn f(x: f32[N, 128], y: f32[N, 8]) -> f32 {
    return sum(relu(x) + minimum(x, 0.5)) + sum(maximum(y, 0.0))
}
fn g(z: f64[N, 128]) -> f64 {
    return sum(maximum(z, 0.0))
}
grad f wrt x, y
grad g wrt z
"""


def test_a_scalar_given_to_a_slow_float32_ufunc_becomes_a_row(tl):
    """NumPy runs float32 maximum/minimum with a scalar operand 2-3x slower than with an array:
    in fused loops over rows of >= 64 elements the constant is a row made once per loop call
    (not for narrow rows, where broadcasting a short row costs more, nor for float64)."""
    fused, plain = tl(ROW_CONSTANTS), tl(ROW_CONSTANTS, opt_level=0)
    src = inspect.getsource(fused.f_grad)
    assert "zeros = np.full((1, 128), 0, dtype=np.float32)" in src
    assert "row = np.full((1, 128), 0.5, dtype=np.float32)" in src and "np.minimum(x_b, row," in src
    assert "np.full((1, 8)" not in src and "np.full(" not in inspect.getsource(fused.g_grad)
    force_tiny_blocks(fused)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((37, 128)).astype(np.float32)
    x[0, :4] = [np.nan, -np.inf, np.inf, -0.0]
    y, z = rng.standard_normal((37, 8)).astype(np.float32), rng.standard_normal((37, 128))
    for got, want in zip(fused.f_grad(x, y), plain.f_grad(x, y)):
        np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(fused.g_grad(z)[1], plain.g_grad(z)[1], rtol=1e-12)


SHORT_AXES = """
fn f(x: f32[N, 10], y: f64[M, 3, 7]) -> f32 {
    a = sum(max(x, axis=1) * sum(x, axis=-1, keepdims=true)[:, 0])
    b = sum(min(y, axis=2, keepdims=true)) + sum(prod(y, axis=-1))
    return a + f32(b) + mean(sum(exp(x), axis=1))
}
fn wide(x: f32[N, 17], z: f32[8, 10]) -> f32 {
    return sum(max(x, axis=1)) + sum(max(z, axis=1))
}
fn half(x: f16[N, 16]) -> f16[N] {
    return sum(x, axis=1)
}
grad f wrt x, y
"""


def test_reductions_over_a_short_last_axis_run_down_a_transposed_copy(tl):
    """A contiguous 10-element axis is reduced by NumPy row by row, 3-4x slower than copying
    the transpose and reducing down its columns; same values, any rank, keepdims or not. A
    row-wise sum read only by a sum of everything is summed at once (mean(cross_entropy))."""
    fused, plain = tl(SHORT_AXES), tl(SHORT_AXES, opt_level=0)
    src = inspect.getsource(plain.f)
    assert "np.max(x.T.copy(), axis=0)" in src and "np.sum(x.T.copy(), axis=0)[..., None]" in src
    assert "np.min(y.transpose(2, 0, 1).copy(), axis=0)[..., None]" in src
    assert ".copy()" not in inspect.getsource(plain.wide)  # 17 classes; 8 literal rows
    # float16: NumPy sums a contiguous axis in float32; down the rows every add would round
    h = np.ones((64, 16), np.float16)
    h[:, 0] = 2048
    assert ".copy()" not in inspect.getsource(plain.half) and (fused.half(h) == 2064).all()
    grad = inspect.getsource(fused.f_grad)
    assert re.search(r"np\.exp\(x_b\w*, out=(\w+)\).*\n\s+acc\w* \+= np\.add\.reduce\(\1, axis=None\)  #", grad)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((300, 10)).astype(np.float32)
    x[5, 3], x[6, :] = np.nan, -np.inf
    y = rng.standard_normal((70, 3, 7))
    force_tiny_blocks(fused)
    for got, want in zip(fused.f_grad(x, y), plain.f_grad(x, y)):
        np.testing.assert_allclose(got, want, rtol=2e-5)
    x[5, 3] = 0.5
    x64 = x.astype(np.float64)
    want = (np.sum(x64.max(1) * x64.sum(1)) + np.sum(y.min(2)) + np.sum(y.prod(2)) + np.exp(x64).sum(1).mean())
    np.testing.assert_allclose(plain.f(x, y), want, rtol=1e-5)
    np.testing.assert_allclose(fused.f(x, y), want, rtol=1e-5)


COLUMN_SUMS = """
fn f(x: f32[N, 96], w: f64[N, 5], h: f16[N, 64]) -> f32 {
    return sum(sum(tanh(x), axis=0) * 2.0) + f32(sum(sum(exp(w), axis=0))) + f32(sum(sum(h * h, axis=0)))
}
fn g(z: f32[N, 4, 32]) -> f32 {
    return sum(sum(tanh(z), axis=[0, 1]) * 3.0) + sum(sum(exp(z), axis=0) * z[0])
}
fn empty(z: f32[N, 4, K]) -> f32 {
    return sum(sum(tanh(z), axis=0) * 2.0) + sum(sum(exp(z), axis=[0, 1]))
}
grad f wrt x, w
grad g wrt z
grad empty wrt z
"""


def test_column_sums_of_a_block_are_a_matrix_vector_product(tl):
    """A sink summing a block down its rows (a bias gradient) is `ones @ block` for float32/64:
    same sums as the reduction, NaN and inf included, in any number of blocks and threads."""
    fused, plain = tl(COLUMN_SUMS), tl(COLUMN_SUMS, opt_level=0)
    src = inspect.getsource(fused.f)
    assert len(re.findall(r"ones\w* = np.ones\(min\(rows, hi - lo\), dtype=np.float(32|64)\)", src)) == 2
    assert len(re.findall(r"acc\w* \+= ones\w*\[:j - i\] @ b\d+  #", src)) == 2  # not the float16 one
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((300, 96)).astype(np.float32), rng.standard_normal((300, 5))
    h = (0.01 * rng.standard_normal((300, 64))).astype(np.float16)  # float16 sums are coarse: keep them small
    for force in (False, True):
        if force:
            force_tiny_blocks(fused)
        np.testing.assert_allclose(fused.f(x, w, h), plain.f(x, w, h), rtol=1e-5)
        x[7, 3] = np.nan
        assert np.isnan(fused.f(x, w, h)) and np.isnan(plain.f(x, w, h))
        x[7, 3], w[9, 1] = 0.5, np.inf
        assert fused.f(x, w, h) == plain.f(x, w, h) == np.inf
        w[9, 1] = 0.5
    src = inspect.getsource(fused.g)
    assert re.search(r"acc\w* \+= ones\w*\[:\(j - i\) \* 4\] @ b\d+\.reshape\(\(j - i\) \* 4, 32\)  #", src)
    assert re.search(r"acc\w* \+= \(ones\w*\[:j - i\] @ b\d+\.reshape\(j - i, 128\)\)\.reshape\(\(4, 32\)\)  #", src)
    z = rng.standard_normal((300, 4, 32)).astype(np.float32)
    for got, want in zip(fused.g_grad(z), plain.g_grad(z)):
        np.testing.assert_allclose(got, want, rtol=2e-5)
    for shape in ((300, 4, 0), (0, 4, 3), (1, 4, 3)):  # zero-sized kept axes: the rows are spelled out
        z = np.zeros(shape, np.float32)
        for got, want in zip(fused.empty_grad(z), plain.empty_grad(z)):
            assert np.shape(got) == np.shape(want)
            np.testing.assert_allclose(got, want, rtol=1e-6)


ZERO_SELECTS = """
fn keep(x: f32[N, 8], c: bool[N, 8]) -> f32[N, 8] { return where(c, exp(x) - 1.0, 0.0) * 2.0 }
fn drop(x: f32[N, 8], c: bool[N, 8]) -> f32[N, 8] { return where(x > 0.5, 0.0, x * 3.0) + where(c, 0.0, x) }
fn both(x: f64[N, 8], c: bool[N, 8]) -> f64[N, 8] { return where(c, exp(x), -x) * where(x < 0.0, x, 2.5) }
"""


def test_selects_are_exact_with_a_byte_mask(tl):
    """Selects in fused loops mask with c's bools negated as int8, widened by the bitwise ops
    (a & m, b & ~m, or b ^ ((a ^ b) & m)): bit for bit NumPy's where (NaN payloads, inf, -0.0),
    with c an input array or a comparison made in the loop."""
    m = tl(ZERO_SELECTS)
    force_tiny_blocks(m)
    src = inspect.getsource(m)
    assert ".view(np.int8), out=" in src and "dtype=np.int32" not in src
    rng = np.random.default_rng(7)
    x = rng.standard_normal((40, 8)).astype(np.float32)
    x[0, :4] = [np.inf, -np.inf, -0.0, np.nan]
    x[1, 0] = np.frombuffer(np.uint32(0x7FC01234).tobytes(), np.float32)[0]  # a NaN with a payload
    c = rng.random((40, 8)) < 0.5
    with np.errstate(all="ignore"):
        keep = np.where(c, np.exp(x) - np.float32(1), np.float32(0)) * np.float32(2)
        drop = np.where(x > 0.5, np.float32(0), x * np.float32(3)) + np.where(c, np.float32(0), x)
    np.testing.assert_array_equal(m.keep(x, c).view(np.int32), keep.view(np.int32))
    np.testing.assert_array_equal(m.drop(x, c).view(np.int32), drop.view(np.int32))
    # two non-zero branches: b ^ ((a ^ b) & m), the same byte mask, float64 bits
    x64 = x.astype(np.float64)
    x64[1, 0] = np.frombuffer(np.uint64(0x7FF8000000001234).tobytes(), np.float64)[0]
    with np.errstate(all="ignore"):
        both = np.where(c, np.exp(x64), -x64) * np.where(x64 < 0, x64, 2.5)
    assert "np.bitwise_xor(" in inspect.getsource(m.both) and "dtype=np.int64" not in inspect.getsource(m.both)
    np.testing.assert_array_equal(m.both(x64, c).view(np.int64), both.view(np.int64))


@pytest.mark.parametrize("text, want", [
    ("exp(x) * (1 / (x + 1))", ["exp(x)", "add(1.0:f64, x)", "div(%0, %1)"]),  # one division, not two ops
    ("s * (1 / x)", ["div(s, x)"]),
    ("x * (1 / s)", ["div(1.0:f64, s)", "mul(x, %0)"]),  # a scalar's reciprocal stays: made once, then multiplies
    ("-(s * x) * exp(x)", ["neg(s)", "mul(%0, x)", "exp(x)", "mul(%1, %2)"]),  # the sign into the scalar
    ("-(exp(x) / (1 + x) * s) * sign(x)",  # -sign(x) e / (1 + e) s of a softplus written by hand
     ["exp(x)", "add(1.0:f64, x)", "div(%0, %1)", "neg(s)", "mul(%2, %3)", "sign(x)", "mul(%4, %5)"]),
    ("-(s * x) * exp(x) + s * x",  # s x read twice: negated once, not made again negated
     ["mul(s, x)", "neg(%0)", "exp(x)", "mul(%1, %2)", "add(%3, %0)"]),
    ("x * -broadcast_to(reshape(s, [1]), [3])",  # the sign on one value, and x * [s] broadcasts it itself
     ["reshape(s) {shape=(1,)}", "neg(%0)", "mul(x, %1)"]),
])
def test_reciprocals_and_negations(text, want):
    """a * (1 / b) as a / b (b an array) and -(s a) as (-s) a (s a scalar), in the optimized IR."""
    from tapeless.compiler.core.ir_text import format_function

    src = f"fn f(x: f64[3], s: f64) -> f64[3] {{ return {text} }}\n"
    module = optimize(ir_stage(SourceFile.from_text("t.tl", src)), 1)
    lines = format_function(module.functions[0], module.hints).splitlines()[1:-1]
    got = [line.split(" = ")[1].split("  #")[0].strip() for line in lines]
    assert got == want, got


GELU_BLOCK = """
fn gelu_mlp(x: f32[N, 32], y: f32[N, 8], w1: f32[32, 64], w2: f32[64, 8]) -> f32 {
    z = x @ w1
    h = 0.5 * z * (1 + tanh(0.7978845608 * (z + 0.044715 * z ** 3)))
    return sum((h @ w2 - y) ** 2)
}
grad gelu_mlp wrt w1, w2
"""


def test_a_later_loop_makes_cheap_values_again_rather_than_the_forward_loop_storing_them(tl):
    """GELU's backward reads 0.5 z, 1 + t, 1 - t^2 and 3 z^2: the backward loop makes them
    again from z and t = tanh(...), so the forward loop stores t and h (z is the product's
    own array) instead of four arrays more (issue 18, W12: 30 -> 21 MiB)."""
    from util import force_tiny_blocks

    fused, plain = tl(GELU_BLOCK), tl(GELU_BLOCK, opt_level=0)
    grad = inspect.getsource(fused.gelu_mlp_grad)
    loops = grad.split("# a fused loop over blocks of rows")
    assert len(loops) == 4, grad  # forward, the residual's, backward
    assert loops[1].count("np.empty((N, 64)") == 2, loops[1]  # t and h
    assert "np.tanh" not in loops[3] and "np.multiply(0.5, z_b" in loops[3], loops[3]
    rng = np.random.default_rng(5)
    n = 45
    x, y = rng.standard_normal((n, 32)).astype(np.float32), rng.standard_normal((n, 8)).astype(np.float32)
    w1 = (rng.standard_normal((32, 64)) / 6).astype(np.float32)
    w2 = (rng.standard_normal((64, 8)) / 8).astype(np.float32)
    want = plain.gelu_mlp_grad(x, y, w1, w2)
    for tiny in (False, True):
        if tiny:
            force_tiny_blocks(fused)
        for got, w_ in zip(fused.gelu_mlp_grad(x, y, w1, w2), want):
            np.testing.assert_allclose(got, w_, rtol=2e-5, atol=1e-5)
        for got, w_ in zip(fused.gelu_mlp_grad_bwd(fused.gelu_mlp_grad_fwd(x, y, w1, w2)[1]), want[1:]):
            np.testing.assert_allclose(got, w_, rtol=2e-5, atol=1e-5)


VIEWED = """
fn viewed(a: f64[N, 8], w: f64[8, 8]) -> (f64[8, N], f64[N, 8]) {
    h = exp(a) * 2.0
    t = transpose(h)
    u = sin(a @ w) * 3.0
    v = u @ w
    return t, v
}
"""


def test_a_product_is_written_into_an_array_dead_by_then(tl):
    """W12's backward: dw2 = h.T @ do runs before dh = do @ w2.T, so dh is written over h (no
    fresh array: the hand version's trick, 21 -> 17.6 MiB). Never over an array a returned
    view still shows (`viewed`: t is h)."""
    from util import force_tiny_blocks

    fused, plain = tl(GELU_BLOCK), tl(GELU_BLOCK, opt_level=0)
    grad = inspect.getsource(fused.gelu_mlp_grad)
    dw2, dh = grad.index("d_w2 = h.T @"), grad.index("d_h = np.matmul(")
    assert dw2 < dh and "out=h)" in grad[dh:].split("\n")[0], grad
    rng = np.random.default_rng(8)
    n = 45
    x, y = rng.standard_normal((n, 32)).astype(np.float32), rng.standard_normal((n, 8)).astype(np.float32)
    w1 = (rng.standard_normal((32, 64)) / 6).astype(np.float32)
    w2 = (rng.standard_normal((64, 8)) / 8).astype(np.float32)
    for got, want in zip(fused.gelu_mlp_grad(x, y, w1, w2), plain.gelu_mlp_grad(x, y, w1, w2)):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-5)
    fused, plain = tl(VIEWED), tl(VIEWED, opt_level=0)
    assert "out=h)" not in inspect.getsource(fused.viewed)
    force_tiny_blocks(fused)
    a, w = rng.standard_normal((n, 8)), rng.standard_normal((8, 8)) / 3
    for got, want in zip(fused.viewed(a, w), plain.viewed(a, w)):
        np.testing.assert_allclose(got, want, rtol=1e-13)
