"""Derivatives as typed data (core/derivative.py): every function a directive makes says what
it is and what each parameter and output holds; the generated module's `__tapeless__` table
carries the same record; the directive table and the grammar agree; and rules reach the
sweeps through their context (the seam a loop or scan primitive needs)."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from tapeless.compiler.autodiff.directives import DIRECTIVES
from tapeless.compiler.core.derivative import Part, Slot
from tapeless.compiler.core.primitive import REGISTRY
from tapeless.compiler.core.source import SourceFile
from tapeless.compiler.pipeline import ir_stage, optimize_stage
from tapeless.grammar import DIRECTIVE_WORDS

LAYER = """
fn layer(x: f32[N, 4], y: f32[N, 3], w: f32[4, 3], b: f32[3]) -> f32 {
    z = x @ w + b
    return mean(bce_with_logits(z, y))
}
grad layer wrt w, b
vjp layer wrt b as layer_vjp
jvp layer wrt w
"""


def _module(text=LAYER, level=None):
    module = ir_stage(SourceFile.from_text("t.tl", text))
    return optimize_stage(module, level) if level is not None else module


def test_the_directive_table_and_the_grammar_agree():
    """A new directive is a word in the grammar plus an entry in the table: neither alone."""
    assert tuple(DIRECTIVES) == DIRECTIVE_WORDS
    assert all(d.word == w for w, d in DIRECTIVES.items())


def test_each_part_says_what_it_is_and_holds():
    m = _module()
    main, fwd, bwd = (m.function(n) for n in ("layer_grad", "layer_grad_fwd", "layer_grad_bwd"))
    assert m.function("layer").derivative is None and m.function("layer").kind == "fn"
    assert (main.derivative.part, fwd.derivative.part, bwd.derivative.part) == (Part.WHOLE, Part.FWD, Part.BWD)
    assert main.kind == "grad" and fwd.kind == "fwd" and bwd.kind == "bwd"
    for f in (main, fwd, bwd):
        d = f.derivative
        assert (d.directive, d.of, d.wrt, d.pair) == ("grad", "layer", ("w", "b"), ("layer_grad_fwd", "layer_grad_bwd"))
        assert len(d.params) == len(f.params) and len(d.outputs) == len(f.outputs)
    assert [(p.slot, p.name) for p in main.derivative.outputs] == [
        (Slot.PRIMAL, "value"), (Slot.GRADIENT, "w"), (Slot.GRADIENT, "b")]
    assert [p.slot for p in bwd.derivative.params][-1] is Slot.SEED and bwd.derivative.has_seed
    # what _fwd saves is what _bwd takes, in order
    assert fwd.derivative.residual_names == tuple(p.name for p in bwd.derivative.params[:bwd.derivative.n_residuals])
    assert m.pair(main) == (fwd, bwd) == m.pair(bwd)
    vjp = m.function("layer_vjp")
    assert [p.slot for p in vjp.derivative.params][-1] is Slot.COTANGENT and m.pair(vjp) is not None
    jvp = m.function("layer_jvp")
    assert m.pair(jvp) is None
    assert [p.slot for p in jvp.derivative.params] == [Slot.PRIMAL] * 4 + [Slot.TANGENT]
    assert [p.slot for p in jvp.derivative.outputs] == [Slot.PRIMAL, Slot.OUTPUT_TANGENT]


def test_fewer_residuals_keeps_the_records_in_step():
    """-O2 drops residuals _bwd can recompute: the records of both halves follow."""
    text = "fn f(x: f64[N], w: f64[N]) -> f64 {\n    a = x * w\n    return sum(a * a * a)\n}\ngrad f wrt w\n"
    o1, o2 = _module(text, 1), _module(text, 2)
    n1 = o1.function("f_grad_bwd").derivative.n_residuals
    fwd, bwd = o2.pair(o2.function("f_grad"))
    assert bwd.derivative.n_residuals < n1, "the -O2 pass had nothing to drop: pick another program"
    assert fwd.derivative.residual_names == tuple(p.name for p in bwd.derivative.params[:bwd.derivative.n_residuals])
    assert len(fwd.outputs) == len(fwd.derivative.outputs) and len(bwd.params) == len(bwd.derivative.params)


def test_the_generated_table_carries_the_record(tl):
    m = tl(LAYER)
    info = m.__tapeless__
    assert info["layer_grad"]["directive"] == "grad" and info["layer_grad"]["part"] == "whole"
    assert info["layer_grad"]["outputs"] == (("primal", "value"), ("gradient", "w"), ("gradient", "b"))
    assert info["layer_grad_bwd"]["inputs"][-1] == ("seed", "seed")
    assert info["layer_grad_fwd"]["pair"] == ("layer_grad_fwd", "layer_grad_bwd")
    assert info["layer_jvp"]["inputs"][-1] == ("tangent", "t_w") and "pair" not in info["layer_jvp"]
    assert "directive" not in info["layer"]
    # the table's residual names are what _fwd returns: call it and count
    x, y = np.ones((5, 4), np.float32), np.zeros((5, 3), np.float32)
    w, b = np.full((4, 3), 0.1, np.float32), np.zeros(3, np.float32)
    _, residuals = m.layer_grad_fwd(x, y, w, b)
    saved = [name for slot, name in info["layer_grad_fwd"]["outputs"] if slot in ("residual", "size")]
    assert len(residuals) == len(saved) == info["layer_grad_bwd"]["n_residuals"]


def test_gradcheck_reads_the_record(tl):
    from tapeless.runtime import GradcheckError, gradcheck

    m = tl(LAYER)
    rng = np.random.default_rng(0)
    args = (rng.standard_normal((5, 4)), rng.random((5, 3)), rng.standard_normal((4, 3)), rng.standard_normal(3))
    args = tuple(a.astype(np.float32) for a in args)
    assert gradcheck(m.layer_grad, *args) and gradcheck(m.layer_jvp, *args)
    with pytest.raises(TypeError, match="layer_grad_fwd is a fwd function"):
        gradcheck(m.layer_grad_fwd, *args)
    old = dict(m.__tapeless__["layer_grad"])
    del old["directive"]
    m.__tapeless__["layer_grad"] = old  # as a module from before the records
    with pytest.raises(TypeError, match="recompile it"):
        gradcheck(m.layer_grad, *args)
    assert GradcheckError


MIXED = """
fn f(x: f32[N], w: f64[N]) -> f64 {
    return sum(f64(x * x) * w * w)
}
grad f wrt w
fn g(x: f64[N]) -> f64 {
    return sum(f64(f32(x) * f32(x)) * x)
}
grad g wrt x
jvp g wrt x
fn h(x: f64[N]) -> f64 {
    return sum(x * x * x)
}
grad h wrt x
"""


def test_gradcheck_takes_its_tolerance_from_the_lowest_precision_on_the_path(tl):
    """An f64 gradient computed from f32 values (an f32 argument, or an f32 value inside) is as
    exact as f32: gradcheck used to hold it to f64's 1e-9 against the f64 build and fail it."""
    import functools

    from tapeless.runtime import GradcheckError, gradcheck

    m = tl(MIXED)
    table = m.__tapeless__
    assert [table[name]["lowest_float"] for name in ("f", "f_grad", "g", "g_grad", "g_jvp", "h_grad")] == \
        ["f32", "f32", "f32", "f32", "f32", "f64"]
    rng = np.random.default_rng(0)
    x32, w, x = rng.standard_normal(5).astype(np.float32), rng.standard_normal(5), rng.standard_normal(5)
    assert gradcheck(m.f_grad, x32, w) and gradcheck(m.g_grad, x) and gradcheck(m.g_jvp, x)

    def off(fn, factor):  # the same function with its gradient off by `factor`
        @functools.wraps(fn)
        def wrong(*args, **kw):
            value, grad = fn(*args, **kw)
            return value, grad * factor
        return wrong

    # still exact enough to fail a wrong gradient: 1% off in f32, 1e-7 off in f64
    with pytest.raises(GradcheckError, match=r"d/dw\[\d\] in float64 .* from the lowest precision on the path, f32"):
        gradcheck(off(m.f_grad, 1.01), x32, w)
    assert gradcheck(off(m.h_grad, 1 + 1e-12), x)
    with pytest.raises(GradcheckError, match=r"d/dx\[\d\] in float64 .*tolerance 1e-09.* on the path, f64"):
        gradcheck(off(m.h_grad, 1 + 1e-7), x)


# ---- the rule context: a primitive differentiates a sub-function through ctx -----------------------
def test_a_rule_pulls_back_and_pushes_forward_a_sub_function(monkeypatch):
    """A primitive that carries a function (as a loop or scan will) differentiates it with
    ctx.pullback / ctx.pushforward: the context reaches rules, and the sweeps compose."""
    from tapeless.compiler.autodiff.context import rule_context
    from tapeless.compiler.core.ir import Function, graph_scope
    from tapeless.compiler.core.nodes import apply, param
    from tapeless.compiler.core.primitive import Primitive
    from tapeless.compiler.core.substitute import inline
    from tapeless.compiler.core.types import DType, TensorType
    from tapeless.compiler.tools.sympy_check import evaluate

    t = TensorType(DType.F64, (3,))
    with graph_scope():
        x0 = param("x", t, 0)
        body = Function("body", (x0,), (apply("mul", apply("sin", x0), x0),), None)  # x sin x

        def body_at(node):
            return inline(body, [node.inputs[0]], {})[0]

        def vjp(ctx, node, ct, needs):
            return ctx.pullback([body_at(node)], [ct], [node.inputs[0]])

        def jvp(ctx, node, ts):
            return ctx.pushforward([body_at(node)], [node.inputs[0]], ts)[0]

        call = Primitive("call_body", "misc", lambda types, attrs: types[0], vjp=vjp, jvp=jvp,
                         sympy=lambda ctx, args, node: evaluate(body.outputs, {x0.id: args[0]}, ctx.sizes)[0])
        monkeypatch.setitem(REGISTRY, "call_body", call)
        x = param("x", t, 0)
        y = apply("call_body", x)
        ct = param("ct", t, 1)
        ctx = rule_context()
        (grad,) = ctx.pullback([y], [ct], [x])
        (tangent,) = ctx.pushforward([y], [x], [ct])
    import sympy

    xs = np.array([sympy.Symbol(f"x{i}", real=True) for i in range(3)], dtype=object)
    cs = np.array([sympy.Symbol(f"c{i}", real=True) for i in range(3)], dtype=object)
    for got in (grad, tangent):
        (value,) = evaluate([got], {x.id: xs, ct.id: cs}, {})
        for v, xi, ci in zip(value, xs, cs):
            assert sympy.simplify(v - ci * (sympy.sin(xi) + xi * sympy.cos(xi))) == 0


# ---- the rewrite mechanism's log ----------------------------------------------------------------
def test_every_rule_firing_can_be_logged_by_name():
    from tapeless.compiler.core.rewrite import firings
    from tapeless.compiler.primitives.simplification import SIMPLIFY

    text = "fn f(x: f64[3]) -> f64[3] {\n    return log(exp(x)) * 1\n}\n"
    with firings() as fired:
        _module(text, 1)
    assert ("simplify", "log(exp(x)) = x") in fired
    assert ("simplify", "x * 1 = x and 1 * x = x") in fired
    with firings() as fired, SIMPLIFY.without("log(exp(x)) = x"):
        _module(text, 1)
    assert ("simplify", "log(exp(x)) = x") not in fired
    env = dict(os.environ, TAPELESS_REWRITE_LOG="1")
    r = subprocess.run([sys.executable, "-c", "import sys; from tapeless.compiler import compile_source; "
                        f"compile_source({text!r}, path='m.tl')"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "rewrite simplify: log(exp(x)) = x at m.tl:2:" in r.stderr, r.stderr


def test_a_rule_set_refuses_two_rules_of_one_name():
    from tapeless.compiler.core.rewrite import Op, Rule, RuleSet

    rules = RuleSet("t")
    rules.add(Rule("same", Op("exp"), lambda m: None))
    with pytest.raises(ValueError, match="two rules named 'same'"):
        rules.add(Rule("same", Op("log"), lambda m: None))
    with pytest.raises(KeyError):
        with rules.without("other"):
            pass
    assert dataclasses.is_dataclass(rules)


def test_a_question_offers_a_node_only_to_the_rules_that_answer_it():
    """The loop writer asks its peepholes several questions per node; a rule naming one is
    never offered the others (nor fired), a rule naming none answers every question, and
    `first` without a question offers every rule."""
    from tapeless.compiler.core.ir import graph_scope
    from tapeless.compiler.core.nodes import param
    from tapeless.compiler.core.rewrite import Op, Rule, RuleSet
    from tapeless.compiler.core.types import DType, TensorType
    from tapeless.compiler.primitives import algebra as B

    offered = []
    rules = RuleSet("t")
    for name, question in (("a", "member"), ("b", "emit"), ("c", None)):
        rules.add(Rule(name, Op("exp"), lambda m, name=name: offered.append(name), question))
    with graph_scope():
        node = B.apply("exp", param("x", TensorType(DType.F64, (2,)), 0))
    for question, want in (("member", ["a", "c"]), ("emit", ["b", "c"]), (None, ["a", "b", "c"])):
        offered.clear()
        assert rules.first(node, question=question) is None
        assert offered == want
