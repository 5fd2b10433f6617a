"""Calls of large fns stay calls (primitives/call.py): same values and derivatives as inlining,
IR that grows linearly with a chain of calls, and the call record's own rules."""
from __future__ import annotations

import re

import numpy as np
import pytest

from tapeless.compiler import compile_source
from tapeless.compiler import driver as driver_module
from tapeless.compiler.core.ir import topo_order
from tapeless.compiler.core.source import SourceFile
from tapeless.compiler.pipeline import ir_stage, parse_stage, typed_stage
from tapeless.compiler.primitives import call as call_module
from tapeless.compiler.tools.sympy_check import check_module
from tapeless.runtime import gradcheck


def _big(name: str, steps: int, params: str = "x: f64[N], w: f64[N]", out: str = "f64[N]") -> str:
    """A fn of about 3 * steps operations (more than the inline limit for steps >= 22)."""
    body = ["    a = x"] + [f"    a = tanh(a) * w + {0.25 + k % 5 * 0.125}" for k in range(steps)]
    return f"fn {name}({params}) -> {out} {{\n" + "\n".join(body) + "\n    return a\n}\n"


SOURCE = _big("g", 30) + """
fn f(x: f64[M], w: f64[M], s: f64) -> f64 {
    y = g(x * s, w) + g(x, w * 2.0)
    return sum(y * y) / 3.0
}
grad f wrt x, w, s
vjp f wrt w as f_vjp
jvp f wrt x, s as f_jvp
hvp f wrt w as f_hvp
"""


def _inputs(n=7, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=n) * 0.5, rng.uniform(0.5, 1.5, size=n), 0.75


def _module(tl, inline: bool, monkeypatch, source=SOURCE, **options):
    with monkeypatch.context() as patch:  # (undoes this patch only, not the test's others)
        if inline:
            patch.setattr(call_module, "CALL_INLINE_LIMIT", 10**9)
        return tl(source, **options)


def _same(a, b):
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    else:
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-14)


def test_a_large_callee_is_called_not_inlined(monkeypatch):
    called = compile_source(SOURCE, path="c.tl")
    body_f = called[called.index("\ndef f("):called.index("\ndef f_grad(")]
    assert re.search(r"\bg\(", body_f), "f should call g"
    monkeypatch.setattr(call_module, "CALL_INLINE_LIMIT", 10**9)
    inlined = compile_source(SOURCE, path="c.tl")
    body_f = inlined[inlined.index("\ndef f("):inlined.index("\ndef f_grad(")]
    assert not re.search(r"\bg\(", body_f)
    # the derivative functions differentiate one graph either way: the call is expanded there
    assert called[called.index("\ndef f_grad("):] == inlined[inlined.index("\ndef f_grad("):]


@pytest.mark.parametrize("level", [0, 1, 2])
def test_values_and_derivatives_equal_inlining(tl, monkeypatch, level):
    m_call = _module(tl, False, monkeypatch, opt_level=level)
    m_inl = _module(tl, True, monkeypatch, opt_level=level)
    x, w, s = _inputs()
    t = (np.linspace(-1, 1, 7), 0.5)
    _same(m_call.f(x, w, s), m_inl.f(x, w, s))
    _same(m_call.f_grad(x, w, s), m_inl.f_grad(x, w, s))
    _same(m_call.f_vjp(x, w, s, 1.5), m_inl.f_vjp(x, w, s, 1.5))
    _same(m_call.f_jvp(x, w, s, *t), m_inl.f_jvp(x, w, s, *t))
    _same(m_call.f_hvp(x, w, s, np.ones(7)), m_inl.f_hvp(x, w, s, np.ones(7)))
    _same(m_call.g(x, w), m_inl.g(x, w))
    assert gradcheck(m_call.f_grad, x, w, s)


def test_the_call_records_own_rules_give_the_same_derivatives(tl, monkeypatch):
    """With expansion turned off, grad/vjp/jvp/hvp go through the call record's VJP and JVP
    (the callee pulled back over fresh parameters, then the arguments substituted)."""
    x, w, s = _inputs(seed=1)
    expected = _module(tl, False, monkeypatch)
    monkeypatch.setattr(driver_module, "with_calls_expanded", lambda fn: fn)
    text = compile_source(SOURCE, path="r.tl")
    grad_body = text[text.index("\ndef f_grad("):text.index("\ndef f_grad_fwd(")]
    assert re.search(r"\bg\(", grad_body), "without expansion f_grad still calls g"
    ruled = tl(SOURCE)
    t = (np.linspace(-1, 1, 7), 0.5)
    _same(ruled.f_grad(x, w, s), expected.f_grad(x, w, s))
    _same(ruled.f_vjp(x, w, s, 1.5), expected.f_vjp(x, w, s, 1.5))
    _same(ruled.f_jvp(x, w, s, *t), expected.f_jvp(x, w, s, *t))
    _same(ruled.f_hvp(x, w, s, np.ones(7)), expected.f_hvp(x, w, s, np.ones(7)))


def test_sizes_literals_and_two_shapes(tl, monkeypatch):
    """One callee called at two sizes, with a literal argument and a broadcast one."""
    src = _big("g", 25, "x: f64[K], w: f64[K]", "f64[K]") + _big("h", 25, "x: f64[A, B], w: f64[B]", "f64[A, B]") + """
fn f(x: f64[M], z: f64[P], q: f64[P, M]) -> f64 {
    return sum(g(x, x + 1.0)) + sum(g(z, z)) + sum(h(q, x))
}
grad f wrt x, z, q
"""
    rng = np.random.default_rng(2)
    x, z, q = rng.normal(size=4), rng.normal(size=3), rng.normal(size=(3, 4))
    m_call = _module(tl, False, monkeypatch, source=src)
    m_inl = _module(tl, True, monkeypatch, source=src)
    _same(m_call.f(x, z, q), m_inl.f(x, z, q))
    _same(m_call.f_grad(x, z, q), m_inl.f_grad(x, z, q))


def test_the_sympy_check_reads_a_call_through_its_callee():
    src = _big("g", 24, "x: f64[N]", "f64[N]").replace("* w", "* x") + """
fn f(x: f64[N]) -> f64 {
    return sum(g(x) * x)
}
grad f wrt x
"""
    module = ir_stage(SourceFile.from_text("s.tl", src))
    f = module.function("f")
    assert any(n.op.body is not None for n in topo_order(f.outputs)), "f keeps its call in the IR"
    results = check_module(module, src, sizes={"N": 2})
    assert results and all(r.status == "pass" for r in results), [(r.function, r.status, r.detail) for r in results]


def test_a_chain_of_calls_makes_ir_linear_in_its_length():
    def nodes(n):
        lines = ["fn g0(x: f64[N], w: f64[N]) -> f64[N] {", "    return tanh(x) * w", "}"]
        for i in range(1, n):
            lines += [f"fn g{i}(x: f64[N], w: f64[N]) -> f64[N] {{", f"    return g{i - 1}(x, w) + x * {i % 5 + 1}",
                      "}"]
        lines += ["fn f(x: f64[N], w: f64[N]) -> f64 {", f"    return sum(g{n - 1}(x, w))", "}", "grad f wrt w"]
        program = typed_stage(parse_stage(SourceFile.from_text("c.tl", "\n".join(lines) + "\n")))
        return sum(len(topo_order(fn.outputs)) for fn in program.typed.functions)

    small, large = nodes(100), nodes(400)
    # inlining every call made 400 functions of up to 800 nodes (~160,000 in all): quadratic
    assert large < 4.5 * small and large < 60 * 400, (small, large)
