"""The primitive table: every primitive carries every facet it must have, side by side, and
the facts code generation reads off a record agree with what the primitive computes."""
from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest
import scipy.special

from tapeless.compiler.core.primitive import REGISTRY, Cost, Kind, Primitive, ops
from tapeless.compiler.core.types import DType
from tapeless.compiler.primitives.builtin_functions import BUILTINS
from tapeless.compiler.primitives.common import Combine
from tapeless.compiler.primitives.common import SCALAR_FUNCTIONS
from tapeless.compiler.primitives.forms import FORMS


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_primitive_has_every_facet(name):
    prim = REGISTRY[name]
    missing = [f for f, ok in prim.facets().items() if not ok]
    assert not missing, f"primitive `{name}` lacks {', '.join(missing)}"


def test_records_are_frozen_and_compared_by_identity():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ops.exp.vjp = None
    assert ops.exp is REGISTRY["exp"] and ops.exp != ops.log
    with pytest.raises(TypeError, match="compared with the string 'exp'"):
        ops.exp == "exp"  # noqa: B015 - the comparison itself must raise
    with pytest.raises(AttributeError, match="no primitive named 'exq'"):
        ops.exq


def test_non_differentiable_primitives_are_exactly_the_expected_ones():
    """A rule missing is not the same as `not differentiable`: the latter is a short, reviewed list."""
    nondiff = sorted(n for n, p in REGISTRY.items() if not p.differentiable)
    assert nondiff == ["argmax", "argmin", "argsort", "checked_labels", "ckpt_bwd", "ckpt_fwd", "eq", "ge", "gt", "le", "logical_and", "logical_not", "logical_or",
                       "lt", "ne", "onehot"]
    assert [n for n, p in REGISTRY.items() if p.detaches] == ["stop_gradient"]


def test_rule_shapes_are_the_reviewed_ones():
    """Which named shape built each record's derivative rules (primitives/rule_shapes.py)."""
    by_shape: dict[str, list[str]] = {}
    for name, prim in REGISTRY.items():
        by_shape.setdefault(prim.rule_shape, []).append(name)
    assert sorted(by_shape["bilinear"]) == ["conv", "conv_grad_w", "conv_grad_x", "einsum", "matmul", "mul"]
    assert sorted(by_shape["linear"]) == [
        "add", "broadcast_to", "cast", "concat", "cumsum", "diagonal", "expand_dims", "index", "index_grad",
        "index_grads", "reshape", "roll", "squeeze", "sub", "sum", "take", "take_along_axis", "take_along_axis_grad", "take_grad", "transpose",
        "tril", "triu", "windows", "windows_grad"]
    assert sorted(by_shape["constructor"]) == ["eye", "full"]
    assert sorted(by_shape["leaf"]) == ["const", "dim", "param"]
    assert sorted(by_shape["nondifferentiable"]) == sorted(n for n, p in REGISTRY.items() if not p.differentiable)
    # one JVP for every bilinear op: the sum over operands of the op with one operand's tangent
    assert len({REGISTRY[n].jvp.__code__ for n in by_shape["bilinear"]}) == 1


def test_every_builtin_is_covered_by_the_catalogue():
    from catalogue import CASES

    used = " ".join(f"{c.prelude} {c.expr}" for c in CASES)
    missing = [b for b in BUILTINS if b not in used and b not in ("i32", "i64", "bool", "f16")]
    assert not missing, f"built-ins without a catalogue case: {missing}"


def test_facet_check_fails_for_an_incomplete_record():
    p = Primitive("fake", "elementwise", infer=lambda t, a: t[0], elementwise=True)
    missing = [f for f, ok in p.facets().items() if not ok]
    assert missing == ["emit", "vjp", "jvp", "sympy", "scalar", "examples"]


@pytest.mark.parametrize("name", sorted(n for n, p in REGISTRY.items() if p.ufunc))
def test_the_ufunc_a_fused_loop_calls_computes_the_primitive(name):
    """The `loop.ufunc` fact (what fused loops call with out=) agrees with the primitive's own
    evaluation `fold` on sample values: a mislabelled record fails here, not in a model."""
    prim = REGISTRY[name]
    ufunc_name, extra = prim.ufunc
    ufunc = getattr(np, ufunc_name)
    assert isinstance(ufunc, np.ufunc) and prim.elementwise
    n_in = ufunc.nin - len(extra)
    args = _samples(prim)[:n_in]
    with np.errstate(invalid="ignore"):  # samples outside arccosh's or arcsin's domain: NaN on both sides
        got = ufunc(*args, *(float(e) for e in extra))
        np.testing.assert_array_equal(got, prim.fold(*args))


def _samples(prim):
    if prim.name.startswith("logical"):
        return [np.array([True, False, True, False]), np.array([True, True, False, False])]
    return [np.array([0.25, 0.5, 1.5, 2.0]), np.array([2.0, 0.5, 0.75, 3.0]), np.array([1.0, 0.25, 1.0, 2.5])]


# ---- the scalar expressions (for compiled backends) ----------------------------------------------
_C_FUNCTIONS = {
    "exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1, "sqrt": np.sqrt, "sin": np.sin,
    "cos": np.cos, "tan": np.tan, "tanh": np.tanh, "fabs": np.abs, "sign": np.sign, "max": np.maximum,
    "min": np.minimum, "pow": np.power, "select": np.where, "cast": lambda v, dt: np.asarray(v).astype(dt),
    "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "atan2": np.arctan2, "sinh": np.sinh, "cosh": np.cosh,
    "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh, "hypot": np.hypot, "log2": np.log2,
    "log10": np.log10, "exp2": np.exp2, "cbrt": np.cbrt, "floor": np.floor, "ceil": np.ceil, "trunc": np.trunc,
    "rint": np.rint, "fmod": np.fmod, **{f: getattr(scipy.special, f) for f in (
        "erf", "erfc", "erfinv", "erfcx", "ndtr", "log_ndtr", "digamma", "polygamma", "i0", "i1", "i0e", "i1e")},
    "lgamma": scipy.special.gammaln, "j0": scipy.special.j0, "j1": scipy.special.j1,
}


# elementwise records the language has no name for (rules and forms make them): checked below
_INTERNAL = ("logical_and", "logical_or", "logical_not", "finite_or_zero")


def scalar_eval(template: str, args, attrs: dict):
    """The C-like scalar expression evaluated over NumPy values: operands go in parenthesised,
    `&& || !` read as Python's `and or not` (elementwise on these bools), calls as the functions
    of SCALAR_FUNCTIONS."""
    names = [f"a{i}" for i in range(len(args))]
    text = template.format(*[f"({n})" for n in names], **{k: f"'{v.numpy_name}'" if isinstance(v, DType) else v
                                                           for k, v in attrs.items()})
    text = text.replace("&&", "&").replace("||", "|")
    text = re.sub(r"!(?!=)", "~", text)
    called = set(re.findall(r"([a-z_][a-z0-9_]*)\(", text))
    assert called <= set(SCALAR_FUNCTIONS), f"{template}: calls {sorted(called - set(SCALAR_FUNCTIONS))}"
    env = dict(_C_FUNCTIONS, **dict(zip(names, args)))
    with np.errstate(all="ignore"):
        return eval(text, {"__builtins__": {}}, env)  # noqa: S307 - our own templates, checked above


@pytest.mark.parametrize("name", sorted(n for n, p in REGISTRY.items() if p.scalar and n not in _INTERNAL))
def test_the_scalar_expression_computes_the_primitive(name, tmp_path):
    """Every elementwise record's `scalar` facet, evaluated as C would, equals the generated NumPy
    code on sample values (including the stable forms' extremes: softplus(800), sigmoid(-800))."""
    from util import compile_module

    prim = REGISTRY[name]
    examples = {
        "where": (["bool[6]", "f64[6]", "f64[6]"], {}),
        "cast": (["f64[6]"], {"dtype": DType.I64}),
        "clip": (["f64[6]", "f64", "f64"], {}),
        "binary_cross_entropy": (["f64[6]", "f64[6]"], {}),
        "polygamma": (["f64[6]"], {"n": 1}),
    }
    arity = len(re.findall(r"\{(\d)\}", prim.scalar)) and 1 + max(int(d) for d in re.findall(r"\{(\d)\}", prim.scalar))
    types, attrs = examples.get(name, (["bool[6]"] * arity if name.startswith("logical") else ["f64[6]"] * arity, {}))
    rng = np.random.default_rng(0)
    values = []
    for t in types:
        if t.startswith("bool"):
            values.append(rng.random(6) < 0.5)
        elif t == "f64":
            values.append(np.float64(rng.uniform(-1, 1)))
        elif name in ("log", "sqrt", "log1p"):
            values.append(rng.uniform(0.1, 3.0, 6))
        elif name == "binary_cross_entropy":
            values.append(rng.uniform(0.05, 0.95, 6))
        else:
            values.append(np.array([-800.0, -2.5, -0.5, 0.25, 1.5, 800.0]) if name in ("softplus", "sigmoid", "exp",
                                                                                      "bce_with_logits")
                          else rng.uniform(-3, 3, 6))
    if name == "exp":
        values = [np.array([-800.0, -2.5, -0.5, 0.25, 1.5, 80.0])]
    params = ", ".join(f"a{i}: {t}" for i, t in enumerate(types))
    call = {"neg": "-a0", "add": "a0 + a1", "sub": "a0 - a1", "mul": "a0 * a1", "div": "a0 / a1", "pow": "a0 ** a1",
            "eq": "a0 == a1", "ne": "a0 != a1", "lt": "a0 < a1", "le": "a0 <= a1", "gt": "a0 > a1",
            "ge": "a0 >= a1", "cast": "i64(a0)", "polygamma": "polygamma(1, a0)", "mod": "a0 % a1"}.get(name)
    body = call or f"{name}({', '.join(f'a{i}' for i in range(len(types)))})"
    m = compile_module(f"fn f({params}) {{\n    return {body}\n}}\n", tmp_path)
    want = np.asarray(m.f(*values))
    got = np.asarray(scalar_eval(prim.scalar, values, attrs))
    np.testing.assert_allclose(got.astype(float), want.astype(float), rtol=1e-12, atol=1e-300)


def test_the_internal_mask_ops_scalar_expressions():
    """logical_and/or/not and finite_or_zero are not in the language (rules and forms make them):
    checked here."""
    a, b = np.array([True, False, True, False]), np.array([True, True, False, False])
    assert (scalar_eval(ops.logical_and.scalar, [a, b], {}) == (a & b)).all()
    assert (scalar_eval(ops.logical_or.scalar, [a, b], {}) == (a | b)).all()
    assert (scalar_eval(ops.logical_not.scalar, [a], {}) == ~a).all()
    x = np.array([-np.inf, -2.5, -0.0, 0.25, np.inf, np.nan])
    got = scalar_eval(ops.finite_or_zero.scalar, [x], {})
    np.testing.assert_array_equal(got, ops.finite_or_zero.fold(x))
    np.testing.assert_array_equal(got, [0, -2.5, -0.0, 0.25, 0, 0])


def test_a_wrong_scalar_expression_is_caught():
    """The evaluator is strict: a template calling a function outside the vocabulary fails."""
    with pytest.raises(AssertionError, match="calls"):
        scalar_eval("logaddexp({0}, 0)", [np.ones(2)], {})
    assert not math.isclose(scalar_eval("exp({0})", [np.float64(1.0)], {}), scalar_eval("log({0})", [1.0], {}))


# ---- code-generation facts ---------------------------------------------------------------------
def test_codegen_facts_are_where_the_generator_looks():
    """Views are copied before being returned, and quiet/costly ops are the reviewed lists."""
    assert sorted(n for n, p in REGISTRY.items() if p.view) == [
        "broadcast_to", "checked_labels", "diagonal", "dyn_index", "einsum", "expand_dims", "finite_or_zero", "index",
        "reshape", "squeeze", "stop_gradient", "transpose", "windows"]
    assert callable(REGISTRY["einsum"].view)  # only one operand, nothing summed: see test_codegen
    # views a fused loop may write over (plan.reusable_inputs): one element of the input each
    assert sorted(n for n, p in REGISTRY.items() if p.relabels) == [
        "expand_dims", "reshape", "squeeze", "stop_gradient", "transpose"]
    assert all(p.view for p in REGISTRY.values() if p.relabels)
    assert all(REGISTRY[n].quiet for n in ("exp", "log", "div", "where", "softmax", "cross_entropy"))
    assert all(REGISTRY[n].cost is Cost.COSTLY for n in ("exp", "log", "tanh", "softmax"))
    assert ops.add.cost is Cost.CHEAP and ops.matmul.cost is Cost.CONTRACTION and ops.transpose.cost is Cost.FREE
    # composites spelled in primitives at -O1 (their forms in primitives/forms.py; -O0 against -O1
    # on the corpus and the inf/nan logits test check they compute the same)
    assert sorted(h for r in FORMS.rules for h in r.pattern.heads()) == [
        "bce_with_logits", "cross_entropy", "sigmoid", "softmax", "softplus"]
    assert sorted(n for n, p in REGISTRY.items() if p.allocates) == [
        "conv", "conv_grad_w", "conv_grad_x", "eye", "full", "index_grad", "index_grads", "index_grads_onto", "onehot", "stack_first", "sub_label",
        "take_along_axis_grad",
        "take_grad", "windows_grad"]
    assert not any(p.allocates and p.view for p in REGISTRY.values())
    assert sorted(n for n, p in REGISTRY.items() if p.loop and p.loop.row) == ["maximum", "minimum", "relu"]
    assert sorted(n for n, p in REGISTRY.items() if p.loop and p.loop.rowwise) == ["log_softmax", "pick_label", "softmax",
                                                                                  "sub_label"]


def test_every_helper_a_record_carries_resolves():
    from tapeless.compiler.codegen.backends import helper_closure, helpers

    table = helpers()
    for prim in REGISTRY.values():
        for h in prim.helpers:
            assert table[h.name] is h
            assert f"def _{h.name}(" in h.source or f" as _{h.name}" in h.source, \
                f"{h.name}: its source must define _{h.name}"
            helper_closure([h.name])  # every helper it uses exists


@pytest.mark.parametrize("name", sorted(n for n, p in REGISTRY.items() if p.reducer))
def test_the_reducer_a_fused_loop_totals_with_is_the_reduction(name):
    """The `reducer` fact (fused loops total a block with xp.NAME.reduce and combine the
    threads' parts with xp.NAME) is the reduction: a mislabelled record fails here."""
    x = np.array([[0.25, -1.5, 2.0], [3.0, 0.5, -0.75]])
    reducer = getattr(np, REGISTRY[name].reducer)
    assert isinstance(reducer, np.ufunc) and REGISTRY[name].kind is Kind.REDUCE
    np.testing.assert_array_equal(reducer.reduce(x, axis=None), getattr(np, name)(x))
    np.testing.assert_array_equal(reducer(x[0], x[1]), getattr(np, name)(x, axis=0))
    assert sorted(n for n, p in REGISTRY.items() if p.reducer) == ["max", "min", "prod", "sum"]
    # (a loop's partials combined across blocks: the reductions, and conv's w gradient, a sum over
    # blocks of images: its record's Loop.images says how a block is run)
    assert sorted(n for n, p in REGISTRY.items() if p.loop and p.loop.combine and not p.loop.images) == \
        ["max", "min", "sum"]
    assert all(p.loop.combine is Combine.SUM for p in REGISTRY.values() if p.loop and p.loop.images and p.loop.combine)
