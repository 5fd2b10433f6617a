"""The SymPy cross-check: every primitive's VJP proved against sympy.diff of its SymPy meaning
(generated from the registry), the check of whole programs, and proof that it catches wrong rules."""
from __future__ import annotations

import math
import textwrap

import pytest

from tapeless.compiler import pipeline
from tapeless.compiler.core.primitive import REGISTRY, Kind
from tapeless.compiler.core.source import SourceFile
from tapeless.compiler.tools.check import format_table, parse_sizes, run_check_command
from tapeless.compiler.tools.primitive_proofs import check_primitive
from tapeless.compiler.tools.sympy_check import check_module

def _replace_rule(monkeypatch, name: str, facet: str, rule) -> None:
    """The registry's record for `name` with one rule replaced (records are frozen: a new one)."""
    import dataclasses

    monkeypatch.setitem(REGISTRY, name, dataclasses.replace(REGISTRY[name], **{facet: rule}))


CHECKED = sorted(n for n, p in REGISTRY.items() if p.examples and p.differentiable and p.sympy is not None)
# records without a SymPy meaning, each saying how it is checked instead (the catalogue's finite
# differences, adjoint test and PyTorch references)
# (ckpt_loop, made by an -O2 pass after differentiation and the check, has no meaning either)
OPAQUE = sorted(n for n, p in REGISTRY.items() if p.sympy is None and p.kind is not Kind.LEAF and p.differentiable)


def test_a_record_without_a_sympy_meaning_says_why_and_is_skipped_by_the_check():
    assert OPAQUE == ["eigh_pair", "qr_pair", "svd_triple"]
    assert all(REGISTRY[n].sympy_note for n in OPAQUE)
    for name, builtin in zip(OPAQUE, ("eigh", "qr", "svd")):
        results = check_primitive(name)
        assert results and all(r.status == "skipped" and f"no SymPy meaning: `{builtin}`" in r.detail
                               for r in results), name


@pytest.mark.parametrize("name", CHECKED)
def test_primitive_rules_agree_with_sympy(name):
    results = check_primitive(name)
    assert results, f"{name} has examples but produced no derivative to check"
    bad = [r for r in results if r.status != "pass"]
    assert not bad, format_table(bad)


def _module(text: str):
    return pipeline.ir_stage(SourceFile.from_text("t.tl", textwrap.dedent(text)))


def test_a_wrong_vjp_rule_is_caught(monkeypatch):
    from tapeless.compiler.primitives import algebra as B

    def wrong(ctx, node, ct, needs):  # d sin = sin, not cos
        return [B.mul(ct, B.apply("sin", node.inputs[0]))]

    _replace_rule(monkeypatch, "sin", "vjp", wrong)
    results = {r.function: r for r in check_primitive("sin")}
    vjp = results["sin_0_vjp"]
    assert vjp.status == "FAIL"
    # the report names the element, both values and the point: ct cos(a0) against ct sin(a0)
    first, second, where = vjp.detail.split("\n")
    a, ct = (float(where.split(f"{name} = [")[1].split(",")[0]) for name in ("a0", "ct0"))
    assert first.startswith("d/da0[0, 0]: sympy.diff gives ")
    assert float(first.split()[-1]) == pytest.approx(ct * math.cos(a))
    assert second.strip().startswith("tapeless gives ") and float(second.split()[-1]) == pytest.approx(ct * math.sin(a))
    assert results["sin_0_jvp"].status == "pass"          # the JVP rule is still right


def test_a_wrong_jvp_rule_is_caught(monkeypatch):
    from tapeless.compiler.primitives import algebra as B

    _replace_rule(monkeypatch, "tanh", "jvp", lambda ctx, node, ts: B.mul(ts[0], node))  # tanh' = 1 - tanh^2
    results = {r.function: r for r in check_primitive("tanh")}
    assert results["tanh_0_jvp"].status == "FAIL" and "tangent of output 0" in results["tanh_0_jvp"].detail
    assert results["tanh_0_vjp"].status == "pass"


def test_a_lost_mask_is_caught(monkeypatch):
    from tapeless.compiler.primitives import algebra as B

    _replace_rule(monkeypatch, "relu", "vjp", lambda ctx, node, ct, needs: [ct])  # forgets relu' = 0 for x < 0
    text = """
    # domain x: normal
    fn f(x: f64[N]) -> f64 { return sum(relu(x) * x) }
    grad f wrt x
    """
    results = check_module(_module(text), textwrap.dedent(text))
    assert results[0].status == "FAIL"
    del B


def test_stop_gradient_is_a_constant_to_the_check():
    text = "fn f(x: f64[N]) -> f64 { return sum(x * stop_gradient(x)) }\ngrad f wrt x\n"
    (r,) = check_module(_module(text), text)
    assert r.status == "pass", r.detail


def test_filled_arrays_are_exact_to_the_check():
    """zeros([3]) and full(..., 0.1) are exact rationals to SymPy, as literals are: a Float 0.0
    turned 1/3 + 0.0 into a 15-digit number, and the zero derivative of a softmax of equal
    values (found by the random-program property test) into a 1.4e-17 'disagreement'."""
    text = ("fn h(p: f64[1]) -> f64[3] {\n"
            "    return softmax(softmax(p + zeros([3]), axis=0) + zeros([3]), axis=0) + full([3], 0.1)\n}\n"
            "vjp h wrt p\n")
    (r,) = check_module(_module(text), text)
    assert r.status == "pass", r.detail


def test_the_size_cap_says_so_instead_of_hanging():
    text = "fn f(x: f64[N, 500]) -> f64 { return sum(x * x) }\ngrad f wrt x\n"
    (r,) = check_module(_module(text), text)
    assert r.status == "skipped" and "exceed the cap" in r.detail


def test_sizes_option():
    assert parse_sizes("N=3, M=2") == {"N": 3, "M": 2}
    with pytest.raises(ValueError, match="NAME=SIZE"):
        parse_sizes("N3")
    for bad, message in (("=3", "NAME=SIZE"), ("N=3,N=4", "gives N twice"), ("N=0", "N must be at least 1")):
        with pytest.raises(ValueError, match=message):
            parse_sizes(bad)
    text = "fn f(x: f64[N], y: f64[M]) -> f64 { return sum(x) * sum(y * y) }\ngrad f wrt x, y\n"
    (r,) = check_module(_module(text), text, {"N": 4, "M": 1})
    assert r.status == "pass" and r.elements == 5


def test_check_command_prints_a_table_and_exits_by_result(tmp_path, capsys, monkeypatch):
    good = tmp_path / "good.tl"
    good.write_text("fn f(x: f64[N]) -> f64 { return sum(exp(x) * x) }\nvjp f wrt x\n")
    assert run_check_command(str(good), "N=3") == 0
    out = capsys.readouterr().out
    assert "f_vjp" in out and "pass" in out and "1 of 1 derivative(s) agree with SymPy" in out
    from tapeless.compiler.primitives import algebra as B

    _replace_rule(monkeypatch, "exp", "vjp", lambda ctx, node, ct, needs: [B.mul(ct, node.inputs[0])])
    assert run_check_command(str(good), "") == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "d/dx[0]" in out and "sympy.diff gives" in out and "tapeless gives" in out


def test_check_reports_what_it_cannot_evaluate_and_never_counts_it_as_agreeing(tmp_path, capsys):
    """x[2] at the default size N = 2 cannot be evaluated: an `error` row naming the reason and
    exit status 1, never a traceback or a pass; a file that is not UTF-8 is a plain error."""
    from tapeless.compiler.tools import cli

    src = tmp_path / "m.tl"
    src.write_text("fn f(x: f64[N]) -> f64 { return x[2] * x[0] }\ngrad f wrt x\n"
                   "fn g(x: f64[N]) -> f64 { return sum(x * x) }\ngrad g wrt x\n")
    assert cli.main(["check", str(src)]) == 1
    out = capsys.readouterr().out
    assert "f_grad: error: could not evaluate it at these sizes (IndexError" in out
    assert "1 of 2 derivative(s) agree with SymPy, 1 could not be checked" in out
    assert cli.main(["check", str(src), "--sizes", "N=3"]) == 0
    bad = tmp_path / "bad.tl"
    bad.write_bytes(b"fn f(x: f64) -> f64 { return x \xff }\n")
    assert cli.main(["check", str(bad)]) == 1
    assert "not UTF-8 text" in capsys.readouterr().err


def test_parameters_named_like_the_checks_own_vectors_do_not_confuse_it(tmp_path, capsys):
    """The check's cotangents and directions (ct0, t_x, v_x) are its own symbols: parameters
    with those names once made a right hvp look wrong ('sympy.diff gives 4*v_x[0]*x[0]')."""
    from tapeless.compiler.tools import cli

    src = tmp_path / "m.tl"
    src.write_text("fn f(x: f64[N], v_x: f64[N], ct0: f64[N], t_x: f64[N]) -> f64 {\n"
                   "    return sum(x * x * v_x + ct0 * t_x * x)\n}\n"
                   "hvp f wrt x, v_x\njvp f wrt x, t_x\nvjp f wrt x, ct0\n")
    assert cli.main(["check", str(src), "--sizes", "N=2"]) == 0
    assert "3 of 3 derivative(s) agree with SymPy" in capsys.readouterr().out


def test_sizes_naming_no_parameter_size_are_an_error(tmp_path, capsys):
    src = tmp_path / "m.tl"
    src.write_text("fn f(x: f64[N]) -> f64 { return sum(x * x) }\ngrad f wrt x\n")
    assert run_check_command(str(src), "Q=3") == 1
    assert "--sizes names Q, which no function's parameters use (sizes: N)" in capsys.readouterr().err
