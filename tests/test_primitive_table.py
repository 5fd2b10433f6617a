"""The primitive table: every primitive carries every facet it must have, side by side."""
from __future__ import annotations

import pytest

from tapeless.compiler.primitives.builtin_functions import BUILTINS
from tapeless.compiler.primitives import REGISTRY

FACETS = ("infer", "emit", "vjp", "jvp", "sympy")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_primitive_has_every_facet(name):
    prim = REGISTRY[name]
    missing = [f for f, ok in prim.facets().items() if not ok]
    assert not missing, f"primitive `{name}` lacks {', '.join(missing)}"


def test_non_differentiable_primitives_are_exactly_the_expected_ones():
    """A rule missing is not the same as `not differentiable`: the latter is a short, reviewed list."""
    nondiff = sorted(n for n, p in REGISTRY.items() if not p.differentiable)
    assert nondiff == ["eq", "ge", "gt", "le", "logical_and", "logical_not", "logical_or", "lt", "ne", "onehot"]


def test_every_builtin_is_covered_by_the_catalogue():
    from catalogue import CASES

    used = " ".join(c.expr for c in CASES)
    missing = [b for b in BUILTINS if b not in used and b not in ("i32", "i64", "bool", "f16")]
    assert not missing, f"built-ins without a catalogue case: {missing}"


def test_facet_check_fails_for_an_incomplete_record():
    from tapeless.compiler.core.primitive import Primitive

    p = Primitive("fake", "elementwise", infer=lambda t, a: t[0])
    assert not all(p.facets().values())


@pytest.mark.parametrize("name", sorted(n for n, p in REGISTRY.items() if p.ufunc))
def test_the_ufunc_a_fused_loop_calls_computes_the_primitive(name):
    """The `ufunc` fact (what kernels call with out=) agrees with the primitive's own
    evaluation `fold` on sample values: a mislabelled record fails here, not in a model."""
    import numpy as np

    prim = REGISTRY[name]
    ufunc_name, extra = prim.ufunc
    ufunc = getattr(np, ufunc_name)
    assert isinstance(ufunc, np.ufunc) and prim.elementwise
    n_in = ufunc.nin - len(extra)
    if prim.infer.__name__ == "_logic_infer":
        args = [np.array([True, False, True, False]), np.array([True, True, False, False])][:n_in]
    else:
        args = [np.array([0.25, 0.5, 1.5, 2.0]), np.array([2.0, 0.5, 0.75, 3.0])][:n_in]
    got = ufunc(*args, *(float(e) for e in extra))
    np.testing.assert_array_equal(got, prim.fold(*args))


def test_codegen_facts_are_where_the_generator_looks():
    """Views are copied before being returned, and quiet/costly ops are the reviewed lists."""
    assert sorted(n for n, p in REGISTRY.items() if p.view) == [
        "broadcast_to", "diagonal", "einsum", "expand_dims", "index", "reshape", "squeeze", "stop_gradient",
        "transpose"]
    assert callable(REGISTRY["einsum"].view)  # only one operand, nothing summed: see test_codegen
    assert all(REGISTRY[n].quiet for n in ("exp", "log", "div", "where", "softmax", "cross_entropy"))
    assert all(REGISTRY[n].costly for n in ("exp", "log", "tanh", "softmax")) and not REGISTRY["add"].costly
    # composites spelled in primitives at -O1 (their forms in primitives/forms.py; -O0 against -O1
    # on the corpus and the inf/nan logits test check they compute the same)
    assert sorted(n for n, p in REGISTRY.items() if p.expand) == [
        "bce_with_logits", "cross_entropy", "sigmoid", "softmax", "softplus"]


@pytest.mark.parametrize("name", sorted(n for n, p in REGISTRY.items() if p.reducer))
def test_the_reducer_a_fused_loop_totals_with_is_the_reduction(name):
    """The `reducer` fact (fused loops total a block with xp.NAME.reduce and combine the
    threads' parts with xp.NAME) is the reduction: a mislabelled record fails here."""
    import numpy as np

    x = np.array([[0.25, -1.5, 2.0], [3.0, 0.5, -0.75]])
    reducer = getattr(np, REGISTRY[name].reducer)
    assert isinstance(reducer, np.ufunc) and REGISTRY[name].kind == "reduce"
    np.testing.assert_array_equal(reducer.reduce(x, axis=None), getattr(np, name)(x))
    np.testing.assert_array_equal(reducer(x[0], x[1]), getattr(np, name)(x, axis=0))
    assert sorted(n for n, p in REGISTRY.items() if p.reducer) == ["max", "min", "prod", "sum"]
