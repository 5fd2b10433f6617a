"""Large programs: what a generated or unrolled .tl file is made of must not hit a limit the
user did not write (benchmarks/compile_scale.py measures how compile time grows)."""
from __future__ import annotations

import numpy as np
import pytest

from tapeless.compiler import pipeline
from tapeless.compiler.core.diagnostics import CompileError
from tapeless.compiler.core.source import SourceFile
from tapeless.compiler.frontend import lower
from tapeless.compiler.tools.cli import main


def test_a_flat_sum_of_six_thousand_terms_is_not_deep_nesting():
    """A left-associative chain is a tree as deep as it is long: parsing and lowering walk it
    in loops (before, 5,000 terms were reported as nesting too deep, at 1:1)."""
    text = "fn f(x: f64) -> f64 {\n    return " + " + ".join(["x"] * 6000) + "\n}\n"
    program = pipeline.typed_stage(pipeline.parse_stage(SourceFile.from_text("f.tl", text)))
    (f,) = program.typed.functions
    assert f.outputs[0].op.name == "add"


def test_deep_unary_minus_prints_at_every_stage(tmp_path, capsys):
    """500 nested `-(` ... `)`: every `ir` stage prints it (the parsed stage exited 2 with a
    RecursionError, the others handled it)."""
    path = tmp_path / "neg.tl"
    path.write_text("fn f(x: f64) -> f64 {\n    return " + "-(" * 500 + "x" + ")" * 500 + "\n}\n")
    for stage in pipeline.STAGES:
        assert main(["ir", str(path), "--stage", stage]) == 0, stage
    assert "return" in capsys.readouterr().out


def test_three_thousand_nested_minus_signs_and_calls_print_at_the_parsed_stage(tmp_path, capsys):
    """`ir --stage parsed` of 3,000 levels (it exited 2 with a RecursionError: the printer
    recursed once per level; it now works from a stack)."""
    for name, expr in (("neg", "-" * 3000 + "x"), ("calls", "tanh(" * 3000 + "x" + ")" * 3000)):
        path = tmp_path / f"{name}.tl"
        path.write_text(f"fn f(x: f64) -> f64 {{\n    return {expr}\n}}\n")
        assert main(["ir", str(path), "--stage", "parsed"]) == 0, name
        assert f"    return {expr}  # line 2\n" in capsys.readouterr().out, name


def test_three_thousand_nested_calls_compile_and_differentiate(tl):
    """3,000 nested calls lower in slices (frontend/lower.py), so they compile: they were
    reported as nesting deeper than 20,000 levels, at 1:1."""
    m = tl("fn f(x: f64) -> f64 {\n    return " + "tanh(" * 3000 + "x" + ")" * 3000 + "\n}\ngrad f wrt x\n",
           opt_level=0)
    y, dy = 0.7, 1.0
    for _ in range(3000):
        y = np.tanh(y)
        dy *= 1.0 - y * y
    value, grad = m.f_grad(np.float64(0.7))
    assert value == pytest.approx(y, rel=1e-12) and grad == pytest.approx(dy, rel=1e-9)


def test_an_error_deep_in_a_nested_expression_is_reported_once_where_it_is():
    """A mistake 2,400 levels down (lowered ahead: a multiple of lower._STAGE) gives one
    diagnostic at its own place, and a static argument lowered ahead (the axis) still works."""
    assert 2400 % lower._STAGE == 0
    text = ("fn f(x: f64[3]) -> f64 {\n    return " + "tanh(" * 2399 + "sum(x * y, axis=0)" + ")" * 2399
            + "\n}\n")
    with pytest.raises(CompileError) as err:
        pipeline.typed_stage(pipeline.parse_stage(SourceFile.from_text("f.tl", text)))
    (d,) = err.value.diagnostics
    assert d.message.startswith("unknown name `y`") and (d.span.line, d.span.col) == (2, 12 + 5 * 2399 + 8)
    ok = text.replace("x * y", "x * x")
    (f,) = pipeline.typed_stage(pipeline.parse_stage(SourceFile.from_text("f.tl", ok))).typed.functions
    assert f.outputs[0].type.shape == ()


def test_running_out_of_recursion_is_reported_at_the_expression(monkeypatch):
    """Where recursion still runs out (here: lowering ahead switched off), the error points at
    the expression it was lowering and names no nesting limit the user did not write."""
    monkeypatch.setattr(lower, "_STAGE", 10 ** 9)
    text = "fn f(x: f64) -> f64 {\n    return " + "tanh(" * 3500 + "x" + ")" * 3500 + "\n}\n"
    with pytest.raises(CompileError) as err:
        pipeline.typed_stage(pipeline.parse_stage(SourceFile.from_text("f.tl", text)))
    (d,) = err.value.diagnostics
    assert d.span.line == 2 and d.span.col > 12 and "levels" not in d.message
    assert "ran out of recursion depth here" in d.message


def test_many_repeats_of_one_name_get_numbered_names_in_order(tl):
    """SSA rebinding of one name thousands of times: the generated names stay `a`, `a_1`, `a_2`,
    ... (numbered from where the last one stopped, not searched from 1 each time)."""
    body = "\n".join("    a = a * w + 1.0" for _ in range(300))
    m = tl(f"fn f(x: f64[N], w: f64[N]) -> f64[N] {{\n    a = x\n{body}\n    return a\n}}\n", opt_level=0)
    import inspect

    src = inspect.getsource(m.f)
    assert "a_299 = " in src and "a_300" not in src


def test_no_fold_rule_fires_on_a_node_with_a_computed_input():
    """passes/fold.py skips a node whose inputs are not all constants without asking the rules
    (most nodes of a large program): it relies on each rule folding constants only."""
    from tapeless.compiler.core.ir import graph_scope
    from tapeless.compiler.core.nodes import const, param
    from tapeless.compiler.core.types import DType, TensorType
    from tapeless.compiler.passes.fold import fold_node
    from tapeless.compiler.primitives import algebra as B
    from tapeless.compiler.primitives.folding import FOLD

    with graph_scope():
        x = param("x", TensorType(DType.F64, (3, 4)), 0)
        ones = B.apply("full", shape=(3, 4), value=1.0, dtype=DType.F64)
        nodes = [B.apply("add", x, ones), B.apply("cast", x, dtype=DType.F32), B.apply("sum", x, axes=(0,)),
                 B.apply("reshape", x, shape=(12,)), B.apply("mul", B.apply("exp", x), const(2.0, DType.F64))]
        for n in nodes:
            for rule in FOLD.rules:
                assert rule.fire(n) is None, (rule.name, n.op)
            assert fold_node(n) is n
        folded = fold_node(B.apply("add", ones, ones))  # and the constant case still folds
        assert folded.op.name == "full" and folded.attr("value") == 2.0


def test_lowering_a_flat_sum_visits_each_term_a_bounded_number_of_times(monkeypatch):
    """A sum deeper than lowering's slice is lowered slice by slice (lower_deep_first); the
    loop down each slice's spine stops at the slice below, already lowered. It walked the whole
    spine again from every slice: 10,000 terms took 28 s to lower instead of 1. Counted in
    expression visits, not seconds: linear means the visits per term do not grow with length."""
    visits = {"n": 0}
    inner = lower.Lowering._expr_inner

    def counting(self, e, scope):
        visits["n"] += 1
        return inner(self, e, scope)

    monkeypatch.setattr(lower.Lowering, "_expr_inner", counting)
    per_term = []
    for n in (1000, 4000):
        visits["n"] = 0
        text = "fn f(x: f64) -> f64 {\n    return " + " + ".join(["x"] * n) + "\n}\n"
        pipeline.typed_stage(pipeline.parse_stage(SourceFile.from_text("f.tl", text)))
        per_term.append(visits["n"] / n)
    assert per_term[1] < 1.2 * per_term[0], per_term
