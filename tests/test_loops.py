"""Loops differentiated (issue 17, item 5): the programs of tests/cases/loops against PyTorch.

tests/reference/loop_refs.json was written by tests/reference/make_loop_refs.py (run by hand
with torch; see its docstring): the same loops in PyTorch eager, float64, at seeded inputs,
with values, gradients, JVPs and HVPs. Torch is not needed here. For every program:
* every derivative function, at -O0, -O1 and -O2, reproduces PyTorch's outputs (rtol 1e-10),
  and so does the `_fwd`/`_bwd` split of every grad and vjp;
* gradcheck (finite differences and the dot-product test) passes;
* the SymPy cross-check passes (it unrolls the loops at the `# size` annotations' sizes);
and for loops in general: a symbolic length is a Python `for`, not unrolled; `_fwd` lists the
stacked carries with their shapes; -O2 checkpoints the loop of a gradient; zero iterations
give the identity through the carries; an index out of range is a ValueError.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from util import compile_module

from tapeless.compiler import compile_source, pipeline
from tapeless.compiler.core.source import SourceFile
from tapeless.compiler.tools.sympy_check import check_module
from tapeless.runtime import gradcheck

HERE = Path(__file__).parent
LOOPS = HERE / "cases" / "loops"
REFS = json.loads((HERE / "reference" / "loop_refs.json").read_text())["programs"]
REGENERATE = "re-run `python tests/reference/make_loop_refs.py` (needs torch) and review the diff"
ENTRIES = [(p, name) for p, prog in REFS.items() for name in prog["derivatives"]]
_MODULES: dict = {}


def _module(file: str, opt: int, tmp_path_factory):
    key = (file, opt)
    if key not in _MODULES:
        _MODULES[key] = compile_module((LOOPS / file).read_text(), tmp_path_factory.mktemp("loops"),
                                       name=Path(file).stem, path=file, opt_level=opt)
    return _MODULES[key]


def _array(rec) -> np.ndarray:
    return np.asarray(rec["data"], dtype=np.float64).reshape(rec["shape"])


def _close(got, want, where: str) -> None:
    got = np.asarray(got)
    assert got.dtype == np.float64 and got.shape == want.shape, f"{where}: {got.dtype} {got.shape}, want {want.shape}"
    scale = float(np.max(np.abs(want))) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12 * max(scale, 1.0), err_msg=where)


def test_every_loop_program_is_recorded():
    recorded = {prog["file"] for prog in REFS.values()}
    assert recorded == {p.name for p in LOOPS.glob("*.tl")}, REGENERATE


@pytest.mark.parametrize("opt", [0, 1, 2])
@pytest.mark.parametrize("program, name", ENTRIES, ids=[f"{p}-{n}" for p, n in ENTRIES])
def test_against_pytorch(program, name, opt, tmp_path_factory):
    prog = REFS[program]
    entry = prog["derivatives"][name]
    m = _module(prog["file"], opt, tmp_path_factory)
    info = m.__tapeless__[name]
    assert (info["kind"], list(info["wrt"]), info["of"]) == (entry["kind"], entry["wrt"], prog["fn"]), REGENERATE
    args = [_array(a) for a in prog["inputs"]]  # fresh arrays per call (see test_zero_iterations_leave_arguments_alone)
    extra = [_array(e) for e in entry["extra"]]
    want = [_array(o) for o in entry["outputs"]]
    got = getattr(m, name)(*args, *extra)
    args = [_array(a) for a in prog["inputs"]]
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(want), f"{name}: {len(got)} outputs, PyTorch {len(want)}"
    for k, (g, w) in enumerate(zip(got, want)):
        _close(g, w, f"{program} {name} -O{opt} output {k}")
    value = getattr(m, prog["fn"])(*args)  # the function itself: PyTorch's value
    args = [_array(a) for a in prog["inputs"]]
    for k, v in enumerate(value if isinstance(value, tuple) else (value,)):
        _close(v, want[k], f"{program} {prog['fn']} -O{opt} output {k}")
    if entry["kind"] in ("grad", "vjp"):  # the split: _fwd, then _bwd from its residuals
        outs, residuals = getattr(m, f"{name}_fwd")(*args)
        grads = getattr(m, f"{name}_bwd")(residuals, *extra)
        grads = grads if isinstance(grads, tuple) else (grads,)
        n_out = len(want) - len(entry["wrt"])
        for k, (g, w) in enumerate(zip(outs if isinstance(outs, tuple) else (outs,), want[:n_out])):
            _close(g, w, f"{program} {name}_fwd -O{opt} output {k}")
        for wrt, g, w in zip(entry["wrt"], grads, want[n_out:]):
            _close(g, w, f"{program} {name}_bwd -O{opt} d/d{wrt}")


GRADCHECK = [pytest.param(p, n, id=f"{p}-{n}") for p, n in ENTRIES]


@pytest.mark.parametrize("program, name", GRADCHECK)
def test_gradcheck(program, name, tmp_path_factory):
    prog = REFS[program]
    m = _module(prog["file"], 1, tmp_path_factory)
    assert gradcheck(getattr(m, name), *[_array(a) for a in prog["inputs"]])


@pytest.mark.parametrize("path", sorted(LOOPS.glob("*.tl")), ids=lambda p: p.stem)
def test_sympy_check_unrolls_and_passes(path):
    text = path.read_text()
    results = check_module(pipeline.ir_stage(SourceFile.from_text(path.name, text)), text)
    assert results and all(r.status == "pass" for r in results), [(r.name, r.status, r.detail) for r in results]


# ---- the code: a Python for loop, the stacked residuals, -O2's checkpoints --------------------------------
def _source(m, name: str) -> str:
    import inspect

    return inspect.getsource(getattr(m, name))


def _loops(src: str, over: str = "range(0, T, 1)") -> list[str]:
    return [line.strip() for line in src.splitlines() if line.lstrip().startswith("for ") and over in line]


def test_a_symbolic_length_is_one_python_for_loop_not_unrolled(tmp_path_factory):
    m = _module("rnn.tl", 1, tmp_path_factory)
    fwd = _loops(_source(m, "rnn"))
    assert len(fwd) == 1 and fwd[0].endswith("# rnn.tl:8"), fwd  # the loop, with its source line
    assert "# rnn.tl:9" in _source(m, "_rnn_loop")  # the body's statement, with its line
    grad = _source(m, "rnn_grad")
    # the forward loop computes the carries and stacks them at once (merge_loops): one forward loop,
    # then one backward loop over the same range, reversed
    assert [("reversed(" in line) for line in _loops(grad)] == [False, True], _loops(grad)
    assert len(_loops(_source(m, "rnn_jvp"))) == 1  # one loop carrying values and tangents
    # the same module at other lengths: nothing was unrolled at a size
    prog = REFS["rnn"]
    x, h0, w, u = (_array(a) for a in prog["inputs"])
    for T in (1, 2, 9):
        xt = np.resize(x, (T, *x.shape[1:]))
        value, *grads = m.rnn_grad(xt, h0, w, u)
        assert grads[0].shape == xt.shape and np.isfinite(value)
        assert gradcheck(m.rnn_grad, xt, h0, w, u)


def test_hvp_runs_one_forward_and_one_backward_loop(tmp_path_factory):
    loops = _loops(_source(_module("rnn.tl", 1, tmp_path_factory), "rnn_hvp"))
    assert len(loops) == 2, loops


def _residuals(m, name: str) -> dict[str, str]:
    doc = getattr(m, name).__doc__
    block = doc.split("Residuals", 1)[1].split("\n\n", 1)[0]
    return dict(line.strip().split(": ", 1) for line in block.splitlines()[1:] if ": " in line)


def test_fwd_lists_the_stacked_carries_with_their_shapes(tmp_path_factory):
    """Only carries the backward reads are stacked, once each with a row more than the
    iterations (before and after every step): the RNN's h; the LSTM's h and c."""
    rnn = _residuals(_module("rnn.tl", 1, tmp_path_factory), "rnn_grad_fwd")
    assert list(rnn.values()).count("f64[T + 1, B, H]") == 1, rnn
    assert sorted(t for t in rnn.values() if t.startswith("f64[T")) == ["f64[T + 1, B, H]", "f64[T, B, D]"], rnn  # and x
    assert rnn["x"] == "f64[T, B, D]"  # a capture is passed as it is, not stacked (w's gradient: x^T (x @ w)-bar)
    lstm = _residuals(_module("lstm.tl", 1, tmp_path_factory), "lstm_grad_fwd")
    assert list(lstm.values()).count("f64[T + 1, B, H]") == 2, lstm
    euler = _residuals(_module("euler.tl", 1, tmp_path_factory), "euler_grad_fwd")
    assert list(euler.values()).count("f64[S + 1, N]") == 1, euler
    bwd = _source(_module("rnn.tl", 1, tmp_path_factory), "rnn_grad_bwd")
    assert "'f64[T + 1, B, H]'" in bwd  # _bwd checks the stack it is given


def test_o2_checkpoints_the_loop_of_a_gradient(tmp_path_factory):
    src = _source(_module("rnn.tl", 2, tmp_path_factory), "rnn_grad")
    assert "sqrt(n)" in src and "saved" in src  # carries kept every sqrt(n) iterations
    assert "sqrt(n)" not in _source(_module("rnn.tl", 1, tmp_path_factory), "rnn_grad")


RNN_WU = (LOOPS / "rnn.tl").read_text().split("grad rnn")[0] + "grad rnn wrt w, u\n"


def _peak_bytes(m, args) -> int:
    import tracemalloc

    m.rnn_grad(*args)  # warm: first-call allocations are not the loop's
    tracemalloc.start()
    try:
        m.rnn_grad(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _long_rnn():
    r = np.random.default_rng(0)
    T, B, D, H = 400, 16, 8, 16
    args = [r.standard_normal((T, B, D)), r.standard_normal((B, H)), 0.3 * r.standard_normal((D, H)),
            0.3 * r.standard_normal((H, H))]
    return args, (T + 1) * B * H * 8


def test_o1_gradient_holds_one_stack(tmp_path):
    """The stack of h once (not also a copy of it), beside the gradient of x @ w for every row
    ([T, B, H]): two arrays of T x B x H. x @ w itself (hoisted before the loop) is released
    after the forward loop, its last reader (it was a third)."""
    args, stack = _long_rnn()
    m = compile_module(RNN_WU, tmp_path, path="rnn.tl", opt_level=1)
    assert _peak_bytes(m, args) < 2.3 * stack


def test_o2_gradient_memory_is_about_sqrt_T_carries(tmp_path):
    args, stack = _long_rnn()
    m1 = compile_module(RNN_WU, tmp_path, path="rnn.tl", opt_level=1)
    m2 = compile_module(RNN_WU, tmp_path, path="rnn.tl", opt_level=2)
    for a, b in zip(m1.rnn_grad(*args), m2.rnn_grad(*args)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    # sqrt(400) = 20: segments of 20 steps, 20 saved carries; the stack of h is gone. x @ w for
    # every row (which the segments' forward runs read) and its gradient stay: values of the
    # inputs' size, not carries, one stack's size each
    T, B, _, H = *args[0].shape, args[1].shape[1]
    assert _peak_bytes(m2, args) < 2 * T * B * H * 8 + 0.3 * stack


# ---- zero iterations ------------------------------------------------------------------------------------
def test_zero_iterations_give_the_identity_through_the_carries(tmp_path_factory):
    m = _module("zero_trip.tl", 1, tmp_path_factory)
    x, w, h0 = np.array([0.5, -1.0, 2.0]), 0.6, np.array([1.0, -2.0, 0.25])
    value, d_x, d_w = m.empty_literal_grad(x.copy(), w)
    assert value == np.sum(x * x) and np.array_equal(d_x, 2 * x) and d_w == 0
    ct, dh = np.array([1.0, 2.0, -3.0]), np.array([0.5, 0.0, 1.0])
    x0 = np.zeros((0, 3))
    out, d_x, d_h0, d_w = m.empty_sized_vjp(x0.copy(), h0.copy(), w, ct)
    assert np.array_equal(out, 2 * h0) and np.array_equal(d_h0, 2 * ct) and d_x.shape == (0, 3) and d_w == 0
    out, tangent = m.empty_sized_jvp(x0.copy(), h0.copy(), w, x0.copy(), dh.copy(), 1.0)
    assert np.array_equal(out, 2 * h0) and np.array_equal(tangent, 2 * dh)
    # the RNN at T = 0: the loss of h0, its gradient for h0, zeros for the weights
    r = _module("rnn.tl", 1, tmp_path_factory)
    h0 = np.array([[0.5, -1.0], [2.0, 0.25]])
    value, d_x, d_h0, d_w, d_u = r.rnn_grad(np.zeros((0, 2, 3)), h0.copy(), np.ones((3, 2)), np.ones((2, 2)))
    assert value == np.mean(h0 * h0) and np.array_equal(d_h0, 2 * h0 / 4)
    assert d_x.shape == (0, 2, 3) and not d_w.any() and not d_u.any()


def test_zero_iterations_leave_arguments_alone(tmp_path):
    """A loop's result is its initial value at zero iterations: the loop copies an initial value
    that is not a fresh temporary, so nothing writes over (or returns) the caller's array."""
    src = (LOOPS / "zero_trip.tl").read_text() + (
        "fn ret(x: f64[T], h0: f64[N]) -> f64[N] {\n    h = h0\n    for t in range(T) {\n        h = h + x[t]\n"
        "    }\n    return h\n}\n")
    m = compile_module(src, tmp_path, path="zero_trip.tl")
    x0, h0 = np.zeros((0, 3)), np.array([1.0, -2.0, 0.25])
    calls = [("empty_literal_grad", (h0, 0.6)), ("empty_sized_vjp", (x0, h0, 0.6, np.ones(3))),
             ("empty_sized_jvp", (x0, h0, 0.6, x0, np.ones(3), 1.0)), ("ret", (np.zeros(0), h0))]
    moved = []
    for name, args in calls:
        given = [np.array(a, copy=True) for a in args]
        result = getattr(m, name)(*given)
        if any(not np.array_equal(g, a) for g, a in zip(given, args)):
            moved.append(f"{name} wrote over an argument")
        if any(np.shares_memory(r, g) for r in (result if isinstance(result, tuple) else (result,))
               for g in given if isinstance(g, np.ndarray)):
            moved.append(f"{name} returned an argument's memory")
    assert not moved, moved


# ---- an index out of range ------------------------------------------------------------------------------
OOB = """\
fn f(x: f64[T], w: f64) -> f64 {
    s = 0.0
    for t in range(T) {
        s = s * w + x[t + 1]
    }
    return s
}
grad f wrt x, w
jvp f wrt x, w
"""


def test_an_index_out_of_range_in_a_derivative_is_a_value_error_with_the_line(tmp_path):
    m = compile_module(OOB, tmp_path, path="oob.tl")
    x = np.ones(3)
    for call in (lambda: m.f(x, 0.5), lambda: m.f_grad(x, 0.5), lambda: m.f_grad_fwd(x, 0.5),
                 lambda: m.f_jvp(x, 0.5, x, 1.0)):
        with pytest.raises(ValueError, match=r"oob\.tl:4: index 3 is out of range for an axis of size 3"):
            call()
    ok = compile_module(OOB.replace("range(T)", "range(T - 1)"), tmp_path, path="oob.tl")
    assert gradcheck(ok.f_grad, np.array([0.5, -1.0, 2.0, 0.25]), 0.7)
    assert gradcheck(ok.f_jvp, np.array([0.5, -1.0, 2.0, 0.25]), 0.7)


def test_an_index_out_of_range_names_the_function(tmp_path):
    m = compile_module(OOB, tmp_path, path="oob.tl")
    x = np.ones(3)
    for name, call in (("f", lambda: m.f(x, 0.5)), ("f_grad", lambda: m.f_grad(x, 0.5)),
                       ("f_jvp", lambda: m.f_jvp(x, 0.5, x, 1.0))):
        with pytest.raises(ValueError, match=rf"\b(f|{name})\(\), oob\.tl:4"):
            call()


# ---- second order by composition -----------------------------------------------------------------------------
def test_vjp_of_a_grad_through_the_loop_is_pytorchs_hvp(tmp_path):
    """Reverse over reverse: the vjp of rnn_grad with cotangent (0, 0, 0, v_w, v_u) is H v."""
    src = (LOOPS / "rnn.tl").read_text() + "vjp rnn_grad wrt w, u as rnn_gg\n"
    m = compile_module(src, tmp_path, path="rnn.tl")
    prog, entry = REFS["rnn"], REFS["rnn"]["derivatives"]["rnn_hvp"]
    x, h0, w, u = (_array(a) for a in prog["inputs"])
    v_w, v_u = (_array(e) for e in entry["extra"])
    out = m.rnn_gg(x, h0, w, u, 0.0, np.zeros_like(x), np.zeros_like(h0), v_w, v_u)
    hv = [_array(o) for o in entry["outputs"]][3:]
    _close(out[-2], hv[0], "rnn_gg Hv for w")
    _close(out[-1], hv[1], "rnn_gg Hv for u")


def test_stop_gradient_inside_the_body_cuts_each_step(tmp_path):
    """Truncated backpropagation: with stop_gradient(h) in the body only the last step reaches
    the weights, so the gradient is that step's, computed here by hand."""
    src = (LOOPS / "rnn.tl").read_text().split("grad rnn")[0].replace("h @ u", "stop_gradient(h) @ u")
    m = compile_module(src + "grad rnn wrt w, u\n", tmp_path, path="rnn.tl")
    x, h0, w, u = (_array(a) for a in REFS["rnn"]["inputs"])
    hs = [h0]
    for t in range(x.shape[0]):
        hs.append(np.tanh(x[t] @ w + hs[-1] @ u))
    delta = 2 * hs[-1] / hs[-1].size * (1 - hs[-1] ** 2)
    value, d_w, d_u = m.rnn_grad(x, h0, w, u)
    _close(value, np.asarray(np.mean(hs[-1] ** 2)), "value")
    _close(d_w, x[-1].T @ delta, "d/dw")
    _close(d_u, hs[-2].T @ delta, "d/du")


def test_two_reads_of_one_array_in_a_step_update_two_slices_of_its_gradient(tmp_path):
    """x[t] and x[t - 1] in one step: their cotangents are two slice updates of one carried sum,
    written in place, never a whole array per iteration (which would cost T x size(x))."""
    src = ("fn f(x: f64[T, N], h0: f64[N]) -> f64 {\n    h = h0\n    for t in range(1, T) {\n"
           "        h = tanh(h + x[t] - x[t - 1])\n    }\n    return sum(h * h)\n}\ngrad f wrt x, h0\n")
    text = compile_source(src, path="two.tl")
    bwd = text[text.index("def _f_loop_bwd("):]
    bwd = bwd[:bwd.index("\ndef ")]
    assert "_updated(" not in bwd and bwd.count("d_x[") == 2, bwd
    m = compile_module(src, tmp_path, path="two.tl")
    rng = np.random.default_rng(3)
    x, h0 = rng.standard_normal((5, 3)), rng.standard_normal(3)

    def f(x, h0):
        h = h0
        for t in range(1, 5):
            h = np.tanh(h + x[t] - x[t - 1])
        return np.sum(h * h)

    _, gx, gh = m.f_grad(x, h0)
    eps = 1e-6
    for idx in [(0, 0), (2, 1), (4, 2)]:
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        assert abs(gx[idx] - (f(xp, h0) - f(xm, h0)) / (2 * eps)) < 1e-7
