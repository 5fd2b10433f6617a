"""Large programs: what a generated or unrolled .tl file is made of must not hit a limit the
user did not write (benchmarks/compile_scale.py measures how compile time grows)."""
from __future__ import annotations

from tapeless.compiler import pipeline
from tapeless.compiler.core.source import SourceFile
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
