"""Loops in the front end (docs/language.md, "Loops"): the syntax both parsers accept, the AST,
which names a loop carries, weak initial values, dynamic indices and `ys[t] = ...`, checked by
running the compiled module against the same loop written in NumPy. (Derivatives and the
emitted loop code are tested with the IR side, primitives/loops.py.)"""
from __future__ import annotations

import numpy as np
import pytest
from util import compile_module, diagnostics

from tapeless.compiler.core.diagnostics import Sink
from tapeless.compiler.core.source import SourceFile
from tapeless.compiler.frontend import parse as P
from tapeless.compiler.frontend import quick
from tapeless.compiler.frontend import syntax as ast

RNN = """\
fn rnn(x: f32[T, B, D], h0: f32[B, H], w: f32[D, H], u: f32[H, H]) -> (f32, f32[T, B, H]) {
    h = h0
    ys = zeros([T, B, H])
    for t in range(T) {
        h = tanh(x[t] @ w + h @ u)
        ys[t] = h
    }
    return mean(h * h), ys
}
"""


def _parse(text: str) -> ast.Module:
    sink = Sink()
    m = P.parse(SourceFile.from_text("t.tl", text), sink)
    assert not sink.items, sink.items
    return m


def _rng_arrays(*shapes, dtype="f4", seed=0):
    r = np.random.default_rng(seed)
    return [r.standard_normal(s).astype(dtype) for s in shapes]


# ---- syntax ---------------------------------------------------------------------------------------
def test_for_loop_parses_to_its_ast():
    (fn,) = _parse(RNN).items
    loop = fn.body[2]
    assert isinstance(loop, ast.For) and loop.var.name == "t"
    assert isinstance(loop.iter, ast.Call) and loop.iter.func.name == "range"
    assert [type(s) for s in loop.body] == [ast.Assign, ast.IndexAssign]
    store = loop.body[1]
    assert store.target.name == "ys" and [ast.format_expr(i) for i in store.items] == ["t"]
    assert (loop.span.line, loop.span.end_line) == (4, 7)


def test_loop_blocks_take_separators_as_a_fn_body_does():
    one_line = "fn f(x: f32[N]) -> f32[N] {\n    for t in range(3) { x = x * 2; x = x + 1 }; y = x\n    return y\n}\n"
    spread = ("fn f(x: f32[N]) -> f32[N] {\n    for t in range(3) {\n\n        x = x * 2\n        x = x + 1\n\n"
              "    }\n\n    y = x\n    return y\n}\n")
    a, b = (_parse(t).items[0] for t in (one_line, spread))
    assert ast.format_expr(a.body[0].body[1].value) == ast.format_expr(b.body[0].body[1].value) == "x + 1"
    assert len(a.body) == len(b.body) == 3


def test_parsed_stage_prints_nested_loops():
    text = ("fn f(x: f32[T, N]) -> f32 {\n    s = 0.0\n    for t in range(T) {\n        for k in range(N - 1, -1, -1) {\n"
            "            s = s + x[t, k]\n        }\n    }\n    return s\n}\n")
    out = ast.format_module(_parse(text))
    assert "    for t in range(T) {  # line 3\n        for k in range(N - 1, -1, -1) {  # line 4\n" \
           "            s = s + x[t, k]  # line 5\n        }\n    }\n" in out


@pytest.mark.parametrize("text", [
    RNN,
    "fn f(x: f32[N]) -> f32[N] {\n  for t in range(1, N, 2) { x[t] = 0.0 }\n  return x\n}",
    "fn f(x: f32[N]) -> f32[N] {\n  for t in range(3) {\n  }\n  return x\n}",
    "fn f(x: f32[N]) -> f32[N] {\n  for t in range(3) {\n    x = x\n  return x\n}",  # unclosed
    "fn f(x: f32[N]) -> f32[N] {\n  for t range(3) { x = x }\n  return x\n}",  # no `in`
    "fn f(x: f32[N]) -> f32[N] {\n  for t in range(3) x = x\n  return x\n}",  # no block
    "fn f(x: f32[N]) -> f32[N] {\n  x[0, :] = 1\n  return x\n}",
])
def test_quick_parse_agrees_with_lark_on_loops(text):
    source = SourceFile.from_text("t.tl", text)
    try:
        quick.parse_items(source, text, 0, P._parser(), P._lexer())
        by_quick = True
    except quick.Reject:
        by_quick = False
    try:
        P._syntax_check(source, text, 0)
        by_lark = True
    except Exception:
        by_lark = False
    assert by_quick == by_lark


def test_loop_words_are_keywords():
    from tapeless.grammar import KEYWORDS

    assert {"for", "in", "while", "break"} <= KEYWORDS
    assert "`in` is a keyword and cannot be used as a name" in diagnostics(
        "fn f(in: f32) -> f32 {\n    return in\n}\n")


# ---- lowering: values against the loop in NumPy -------------------------------------------------
def test_rnn_collects_every_step(tmp_path):
    m = compile_module(RNN, tmp_path)
    T, B, D, H = 5, 3, 4, 2
    x, h0, w, u = _rng_arrays((T, B, D), (B, H), (D, H), (H, H))
    h, ys = h0, np.zeros((T, B, H), "f4")
    for t in range(T):
        h = np.tanh(x[t] @ w + h @ u)
        ys[t] = h
    got_loss, got_ys = m.rnn(x, h0, w, u)
    np.testing.assert_allclose(got_ys, ys, rtol=1e-5)
    np.testing.assert_allclose(got_loss, np.mean(h * h), rtol=1e-5)
    assert got_ys.dtype == np.float32  # zeros([...]) is weak: it takes h's dtype


def test_zero_iterations_leave_the_carries_as_they_were(tmp_path):
    m = compile_module(RNN, tmp_path)
    x, h0, w, u = _rng_arrays((0, 3, 4), (3, 2), (4, 2), (2, 2))
    loss, ys = m.rnn(x, h0, w, u)
    assert ys.shape == (0, 3, 2)
    np.testing.assert_allclose(loss, np.mean(h0 * h0), rtol=1e-6)


def test_weak_initial_value_takes_the_dtype_of_the_first_iteration(tmp_path):
    src = ("fn f(x: f32[T]) -> f32 {\n    s = 0.0\n    for t in range(T) {\n        s = s + x[t] * x[t]\n    }\n"
           "    return s\n}\n"
           "fn g(x: f32[T]) -> f64 {\n    s = f64(0.0)\n    for t in range(T) {\n        s = s + x[t]\n    }\n"
           "    return s\n}\n")
    m = compile_module(src, tmp_path)
    (x,) = _rng_arrays((6,))
    assert m.f(x).dtype == np.float32  # as in Python: 0.0 + an f32 value is f32
    np.testing.assert_allclose(m.f(x), np.sum(x * x), rtol=1e-5)
    assert m.g(x).dtype == np.float64  # a strong f64 initial value stays f64


def test_countdown_and_offsets(tmp_path):
    src = ("fn rev(x: f32[N]) -> f32[N] {\n    ys = zeros([N])\n    for t in range(N - 1, -1, -1) {\n"
           "        ys[N - 1 - t] = x[t]\n    }\n    return ys\n}\n"
           "fn diff(x: f32[N]) -> f32[N] {\n    d = x * 0\n    for t in range(1, N) {\n        d[t] = x[t] - x[t - 1]\n"
           "    }\n    return d\n}\n"
           "fn evens(x: f32[N]) -> f32 {\n    s = 0.0\n    for t in range(0, N, 2) {\n        s = s + x[t]\n    }\n"
           "    return s\n}\n")
    m = compile_module(src, tmp_path)
    (x,) = _rng_arrays((7,))
    np.testing.assert_allclose(m.rev(x), x[::-1])
    np.testing.assert_allclose(m.diff(x), np.concatenate([[0], np.diff(x)]), rtol=1e-6)
    np.testing.assert_allclose(m.evens(x), x[::2].sum(), rtol=1e-6)


def test_dynamic_index_on_inner_axes_after_static_items(tmp_path):
    src = ("fn f(x: f32[B, T, C], y: f32[B, T]) -> (f32[T, B], f32[B, T]) {\n"
           "    a = zeros([T, B])\n    c = y * 0\n    for t in range(T) {\n"
           "        a[t] = x[:, t, 1] + x[::-1, t, 2]\n        c[:, t] = y[:, t] * 2\n    }\n    return a, c\n}\n")
    m = compile_module(src, tmp_path)
    x, y = _rng_arrays((3, 4, 5), (3, 4))
    a, c = m.f(x, y)
    np.testing.assert_allclose(a, (x[:, :, 1] + x[::-1, :, 2]).T, rtol=1e-6)
    np.testing.assert_allclose(c, y * 2, rtol=1e-6)


def test_nested_loops_carry_through_both(tmp_path):
    src = ("fn f(a: f32[N, M]) {\n    s = 0.0\n    out = zeros([N, M])\n    for i in range(N) {\n"
           "        row = 0.0\n        for j in range(M) {\n            row = row + a[i, j] * 2\n"
           "            out[i, j] = row\n        }\n        s = s + row\n    }\n    return s, out\n}\n")
    m = compile_module(src, tmp_path)
    (a,) = _rng_arrays((3, 4))
    s, out = m.f(a)
    want = np.cumsum(a * 2, axis=1)
    np.testing.assert_allclose(out, want, rtol=1e-5)
    np.testing.assert_allclose(s, want[:, -1].sum(), rtol=1e-5)


def test_names_bound_in_the_body_stay_in_the_body(tmp_path):
    src = ("fn f(x: f32[T]) -> f32 {\n    s = 0.0\n    y = 10.0\n    for t in range(T) {\n        z = x[t] * 2\n"
           "        s = s + z + y\n    }\n    return s\n}\n")
    m = compile_module(src, tmp_path)
    (x,) = _rng_arrays((4,))
    np.testing.assert_allclose(m.f(x), np.sum(x * 2 + 10), rtol=1e-5)
    assert "local to one iteration" in diagnostics(src.replace("return s", "return s + z"))


def test_a_loop_index_out_of_range_is_a_value_error(tmp_path):
    src = "fn f(x: f32[T]) -> f32 {\n    s = 0.0\n    for t in range(T) {\n        s = s + x[t + 1]\n    }\n    return s\n}\n"
    m = compile_module(src, tmp_path)
    with pytest.raises(ValueError, match="t.tl:4|m.tl:4"):
        m.f(np.ones(3, "float32"))


def test_a_loop_that_assigns_nothing_carried_is_dropped_quietly(tmp_path):
    src = "fn f(x: f32[T]) -> f32 {\n    for t in range(T) {\n        y = x[t]\n    }\n    return sum(x)\n}\n"
    m = compile_module(src, tmp_path)
    np.testing.assert_allclose(m.f(np.arange(3, dtype="f4")), 3.0)


def test_the_loop_variable_as_a_value(tmp_path):
    """t is weak, as a Python int is: x[t] * t of an f32 x stays f32, and f32(t) casts it."""
    src = ("fn f(x: f32[T]) -> f32[T] {\n    for t in range(T) {\n        x[t] = f32(t) + x[t] * t\n    }\n"
           "    return x\n}\n")
    m = compile_module(src, tmp_path)
    np.testing.assert_allclose(m.f(np.ones(3, "float32")), [0, 2, 4])


def test_the_docs_list_the_keywords():
    import re
    from pathlib import Path

    from tapeless.grammar import KEYWORDS

    text = (Path(__file__).resolve().parent.parent / "docs" / "language.md").read_text()
    listed = re.search(r"except the keywords\s+`([^`]*)`", text)[1].split()
    assert sorted(listed) == sorted(KEYWORDS)


def test_weak_carries_through_nested_loops_take_the_inner_dtype(tmp_path):
    """The first iteration's dtype is found through every level, in time linear in the depth
    (each loop's quiet first pass runs the loops inside it once, not twice per level)."""
    depth = 12
    opens = "".join(f"{'    ' * (k + 1)}for i{k} in range(2) {{\n" for k in range(depth))
    closes = "".join(f"{'    ' * (k + 1)}}}\n" for k in reversed(range(depth)))
    src = (f"fn f(x: f32[N]) -> f32 {{\n    s = 0.0\n{opens}{'    ' * (depth + 1)}s = s + x[0]\n{closes}"
           "    return s\n}\n")
    m = compile_module(src, tmp_path)
    got = m.f(np.ones(3, "float32"))
    assert got.dtype == np.float32 and got == 2 ** depth


def test_a_gradient_through_a_loop_of_step_2_that_must_save_values_is_a_located_error():
    """range(0, N, 2) runs N / 2 times: not a size, so its saved values have no shape yet. The
    error (at differentiation, after the typed stage) points at the loop."""
    from tapeless.compiler import CompileError, compile_source

    src = ("fn f(x: f64[N]) -> f64 {\n    s = 0.0\n    for t in range(0, N, 2) {\n        s = sin(s) + x[t]\n    }\n"
           "    return s\n}\ngrad f wrt x\n")
    with pytest.raises(CompileError) as err:
        compile_source(src, path="step.tl")
    assert "step.tl:3:5: error: a loop over range(0, N, 2) that must be differentiated" in str(err.value)


def test_a_loop_of_step_2_that_saves_nothing_differentiates(tmp_path):
    src = ("fn f(x: f64[N]) -> f64 {\n    s = 0.0\n    for t in range(0, N, 2) {\n        s = s + x[t] * x[t]\n    }\n"
           "    return s\n}\ngrad f wrt x\n")
    m = compile_module(src, tmp_path)
    value, grad = m.f_grad(np.arange(5.0))
    assert value == 20.0
    np.testing.assert_array_equal(grad, [0, 0, 4, 0, 8])
